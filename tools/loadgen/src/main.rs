//! `watchcache-loadgen`: parse flags, run, print the report. Bad flags exit with code 2;
//! a delivery lost (or repeated) with no expiry to explain it, or a target that cannot
//! be reached, exits with code 1.

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use watchcache_loadgen::{run, run_network, Config, Report};

/// Runs embedded, or against `--target`.
fn execute(config: &Config, progress: impl FnMut(f64)) -> Result<Report, String> {
    match &config.target {
        Some(target) => run_network(config, target, progress),
        None => Ok(run(config, progress)),
    }
}

fn main() -> ExitCode {
    let config = Config::parse();
    let report = if std::io::stderr().is_terminal() && !config.json {
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("{elapsed} [{bar:40}] {percent}%").expect("a valid template"),
        );
        let report = execute(&config, |done| bar.set_position((done * 1000.0) as u64));
        bar.finish_and_clear();
        report
    } else {
        let mut last = u64::MAX;
        execute(&config, |done| {
            let percent = (done * 100.0) as u64;
            if percent / 10 != last / 10 && !config.json {
                eprintln!("running: {percent}%");
                last = percent;
            }
        })
    };
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("watchcache-loadgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    if config.json {
        println!("{}", report.to_json());
    } else {
        println!(
            "watchcache-loadgen: {} producers, {} watchers ({:?}, {:?}), {:?}",
            config.producers, config.watchers, config.consumers, config.receive, config.policy
        );
        println!("{report}");
    }
    match report.loss() {
        Some(loss) => {
            eprintln!("watchcache-loadgen: {loss}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

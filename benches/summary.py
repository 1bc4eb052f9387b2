#!/usr/bin/env python3
"""Prints each criterion row of the last run as PERF.md records it: the median of the
samples' throughput and, in brackets, the slowest and fastest sample.

    python3 benches/summary.py [GROUP ...]     # every group under target/criterion if none

A sample's throughput is elements per iteration times iterations over its time, read from
criterion's own `benchmark.json` and `sample.json` of the newest run (`new/`).
"""
import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def rate(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}/s"
    return f"{value:.3g} /s"


def rows(group):
    for benchmark in sorted((ROOT / group).glob("*/*/new/benchmark.json")):
        meta = json.loads(benchmark.read_text())
        samples = json.loads((benchmark.parent / "sample.json").read_text())
        elements = meta["throughput"]["Elements"]
        rates = [elements * iters / (time / 1e9) for iters, time in zip(samples["iters"], samples["times"])]
        yield meta["value_str"], meta["function_id"], statistics.median(rates), min(rates), max(rates)


def main(groups):
    groups = groups or sorted(path.name for path in ROOT.iterdir() if path.is_dir() and path.name != "report")
    for group in groups:
        print(f"## {group}")
        for parameter, peer, median, low, high in sorted(rows(group), key=lambda row: (row[0], row[1])):
            print(f"{parameter:>22}  {peer:<28} {rate(median):>12}  [{rate(low)} … {rate(high)}]")


if __name__ == "__main__":
    main(sys.argv[1:])

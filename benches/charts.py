#!/usr/bin/env python3
"""PERF.md's pictures, drawn from measured data (plain SVG, no plotting library).

    # 1. collect: the figures to plot, from criterion's last run of `shapes`, the Kubernetes
    #    anchor's output and load-generator reports, into one JSON file (committed beside
    #    the pictures, so they can be drawn again without the run)
    python3 benches/charts.py collect --kubernetes k8s.log \\
        --loadgen "label=run1.json,run2.json,run3.json" ... > benches/data/run7.json
    # 2. plot: writes shapes.svg and latency.svg beside PERF.md
    python3 benches/charts.py plot benches/data/run7.json

shapes.svg: deliveries per second for each of the Kubernetes Cacher's shapes (consumers
as tokio tasks), the median of criterion's samples with the slowest and fastest as a
whisker, for watchcache's batch receive (`visit`), its `Stream`, tokio's broadcast channel
and the real Kubernetes Cacher (median of its runs). latency.svg: the load generator's
latency from each event's intended send time over the whole distribution (HdrHistogram's
percentile spectrum), one line per configuration, from the run with the median p99.
"""
import argparse
import json
import math
import pathlib
import re
import statistics

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"

SHAPES = ["1_unfiltered", "10_unfiltered", "100_unfiltered", "1000_unfiltered", "1000_filtered_1pct"]
SHAPE_LABELS = ["1", "10", "100", "1,000", "1,000 filtered 1%"]
SERIES = [
    ("watchcache_visit", "watchcache visit", "#1f5fa8"),
    ("watchcache_stream", "watchcache Stream", "#6fa8dc"),
    ("tokio_broadcast", "tokio broadcast", "#b45f06"),
    ("kubernetes", "Kubernetes Cacher", "#6a6a6a"),
]
# The anchor's benchmark names for each shape.
ANCHOR = {
    "1_unfiltered": "CacherFanout/watchers=1",
    "10_unfiltered": "CacherFanout/watchers=10",
    "100_unfiltered": "CacherFanout/watchers=100",
    "1000_unfiltered": "CacherFanout/watchers=1000",
    "1000_filtered_1pct": "CacherFanoutSelective/watchers=1000",
}
LINE_COLOURS = ["#6a6a6a", "#1f5fa8", "#6fa8dc", "#38761d", "#b45f06", "#741b47"]


def criterion_rates(group, peer, parameter):
    """Every sample's throughput of one criterion row, in elements per second."""
    folder = CRITERION / group / peer / parameter / "new"
    meta = json.loads((folder / "benchmark.json").read_text())
    samples = json.loads((folder / "sample.json").read_text())
    elements = meta["throughput"]["Elements"]
    return [elements * iters / (time / 1e9) for iters, time in zip(samples["iters"], samples["times"])]


def anchor_rates(log):
    """deliveries/s of every run of every anchor benchmark in a `go test` output."""
    rates = {}
    for line in pathlib.Path(log).read_text().splitlines():
        found = re.match(r"BenchmarkAnchor_(\S+?)-\d+\s.*?\s([\d.]+) deliveries/s", line)
        if found:
            rates.setdefault(found.group(1), []).append(float(found.group(2)))
    return rates


def spread(rates):
    return {"median": statistics.median(rates), "low": min(rates), "high": max(rates)}


def collect(arguments):
    anchor = anchor_rates(arguments.kubernetes)
    shapes = {}
    for shape in SHAPES:
        row = {peer: spread(criterion_rates("shapes", peer, shape)) for peer, _, _ in SERIES[:3]}
        row["kubernetes"] = spread(anchor[ANCHOR[shape]])
        shapes[shape] = row
    latency = {}
    for argument in arguments.loadgen:
        label, files = argument.split("=", 1)
        reports = [json.loads(pathlib.Path(name).read_text()) for name in files.split(",")]
        reports.sort(key=lambda report: report["intended_latency_micros"]["p99"])
        middle = reports[len(reports) // 2]
        latency[label] = {
            "p99_micros": [report["intended_latency_micros"]["p99"] for report in reports],
            "cpu_seconds_per_million_deliveries": [
                report["cpu_seconds_per_million_deliveries"] for report in reports
            ],
            "spectrum": [[point["quantile"], point["micros"]] for point in middle["intended_latency_spectrum"]],
        }
    print(json.dumps({"shapes": shapes, "latency": latency}, indent=1))


class Svg:
    def __init__(self, width, height):
        self.width, self.height, self.parts = width, height, []

    def add(self, element):
        self.parts.append(element)

    def text(self, x, y, content, size=12, anchor="middle", rotate=None, weight="normal"):
        transform = f' transform="rotate({rotate} {x} {y})"' if rotate else ""
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" font-family="sans-serif"{transform}>{content}</text>'
        )

    def line(self, x1, y1, x2, y2, colour="#000", width=1, dash=None):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="{width}"{dashes}/>'
        )

    def rect(self, x, y, width, height, colour):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{colour}"/>')

    def write(self, path):
        body = "\n".join(self.parts)
        path.write_text(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">\n<rect width="100%" height="100%" fill="#fff"/>\n'
            f"{body}\n</svg>\n"
        )


def rate_label(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def legend(svg, x, y, entries):
    for index, (label, colour) in enumerate(entries):
        top = y + index * 18
        svg.rect(x, top - 10, 12, 12, colour)
        svg.text(x + 18, top, label, anchor="start")


def plot_shapes(shapes, path):
    svg = Svg(900, 460)
    left, right, top, bottom = 80, 700, 50, 380
    low = 10 ** math.floor(math.log10(min(row[peer]["low"] for row in shapes.values() for peer, _, _ in SERIES)))
    high = 10 ** math.ceil(math.log10(max(row[peer]["high"] for row in shapes.values() for peer, _, _ in SERIES)))

    def y_of(value):
        return bottom - (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)) * (bottom - top)

    svg.text((left + right) / 2, 24, "Deliveries per second on the Kubernetes Cacher's shapes (log scale)", 15, weight="bold")
    decade = low
    while decade <= high:
        svg.line(left, y_of(decade), right, y_of(decade), "#ddd")
        svg.text(left - 8, y_of(decade) + 4, rate_label(decade), anchor="end")
        decade *= 10
    svg.text(22, (top + bottom) / 2, "deliveries / s", rotate=-90)
    group_width = (right - left) / len(SHAPES)
    bar = group_width * 0.8 / len(SERIES)
    for index, (shape, label) in enumerate(zip(SHAPES, SHAPE_LABELS)):
        start = left + index * group_width + group_width * 0.1
        for series, (peer, _, colour) in enumerate(SERIES):
            figures = shapes[shape][peer]
            x = start + series * bar
            svg.rect(x + 1, y_of(figures["median"]), bar - 2, bottom - y_of(figures["median"]), colour)
            middle = x + bar / 2
            svg.line(middle, y_of(figures["low"]), middle, y_of(figures["high"]), "#000", 1)
        svg.text(left + (index + 0.5) * group_width, bottom + 18, label)
    svg.text((left + right) / 2, bottom + 40, "watchers (consumers as tokio tasks)")
    svg.line(left, bottom, right, bottom)
    legend(svg, right + 20, top + 10, [(label, colour) for _, label, colour in SERIES])
    svg.text(right + 20, top + 100, "bars: median;", 11, anchor="start")
    svg.text(right + 20, top + 114, "whiskers: slowest to", 11, anchor="start")
    svg.text(right + 20, top + 128, "fastest sample", 11, anchor="start")
    svg.write(path)


def plot_latency(latency, path):
    svg = Svg(900, 460)
    left, right, top, bottom = 80, 640, 50, 380
    # x: the number of nines, -log10(1 - q), as HdrHistogram plots a percentile spectrum.
    nines = lambda quantile: -math.log10(max(1 - quantile, 1e-6))
    points = {label: [(q, micros) for q, micros in data["spectrum"] if q < 1.0] for label, data in latency.items()}
    x_high = 5.0
    y_low = 10 ** math.floor(math.log10(min(micros for line in points.values() for _, micros in line)))
    y_high = 10 ** math.ceil(math.log10(max(micros for line in points.values() for _, micros in line)))

    def x_of(quantile):
        return left + min(nines(quantile), x_high) / x_high * (right - left)

    def y_of(micros):
        return bottom - (math.log10(max(micros, y_low)) - math.log10(y_low)) / (
            math.log10(y_high) - math.log10(y_low)
        ) * (bottom - top)

    svg.text((left + right) / 2, 24, "Load generator: latency from the intended send time", 15, weight="bold")
    for digits, label in enumerate(["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]):
        x = left + digits / x_high * (right - left)
        svg.line(x, top, x, bottom, "#ddd")
        svg.text(x, bottom + 18, label)
    decade = y_low
    while decade <= y_high:
        svg.line(left, y_of(decade), right, y_of(decade), "#ddd")
        svg.text(left - 8, y_of(decade) + 4, f"{decade:g} µs", anchor="end")
        decade *= 10
    svg.text((left + right) / 2, bottom + 40, "percentile")
    svg.line(left, bottom, right, bottom)
    entries = []
    for index, (label, line) in enumerate(points.items()):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        path_data = " ".join(
            f"{'M' if step == 0 else 'L'}{x_of(q):.1f},{y_of(micros):.1f}" for step, (q, micros) in enumerate(line)
        )
        svg.add(f'<path d="{path_data}" fill="none" stroke="{colour}" stroke-width="2"/>')
        entries.append((label, colour))
    legend(svg, right + 20, top + 10, entries)
    svg.text(right + 20, top + 20 + 18 * len(entries), "each line: the run with", 11, anchor="start")
    svg.text(right + 20, top + 34 + 18 * len(entries), "the median p99 of its three", 11, anchor="start")
    svg.write(path)


def plot(arguments):
    data = json.loads(pathlib.Path(arguments.data).read_text())
    plot_shapes(data["shapes"], ROOT / "shapes.svg")
    plot_latency(data["latency"], ROOT / "latency.svg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect", help="the figures to plot, as JSON on standard output")
    gather.add_argument("--kubernetes", required=True, help="the Kubernetes anchor's `go test` output")
    gather.add_argument("--loadgen", action="append", default=[], help="LABEL=REPORT.json[,REPORT.json…]")
    gather.set_defaults(run=collect)
    draw = commands.add_parser("plot", help="write shapes.svg and latency.svg beside PERF.md")
    draw.add_argument("data", help="what `collect` wrote")
    draw.set_defaults(run=plot)
    arguments = parser.parse_args()
    arguments.run(arguments)


if __name__ == "__main__":
    main()

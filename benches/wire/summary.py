#!/usr/bin/env python3
"""The table of benches/wire/run.sh: one row per server, wire form and connection count, each
figure the median of the rounds with their range (min-max) beside it. Latency runs
from each write's intended send time to its delivery, so a server that holds writes
back shows it there as well as in the writes' own p99 (from the intended time to the
answer). "unread" counts deliveries still unread when the run's drain deadline passed.

    python3 benches/wire/summary.py target/wire/<time>/*.json
"""
import json
import os
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for path in sys.argv[1:]:
    # SERVER-WIRE-CONNECTIONS-ROUND.json, a server's name holding dashes itself.
    server, wire, connections, _round = os.path.basename(path)[: -len(".json")].rsplit("-", 3)
    with open(path) as file:
        text = file.read().strip()
    if not text:
        print(f"{path}: no report (the run failed)", file=sys.stderr)
        continue
    runs[(int(connections), server, wire)].append(json.loads(text))


def figure(reports, get, scale=1.0, digits=0):
    values = sorted(get(report) * scale for report in reports)
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} ({values[0]:,.{digits}f}–{values[-1]:,.{digits}f})"


columns = [
    ("writes/s asked", lambda r: r["config"]["rate"], 1.0, 0),
    ("write p99 ms", lambda r: r["send_lag_micros"]["p99"], 1e-3, 1),
    ("deliveries/s", lambda r: r["deliveries_per_second"], 1.0, 0),
    ("p50 ms", lambda r: r["intended_latency_micros"]["p50"], 1e-3, 1),
    ("p99 ms", lambda r: r["intended_latency_micros"]["p99"], 1e-3, 1),
    ("CPU s / M deliveries: server + etcd", lambda r: r["server_cpu_seconds_per_million_deliveries"], 1.0, 1),
    ("encodes / event: json", lambda r: r.get("server_encodes_per_event", 0), 1.0, 2),
    ("protobuf", lambda r: r.get("server_protobuf_encodes_per_event", 0), 1.0, 2),
    ("client", lambda r: r["cpu_seconds_per_million_deliveries"], 1.0, 1),
]
print("| connections | server | wire | runs | " + " | ".join(name for name, *_ in columns) + " | unread |")
print("|---:|---|---|---:|" + "---:|" * len(columns) + "---:|")
for (connections, server, wire), reports in sorted(runs.items()):
    lost = sum(max(0, r["expected_deliveries"] - r["deliveries"]) for r in reports)
    cells = [figure(reports, get, scale, digits) for _, get, scale, digits in columns]
    print(f"| {connections:,} | {server} | {wire} | {len(reports)} | " + " | ".join(cells) + f" | {lost} |")

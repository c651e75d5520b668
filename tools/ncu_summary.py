#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (`ncu --metrics gpu__time_duration.sum --csv`) by kernel name and
prints the 30 largest: total GPU time, share, launches. Compare the total with the wall time of
the same work to see how much is host overhead. Usage: ncu_summary.py FILE.csv"""
import collections
import csv
import sys

scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
tot, cnt = collections.Counter(), collections.Counter()
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 14]
if not rows:
    sys.exit(f"{sys.argv[1]}: no kernel rows (did ncu run?)")
head = rows[0]
k, u, v = head.index("Kernel Name"), head.index("Metric Unit"), head.index("Metric Value")
for r in rows[1:]:
    name = r[k].split("(")[0][:70]
    tot[name] += float(r[v].replace(",", "")) * scale.get(r[u], 1.0)
    cnt[name] += 1
s = sum(tot.values())
print(f"{len(rows) - 1} kernels, {s / 1e3:.2f} ms GPU time (units seen: {sorted(set(r[u] for r in rows[1:]))})")
for name, t in tot.most_common(30):
    print(f"{t / 1e3:9.3f} ms {100 * t / s:5.1f}% {cnt[name]:6d}  {name}")

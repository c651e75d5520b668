#!/usr/bin/env python3
"""Prints `moda eval --json` results of several runs side by side: compare_evals.py FILE:LABEL..."""
import json
import sys

runs = []
for arg in sys.argv[1:]:
    path, _, label = arg.partition(":")
    with open(path) as f:
        runs.append((label or path, json.load(f)))
sets = sorted(runs[0][1]["sets"]) + ["average"]
header = f"{'validation set':<16}" + "".join(f"{label + ' ppl':>22}" for label, _ in runs)
print(header)
print("-" * len(header))
for name in sets:
    row = f"{name:<16}"
    for _, result in runs:
        entry = result["average"] if name == "average" else result["sets"][name]
        row += f"{entry['ppl']:>14.3f} ({entry['loss']:.3f})"
    print(row)
print("(perplexity, with mean loss in nats per token in parentheses)")

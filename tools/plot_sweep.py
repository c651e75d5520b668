#!/usr/bin/env python3
"""Plots of a sweep, drawn from OUTPUT/results.json (written by `moda sweep report`) and each
point's metrics.jsonl. Writes into OUTPUT:
  loss_curves.png  training loss (lines) and average validation loss (markers) against tokens,
                   one colour per point
  val_ppl.png      final validation perplexity per set (and their average), one marker per
                   configuration (the axes without the seed): mean over seeds, error bar = sample std
  contrast.png     with report.contrast: each value of that axis minus its first value in final
                   validation loss, per set and average, paired by seed (error bar = sample std
                   of the per-seed differences); not drawn when no pair is done
Usage: python3 tools/plot_sweep.py OUTPUT. Exit status 3 when matplotlib is missing (the report
then keeps its tables and says so), 1 on any other failure.
"""
import json
import os
import statistics
import sys

NO_MATPLOTLIB = 3


def read_metrics(run_dir):
    """The run's records; a line cut short by a kill is skipped, as the sweep does."""
    records = []
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return records


def loss_curves(plt, results, out):
    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(13, 5))
    cmap = plt.get_cmap("tab20")
    for i, p in enumerate(results["points"]):
        colour = cmap(i % 20)
        records = read_metrics(p["run_dir"])
        train = [(r["tokens"], r["loss"]) for r in records if "loss" in r and "tokens" in r]
        tokens_at = {r["step"]: r["tokens"] for r in records if "loss" in r and "tokens" in r}
        val = [(tokens_at.get(r["step"]), r["eval"]["average"]["loss"]) for r in records if "eval" in r]
        val = [(t, l) for t, l in val if t is not None]
        if train:
            ax_train.plot(*zip(*train), color=colour, linewidth=1, label=p["run"])
        if val:
            ax_val.plot(*zip(*val), color=colour, marker="o", linewidth=1, label=p["run"])
    for ax, title in ((ax_train, "training loss"), (ax_val, "validation loss (average over sets)")):
        ax.set_xlabel("training tokens")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"sweep {results['sweep']}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss_curves.png"), dpi=120)
    plt.close(fig)


def val_ppl(plt, results, out):
    sets = list(results["val_sets"]) + ["average"]
    groups = []  # (label, {set: [ppl per seed]})
    by_run = {p["run"]: p for p in results["points"]}
    for g in results["groups"]:
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in g["axes"].items()) or results["sweep"]
        values = {s: [] for s in sets}
        for run in g["runs"]:
            p = by_run[run]
            for s in results["val_sets"]:
                if s in p["val"]:
                    values[s].append(p["val"][s]["ppl"])
            if p.get("val_average"):
                values["average"].append(p["val_average"]["ppl"])
        groups.append((label, values))
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(groups) * len(sets) / 2), 5))
    width = 0.8 / max(1, len(groups))
    for gi, (label, values) in enumerate(groups):
        xs, means, errs = [], [], []
        for si, s in enumerate(sets):
            if not values[s]:
                continue
            xs.append(si + (gi - (len(groups) - 1) / 2) * width)
            means.append(statistics.mean(values[s]))
            errs.append(statistics.stdev(values[s]) if len(values[s]) > 1 else 0.0)
        # Markers, not bars: bars would start at zero and hide differences of a few percent.
        ax.errorbar(xs, means, yerr=errs, fmt="o", capsize=3, label=label)
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels(sets)
    ax.set_ylabel("validation perplexity (final)")
    ax.set_title(f"sweep {results['sweep']}: mean over seeds, error bar = sample std")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "val_ppl.png"), dpi=120)
    plt.close(fig)


def contrast(plt, results, out):
    rows = [c for c in results.get("contrasts", []) if c["deltas"]]
    if not rows:
        return False
    sets = results["val_sets"]
    names = [f"val_loss/{s}" for s in sets] + ["val_loss"]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names)), 4))
    width = 0.8 / len(rows)
    for i, c in enumerate(rows):
        xs, means, errs = [], [], []
        for j, name in enumerate(names):
            d = c["deltas"].get(name)
            if d is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            means.append(d["mean"])
            errs.append(d["std"] or 0.0)
        others = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in c["axes"].items())
        label = f"{c['value']}" + (f" ({others})" if others else "") + f", {c['pairs']} seed(s)"
        ax.errorbar(xs, means, yerr=errs, fmt="o", capsize=3, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(sets + ["average"])
    ax.set_ylabel(f"Δ validation loss vs {rows[0]['baseline']}")
    ax.set_title(f"sweep {results['sweep']}: {rows[0]['axis']} minus {rows[0]['baseline']}, paired by seed "
                 "(error bar = sample std)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "contrast.png"), dpi=120)
    plt.close(fig)
    return True


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    out = sys.argv[1]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_sweep: matplotlib is not available ({e})", file=sys.stderr)
        return NO_MATPLOTLIB
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    loss_curves(plt, results, out)
    val_ppl(plt, results, out)
    drew_contrast = contrast(plt, results, out)
    print("plot_sweep: wrote loss_curves.png, val_ppl.png" + (", contrast.png" if drew_contrast else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

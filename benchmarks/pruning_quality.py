"""The whole default schedule with the default settings (nbprune.RunConfig()), against the reference workflow's curve.

On MNIST it writes benchmarks/results/pruning_quality.md (one row per iteration, the targets and their verdicts)
and pruning_quality.png (test accuracy against % of nodes retained, beside the reference workflow's). With
--dataset FashionMNIST it writes pruning_quality_fashion.md and .png (target: the dense model at least 89.0%).

    python benchmarks/pruning_quality.py --data-root ../shared/datasets [--dataset FashionMNIST] [--session-dir DIR]
        [--set NAME=VALUE ...] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from _common import RESULTS_DIR  # noqa: E402  (also puts the checkout on sys.path)
from nbprune import IterativePruning, RunConfig, SimpleNN
from nbprune.course import load_data_for
from nbprune.config import parse_settings
from nbprune.files import save_figure, write_text_atomic
from nbprune.retention import default_steps

# The reference's reported test accuracy per % of nodes retained (../shared/seed/REFERENCE.md, with retraining).
REFERENCE_CURVE = {100: 97.61, 80: 97.61, 64.0625: 97.62, 51.25: 97.56, 40.9375: 97.57, 32.8125: 97.41, 26.25: 97.5,
              20.9375: 97.26, 16.875: 96.41, 13.4375: 94.46, 10.625: 92.02, 8.4375: 11.35, 6.875: 11.35,
              5.625: 11.35, 4.375: 11.35}
# Targets per dataset: % retained -> minimum test accuracy (MNIST: the method issue's; Fashion-MNIST: the dense model).
TARGETS = {"MNIST": {100: 98.0, 16.875: 97.5, 10.625: 96.8, 5.625: 95.0}, "FashionMNIST": {100: 89.0}}
FLOOR, FLOOR_DOWN_TO, TIME_LIMIT_S = 85.0, 3.4375, 15 * 60
OUTPUT = {"MNIST": "pruning_quality", "FashionMNIST": "pruning_quality_fashion"}


def verdicts(records: list[dict], total_seconds: float, dataset: str) -> list[str]:
    """Return one line per target: the figure reached and whether it meets the target."""
    by_share = {record["PercentageRetain"]: record for record in records}
    reference_curve = REFERENCE_CURVE if dataset == "MNIST" else {}
    lines = []
    for share, target in TARGETS[dataset].items():
        reported = reference_curve.get(share, "-")
        reference = f"{reported}%" if reported != "-" else reported
        if share not in by_share:
            lines.append(f"| {share:g}% retained | >= {target}% | not run | {reference} | "
                         f"- |")
            continue
        reached = by_share[share]["Test_Accuracy"]
        lines.append(f"| {share:g}% retained | >= {target}% | {reached:.2f}% | {reference} | "
                     f"{'met' if reached >= target else 'NOT met'} |")
    if dataset == "MNIST" and any(r["PercentageRetain"] <= FLOOR_DOWN_TO for r in records):
        floor = min(r["Test_Accuracy"] for r in records if r["PercentageRetain"] >= FLOOR_DOWN_TO)
        lines.append(f"| lowest down to {FLOOR_DOWN_TO:g}% | >= {FLOOR}% | {floor:.2f}% | 11.35% | "
                     f"{'met' if floor >= FLOOR else 'NOT met'} |")
    lines.append(f"| whole run | <= {TIME_LIMIT_S / 60:.0f} min | {total_seconds / 60:.1f} min | - | "
                 f"{'met' if total_seconds <= TIME_LIMIT_S else 'NOT met'} |")
    return lines


def plot(records: list[dict], dataset: str) -> Figure:
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([r["PercentageRetain"] for r in records], [r["Test_Accuracy"] for r in records], "o-",
              label="nbprune (default settings)")
    if dataset == "MNIST":
        axes.plot(list(REFERENCE_CURVE), list(REFERENCE_CURVE.values()), "s--", label="reference (REFERENCE.md)")
    targets = TARGETS[dataset]
    axes.scatter(list(targets), list(targets.values()), marker="_", s=300, color="black", label="targets", zorder=3)
    axes.set(xscale="log", xlabel="% of hidden nodes retained (log scale)", ylabel="test accuracy (%)",
             title=f"Interval-adjoint pruning with retraining on {dataset}", ylim=(0, 100))
    axes.invert_xaxis()
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower left")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--session-dir", help="where the run writes its tree (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="MNIST", choices=list(TARGETS))
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="any other setting of nbprune.RunConfig, e.g. lr_patience=3")
    parser.add_argument("--name", help="results file name without .md (default: pruning_quality, or "
                                       "pruning_quality_fashion for FashionMNIST)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write (benchmarks/results)")
    args = parser.parse_args(argv)
    session_dir = Path(args.session_dir or tempfile.mkdtemp(prefix="pruning_quality_")) / "iterative_pruning"
    changes = parse_settings([tuple(pair.split("=", 1)) for pair in args.set])
    config = RunConfig.from_flat(data_root=args.data_root, seed=args.seed, dataset=args.dataset, **changes)

    started = time.perf_counter()
    data = load_data_for(config)
    torch.manual_seed(args.seed)
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config)
    records = experiment.run(SimpleNN(config.model.hidden, activation=config.model.activation), default_steps(config),
                             session_dir)
    total = time.perf_counter() - started
    name = args.name or OUTPUT[args.dataset]
    reference_column = REFERENCE_CURVE if args.dataset == "MNIST" else {}

    lines = [
        f"# Pruning quality: the default schedule on the real {args.dataset}",
        "",
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} with {torch.get_num_threads()} torch "
        f"threads (torch {torch.__version__}); default settings of `IterativePruning` and `train` "
        f"(interval_adjoint criterion; AdamW 1e-3, batch 64, patience 10, learning-rate drops on plateaus, at most 40 "
        f"epochs per iteration; retraining distils from the dense model), seed "
        f"{args.seed}{'; changed from the defaults: ' + ', '.join(args.set) if args.set else ''}. Command: "
        f"`python benchmarks/pruning_quality.py --data-root ../shared/datasets"
        f"{' --dataset ' + args.dataset if args.dataset != 'MNIST' else ''}"
        f"{' --set ' + ' '.join(args.set) if args.set else ''}{' --name ' + args.name if args.name else ''}`. "
        f"Wall time of the whole run, data loading included: {total / 60:.1f} min.",
        "",
        "| target | wanted | nbprune | reference | verdict |",
        "|---|---|---|---|---|",
        *verdicts(records, total, args.dataset),
        "",
        "| iteration | neurons kept | % retained | parameters | train acc. (%) | validation acc. (%) | test acc. (%) "
        "| reference test acc. (%) | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        reference = reference_column.get(r["PercentageRetain"])
        lines.append(f"| {r['iteration']} | {'+'.join(map(str, r['retained']))} | {r['PercentageRetain']:g} | "
                     f"{r['parameters']:,} | {r['Train_Accuracy']:.2f} | {r['Val_Accuracy']:.2f} | "
                     f"{r['Test_Accuracy']:.2f} | {'' if reference is None else reference} | {r['seconds']:.0f} |")
    lines += ["", f"![test accuracy against nodes retained]({name}.png)"]
    save_figure(plot(records, args.dataset), args.results_dir / f"{name}.png")
    write_text_atomic(args.results_dir / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

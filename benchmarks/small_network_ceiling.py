"""How good can the 14+4 network get? Held-out and test accuracy of one pruning level reached by many routes.

The method issue asks for 95.0% test accuracy at 5.625% of the nodes (14+4 neurons, iteration 13 of the default
schedule). This script takes a finished default session (benchmarks/pruning_quality.py writes one; without
--session-dir it runs the schedule up to the level first) and trains that level's network again and again, each
time with the library's default retraining (distillation from the dense model, validation-loss selection):

- the default chain: the session's own model for the level;
- one pruning step from each earlier iteration of the session (--sources), with several training seeds;
- every criterion, from the iteration just before the level;
- a much longer training from the iteration just before (150 epochs, learning-rate patience 5);
- from scratch (the level's shape, a fresh initialisation), with several training seeds.

For every run it records the accuracy on the validation split (held out from training, the only split the
library selects on) and on the test set. If the routes agree on the validation split but spread on the test set,
the test differences are not better networks but which test images a given network happens to get right.

    python benchmarks/small_network_ceiling.py --data-root ../shared/datasets --session-dir /tmp/pq
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, command_line, machine_info, machine_section, markdown_table  # noqa: E402

from nbprune.data import load_data  # noqa: E402
from nbprune.evaluation import loss_and_accuracy  # noqa: E402
from nbprune.files import write_text_atomic  # noqa: E402
from nbprune.iterative import IterativePruning  # noqa: E402
from nbprune.session import is_complete, iteration_dir  # noqa: E402
from nbprune.model import SimpleNN  # noqa: E402
from nbprune.modelfile import load_pruned_model  # noqa: E402
from nbprune.retention import schedule  # noqa: E402
from nbprune.criteria import CRITERIA  # noqa: E402
from nbprune.training import Distillation  # noqa: E402

LONG_TRAINING = {"num_epochs": 150, "patience": 150, "lr_patience": 5, "lr_drops": 6}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--session-dir", type=Path,
                        help="a default session's folder (holding iterative_pruning/); missing levels are run first")
    parser.add_argument("--level", type=int, default=13, help="the schedule iteration to study (default 13: 14+4)")
    parser.add_argument("--sources", type=int, nargs="+", default=[8, 9, 10, 11, 12],
                        help="earlier iterations to prune from in one step (default 8 9 10 11 12)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--target", type=float, default=95.0, help="the test accuracy asked for (default 95.0)")
    parser.add_argument("--val-size", type=int, help="validation images (default: 1 in 12)")
    parser.add_argument("--epochs", type=int, help="cap on epochs per training (default: the library's)")
    parser.add_argument("--skip-long", action="store_true", help="leave out the 150-epoch training")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if any(source >= args.level for source in args.sources):
        parser.error(f"--sources {args.sources}: every source must come before --level {args.level}.")
    return args


class Study:
    """Retrains one level of a session by several routes and records validation and test accuracy."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.data = load_data(args.data_root, val_size=args.val_size)
        self.steps = {step.iteration: step for step in schedule()}
        if args.level not in self.steps:
            raise SystemExit(f"--level {args.level} is not an iteration of the default schedule: expected one of "
                             f"{sorted(self.steps)}.")
        self.session = (args.session_dir or Path(tempfile.mkdtemp(prefix="ceiling_"))) / "iterative_pruning"
        self.teacher: torch.nn.Module | None = None  # the dense model, once the session has it
        self.runs: list[dict] = []

    def experiment(self, criterion: str = "interval_adjoint", **train_kwargs) -> IterativePruning:
        """Return the library's default experiment (with --epochs, if given) that distils from the dense model."""
        if self.args.epochs:
            train_kwargs.setdefault("num_epochs", self.args.epochs)
        experiment = IterativePruning(self.data.train_loader, self.data.test_loader, val_loader=self.data.val_loader,
                                      criterion=criterion, progress=False, **train_kwargs)
        experiment.distillation = Distillation(self.teacher) if self.teacher is not None else None
        return experiment

    def model(self, iteration: int) -> torch.nn.Module:
        return load_pruned_model(SimpleNN(), iteration_dir(self.session, iteration) / "best_model.pth")

    def ensure_session(self) -> None:
        """Run the default schedule up to the level where the session does not have it yet."""
        if not all(is_complete(self.session, it) for it in self.steps if it <= self.args.level):
            self.experiment().run(SimpleNN(), schedule(), self.session, begin_itr="auto", end_itr=self.args.level)
        self.teacher = self.model(0).eval()

    def record(self, route: str, seed: int | None, model: torch.nn.Module, seconds: float) -> None:
        _, val = loss_and_accuracy(model, self.data.val_loader)
        _, test = loss_and_accuracy(model, self.data.test_loader)
        _, train = loss_and_accuracy(model, self.data.train_loader)
        self.runs.append({"route": route, "seed": seed, "train": train, "val": val, "test": test,
                          "seconds": seconds})
        print(f"{route:<40} seed {seed}: val {val:.2f} test {test:.2f} ({seconds:.0f} s)", flush=True)

    def retrain(self, route: str, seed: int, start: torch.nn.Module, experiment: IterativePruning) -> None:
        step = self.steps[self.args.level]
        torch.manual_seed(seed)
        self.data.train_loader.reseed(seed)
        started = time.perf_counter()
        model = experiment.prune(start, step.retained, step.percentage, retrain=True)
        self.record(route, seed, model, time.perf_counter() - started)

    def run(self) -> None:
        level, previous = self.args.level, max(it for it in self.steps if it < self.args.level)
        self.ensure_session()
        self.record("default chain (the session's model)", None, self.model(level), 0.0)
        default = self.experiment()
        for source in self.args.sources:
            for seed in self.args.seeds:
                self.retrain(f"one step from iteration {source}", seed, self.model(source), default)
        for criterion in CRITERIA:
            self.retrain(f"{criterion}, from iteration {previous}", 0, self.model(previous),
                         self.experiment(criterion))
        if not self.args.skip_long:
            self.retrain(f"150 epochs, from iteration {previous}", 0, self.model(previous),
                         self.experiment(**LONG_TRAINING))
        for seed in self.args.seeds:
            torch.manual_seed(seed)
            self.retrain("from scratch", seed, SimpleNN(hidden=self.steps[level].retained), default)


def summary_rows(runs: list[dict]) -> list[list[str]]:
    """Return one row per route: runs, then the mean and range of train, validation and test accuracy."""
    routes: dict[str, list[dict]] = {}
    for run in runs:
        routes.setdefault(run["route"], []).append(run)
    rows = []
    for route, group in routes.items():
        cells = [route, str(len(group))]
        for split in ("train", "val", "test"):
            values = [run[split] for run in group]
            spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
            cells.append(f"{statistics.fmean(values):.2f}{spread}")
        rows.append(cells)
    return rows


def report(args: argparse.Namespace, study: Study, seconds: float) -> str:
    runs, step = study.runs, study.steps[args.level]
    vals, tests = [run["val"] for run in runs], [run["test"] for run in runs]
    reached = sum(test >= args.target for test in tests)
    correlation = statistics.correlation(vals, tests) if len(runs) > 2 and len(set(vals)) > 1 else float("nan")
    neurons = "+".join(map(str, step.retained))
    lines = [
        f"# How good can the {neurons} network get?",
        "",
        f"Iteration {args.level} of the default schedule keeps {neurons} neurons ({step.percentage:g}% of the "
        f"nodes). Each row retrains that network by another route with the library's default retraining; "
        f"accuracy in % (mean, and the range over seeds). The validation split is held out from training and is "
        f"what the library selects on; the test set is never used to choose. Command: `{command_line()}`; "
        f"{len(runs)} networks in {seconds / 60:.1f} min.",
        "",
        markdown_table(["route", "runs", "train", "validation", "test"], summary_rows(runs)),
        f"Over all {len(runs)} networks: validation {min(vals):.2f}-{max(vals):.2f}%, test "
        f"{min(tests):.2f}-{max(tests):.2f}%; {reached} of {len(runs)} reach the {args.target:g}% test target; "
        f"correlation between validation and test accuracy across networks: {correlation:.2f}.",
        "",
        "## Machine",
        "",
        machine_section(machine_info()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    study = Study(args)
    study.run()
    seconds = time.perf_counter() - started
    args.results_dir.mkdir(parents=True, exist_ok=True)
    text = report(args, study, seconds)
    write_text_atomic(args.results_dir / "small_network_ceiling.md", text)
    write_text_atomic(args.results_dir / "small_network_ceiling.json",
                      json.dumps({"command": command_line(), "level": args.level, "target": args.target,
                                  "runs": study.runs, "machine": machine_info()}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

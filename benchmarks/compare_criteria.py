"""Criteria comparison: the default schedule on the real MNIST for every pruning criterion, and from scratch.

For each seed, the dense SimpleNN (256+64) is trained once (iteration 0) and shared: every criterion
(interval_adjoint, magnitude, taylor, random) prunes and retrains it along the default schedule
(q = 0.8, as `nbprune prune`), and `scratch` trains a fresh SimpleNN with each level's layer sizes from a new
initialisation. Training settings are identical everywhere (the library's defaults unless --epochs/--patience).

The pruning chains run as one `nbprune sweep` (Ray: a local one with --workers CPUs, or a cluster with --address):
the sweep trains each seed's dense model once for every criterion, runs the chains one torch thread each, and
continues where it stopped when the same command runs again (its folder is --work-dir/sweep-<hash of the spec>).
`scratch`, which prunes nothing, then runs here, distilling from the sweep's dense model. Every finished (method,
seed, iteration) is kept in benchmarks/results/compare_criteria.json, rewritten atomically after each level;
compare_criteria.md and compare_criteria.png are drawn from the JSON alone.

    python benchmarks/compare_criteria.py --data-root /work/shared/datasets --workers 2
    python benchmarks/compare_criteria.py --report-only        # redraw the table and plot from the JSON
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, command_line, machine_info, markdown_table, save_state  # noqa: E402
from _common import load_state as common_load_state  # noqa: E402

from nbprune.config import RunConfig  # noqa: E402
from nbprune.data import load_data  # noqa: E402
from nbprune.evaluation import evaluate, loss_and_accuracy  # noqa: E402
from nbprune.files import format_table, read_table, save_figure, write_text_atomic  # noqa: E402
from nbprune.model import SimpleNN, parameter_count  # noqa: E402
from nbprune.modelfile import load_pruned_model  # noqa: E402
from nbprune.retention import RetentionStep, schedule  # noqa: E402
from nbprune.session import REFERENCE_COLUMNS, Session  # noqa: E402
from nbprune.criteria import CRITERIA  # noqa: E402
from nbprune.training import train  # noqa: E402

METHODS = (*CRITERIA, "scratch")
FORMAT = 1
DEFAULT_WORK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "nbprune_compare_criteria"

# shared/seed/REFERENCE.md, prune_w_retrain_results/validations.txt: the reference's test accuracy by iteration.
# Its row for iteration 1 repeats iteration 0's (a known defect of the original), so it is marked, not compared.
REFERENCE_ACCURACY = {0: 97.61, 1: 97.61, 2: 97.62, 3: 97.56, 4: 97.57, 5: 97.41, 6: 97.5, 7: 97.26, 8: 96.41,
                      9: 94.46, 10: 92.02, 11: 11.35, 12: 11.35, 13: 11.35, 14: 11.35}
REFERENCE_DUPLICATE_ROW = 1
PERCENT_TICKS = (100, 64, 41, 26, 16.9, 10.6, 6.9, 4.4, 2.8, 1.9, 1.25, 0.63)  # every other level


# ---------------------------------------------------------------------------------------------------- state

DEFAULTS = RunConfig()


def config_of(args, **changes) -> RunConfig:
    """Return the run configuration of the comparison: nbprune's defaults unless the options change them."""
    return RunConfig.from_flat(epochs=args.epochs, patience=args.patience, distill=not args.no_distill,
                               val_size=args.val_size, **changes)


def settings_of(args) -> dict:
    """Return the settings every result in one JSON must share (the library's defaults unless overridden)."""
    config = config_of(args).flat()
    names = ("dataset", "q", "epochs", "patience", "distill", "val_size", "device", "batch_size", "recipe", "lr",
             "weight_decay", "min_delta", "distill_weight", "temperature")
    return {"hidden": list(config["hidden"]), **{name: config[name] for name in names}}


def load_state(path: Path, settings: dict | None) -> dict:
    return common_load_state(path, settings, {"format": FORMAT, "results": {}, "dense": {}, "end_itr": None,
                                              "seeds": [], "methods": []}, "compare_criteria")


def results_of(state: dict, method: str, seed: int) -> dict:
    return state["results"].setdefault(method, {}).setdefault(str(seed), {})


# ---------------------------------------------------------------------------------------------------- runs

def folder_record(folder: Path, step: RetentionStep, data, seconds: float | None) -> dict:
    """Return one level's record from an iteration folder: the reference's four results, validation, epochs, size."""
    header, rows = read_table(folder / "validation_results.txt")
    record = dict(zip(header, rows[0]))
    model = load_pruned_model(SimpleNN(), folder / "best_model.pth")
    record["Val_Loss"], record["Val_Accuracy"] = loss_and_accuracy(model, data.val_loader)
    record.update(iteration=step.iteration, hidden=list(step.retained), PercentageRetain=step.percentage,
                  parameters=parameter_count(model), epochs=len(read_table(folder / "train_results.txt")[1]),
                  seconds=seconds)
    return record


def steps_of(args) -> list[RetentionStep]:
    """Return the schedule's steps the comparison runs (up to --end-itr)."""
    return [step for step in schedule() if args.end_itr is None or step.iteration <= args.end_itr]


def log(method: str, seed: int, record: dict, note: str = "") -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    seconds = f", {record['seconds']:.0f} s" if record.get("seconds") is not None else ""
    print(f"[{stamp}] {method:<16} seed {seed} iteration {record['iteration']:>2} "
          f"({'+'.join(map(str, record['hidden']))}): test {record['Test_Accuracy']:.2f}%, "
          f"val {record['Val_Accuracy']:.2f}%, {record['epochs']} epochs{seconds}{note}", flush=True)


def run_scratch(args, state: dict, state_path: Path, seed: int) -> None:
    """Train a fresh SimpleNN with each level's layer sizes, saving after each level; iteration 0 is the sweep's
    dense model itself. With distillation on, every level learns from the dense model as the chains' retraining does.
    """
    settings = config_of(args).train
    data = load_data(args.data_root, seed=seed, val_size=args.val_size)
    teacher = load_pruned_model(SimpleNN(), dense_model_file(args, seed)).eval() if settings.distill else None
    done = results_of(state, "scratch", seed)
    for step in steps_of(args):
        if str(step.iteration) in done:
            continue
        if step.iteration == 0:
            record = dict(state["dense"][str(seed)], shared_dense=True)
        else:
            folder = Path(args.work_dir) / f"seed{seed}" / "scratch" / str(step.iteration)
            shutil.rmtree(folder, ignore_errors=True)
            started = time.perf_counter()
            torch.manual_seed(seed + step.iteration)  # as the chains do before each level
            data.train_loader.reseed(seed + step.iteration)
            model = train(SimpleNN(hidden=step.retained), data.train_loader, data.test_loader, logdir=folder,
                          val_loader=data.val_loader, progress=False, teacher=teacher, config=settings)
            results = dict(evaluate(model, data.train_loader, data.test_loader), PercentageRetain=step.percentage)
            write_text_atomic(folder / "validation_results.txt",
                              format_table(REFERENCE_COLUMNS, [[results[name] for name in REFERENCE_COLUMNS]]))
            record = folder_record(folder, step, data, time.perf_counter() - started)
        done[str(step.iteration)] = record
        save_state(state_path, state)
        log("scratch", seed, record, " (shared dense)" if step.iteration == 0 else "")


# ---------------------------------------------------------------------------------------------------- sweep

def sweep_spec(args) -> dict:
    """Return the `nbprune sweep` spec of the comparison's pruning chains (scratch stays in this script), one torch
    thread per chain."""
    fixed = {"epochs": args.epochs, "patience": args.patience, "distill": not args.no_distill, "threads": 1,
             **({"val_size": args.val_size} if args.val_size else {}),
             **({"data_root": args.data_root} if args.data_root else {})}
    return {"seeds": args.seeds, "end_itr": args.end_itr, "set": fixed,
            "grid": {"criterion": [method for method in args.methods if method != "scratch"]}}


def sweep_dir(args) -> Path:
    """Return the sweep folder of this command's chains: one per spec (a sweep folder refuses another spec), named
    by its hash, so rerunning the same command continues it."""
    spec = json.dumps(sweep_spec(args), sort_keys=True)
    return Path(args.work_dir) / f"sweep-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def chains_of(args) -> list[tuple]:
    """Return (chain, session) of every chain of the sweep."""
    from nbprune.sweeps import SweepFolder, expand, spec_from_dict
    folder = SweepFolder(sweep_dir(args))
    return [(chain, Session(folder.chain_dir(chain))) for chain in expand(spec_from_dict(sweep_spec(args)))]


def dense_model_file(args, seed: int) -> Path:
    """Return the file of the seed's dense model: iteration 0 of the seed's chains (each a copy of the sweep's)."""
    return next(session.model_file(0) for chain, session in chains_of(args) if chain.seed == seed)


def record_sweep(args, state: dict) -> None:
    """Record every level the sweep's chains finished, read from their sessions as the report reads them."""
    from nbprune.sweeps import SweepFolder
    record_of_sweep = SweepFolder(sweep_dir(args)).load_state(None)
    steps = {step.iteration: step for step in schedule()}
    data = {}
    for chain, session in sorted(chains_of(args), key=lambda pair: pair[0].seed):  # each seed's data read once
        if chain.seed not in data:
            data = {chain.seed: load_data(args.data_root, seed=chain.seed, val_size=args.val_size)}
        seconds = {**record_of_sweep["dense"].get(chain.dense, {}),
                   **record_of_sweep["chains"].get(chain.name, {}).get("seconds", {})}
        for iteration in session.iterations():
            record = folder_record(session.iteration_dir(iteration), steps[iteration], data[chain.seed],
                                   seconds.get(str(iteration)))
            if iteration == 0:  # the shared dense model: its time counts once
                state["dense"][str(chain.seed)] = record
                record = dict(record, shared_dense=True)
            results_of(state, chain.config.prune.criterion, chain.seed)[str(iteration)] = record


# ---------------------------------------------------------------------------------------------------- report

def level_rows(state: dict) -> list[dict]:
    """Return, per schedule level up to the furthest saved or targeted one, the per-method test accuracies."""
    steps = schedule()
    furthest = max([int(i) for seeds in state["results"].values() for levels in seeds.values() for i in levels]
                   + [state.get("end_itr") if state.get("end_itr") is not None else steps[-1].iteration])
    rows = []
    for step in steps:
        if step.iteration > furthest:
            break
        row = {"step": step, "methods": {}}
        for method, seeds in state["results"].items():
            values = [levels[str(step.iteration)]["Test_Accuracy"] for levels in seeds.values()
                      if str(step.iteration) in levels]
            if values:
                row["methods"][method] = values
        rows.append(row)
    return rows


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(values: list[float] | None, seeds: int) -> str:
    if not values:
        return "–"
    mean, sd = mean_sd(values)
    text = f"{mean:.2f} ± {sd:.2f}" if len(values) > 1 else f"{mean:.2f}"
    return text + (f" (n={len(values)})" if len(values) < seeds else "")


def reference_cell(iteration: int) -> str:
    if iteration not in REFERENCE_ACCURACY:
        return "–"
    return f"{REFERENCE_ACCURACY[iteration]:.2f}" + ("*" if iteration == REFERENCE_DUPLICATE_ROW else "")


def ordered_methods(state: dict) -> list[str]:
    return [m for m in METHODS if m in state["results"]] + [m for m in state["results"] if m not in METHODS]


def summary_rows(state: dict, rows: list[dict], seeds: int) -> list[list[str]]:
    """Return per method: accuracy at iteration 8, the smallest level within 1 point of dense, wins, time."""
    methods = ordered_methods(state)
    pruning = [m for m in methods if m != "scratch"]
    wins = {m: 0 for m in methods}
    for row in rows:
        means = {m: statistics.fmean(v) for m, v in row["methods"].items() if m in pruning}
        if len(means) == len(pruning) and len(pruning) > 1 and row["step"].iteration > 0:
            best = max(means.values())
            for m, value in means.items():
                wins[m] += value == best
    out = []
    for method in methods:
        means = {row["step"].iteration: (statistics.fmean(row["methods"][method]), row["step"])
                 for row in rows if method in row["methods"]}
        at8 = cell(next((row["methods"].get(method) for row in rows if row["step"].iteration == 8), None), seeds)
        if 0 in means:
            good = [step for mean, step in means.values() if mean >= means[0][0] - 1.0]
            smallest = min(good, key=lambda step: step.percentage)
            within = f"{smallest.iteration} ({'+'.join(map(str, smallest.retained))}, {smallest.percentage:.2f}%)"
        else:
            within = "–"
        levels = state["results"][method]
        seconds = [r["seconds"] for seed in levels.values() for r in seed.values()
                   if r.get("seconds") is not None and not r.get("shared_dense")]
        out.append([method, at8, within, str(wins[method]) if method in pruning else "–",
                    f"{sum(seconds) / 60:.1f}" if seconds else "–"])
    return out


def missing_lines(state: dict) -> list[str]:
    """Return one line per (method, seed) with levels still to run, up to the targeted iteration."""
    target = state.get("end_itr")
    levels = [s.iteration for s in schedule() if target is None or s.iteration <= target]
    lines = []
    for method in state.get("methods") or ordered_methods(state):
        for seed in state.get("seeds") or sorted({int(s) for m in state["results"].values() for s in m}):
            done = state["results"].get(method, {}).get(str(seed), {})
            missing = [i for i in levels if str(i) not in done]
            if missing:
                lines.append(f"- {method}, seed {seed}: {len(missing)} of {len(levels)} levels missing "
                             f"(iterations {', '.join(map(str, missing))})")
    return lines


def plot(state: dict, rows: list[dict]) -> Figure:
    """Return test accuracy (mean ± sd over seeds) against % of nodes retained, one line per method."""
    figure = Figure(figsize=(12, 4.6), layout="constrained")
    panels = figure.subplots(1, 2)
    reference_points = [(row["step"].percentage, REFERENCE_ACCURACY[row["step"].iteration]) for row in rows
                   if row["step"].iteration in REFERENCE_ACCURACY and row["step"].iteration != REFERENCE_DUPLICATE_ROW]
    for axes, (title, ylim) in zip(panels, (("all levels", None), ("zoom: 90-99%", (90, 99)))):
        for method in ordered_methods(state):
            points = [(row["step"].percentage, *mean_sd(row["methods"][method])) for row in rows
                      if method in row["methods"]]
            if points:
                x, mean, sd = zip(*points)
                axes.errorbar(x, mean, yerr=sd, marker="o", markersize=3.5, capsize=2, linewidth=1.4,
                              label=method, linestyle=":" if method == "scratch" else "-")
        if reference_points:
            x, y = zip(*reference_points)
            axes.plot(x, y, "kx--", linewidth=0.9, markersize=5, label="reference (reported)")
        axes.set(xscale="log", xlabel="% of hidden nodes retained (log scale)", ylabel="test accuracy (%)",
                 title=f"Test accuracy after pruning and retraining: {title}")
        shown = [row["step"].percentage for row in rows]
        if ylim:
            axes.set_ylim(*ylim)
            above = [row["step"].percentage for row in rows
                     if any(statistics.fmean(values) >= ylim[0] for values in row["methods"].values())]
            shown = [p for p in shown if p >= min(above, default=min(shown))]
            axes.set_xlim(max(shown) * 1.08, min(shown) / 1.08)
        axes.xaxis.set_major_locator(FixedLocator([t for t in PERCENT_TICKS if min(shown) <= t <= max(shown)]))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.tick_params(axis="x", labelsize=8)
        if not ylim:
            axes.invert_xaxis()
        axes.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize=8)
    return figure


def training_sentence(settings: dict) -> str:
    """Return the training settings of every level and method as one sentence."""
    split = ("1 in 12 training images (5,000 of MNIST's 60,000)" if settings["val_size"] is None
             else f"{settings['val_size']:,} training images")
    recipe = ("learning-rate drops (x0.2) on plateaus" if settings["recipe"] == "default"
              else f"the {settings['recipe']!r} recipe")
    distill = (f"; every level after the dense one also learns from the dense model's softened outputs "
               f"(distillation, weight {settings['distill_weight']:g}, temperature {settings['temperature']:g}), "
               f"the pruned chains and `scratch` alike" if settings["distill"] else "; labels only, no distillation")
    return (f"Training, the same for every level and method: AdamW (lr {settings['lr']:g}, weight decay "
            f"{settings['weight_decay']:g}), batch {settings['batch_size']}, at most {settings['epochs']} epochs, "
            f"{recipe}, early stopping (patience {settings['patience']}) and model selection on a validation "
            f"split of {split}{distill}. The test set is only evaluated.")


def render(state: dict, results_dir: Path) -> Path:
    """Write compare_criteria.md and compare_criteria.png from the saved results; return the markdown's path."""
    rows = level_rows(state)
    methods = ordered_methods(state)
    seeds = len(state.get("seeds") or {s for m in state["results"].values() for s in m}) or 1
    header = ["iteration", "hidden", "% nodes", *methods, "reference (reported)", "best pruning criterion"]
    table = []
    for row in rows:
        step = row["step"]
        pruning = {m: statistics.fmean(v) for m, v in row["methods"].items() if m != "scratch"}
        best = max(pruning, key=pruning.get) if len(pruning) > 1 and step.iteration > 0 else "–"
        table.append([step.iteration, "+".join(map(str, step.retained)), f"{step.percentage:.2f}",
                      *(cell(row["methods"].get(m), seeds) for m in methods), reference_cell(step.iteration), best])
    settings = state["settings"]
    missing = missing_lines(state)
    text = (
        "# Pruning criteria compared on MNIST\n\n"
        f"Generated by `benchmarks/compare_criteria.py` from `compare_criteria.json` "
        f"(last updated {state.get('updated', '?')}).\n\n"
        "Test accuracy (%) after pruning to each level of the default schedule (q = 0.8) and retraining, "
        f"mean ± sample standard deviation over seeds {', '.join(map(str, state.get('seeds', [])))}"
        " (n = the number of seeds when fewer finished). Every method of a seed starts from the same trained "
        "dense model (iteration 0); `scratch` trains a fresh model with the level's layer sizes instead of "
        "pruning. " + training_sentence(settings) + "\n\n"
        "The reference column is the reported prune-with-retraining test accuracy (REFERENCE.md), made with "
        "its own set-up (constant learning rate, inputs scaled by 1/255 twice, early stopping on the test set), "
        "so it is a point of reference rather than a like-for-like run. *Its row for iteration 1 repeats "
        "iteration 0's.\n\n"
        + markdown_table(header, table)
        + "\n![test accuracy against % of nodes retained](compare_criteria.png)\n\n"
        "## Summary per method\n\n"
        + markdown_table(["method", "test accuracy at iteration 8 (43+11)",
                          "smallest level within 1 point of its dense accuracy (mean)",
                          "levels with the best mean (pruning criteria)",
                          "compute, minutes (without the shared dense)"],
                         summary_rows(state, rows, seeds))
        + "\n## Completeness\n\n"
        + ("\n".join(missing) + "\n\nRun the script again (same settings) to fill these in.\n" if missing
           else "All runs finished.\n")
        + f"\n## Settings\n\n```\n{json.dumps(settings, sort_keys=True)}\n```\n\n"
        + f"Last command: `{state.get('command', '?')}`  \nMachine: {state.get('machine', {}).get('cpu', '?')}, "
          f"torch {state.get('machine', {}).get('torch', '?')}, {state.get('machine', {}).get('torch threads', '?')}"
          " threads.\n"
    )
    path = write_text_atomic(results_dir / "compare_criteria.md", text)
    save_figure(plot(state, rows), results_dir / "compare_criteria.png")
    return path


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (0 1)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help=f"methods ({' '.join(METHODS)})")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.train.epochs,
                        help=f"most epochs per level ({DEFAULTS.train.epochs}, nbprune's default)")
    parser.add_argument("--patience", type=int, default=DEFAULTS.train.patience,
                        help=f"early-stopping patience ({DEFAULTS.train.patience}, nbprune's default)")
    parser.add_argument("--no-distill", action="store_true",
                        help="retrain on labels only (default: distil from the dense model, as IterativePruning)")
    parser.add_argument("--val-size", type=int, help="validation images split off training (default: load_data's, "
                                                      "1 in 12)")
    parser.add_argument("--end-itr", type=int, help="last iteration of the schedule to run (default: all)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help=f"scratch folder for sessions, not committed ({DEFAULT_WORK_DIR})")
    parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the JSON, markdown and plot go (benchmarks/results)")
    parser.add_argument("--report-only", action="store_true", help="only redraw the markdown and plot from the JSON")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray: chains run at once, one "
                                                                "torch thread each (2)")
    parser.add_argument("--address", help="a Ray cluster's HOST:PORT for the sweep (default: a local Ray with "
                                           "--workers CPUs)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.patience < 1:
        parser.error("--epochs and --patience must be at least 1")
    if args.methods == ["scratch"]:
        parser.error("scratch trains the schedule's shapes beside the criteria's chains, distilling from their dense "
                     "model: name at least one criterion too (--methods interval_adjoint scratch)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_path = args.results_dir / "compare_criteria.json"
    if args.report_only:
        print(f"wrote {render(load_state(state_path, None), args.results_dir)}")
        return 0
    state = load_state(state_path, settings_of(args))
    state.update(end_itr=args.end_itr, seeds=sorted(set(state.get("seeds", [])) | set(args.seeds)),
                 methods=[m for m in METHODS if m in set(state.get("methods", [])) | set(args.methods)],
                 command=command_line(), machine=machine_info())
    save_state(state_path, state)
    status = 0
    try:
        from nbprune import sweep
        print(f"compare_criteria: the pruning chains run as `nbprune sweep` in {sweep_dir(args)}", flush=True)
        sweep(sweep_spec(args), sweep_dir(args), address=args.address, workers=args.workers)
        record_sweep(args, state)
        save_state(state_path, state)
        if "scratch" in args.methods:
            for seed in args.seeds:
                run_scratch(args, state, state_path, seed)
    except KeyboardInterrupt:
        print("compare_criteria: interrupted; finished levels are saved, run the same command again to continue.")
        status = 130
    save_state(state_path, state)
    print(f"wrote {render(state, args.results_dir)}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Today's retraining recipe against the one-cycle recipe: the whole default schedule, side by side in one run.

For each seed, both recipes prune the same dense schedule (nbprune.RunConfig() with only the recipe changed), one
after the other, on the same data split; the script records the wall time of each whole run (data loading excluded,
it is shared) and the test accuracy at every level, and writes benchmarks/results/<name>.md, .json and .png: time per
run with the ratio, test accuracy at 100 / 16.875 / 10.625 / 5.625% retained per recipe (mean and seed spread), and
whether the new recipe's mean lies within the seed spread of today's. The state file makes it resumable: a run
stopped between whole runs goes on where it stopped.

    python benchmarks/speed_recipe.py --data-root ../shared/datasets [--seeds 3] [--threads 1] [--subset N]
        [--set NAME=VALUE ...] [--name speed_recipe] [--results-dir DIR] [--candidate] [--report-only]

--set changes the new recipe's settings (e.g. cycle_epochs=3 cycle_batch_size=512); --subset measures a cheaper
proxy on fewer images (the levels' accuracies are then not comparable with the full data's); --candidate measures the
new recipe alone with those settings (how its defaults were chosen: <name>_candidates.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from _common import (RESULTS_DIR, OtherLoad, command_line, load_state, machine_info, machine_section,  # noqa: E402
                     markdown_table, save_state)
from nbprune import IterativePruning, RunConfig, SimpleNN
from nbprune.config import parse_settings
from nbprune.course import load_data_for
from nbprune.files import save_figure, write_text_atomic
from nbprune.retention import default_steps
from nbprune.session import Session

LEVELS = (100.0, 16.875, 10.625, 5.625)  # % of hidden neurons retained (issue 29)
RECIPES = {"today": {}, "onecycle": {"recipe": "onecycle"}}
FORMAT = "speed_recipe/1"


def run_once(config: RunConfig, data) -> dict:
    """Prune the whole default schedule under `config` on `data`; return its wall time, load and records."""
    torch.manual_seed(config.seed)
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                                  progress=False)
    model = SimpleNN(config.model.hidden, in_features=data.spec.features, num_classes=len(data.classes),
                     activation=config.model.activation)
    session = Path(tempfile.mkdtemp(prefix="speed_recipe_")) / "iterative_pruning"
    load, started = OtherLoad().start(), time.perf_counter()
    records = experiment.run(model, default_steps(config, data.spec.features, len(data.classes)), session)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "other_load": load.stop(), "loadavg": os.getloadavg()[0],
            "epochs": sum(_epochs(session, r["iteration"]) for r in records),
            "levels": {f"{r['PercentageRetain']:g}": r["Test_Accuracy"] for r in records},
            "validation": {f"{r['PercentageRetain']:g}": r["Val_Accuracy"] for r in records}}


def _epochs(session: Path, iteration: int) -> int:
    """Return how many epochs an iteration trained (the rows of its train_results.txt)."""
    results = Session.for_pruning_dir(session).iteration_dir(iteration) / "train_results.txt"
    return len(results.read_text().splitlines()) - 1


def spread(values: list[float]) -> tuple[float, float, float]:
    """Return (mean, lowest, highest)."""
    return statistics.fmean(values), min(values), max(values)


def verdict(today: list[float], new: list[float]) -> str:
    """Return whether the new recipe's mean test accuracy lies within the seed spread (lowest..highest) of today's."""
    mean, low, high = statistics.fmean(new), min(today), max(today)
    if len(today) < 2:
        return "one seed: no spread to judge by"
    if low <= mean <= high:
        return "within the seed spread of today's recipe"
    return "above today's seed spread" if mean > high else "BELOW today's seed spread"


def report(state: dict) -> tuple[str, Figure]:
    """Return the markdown report and figure of what `state` holds."""
    runs, settings = state["runs"], state["settings"]
    seeds = sorted({run["seed"] for run in runs})
    complete = [s for s in seeds if {r["recipe"] for r in runs if r["seed"] == s} == set(RECIPES)]
    by = {(r["recipe"], r["seed"]): r for r in runs}
    times = {name: [by[name, s]["seconds"] for s in complete] for name in RECIPES}
    lines = ["# Speed: today's retraining recipe against onecycle, the whole default schedule",
             "", f"Command: `{state['command']}`", "",
             f"Seeds run with both recipes: {len(complete)} of {settings['seeds']} asked "
             f"({', '.join(map(str, complete)) or 'none'}); threads {settings['threads']}; subset "
             f"{settings['subset'] or 'none (all of MNIST)'}; the new recipe's settings: "
             f"{state['onecycle']}. Both recipes run one after the other per seed, on the same data split, "
             f"so the machine's other load falls on both alike; each row gives the load other processes put on the "
             f"machine during it (cores kept busy) and the 1-minute load average at its end.", ""]
    if not complete:
        return "\n".join(lines + ["Nothing complete yet."]) + "\n", Figure()
    rows = []
    for name in RECIPES:
        mean, low, high = spread(times[name])
        epochs = statistics.fmean(by[name, s]["epochs"] for s in complete)
        rows.append([name, f"{mean / 60:.2f} min", f"{low / 60:.2f}-{high / 60:.2f} min", f"{epochs:.0f}",
                     f"{statistics.fmean(times['today']) / mean:.2f}x"])
    lines += ["## Wall time of a whole run (23 iterations, data loading excluded)", "",
              markdown_table(["recipe", "mean", "seed range", "epochs trained (mean)", "speed-up against today"],
                             rows)]
    lines += ["| recipe | seed | time (s) | speed-up on this seed | other processes' load (cores) | "
              "load average (1 min) |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s} | {by[name, s]['seconds']:.0f} | "
              f"{by['today', s]['seconds'] / by[name, s]['seconds']:.2f}x | "
              f"{'-' if by[name, s]['other_load'] is None else format(by[name, s]['other_load'], '.2f')} | "
              f"{by[name, s]['loadavg']:.2f} |" for s in complete for name in RECIPES]
    lines += ["", "The machine is shared: when the other processes' load differs between the two runs of a seed, so "
              "does the speed-up; the epochs trained do not depend on the load.", ""]
    lines += ["", "## Test accuracy per level (%), mean and seed range", ""]
    level_rows, verdicts = [], {}
    for level in LEVELS:
        key = f"{level:g}"
        today = [by["today", s]["levels"][key] for s in complete]
        new = [by["onecycle", s]["levels"][key] for s in complete]
        verdicts[key] = verdict(today, new)
        level_rows.append([f"{key}%", *(f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in (spread(today), spread(new))),
                           f"{statistics.fmean(new) - statistics.fmean(today):+.2f}", verdicts[key]])
    lines.append(markdown_table(["% retained", "today", "onecycle", "difference of means", "verdict"], level_rows))
    kept = all(v.startswith(("within", "above")) for v in verdicts.values())
    lines += [f"Quality kept at all four levels: {'yes' if kept else 'no'}.", "",
              "## Machine", "", machine_section(state["machine"]), "![accuracy and time](" + state["name"] + ".png)"]
    return "\n".join(lines) + "\n", plot(by, complete)


def plot(by: dict, seeds: list[int]) -> Figure:
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    curve, bars = figure.subplots(1, 2, width_ratios=(2, 1))
    for name in RECIPES:
        shares = sorted((float(k) for k in by[name, seeds[0]]["levels"]), reverse=True)  # JSON sorts keys as text
        values = [[by[name, s]["levels"][f"{share:g}"] for s in seeds] for share in shares]
        curve.plot(shares, [statistics.fmean(v) for v in values], "o-", label=f"{name} (mean of {len(seeds)})")
        curve.fill_between(shares, [min(v) for v in values], [max(v) for v in values], alpha=0.25)
    curve.set(xscale="log", xlabel="% of hidden neurons retained (log scale)", ylabel="test accuracy (%)",
              ylim=(80, 100), title="Test accuracy (band: seed range)")
    curve.invert_xaxis()
    curve.grid(True, which="both", alpha=0.3)
    curve.legend(loc="lower left")
    means = [statistics.fmean(by[name, s]["seconds"] for s in seeds) / 60 for name in RECIPES]
    bars.bar(list(RECIPES), means)
    bars.set(ylabel="minutes per whole run", title="Wall time (mean over seeds)")
    return figure


def candidates(args: argparse.Namespace, onecycle: dict) -> int:
    """Run only the new recipe with the given settings, seed by seed; print and append one JSON line per run."""
    path = args.results_dir / f"{args.name}_candidates.jsonl"
    for seed in range(args.seeds):
        config = RunConfig.from_flat(data_root=args.data_root, seed=seed, subset=args.subset, threads=args.threads,
                                     **onecycle)
        result = run_once(config, load_data_for(config))
        line = json.dumps({"set": args.set, "seed": seed, "subset": args.subset, "threads": args.threads,
                           "seconds": round(result["seconds"]), "epochs": result["epochs"],
                           "other_load": result["other_load"], "loadavg": result["loadavg"],
                           **{key: result["levels"].get(f"{key:g}") for key in LEVELS}})
        print(line, flush=True)
        old = path.read_text() if path.is_file() else ""
        write_text_atomic(path, old + line + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1, each run with both recipes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared machine)")
    parser.add_argument("--subset", type=int, help="a cheaper proxy: this many training and test images")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="the new recipe's settings")
    parser.add_argument("--candidate", action="store_true",
                        help="measure only the new recipe with --set (choosing its settings): one JSON line per seed, "
                             "appended to <name>_candidates.jsonl")
    parser.add_argument("--name", default="speed_recipe", help="results file name without extension")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write (benchmarks/results)")
    parser.add_argument("--report-only", action="store_true", help="only redraw <name>.md and .png from <name>.json")
    args = parser.parse_args(argv)
    if args.report_only:
        state = load_state(args.results_dir / f"{args.name}.json", None, {"format": FORMAT}, "speed_recipe")
        write_report(state, args.results_dir, args.name)
        return 0
    torch.set_num_threads(args.threads)
    onecycle = {**RECIPES["onecycle"], **parse_settings([tuple(pair.split("=", 1)) for pair in args.set])}
    if args.candidate:
        return candidates(args, onecycle)
    settings = {"seeds": args.seeds, "threads": args.threads, "subset": args.subset, "set": sorted(args.set)}
    path = args.results_dir / f"{args.name}.json"
    state = load_state(path, settings, {"format": FORMAT, "runs": []}, "speed_recipe")
    state.setdefault("machine", machine_info())  # when the first run started
    state.update(command=command_line(), name=args.name,
                 onecycle={k: v for k, v in RunConfig.from_flat(onecycle).to_dict().items()
                           if k in ("recipe", "cycle_epochs", "dense_cycle_epochs", "cycle_batch_size", "max_lr")})
    for seed in range(args.seeds):
        data = None
        for name, changes in (("today", {}), ("onecycle", onecycle)):
            if any(r["seed"] == seed and r["recipe"] == name for r in state["runs"]):
                continue
            config = RunConfig.from_flat(data_root=args.data_root, seed=seed, subset=args.subset,
                                         threads=args.threads, **changes)
            data = data or load_data_for(config)
            result = run_once(config, data)
            state["runs"].append({"recipe": name, "seed": seed, **result})
            save_state(path, state)
            print(f"seed {seed} {name}: {result['seconds']:.0f} s, test accuracy at "
                  + ", ".join(f"{k}%: {result['levels'].get(f'{k:g}', float('nan')):.2f}" for k in LEVELS),
                  flush=True)
            write_report(state, args.results_dir, args.name)
    print(report(state)[0])
    return 0


def write_report(state: dict, results_dir: Path, name: str) -> None:
    """Write <name>.md and <name>.png, drawn from the state alone."""
    text, figure = report(state)
    write_text_atomic(results_dir / f"{name}.md", text)
    save_figure(figure, results_dir / f"{name}.png")


if __name__ == "__main__":
    sys.exit(main())

"""Channel pruning of LeNet-5-Caffe on MNIST: accuracy against parameters and multiply-accumulates, beside published
structured pruning of the same network (issue 30).

Every chain prunes channels of both convolutions and neurons of the first fc layer, all units competing for one
parameter budget per level (allocation global, budget parameters, q 0.5: each level about halves the parameters),
and retrains with the one-cycle recipe (--cycle-epochs per level, --dense-cycle-epochs for the dense model),
distilling from the ConvTeacher file --teacher (trained on the training split only). The chains run as `nbprune
sweep`s in --work-dir (each in a folder named by its spec's hash, so the same command continues them):

- interval_adjoint (a channel's significance: its largest over positions), interval_adjoint_sum (their total),
  magnitude, taylor: three seeds (--seeds), the same dense model per seed;
- random (the teacher) and interval_adjoint_no_teacher (distilled from its own dense model): the first seed only;
- fashion_interval_adjoint: Fashion-MNIST, the first seed, taught by a ConvTeacher trained on Fashion-MNIST's training
  split (into --work-dir when missing);
- scratch: the shapes the better interval-adjoint variant's seeds chose within each target budget, trained from a
  fresh initialisation with the teacher for --dense-cycle-epochs (the dense model's budget: fewer than the
  8 + 4t epochs a level-t pruned model has had, so scratch is measured at the cost of one dense training, not at
  equal epochs: the time a fair comparison needs is more than this 2-core machine had);
- aggregation: how a channel's per-position significance becomes one number is chosen by measurement, on validation:
  the chains of max and sum, and each seed's dense model pruned in one step to each level's budget by each, no
  retraining.

Each seed's model is chosen on validation within a parameter budget; the test accuracy is only reported. Every model
is one row of benchmarks/results/conv_pareto.json (method, seed, iteration, shape, parameters, macs, val_acc,
test_acc, model_file); conv_pareto.md and conv_pareto.png are drawn from it alone (--report-only).

    python benchmarks/conv_pareto.py --data-root ../shared/datasets --workers 2
    python benchmarks/conv_pareto.py --report-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, command_line, load_state, machine_info, markdown_table, save_state  # noqa: E402
from pareto import best_within  # noqa: E402

FORMAT = 1
NAME = "conv_pareto"
DEFAULT_WORK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "nbprune_conv_pareto"
MAIN = ("interval_adjoint", "interval_adjoint_sum", "magnitude", "taylor")
METHODS: dict[str, dict] = {  # each method's settings beyond the fixed ones; "teacher" is filled in by teacher_of
    "interval_adjoint": {"criterion": "interval_adjoint", "teacher": "mnist"},
    "interval_adjoint_sum": {"criterion": "interval_adjoint", "aggregation": "sum", "teacher": "mnist"},
    "magnitude": {"criterion": "magnitude", "teacher": "mnist"},
    "taylor": {"criterion": "taylor", "teacher": "mnist"},
    "random": {"criterion": "random", "teacher": "mnist"},
    "interval_adjoint_no_teacher": {"criterion": "interval_adjoint"},
    "fashion_interval_adjoint": {"criterion": "interval_adjoint", "dataset": "FashionMNIST", "teacher": "fashion"},
}
ONE_SEED = ("random", "interval_adjoint_no_teacher", "fashion_interval_adjoint")
# mean ranks a layer's channels as sum does, and the normalisations mean and rank make any per-layer scale vanish,
# so under this study's settings mean prunes exactly as sum: only max and sum are measured.
AGGREGATIONS = ("max", "sum")
# Published structured pruning of LeNet-5-Caffe on MNIST (../shared/anchors.md): conv1-conv2-fc_in-fc_out channels
# and neurons, test error in %. All were selected on the test set.
ANCHORS = [("SBP", (3, 18, 284, 283), 0.86), ("L0", (20, 25, 45, 462), 0.9), ("BC-GHS", (5, 10, 76, 16), 1.0),
           ("dense LeNet-5-Caffe", (20, 50, 800, 500), 0.80)]
LABEL_OFFSETS = {"SBP": (4, 8), "L0": (-75, -18), "BC-GHS": (-24, 9), "dense LeNet-5-Caffe": (-100, -30)}
LABEL_OFFSETS_MACS = {**LABEL_OFFSETS, "L0": (9, 2)}
TARGETS = {10_000: 99.0, 40_000: 99.2, 2_800: 99.0}  # issue 30 (the last one a stretch)


# ---------------------------------------------------------------------------------------------------- settings
def fixed_settings(args) -> dict:
    """Return the settings every chain shares."""
    return {"architecture": "lenet5", "recipe": "onecycle", "cycle_epochs": args.cycle_epochs,
            "dense_cycle_epochs": args.dense_cycle_epochs, "q": 0.5, "allocation": "global", "budget": "parameters",
            "threads": 1, **({"data_root": args.data_root} if args.data_root else {}),
            **({"subset": args.subset, "val_size": args.val_size} if args.subset else {})}


def settings_of(args) -> dict:
    return {"fixed": {k: v for k, v in fixed_settings(args).items() if k != "data_root"}, "end_itr": args.end_itr}


def changes_of(args, method: str) -> dict:
    """Return a method's settings, its teacher named by file."""
    changes = dict(METHODS[method])
    if "teacher" in changes:
        changes["teacher"] = str(Path(args.teacher if changes["teacher"] == "mnist" else args.fashion_teacher
                                      ).resolve())
    return changes


def config_for(args, method: str, seed: int):
    from nbprune import RunConfig
    return RunConfig.from_flat(**fixed_settings(args), **changes_of(args, method), seed=seed)


def sweep_specs(args) -> list[dict]:
    """Return the `nbprune sweep` specs: the three-seed methods, then the one-seed ones."""
    return [{"seeds": args.seeds, "end_itr": args.end_itr, "set": fixed_settings(args),
             "cases": [changes_of(args, method) for method in MAIN]},
            {"seeds": args.seeds[:1], "end_itr": args.end_itr, "set": fixed_settings(args),
             "cases": [changes_of(args, method) for method in ONE_SEED]}]


def sweep_dir(args, spec: dict) -> Path:
    text = json.dumps(spec, sort_keys=True)
    return Path(args.work_dir) / f"sweep-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------------- rows
def shape_of(network) -> list[int]:
    """Return a LeNet's four published numbers: conv1 and conv2 channels, the first fc layer's inputs and outputs."""
    import torch.nn as nn
    convs = [layer for layer in network if isinstance(layer, nn.Conv2d)]
    first_fc = next(layer for layer in network if isinstance(layer, nn.Linear))
    return [convs[0].out_channels, convs[1].out_channels, first_fc.in_features, first_fc.out_features]


def row_of(method: str, seed: int, iteration: int, model_file: Path, val_acc: float, test_acc: float) -> dict:
    from nbprune.architectures import count_parameters, multiply_accumulates
    from nbprune.networkfile import network_from_file
    network, _ = network_from_file(model_file)
    return {"method": method, "seed": seed, "iteration": iteration, "shape": shape_of(network),
            "parameters": count_parameters(network), "macs": multiply_accumulates(network),
            "val_acc": val_acc, "test_acc": test_acc, "model_file": str(model_file)}


def method_of(args, settings: dict[str, str]) -> str | None:
    """Return the method whose settings a sweep row's varied settings (as the table writes them) are."""
    from nbprune import RunConfig
    from nbprune.sweeps.spec import value_text
    for method in METHODS:
        flat = RunConfig.from_flat(**changes_of(args, method)).flat()
        if all(value_text(flat[name]) == text for name, text in settings.items()):
            return method
    return None


def rows_from_sweep(args, folder: Path) -> tuple[list[dict], dict[str, float]]:
    """Return the rows of a sweep's results.csv and each chain's seconds (pruning iterations and dense apart)."""
    from nbprune.sweeps.report import read_results
    table, varied, _ = read_results(folder)
    rows, seconds = [], {}
    for row in table:
        method = method_of(args, {name: row[name] for name in varied})
        if method is None:
            continue
        rows.append(row_of(method, row["seed"], row["iteration"], folder / row["model_file"], row["val_acc"],
                           row["test_acc"]))
        if isinstance(row["seconds"], (int, float)):
            key = f"{method}/{row['seed']}/{'dense' if row['iteration'] == 0 else 'pruning'}"
            seconds[key] = seconds.get(key, 0.0) + row["seconds"]
    return rows, seconds


# ---------------------------------------------------------------------------------------------------- teachers
def ensure_teacher(args, path: Path, dataset: str) -> dict:
    """Train nbprune's ConvTeacher on `dataset`'s training split into `path` when missing; return its record."""
    from nbprune import RunConfig
    from nbprune.data import load_data_for
    from nbprune.evaluation import loss_and_accuracy
    from nbprune.teacher import load_teacher, save_teacher, train_teacher
    data = load_data_for(RunConfig.from_flat(dataset=dataset, seed=0, **{
        name: value for name, value in fixed_settings(args).items() if name in ("data_root", "subset", "val_size")}))
    if not path.is_file():
        print(f"conv_pareto: training the {dataset} teacher into {path}", flush=True)
        save_teacher(train_teacher(data, progress=False), data.spec, path)
    teacher = load_teacher(path, data.spec)
    return {"file": str(path.resolve()), "sha256": teacher.sha256, "dataset": dataset,
            "val_acc": loss_and_accuracy(teacher.model, data.val_loader)[1],
            "test_acc": loss_and_accuracy(teacher.model, data.test_loader)[1],
            "training_seconds": teacher.training.get("seconds")}


# ---------------------------------------------------------------------------------------------------- scratch
def scratch_seed(args, seed: int, shapes: dict[int, str]) -> tuple[list[dict], float]:
    """Train each of one seed's shapes (model files by iteration) from a fresh initialisation, distilling from the
    teacher, for the dense model's epochs; return the rows and the seconds it took."""
    import torch

    from nbprune import train
    from nbprune.data import load_data_for
    from nbprune.evaluation import loss_and_accuracy
    from nbprune.networkfile import network_from_file, save_network_file
    from nbprune.teacher import load_teacher
    from nbprune.training import dense_training
    torch.set_num_threads(1)
    config = config_for(args, "interval_adjoint", seed)
    data = load_data_for(config)
    teacher = load_teacher(config.train.teacher, data.spec).model
    started, rows = time.perf_counter(), []
    for iteration, file in sorted(shapes.items()):
        network, record = network_from_file(file)
        torch.manual_seed(seed + iteration)
        data.train_loader.reseed(seed + iteration)
        for layer in network:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        folder = Path(args.work_dir) / "scratch" / f"seed{seed}" / str(iteration)
        train(network, data.train_loader, data.test_loader, logdir=folder, val_loader=data.val_loader,
              progress=False, teacher=teacher, config=dense_training(config.train))
        save_network_file(network, folder / "best_model.pth", spec=record.spec, iteration=iteration,
                          criterion="scratch")
        rows.append(row_of("scratch", seed, iteration, folder / "best_model.pth",
                           loss_and_accuracy(network, data.val_loader)[1],
                           loss_and_accuracy(network, data.test_loader)[1]))
    return rows, time.perf_counter() - started


def interval_method(state: dict) -> str:
    """Return the interval-adjoint variant (max or sum over positions) with the better mean validation accuracy over
    its pruned models."""
    means = {method: statistics.fmean(r["val_acc"] for r in state["rows"] if r["method"] == method
                                      and r["iteration"] > 0)
             for method in ("interval_adjoint", "interval_adjoint_sum") if method in methods_in(state)}
    return max(means, key=means.get) if means else "interval_adjoint"


def run_scratch(args, state: dict) -> None:
    """Train, from scratch, the shapes interval_method's seeds chose within each target budget, one process per
    seed."""
    jobs, source = {}, interval_method(state)
    state["scratch_source"] = source
    for seed in args.seeds:
        done = {row["iteration"] for row in state["rows"] if row["method"] == "scratch" and row["seed"] == seed}
        picks = [row for budget in TARGETS for row in chosen(state, source, budget) if row["seed"] == seed]
        shapes = {row["iteration"]: row["model_file"] for row in picks
                  if row["iteration"] > 0 and row["iteration"] not in done}
        if shapes:
            jobs[seed] = shapes
    with ProcessPoolExecutor(max_workers=min(args.workers, max(len(jobs), 1))) as pool:
        futures = {seed: pool.submit(scratch_seed, args, seed, shapes) for seed, shapes in jobs.items()}
        for seed, future in futures.items():
            rows, seconds = future.result()
            state["rows"] += rows
            state["seconds"][f"scratch/{seed}/training"] = state["seconds"].get(f"scratch/{seed}/training", 0) + seconds
            save_state(args.results_dir / f"{NAME}.json", state)


# ---------------------------------------------------------------------------------------------------- aggregation
def measure_aggregation(args, state: dict) -> None:
    """Prune each seed's dense model in one step to each level's parameter budget by interval_adjoint with each
    aggregation, without retraining; record validation and test accuracy."""
    import torch

    from nbprune.architectures import count_parameters
    from nbprune.channels import prune_units
    from nbprune.criteria import PruningContext
    from nbprune.data import load_data_for
    from nbprune.evaluation import loss_and_accuracy
    from nbprune.iterative import network_steps
    from nbprune.layers import hidden_units
    from nbprune.networkfile import network_from_file
    torch.set_num_threads(2)
    results = []
    for seed in args.seeds:
        config = config_for(args, "interval_adjoint", seed)
        data = load_data_for(config)
        dense_file = next(row["model_file"] for row in state["rows"]
                          if row["method"] == "interval_adjoint" and row["seed"] == seed and row["iteration"] == 0)
        dense, _ = network_from_file(dense_file)
        steps = network_steps(config.replace(hidden=hidden_units(dense)), dense, data.spec.features,
                              len(data.classes))
        context = PruningContext.of(data.train_loader, seed)
        for step in steps[1:args.end_itr + 1]:
            for aggregation in AGGREGATIONS:
                pruned = prune_units(dense, step.retained, "interval_adjoint", context, config.prune,
                                     aggregation=aggregation, budget=step.budget, measure="parameters")
                results.append({"seed": seed, "iteration": step.iteration, "budget": step.budget,
                                "aggregation": aggregation, "shape": shape_of(pruned),
                                "parameters": count_parameters(pruned),
                                "val_acc": loss_and_accuracy(pruned, data.val_loader)[1],
                                "test_acc": loss_and_accuracy(pruned, data.test_loader)[1]})
    state["aggregation"] = results


def aggregation_choice(state: dict) -> tuple[str | None, list[list[str]]]:
    """Return the aggregation with the best mean validation accuracy over seeds and levels, and the table."""
    results = state.get("aggregation", [])
    if not results:
        return None, []
    table = []
    for iteration in sorted({r["iteration"] for r in results}):
        cells = [statistics.fmean(r["val_acc"] for r in results if r["iteration"] == iteration
                                  and r["aggregation"] == a) for a in AGGREGATIONS]
        budget = next(r["budget"] for r in results if r["iteration"] == iteration)
        table.append([str(iteration), f"{budget:,}", *(f"{cell:.2f}" for cell in cells)])
    means = {a: statistics.fmean(r["val_acc"] for r in results if r["aggregation"] == a) for a in AGGREGATIONS}
    return max(means, key=means.get), table


# ---------------------------------------------------------------------------------------------------- report
def seeds_of(state: dict, method: str) -> list[int]:
    return sorted({row["seed"] for row in state["rows"] if row["method"] == method})


def chosen(state: dict, method: str, budget: int) -> list[dict]:
    """Return each seed's best-validation row of `method` within `budget` parameters (ties: fewer parameters)."""
    picks = [best_within([r for r in state["rows"] if r["method"] == method and r["seed"] == seed],
                         lambda r: r["parameters"] <= budget) for seed in seeds_of(state, method)]
    return [pick for pick in picks if pick is not None]


def methods_in(state: dict) -> list[str]:
    order = [*METHODS, "scratch"]
    return sorted({row["method"] for row in state["rows"]}, key=order.index)


def shape_text(row: dict) -> str:
    return "-".join(map(str, row["shape"]))


def target_table(state: dict) -> tuple[list[list[str]], list[str]]:
    rows, verdicts = [], []
    for budget, wanted in TARGETS.items():
        best, means = None, {}  # the method whose chosen models have the best mean validation; each one's test
        for method in methods_in(state):
            if method.startswith("fashion"):
                continue
            picks = chosen(state, method, budget)
            if not picks:
                continue
            tests = [r["test_acc"] for r in picks]
            mean = statistics.fmean(tests)
            spread = f"{min(tests):.2f}-{max(tests):.2f}" if len(tests) > 1 else "one seed"
            rows.append([f"<= {budget:,}", f">= {wanted}%", method, f"{mean:.2f}", spread,
                         " / ".join(f"{r['val_acc']:.2f}" for r in picks), "; ".join(map(shape_text, picks)),
                         " / ".join(f"{r['parameters']:,}" for r in picks),
                         ("met" if mean >= wanted else "not met") if len(picks) >= 3 else f"{len(picks)} seed(s)"])
            validation = statistics.fmean(r["val_acc"] for r in picks)
            if len(picks) >= 3:
                means[method] = mean
                if best is None or validation > best[2]:
                    best = (method, mean, validation)
        stretch = " (stretch)" if budget == 2_800 else ""
        meeting = [f"{method} ({mean:.2f}%)" for method, mean in means.items() if mean >= wanted]
        top = max(means, key=means.get) if means else None
        verdicts.append(f"- <= {budget:,} parameters{stretch}, wanted >= {wanted}%: " + (
            "no method has a model within it on three seeds; NOT met." if best is None else
            (f"met by {', '.join(meeting)}" if meeting else f"NOT met (closest: {top}, {means[top]:.2f}%)") +
            f"; the method a validation choice would take: {best[0]} (mean validation {best[2]:.2f}%, test "
            f"{best[1]:.2f}%)."))
    return rows, verdicts


def head_to_head(state: dict) -> list[str]:
    """Return how each interval-adjoint variant compares with the others level by level (same seed, same level)."""
    cells = {(r["method"], r["seed"], r["iteration"]): r for r in state["rows"]}
    lines = []
    for one, other in (("interval_adjoint_sum", "interval_adjoint"), *((variant, other) for variant in (
            "interval_adjoint", "interval_adjoint_sum") for other in ("magnitude", "taylor", "random")),
            ("interval_adjoint", "interval_adjoint_no_teacher"), ("interval_adjoint", "scratch")):
        pairs = [(cells[(one, s, i)], cells[(other, s, i)]) for (m, s, i) in cells
                 if m == one and i > 0 and (other, s, i) in cells]
        if not pairs:
            continue
        wins = sum(a["test_acc"] > b["test_acc"] for a, b in pairs)
        gap = statistics.fmean(a["test_acc"] - b["test_acc"] for a, b in pairs)
        val_wins = sum(a["val_acc"] > b["val_acc"] for a, b in pairs)
        val_gap = statistics.fmean(a["val_acc"] - b["val_acc"] for a, b in pairs)
        lines.append(f"- {one} against {other}: higher validation accuracy at {val_wins} of {len(pairs)} level-seed "
                     f"pairs (mean difference {val_gap:+.2f} points), higher test accuracy at {wins} ({gap:+.2f}).")
    return lines


def fashion_lines(state: dict) -> list[str]:
    """Return what the Fashion-MNIST chain reached: its dense model and its validation-chosen model per budget."""
    rows = [r for r in state["rows"] if r["method"] == "fashion_interval_adjoint"]
    if not rows:
        return []
    dense = next(r for r in rows if r["iteration"] == 0)
    picks = [(budget, chosen(state, "fashion_interval_adjoint", budget)) for budget in (40_000, 10_000, 2_800)]
    return ["## Fashion-MNIST (interval_adjoint, one seed, its own ConvTeacher)", "",
            f"Dense LeNet-5: {dense['test_acc']:.2f}% test. The model chosen on validation: " +
            "; ".join(f"<= {budget:,} parameters {pick[0]['test_acc']:.2f}% test ({shape_text(pick[0])}, "
                      f"{pick[0]['parameters']:,} parameters)" for budget, pick in picks if pick) + ".", ""]


def per_level_table(state: dict) -> list[list[str]]:
    """Return mean test accuracy and parameters per level for each method (over its seeds)."""
    out = []
    for method in methods_in(state):
        for iteration in sorted({r["iteration"] for r in state["rows"] if r["method"] == method}):
            rows = [r for r in state["rows"] if r["method"] == method and r["iteration"] == iteration]
            tests = [r["test_acc"] for r in rows]
            out.append([method, str(iteration), f"{statistics.fmean(r['parameters'] for r in rows):,.0f}",
                        f"{statistics.fmean(r['macs'] for r in rows):,.0f}", "; ".join(shape_text(r) for r in rows),
                        f"{statistics.fmean(tests):.2f}", f"{max(tests) - min(tests):.2f}" if len(tests) > 1 else "-"])
    return out


def cost_lines(state: dict) -> list[str]:
    """Return the cost: minutes of one thread per dense model (counted once however many methods share it) and per
    chain's pruning levels (mean over its seeds), and the wall time."""
    seconds = state.get("seconds", {})
    if not seconds:
        return []
    dense = {(key.split("/")[1], round(value, 3)) for key, value in seconds.items() if key.endswith("/dense")}
    per_chain: dict[str, list[float]] = {}
    for key, value in seconds.items():
        method, _, part = key.split("/")
        if part != "dense":
            per_chain.setdefault(method, []).append(value)
    dense_minutes = [value / 60 for _, value in dense]
    return ["Cost, minutes of one thread (two chains at once on a 2-core machine shared with other work): a dense "
            f"LeNet-5 {statistics.fmean(dense_minutes):.1f} on average ({len(dense_minutes)} trained, "
            f"{sum(dense_minutes):.1f} in all); a chain's pruning levels, mean over its seeds: " +
            ", ".join(f"{method} {statistics.fmean(values) / 60:.1f}" for method, values in per_chain.items()) +
            f". Wall time: {sum(state.get('sitting_minutes', [])):.1f} minutes in "
            f"{len(state.get('sitting_minutes', []))} sitting(s).", ""]


def anchor_cost(shape: tuple[int, ...]):
    from nbprune.architectures import lenet5_cost
    return lenet5_cost(*shape)


def plot(state: dict):
    from matplotlib.figure import Figure
    figure = Figure(figsize=(13, 5.5), layout="constrained")
    for index, (key, label) in enumerate((("parameters", "parameters"), ("macs", "multiply-accumulates"))):
        axes = figure.add_subplot(1, 2, index + 1)
        for method in methods_in(state):
            if method.startswith("fashion"):
                continue
            rows = [r for r in state["rows"] if r["method"] == method]
            levels = sorted({r["iteration"] for r in rows})
            x = [statistics.fmean(r[key] for r in rows if r["iteration"] == level) for level in levels]
            y = [statistics.fmean(r["test_acc"] for r in rows if r["iteration"] == level) for level in levels]
            style = {"interval_adjoint": dict(linewidth=2.5, color="black"),
                     "scratch": dict(linestyle=":")}.get(method, {})
            axes.plot(x, y, marker="o", markersize=3, label=f"{method} ({len(seeds_of(state, method))} seed(s))",
                      **style)
        for name, shape, error in ANCHORS:
            cost = anchor_cost(shape)
            value = cost.parameters if key == "parameters" else cost.multiply_accumulates
            axes.plot([value], [100 - error], marker="*", markersize=13, color="tab:red", linestyle="none")
            axes.annotate(f"{name} {'-'.join(map(str, shape))}", (value, 100 - error), textcoords="offset points",
                          xytext=(LABEL_OFFSETS if key == "parameters" else LABEL_OFFSETS_MACS)[name], fontsize=8,
                          color="tab:red")
        if key == "parameters":
            for budget, wanted in TARGETS.items():
                axes.plot([budget], [wanted], marker="_", markersize=25, markeredgewidth=2, color="tab:green")
        axes.set(xscale="log", xlabel=f"{label} (log scale)", ylabel="test accuracy (%), mean over seeds",
                 ylim=(97.0, 99.6))
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
    figure.suptitle("LeNet-5-Caffe channel pruning on MNIST (green: targets; red stars: published, selected on test)")
    return figure


def render(state: dict, results_dir: Path) -> Path:
    from nbprune.files import save_figure, write_text_atomic
    table, verdicts = target_table(state)
    choice, aggregation_table = aggregation_choice(state)
    anchors = [[name, "-".join(map(str, shape)), f"{anchor_cost(shape).parameters:,}",
                f"{anchor_cost(shape).multiply_accumulates:,}", f"{100 - error:.2f}"] for name, shape, error in ANCHORS]
    teachers = [f"- {t['dataset']}: `{Path(t['file']).name}` (sha256 {t['sha256'][:12]}...), validation "
                f"{t['val_acc']:.2f}%, test {t['test_acc']:.2f}%" for t in state.get("teachers", {}).values()]
    text = "\n".join([
        "# LeNet-5-Caffe channel pruning (issue 30)",
        "",
        f"Generated by `benchmarks/conv_pareto.py` from `{NAME}.json` (last updated {state.get('updated', '?')}). "
        "Each seed's model is the one with the best validation accuracy within the budget; its test accuracy is only "
        "reported. Published points were selected on the test set.",
        "",
        "## Targets (mean over seeds of the validation-chosen models' test accuracy)",
        "",
        *verdicts,
        "",
        markdown_table(["budget", "wanted", "method", "mean test", "test range", "validation per seed",
                        "shape per seed (conv1-conv2-fc_in-fc_out)", "parameters", "verdict"], table),
        f"![accuracy against parameters and multiply-accumulates]({NAME}.png)",
        "",
        *fashion_lines(state),
        "## Interval adjoint against magnitude, Taylor and random (same seed, same level, same budget)",
        "",
        *head_to_head(state),
        "",
        "## Aggregating a channel's positions",
        "",
        "Each seed's dense model pruned in one step to each level's budget by interval_adjoint, no retraining; mean "
        "validation accuracy (%) over seeds. " + (f"Chosen by the mean over all levels: **{choice}**"
                                                  f"{' (the default)' if choice == 'max' else ''}." if choice else ""),
        "",
        markdown_table(["level", "budget", *AGGREGATIONS], aggregation_table) if aggregation_table else "",
        "## Published LeNet-5 structured pruning, counted as nbprune counts",
        "",
        markdown_table(["method", "shape", "parameters", "multiply-accumulates", "test accuracy (selected on test)"],
                       anchors),
        "## Every level",
        "",
        markdown_table(["method", "level", "parameters (mean)", "MACs (mean)", "shape per seed", "mean test",
                        "test range"], per_level_table(state)),
        "## Teachers",
        "",
        *teachers,
        "",
        *cost_lines(state),
        f"Settings: `{json.dumps(state['settings'], sort_keys=True)}`  ",
        f"Last command: `{state.get('command', '?')}`; machine: {state.get('machine', {}).get('cpu', '?')}.",
        "",
    ])
    path = write_text_atomic(results_dir / f"{NAME}.md", text)
    save_figure(plot(state), results_dir / f"{NAME}.png")
    return path


# ---------------------------------------------------------------------------------------------------- main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--end-itr", type=int, default=9, help="levels per chain (9: about 2,300 parameters)")
    parser.add_argument("--cycle-epochs", type=int, default=4, help="one-cycle epochs per pruned level (4)")
    parser.add_argument("--dense-cycle-epochs", type=int, default=8, help="one-cycle epochs of the dense model (8)")
    parser.add_argument("--workers", type=int, default=2, help="chains at once, one torch thread each (2)")
    parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default $NBPRUNE_DATA_ROOT)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--teacher", type=Path, default=RESULTS_DIR / "pareto_teacher_cnn.pth",
                        help="the MNIST ConvTeacher file (default: the pareto benchmark's)")
    parser.add_argument("--fashion-teacher", type=Path,
                        help="the Fashion-MNIST ConvTeacher file, trained there when missing "
                             "(default: WORK_DIR/teacher_fashion.pth)")
    parser.add_argument("--subset", type=int, help="only this many training and test images (a smoke run)")
    parser.add_argument("--val-size", type=int, default=500, help="validation images with --subset (500)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    args.fashion_teacher = args.fashion_teacher or Path(args.work_dir) / "teacher_fashion.pth"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.results_dir / f"{NAME}.json"
    if args.report_only:
        print(f"wrote {render(load_state(path, None, {'format': FORMAT}, NAME), args.results_dir)}")
        return 0
    from nbprune import sweep
    state = load_state(path, settings_of(args), {"format": FORMAT, "rows": [], "seconds": {}}, NAME)
    state.update(command=command_line(), machine=machine_info(), workers=args.workers)
    started = time.monotonic()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    state["teachers"] = {"mnist": ensure_teacher(args, Path(args.teacher), "MNIST"),
                         "fashion": ensure_teacher(args, Path(args.fashion_teacher), "FashionMNIST")}
    for spec in sweep_specs(args):
        folder = sweep_dir(args, spec)
        print(f"conv_pareto: chains of {', '.join(map(str, spec['seeds']))} as `nbprune sweep` in {folder}",
              flush=True)
        sweep(spec, folder, workers=args.workers)
        rows, seconds = rows_from_sweep(args, folder)
        swept = {(row["method"], row["seed"]) for row in rows}
        state["rows"] = [row for row in state["rows"] if (row["method"], row["seed"]) not in swept] + rows
        state["seconds"].update(seconds)
        save_state(path, state)
    run_scratch(args, state)
    measure_aggregation(args, state)
    order = [*METHODS, "scratch"]
    state["rows"].sort(key=lambda row: (order.index(row["method"]), row["seed"], row["iteration"]))
    state.setdefault("sitting_minutes", []).append(round((time.monotonic() - started) / 60, 1))
    save_state(path, state)
    print(f"wrote {render(state, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Was the interval adjoint worth it? The pruning criteria compared on a session's own dense model.

From the dense model notebook 04 trained (iteration 0), every method makes a network of each compared level's size
and retrains it: the criteria (interval_adjoint, magnitude, taylor, random) keep the neurons they score highest,
`scratch` trains the same shapes from a fresh initialisation. It is a short study, not the benchmark:
- one pruning step from the dense model to each level (not 04's chain of small steps), hidden neurons only, each
  layer keeping the schedule's count;
- retraining as the session's pruning run retrained (its run.json: learning rate, early stopping, distillation from
  the dense model or its teacher file);
- one training budget for every method (TrainingBudget): at most as many epochs in total, counted from random
  weights. A pruned network inherits the dense model's epochs and retrains for at most `epochs`; scratch trains for
  at most both together;
- every method of one (seed, level) retrains from the same random state, so the seeds pair the methods;
- validation chooses everything (each retraining's best epoch, the best method per level); the test set is only
  reported.
benchmarks/compare_criteria.py runs the full study: the whole schedule, pruned step by step, fully retrained.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from ..config import PruneConfig, RunConfig, TrainConfig, resolve_device
from ..data import DataSplits, load_data_for
from ..errors import ConfigError, SessionError
from ..evaluation import loss_and_accuracy
from ..files import read_table, write_text_atomic
from ..model import SimpleNN, parameter_count
from ..modelfile import read_record
from ..progress import progress_bar
from ..prune import prune_nodes
from ..retention import RetentionStep, default_steps, read_retain
from ..session import COMPARE, MADE_BY, PRUNING, TRAIN_FILE, Session
from ..criteria import CRITERIA, PruningContext, make_criterion
from ..teacher import load_teacher
from ..training import Distillation, epochs_of, fit

METHODS = (*CRITERIA, "scratch")
TABLE_FILE = "comparison.csv"
COLUMNS = ("method", "level", "hidden", "percentage", "parameters", "seed", "val_accuracy", "test_accuracy",
           "val_images", "seconds")
DEFAULT_SHARES = (25.0, 10.0, 5.0)  # % of the dense model's hidden neurons: the default levels
# the project's full study (benchmarks/compare_criteria.py), in a checkout of nbprune
BENCHMARK_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "compare_criteria.json"
NOISE_FACTOR = 2  # a margin counts as clear when it exceeds twice the noise (a rule of thumb, not a test)

__all__ = ["METHODS", "ComparisonPlan", "TrainingBudget", "against_benchmark", "compare_criteria", "conclusion",
           "default_levels", "level_summary", "plan_comparison", "starting_model", "winners"]


@dataclass(frozen=True)
class TrainingBudget:
    """The one training budget of a comparison: every network it reports trained for at most `total` epochs, counted
    from random weights. A pruned network inherits the dense model's `dense` epochs (the epochs iteration 0 ran) and
    retrains for at most `retrain`; scratch starts from random weights and trains for at most all of them. Early
    stopping on the validation split may end any training sooner, by the same rule for every method."""

    dense: int
    retrain: int

    @property
    def total(self) -> int:
        """Return the most epochs any network of the comparison trains for, counted from random weights."""
        return self.dense + self.retrain

    def epochs(self, method: str) -> int:
        """Return the most epochs `method` trains for in the comparison, after its starting point."""
        return self.total if method == "scratch" else self.retrain

    def __str__(self) -> str:
        return (f"one budget of at most {self.total} epochs from random weights for every network: the pruned ones "
                f"inherit the dense model's {self.dense} and retrain for at most {self.retrain}, scratch trains for "
                f"at most {self.total}")


@dataclass(frozen=True)
class ComparisonPlan:
    """What a comparison will do, checked before anything runs: the dense model, the levels, the seeds, the methods
    and the configuration every retraining follows."""

    dense: SimpleNN
    config: RunConfig
    steps: tuple[RetentionStep, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    budget: TrainingBudget
    teacher_sha256: str | None = None  # the content of the teacher file 04's run distilled from, as it recorded it

    def __str__(self) -> str:
        levels = ", ".join(f"{step.iteration} ({'+'.join(map(str, step.retained))})" for step in self.steps)
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''}"
        runs = len(self.methods) * len(self.steps) * len(self.seeds)
        teacher = self.config.train.teacher or f"the dense model ({'+'.join(map(str, self.dense.hidden))} neurons)"
        distill = f"distilling from {teacher}" if self.config.train.distill else "without distillation"
        return (f"{len(self.methods)} methods x {len(self.steps)} levels (iterations {levels}) x {seeds} = {runs} "
                f"trainings, {distill}; {self.budget}")

    def train_config(self, method: str) -> TrainConfig:
        """Return how `method` trains: the session's pruning run's settings, for the epochs the budget gives it."""
        epochs = self.budget.epochs(method)  # counted by `epochs`, or by `cycle_epochs` with the onecycle recipe
        return dataclasses.replace(self.config.train, epochs=epochs, cycle_epochs=epochs)


# --- checking, before anything is written --------------------------------------------------------------------------
def plan_comparison(session: Session, levels: Sequence[int] | None = None, seeds: Sequence[int] = (0,),
                    epochs: int | None = None, methods: Sequence[str] = METHODS, *,
                    data_root: str | os.PathLike | None = None, device: str | None = None) -> ComparisonPlan:
    """Return the checked plan of a comparison on `session`, writing nothing; refuse a session whose 04 has not
    run, levels not in its schedule, and unknown methods or bad seeds."""
    dense_file = session.model_file(0)
    if not session.is_complete(0):
        raise SessionError(f"the comparison starts from the dense model notebook 04 trains (iteration 0), but "
                           f"{dense_file} is missing in the session folder {session.root.resolve()}: run notebook "
                           f"{MADE_BY[PRUNING]} first for this session, or point session_dir at the session that "
                           f"has it.")
    runs = session.runs()
    if not runs:
        raise SessionError(f"{session.pruning} has no run.json saying how notebook 04 trained: run notebook "
                           f"{MADE_BY[PRUNING]} again for this session.")
    dense = SimpleNN.from_file(dense_file)
    config = run_configuration(runs[-1], dense, epochs, data_root, device)
    teacher = run_teacher(session, runs[-1])
    if teacher is not None:
        check_teacher_file(teacher)
        config = config.replace(teacher=teacher["file"])
    steps = chosen_steps(session_schedule(session, config, dense), levels)
    budget = TrainingBudget(dense_epochs(session), epochs_of(config.train))
    return ComparisonPlan(dense.to(resolve_device(config.device)), config, steps, checked_seeds(seeds),
                          checked_methods(methods), budget, teacher["sha256"] if teacher is not None else None)


def run_teacher(session: Session, run: dict) -> dict | None:
    """Return the teacher file 04's run distilled from, {"file": its resolved path, "sha256": its content's hash}
    (None: the run used none): as run.json records it, or for a run recorded before run.json did (with the path as
    given, relative to wherever the run started), as its pruned iterations' model records name it."""
    given = (run.get("config") or {}).get("teacher")
    if given is None:
        return None
    recorded = run.get("teacher")
    if isinstance(recorded, dict) and isinstance(recorded.get("file"), str):
        return {"file": recorded["file"], "sha256": recorded.get("sha256")}
    for iteration in reversed(session.iterations()):
        record = read_record(session.model_file(iteration)) if iteration else None
        if record is not None and record.teacher is not None:
            return {"file": record.teacher["file"], "sha256": record.teacher["sha256"]}
    return {"file": str(given), "sha256": None}


def check_teacher_file(teacher: dict) -> None:
    """Refuse a teacher file that is missing, or whose content is not the one 04's run distilled from."""
    path = Path(teacher["file"])
    if not path.is_file():
        raise SessionError(f"04's pruning run distilled from the teacher file {path}, which is not there any more: "
                           f"put that file back there (07 retrains as 04 did), or run 04 again with a teacher "
                           f"file that exists.")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if teacher["sha256"] is not None and actual != teacher["sha256"]:
        raise SessionError(f"04's pruning run distilled from the teacher file {path} with sha256 "
                           f"{teacher['sha256'][:16]}..., but that file now holds other content (sha256 "
                           f"{actual[:16]}...): put the run's teacher file back there, or run 04 again with this "
                           f"one, so 07 retrains as 04 did.")


def dense_epochs(session: Session) -> int:
    """Return how many epochs the dense model (iteration 0) trained: the rows of its train_results.txt."""
    return len(read_table(session.iteration_dir(0) / TRAIN_FILE)[1])


def run_configuration(run: dict, dense: SimpleNN, epochs: int | None, data_root, device: str | None) -> RunConfig:
    """Return the configuration of the session's pruning run, with the dense model's network, and with the
    comparison's epochs, data folder and device where they are given."""
    changes = {"epochs": epochs, "cycle_epochs": epochs, "device": device,
               "data_root": None if data_root is None else str(data_root)}
    return RunConfig.from_dict(run["config"]).replace(hidden=dense.hidden, activation=dense.activation,
                                                      **{k: v for k, v in changes.items() if v is not None})


def session_schedule(session: Session, config: RunConfig, dense: SimpleNN) -> list[RetentionStep]:
    """Return the session's schedule: 03's retain.txt, or the one the run's configuration makes without it."""
    if session.retain_file.is_file():
        return read_retain(session.retain_file, dense.hidden)
    return default_steps(config.replace(prune_inputs=False, allocation="layer", budget="neurons"))


def default_levels(steps: Sequence[RetentionStep], shares: Sequence[float] = DEFAULT_SHARES) -> list[int]:
    """Return the iterations whose share of hidden neurons is nearest each of `shares` (%), dense level excluded."""
    pruned = list(steps[1:])
    if not pruned:
        return []
    chosen = {min(pruned, key=lambda step: abs(step.percentage - share)).iteration for share in shares}
    return sorted(chosen)


def chosen_steps(steps: list[RetentionStep], levels: Sequence[int] | None) -> tuple[RetentionStep, ...]:
    """Return the schedule's rows for `levels` (default: default_levels), refusing iterations it does not have."""
    allowed = {step.iteration: step for step in steps[1:]}
    levels = default_levels(steps) if levels is None else list(levels)
    unknown = [level for level in levels if level not in allowed]
    if not levels or unknown or len(set(levels)) != len(levels):
        shown = ", ".join(map(str, list(allowed)[:12])) + (", ..." if len(allowed) > 12 else "")
        shares = ", ".join(f"{share:g}%" for share in DEFAULT_SHARES)
        raise ConfigError(f"compare_levels={levels!r} is not allowed: expected different iterations of the "
                          f"session's schedule after the dense one ({shown or 'none: the schedule has one row'}); "
                          f"choose among them, or None for the rows nearest {shares} of the neurons.")
    return tuple(allowed[level] for level in sorted(levels))


def checked_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """Return the seeds as a tuple, refusing an empty list, repeats and anything but whole numbers >= 0."""
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 for seed in seeds):
        raise ConfigError(f"seeds={seeds!r} is not allowed: expected different whole numbers >= 0, e.g. range(2) "
                          f"(compare_seeds=2).")
    return seeds


def checked_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Return the methods as a tuple in METHODS' order, refusing unknown names and an empty list."""
    unknown = [method for method in methods if method not in METHODS]
    if not methods or unknown:
        raise ConfigError(f"methods={list(methods)!r} is not allowed: expected some of {', '.join(METHODS)}.")
    return tuple(method for method in METHODS if method in methods)


# --- running ---------------------------------------------------------------------------------------------------
def compare_criteria(session: Session | str | os.PathLike, levels: Sequence[int] | None = None,
                     seeds: Sequence[int] = (0,), epochs: int | None = None, methods: Sequence[str] = METHODS, *,
                     data_root: str | os.PathLike | None = None, device: str | None = None,
                     progress: bool = True) -> pd.DataFrame:
    """Return the comparison's table, one row per method, level and seed, and write it to
    <session>/compare/comparison.csv (see the module's notes for what it is). Everything is checked first; the
    session is held (its lock) while the comparison runs and writes."""
    session = session if isinstance(session, Session) else Session.open(session)
    plan = plan_comparison(session, levels, seeds, epochs, methods, data_root=data_root, device=device)
    spec = plan.dense.spec
    data = load_data_for(plan.config, standardisation=(spec.mean, spec.std) if spec is not None else None)
    teacher = teacher_of(plan, data)
    folder = session.part(COMPARE)
    session.check_writable(folder)
    with session.lock():
        table = run_plan(plan, data, teacher, progress)
        write_text_atomic(folder / TABLE_FILE, table.to_csv(index=False))
    return table


def teacher_of(plan: ComparisonPlan, data: DataSplits) -> nn.Module | None:
    """Return what the retraining distils from, as in 04's run: its teacher file, else the dense model (None
    without distillation); a teacher file of other data is refused."""
    if not plan.config.train.distill:
        return None
    if plan.config.train.teacher is not None:
        teacher = load_teacher(plan.config.train.teacher, data.spec)
        if plan.teacher_sha256 is not None:
            check_teacher_file({"file": str(teacher.file), "sha256": plan.teacher_sha256})  # unchanged since planned
        return teacher.model
    return copy.deepcopy(plan.dense).eval()


def run_plan(plan: ComparisonPlan, data: DataSplits, teacher: nn.Module | None, progress: bool = True
             ) -> pd.DataFrame:
    """Return the table of every (seed, level, method) of the plan, retrained on `data` (distilling from
    `teacher` when it is given)."""
    context = PruningContext.of(data.train_loader, plan.config.seed)  # what 04's criteria looked at
    teacher = Distillation(teacher) if teacher is not None else None  # its outputs computed once, for every run
    runs = [(seed, step, method) for seed in plan.seeds for step in plan.steps for method in plan.methods]
    bar = progress_bar(runs, desc="methods x levels x seeds", unit="model", disable=not progress)
    rows = [retrain(plan, data, dataclasses.replace(context, seed=seed), teacher, method, step, seed)
            for seed, step, method in bar]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def run_seed(seed: int, iteration: int) -> int:
    """Return the random state one (seed, level) starts from: the same for every method, different for each pair."""
    return 1000 * seed + iteration


def retrain(plan: ComparisonPlan, data: DataSplits, context: PruningContext, teacher: Distillation | None,
            method: str, step: RetentionStep, seed: int) -> dict:
    """Return one row of the table: `method` brought to `step`'s size and retrained with `seed`."""
    started = time.perf_counter()
    torch.manual_seed(run_seed(seed, step.iteration))
    data.train_loader.reseed(run_seed(seed, step.iteration))
    model = starting_model(plan.dense, method, step.retained, context, plan.config.prune)
    model = fit(model, data.train_loader, data.val_loader, plan.train_config(method), teacher=teacher,
                progress=False)  # the test set is evaluated once, below: it chooses nothing
    return {"method": method, "level": step.iteration, "hidden": "+".join(map(str, step.retained)),
            "percentage": step.percentage, "parameters": parameter_count(model), "seed": seed,
            "val_accuracy": loss_and_accuracy(model, data.val_loader)[1],
            "test_accuracy": loss_and_accuracy(model, data.test_loader)[1],
            "val_images": len(data.val_loader.dataset), "seconds": time.perf_counter() - started}


def starting_model(dense: SimpleNN, method: str, retain: Sequence[int], context: PruningContext,
                   options: PruneConfig | None = None) -> nn.Module:
    """Return the network `method` retrains: the dense model's `retain` best-scored neurons per hidden layer under
    the criterion `method` built with `options` (the run's prune settings), or for scratch a fresh SimpleNN of that
    shape (drawn from torch's random state)."""
    if method == "scratch":
        fresh = SimpleNN(retain, dense.in_features, dense.num_classes, dense.activation)
        return fresh.to(dense.fc1.weight.device)
    return prune_nodes(dense, retain, make_criterion(method, options), context)  # hidden neurons, no compensation


# --- reading the table -----------------------------------------------------------------------------------------
def level_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Return per level and method the mean and sample standard deviation over seeds of the validation and test
    accuracy (standard deviation NaN with one seed)."""
    grouped = table.groupby(["level", "hidden", "parameters", "method"], sort=False)
    return grouped.agg(val_mean=("val_accuracy", "mean"), val_sd=("val_accuracy", "std"),
                       test_mean=("test_accuracy", "mean"), test_sd=("test_accuracy", "std"),
                       seeds=("seed", "count"), val_images=("val_images", "first")).reset_index()


def standard_error(accuracy: float, images: int) -> float:
    """Return the sampling error, in points, of an accuracy (%) measured on `images` images: sqrt(p (100-p) / n)."""
    return math.sqrt(accuracy * (100 - accuracy) / images)


def noise(first: pd.Series, second: pd.Series) -> float:
    """Return what a margin between two methods' mean validation accuracies (level_summary rows) must beat: the
    larger of their seed spreads and the validation sampling error at the higher accuracy; NaN when a seed spread
    is unknown (one seed), since the retraining's luck is then not measured."""
    spreads = [first["val_sd"], second["val_sd"]]
    if any(math.isnan(spread) for spread in spreads):
        return float("nan")
    return max([standard_error(max(first["val_mean"], second["val_mean"]), int(first["val_images"])), *spreads])


def verdict(margin: float, noise_: float) -> str:
    """Return what a margin (points) says against the noise it must beat: "clear" (beyond NOISE_FACTOR x the noise),
    "within the noise", or "unknown" (no seed spread: one seed)."""
    if math.isnan(noise_):
        return "unknown"
    return "clear" if abs(margin) > NOISE_FACTOR * noise_ else "within the noise"


def winners(table: pd.DataFrame) -> pd.DataFrame:
    """Return per level the method with the best mean validation accuracy, the runner-up, the margin between them
    (points), the noise it must beat (see `noise`), whether the margin is clear (over NOISE_FACTOR x the noise; never
    with one seed), and the winner's test accuracy (reported, never used to choose)."""
    rows = []
    for level, group in level_summary(table).groupby("level", sort=True):
        ranked = group.sort_values("val_mean", ascending=False, kind="stable")
        best, second = ranked.iloc[0], ranked.iloc[min(1, len(ranked) - 1)]
        margin, spread = best["val_mean"] - second["val_mean"], noise(best, second)
        rows.append({"level": level, "hidden": best["hidden"], "parameters": best["parameters"],
                     "best": best["method"], "val_accuracy": best["val_mean"], "runner_up": second["method"],
                     "margin": margin, "noise": spread, "clear": verdict(margin, spread) == "clear",
                     "test_accuracy": best["test_mean"]})
    return pd.DataFrame(rows)


def method_gap(table: pd.DataFrame, method: str, other: str) -> pd.DataFrame:
    """Return per level the mean validation accuracy of `method` minus `other`'s (points), the noise the gap must
    beat (see `noise`) and its verdict (see `verdict`)."""
    summary = level_summary(table).set_index(["level", "method"])
    rows = []
    for level in sorted(table["level"].unique()):
        ours, theirs = summary.loc[(level, method)], summary.loc[(level, other)]
        gap, spread = ours["val_mean"] - theirs["val_mean"], noise(ours, theirs)
        rows.append({"level": level, "hidden": ours["hidden"], "gap": gap, "noise": spread,
                     "verdict": verdict(gap, spread)})
    return pd.DataFrame(rows)


def conclusion(table: pd.DataFrame) -> str:
    """Return the comparison's answer in words, every number and every verdict computed from `table` (validation
    chooses; a verdict needs the spread over seeds, so one seed draws none)."""
    seeds = table["seed"].nunique()
    if seeds == 1:
        lines = ["Chosen on validation accuracy, one seed: the retraining's luck (the spread over seeds) is unknown, "
                 "so no margin is called clear and no verdict is drawn. Run two seeds or more (compare_seeds)."]
    else:
        lines = [f"Chosen on validation accuracy (mean over {seeds} seeds). A margin counts as clear when it exceeds "
                 f"{NOISE_FACTOR}x the noise: the larger of the two methods' seed spreads (sample standard deviation) "
                 f"and the validation set's sampling error. A rule of thumb, not a significance test."]
    for row in winners(table).itertuples():
        said = verdict(row.margin, row.noise)
        said = "the spread is unknown (one seed)" if said == "unknown" else said
        lines.append(f"- iteration {row.level} ({row.hidden}, {row.parameters:,} parameters): {row.best} is best "
                     f"({row.val_accuracy:.2f}%), {row.margin:.2f} points ahead of {row.runner_up}: {said}; "
                     f"its test accuracy {row.test_accuracy:.2f}%.")
    methods = set(table["method"])
    if {"interval_adjoint", "magnitude"} <= methods:
        lines.append(gap_verdict(method_gap(table, "interval_adjoint", "magnitude"), "magnitude",
                                 "Was the interval adjoint worth it against magnitude pruning (which needs no "
                                 "interval analysis)?"))
    if {"interval_adjoint", "scratch"} <= methods:
        lines.append(gap_verdict(method_gap(table, "interval_adjoint", "scratch"), "scratch",
                                 "Did pruning with it beat training the same shapes from scratch on the same "
                                 "budget?"))
    return "\n".join(lines)


def gap_verdict(gaps: pd.DataFrame, other: str, question: str) -> str:
    """Return the answer to `question` from interval_adjoint's gaps to `other`, level by level (method_gap): yes
    when clearly ahead somewhere and clearly behind nowhere, no verdict without a seed spread."""
    each = ", ".join(f"{row.gap:+.2f} at {row.hidden}" for row in gaps.itertuples())
    numbers = f"(interval_adjoint minus {other}, validation points: {each}"
    if (gaps["verdict"] == "unknown").any():
        return f"{question} No verdict: one seed, the spread is unknown {numbers})."
    clear = gaps["verdict"] == "clear"
    ahead, behind = int((clear & (gaps["gap"] > 0)).sum()), int((clear & (gaps["gap"] < 0)).sum())
    answer = ("Yes here: clearly ahead at some level and clearly behind at none" if ahead and not behind else
              "No here: clearly behind at some level and clearly ahead at none" if behind and not ahead else
              "Mixed: clearly ahead at some levels, clearly behind at others" if ahead else
              "Not shown here: every gap is within the noise")
    return (f"{question} {answer} {numbers}; clearly ahead at {ahead}, clearly behind at {behind}, within the noise "
            f"at {len(gaps) - ahead - behind} of {len(gaps)} levels).")


# --- against the project's benchmark ------------------------------------------------------------------------------
def benchmark_gap(results: dict, method: str, other: str, hidden: str) -> tuple[float, float, int] | None:
    """Return the benchmark's mean test accuracy of `method` minus `other`'s at the level of `hidden` neurons
    ("14+4"), the larger of their standard deviations over seeds, and the seeds; None where it has no such level."""
    def accuracies(name: str) -> list[float]:
        return [record["Test_Accuracy"] for levels in results["results"].get(name, {}).values()
                for record in levels.values() if "+".join(map(str, record["hidden"])) == hidden]
    ours, theirs = accuracies(method), accuracies(other)
    if not ours or not theirs:
        return None
    spreads = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in (ours, theirs)]
    return statistics.fmean(ours) - statistics.fmean(theirs), max(spreads), min(len(ours), len(theirs))


# why a scratch comparison may disagree with the benchmark's without either being wrong
UNEQUAL_BUDGET = (" (not the same experiment: the benchmark trained scratch for at most 40 epochs while its pruned "
                  "chain had retrained at every step before the level; here scratch and the one-step cut share one "
                  "budget)")


def against_benchmark(table: pd.DataFrame, results: dict | str | os.PathLike | None = None) -> str:
    """Return, for each level of `table` whose shape the project's benchmark also ran, interval_adjoint's gaps to
    magnitude and to scratch here (validation, with this table's verdict) beside the benchmark's (test accuracy, mean
    over its seeds, with its spread), and whether they agree: a clear verdict here disagrees only with a benchmark
    gap of the other sign larger than its spread. `results`: the benchmark's JSON (default BENCHMARK_RESULTS)."""
    if not isinstance(results, dict):
        path = Path(results) if results is not None else BENCHMARK_RESULTS
        if not path.is_file():
            return f"The project's benchmark results ({path}) are not in this installation: nothing to compare with."
        results = json.loads(path.read_text(encoding="utf-8"))
    lines, agree, compared = [], 0, 0
    for other in ("magnitude", "scratch"):
        if not {"interval_adjoint", other} <= set(table["method"]):
            continue
        for row in method_gap(table, "interval_adjoint", other).itertuples():
            theirs = benchmark_gap(results, "interval_adjoint", other, row.hidden)
            if theirs is None:
                continue
            gap, spread, seeds = theirs
            settled = abs(gap) > spread and seeds > 1  # the benchmark's sign, where its spread does not hide it
            fits = row.verdict != "clear" or not settled or (gap > 0) == (row.gap > 0)
            agree, compared = agree + fits, compared + 1
            said = "agrees" if fits else "DISAGREES" + (UNEQUAL_BUDGET if other == "scratch" else "")
            lines.append(f"- interval_adjoint minus {other} at {row.hidden}: here {row.gap:+.2f} ({row.verdict}); "
                         f"the benchmark {gap:+.2f} ± {spread:.2f} over {seeds} seeds: "
                         f"{said}.")
    if not compared:
        return "The project's benchmark ran none of these shapes: nothing to compare with."
    return "\n".join([f"Against the project's benchmark (benchmarks/results/compare_criteria.md): {agree} of "
                      f"{compared} comparisons agree (a clear verdict here against a benchmark gap of the other sign "
                      f"beyond its spread would disagree; a gap within the noise here claims no sign)."] + lines)

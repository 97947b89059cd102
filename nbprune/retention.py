"""The retention schedule: how many neurons each hidden layer keeps at pruning iteration t.

The reference's retain.txt has one column per hidden layer. Two optional columns extend it, present only when used:
`inputsRetained` (after Iteration: input features kept, for input-node pruning) and `parameterBudget` (at the end:
the parameters an iteration may keep when all nodes compete for one budget).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .config import MAX_ITERATIONS, RunConfig, declared_default, or_default
from .datasets import dataset_named, is_data_file
from .errors import ScheduleError
from .files import format_table, save_figure, write_text_atomic

MAX_NEURONS = 16_384  # per layer: the bound config.ModelConfig.hidden declares


class RetentionStep(NamedTuple):
    """One row of retain.txt: the iteration, neurons kept per hidden layer, % of hidden neurons kept, and (when
    used) the input features kept and the budget, counted in parameters or in multiply-accumulates (`measure`)."""

    iteration: int
    retained: tuple[int, ...]
    percentage: float
    inputs: int | None = None
    budget: int | None = None
    measure: str = "parameters"


INPUTS_COLUMN = "inputsRetained"
BUDGET_COLUMNS = {"parameters": "parameterBudget", "macs": "macBudget"}  # a budget's column says what it counts
BUDGET_COLUMN = BUDGET_COLUMNS["parameters"]


def retain_header(layers: int, inputs: bool = False, budget: bool = False, measure: str = "parameters"
                  ) -> list[str]:
    """Return retain.txt's header for `layers` hidden layers (and the optional columns)."""
    return ["Iteration", *([INPUTS_COLUMN] if inputs else []), *(f"h{k}NodesRetained" for k in range(1, layers + 1)),
            "perNodesRetained", *([BUDGET_COLUMNS[measure]] if budget else [])]


def schedule(hidden: Sequence[int] | None = None, q: float | None = None, iterations: Sequence[int] | None = None
             ) -> list[RetentionStep]:
    """Return round(h * q**t) (at least 1) per layer, skipping iterations that would keep what the last one kept.

    None: the configuration's default (hidden sizes, q, iterations 0 .. iterations-1)."""
    hidden, q = or_default(hidden, "hidden"), or_default(q, "q")
    iterations = range(declared_default("iterations")) if iterations is None else iterations
    if not 0 < q < 1:
        raise ScheduleError(f"q={q!r} is not allowed: expected a retention factor between 0 and 1 (e.g. 0.8).")
    if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_NEURONS for h in hidden):
        raise ScheduleError(f"hidden={list(hidden)!r} is not allowed: expected whole numbers from 1 to {MAX_NEURONS}, "
                            f"one per layer.")
    iterations = list(iterations)
    if not iterations or any(not isinstance(t, int) or not 0 <= t < MAX_ITERATIONS for t in iterations):
        raise ScheduleError(f"iterations {iterations[:3]}... are not allowed: expected whole numbers from 0 to "
                            f"{MAX_ITERATIONS - 1}.")
    total = sum(hidden)
    steps: list[RetentionStep] = []
    for t in iterations:
        retained = tuple(max(1, round(h * q ** t)) for h in hidden)
        if steps and retained == steps[-1].retained:
            continue
        steps.append(RetentionStep(int(t), retained, 100 * sum(retained) / total))
    return steps


def with_budgets(steps: Sequence[RetentionStep], inputs: int | None = None, input_q: float | None = None,
                 parameters: int | None = None, macs: int | None = None) -> list[RetentionStep]:
    """Return the steps with the optional columns filled where a step lacks them.

    inputs (input-node pruning): iteration t keeps round(inputs * input_q**t) input features, at least 1.
    parameters (a global parameter budget): iteration t may keep round(parameters * percentage / 100), the same
    share of the dense model's parameters as the schedule keeps of its hidden neurons; macs likewise, a share of
    the dense model's multiply-accumulates per input (give one of the two)."""
    if parameters is not None and macs is not None:
        raise ScheduleError("with_budgets counts a budget in parameters or in multiply-accumulates, not both: give "
                            "parameters or macs.")
    measure = "macs" if macs is not None else "parameters"
    parameters = macs if macs is not None else parameters
    if input_q is not None and not 0 < input_q < 1:
        raise ScheduleError(f"input_q={input_q!r} is not allowed: expected a retention factor between 0 and 1.")
    filled = []
    for step in steps:
        kept = step.inputs if step.inputs is not None or inputs is None else \
            (inputs if step.iteration == steps[0].iteration else max(1, round(inputs * input_q ** step.iteration)))
        budget = step.budget if step.budget is not None or parameters is None else \
            max(1, round(parameters * step.percentage / 100))
        filled.append(step._replace(inputs=kept, budget=budget, measure=step.measure if step.budget is not None
                                    or parameters is None else measure))
    return filled


class GeneratePruneData:
    """The reference workflow's retention generator: writes retain.txt and draws its two plots into `dir`."""

    def __init__(self, hidden: Sequence[int] | None = None, q: float | None = None,
                 iterations: Sequence[int] | None = None, dir: str | os.PathLike = "retain"):
        hidden, q = or_default(hidden, "hidden"), or_default(q, "q")
        iterations = range(declared_default("iterations")) if iterations is None else iterations
        self.hidden, self.q, self.iterations, self.dir = tuple(hidden), q, iterations, Path(dir)
        self.data = schedule(self.hidden, q, iterations)

    def generate_data(self, save_data: bool = True) -> list[RetentionStep]:
        """Return the schedule; with save_data, also write `<dir>/retain.txt`."""
        if save_data:
            write_text_atomic(self.dir / "retain.txt", format_retain(self.data))
        return self.data

    def plot_data_iterations(self, save: bool = True) -> Figure:
        """Plot neurons kept per layer against the iteration; save as pruneNodesIteration.png."""
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.add_subplot()
        iterations = [step.iteration for step in self.data]
        if self.data[0].inputs is not None:
            axes.plot(iterations, [step.inputs for step in self.data], "s--", markersize=3, color="gray",
                      label=f"input features ({self.data[0].inputs})")
        for layer in range(len(self.hidden)):
            axes.plot(iterations, [step.retained[layer] for step in self.data], "o-", markersize=3,
                      label=f"hidden layer {layer + 1} ({self.hidden[layer]} neurons)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(xlabel="pruning iteration", yscale="log",
                 ylabel="neurons (and inputs) retained" if self.data[0].inputs is not None else "neurons retained",
                 title=f"Neurons retained per iteration (q = {self.q:g})")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        if save:
            save_figure(figure, self.dir / "pruneNodesIteration.png")
        return figure

    def plot_data_distribution(self, save: bool = True) -> Figure:
        """Plot how the kept neurons split between layers at each iteration; save as pruneNodesDistribution.png."""
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.add_subplot()
        iterations = [step.iteration for step in self.data]  # at their own places: skipped iterations leave a gap
        bottom = [0.0] * len(self.data)
        total = sum(self.hidden)
        for layer in range(len(self.hidden)):
            share = [100 * step.retained[layer] / total for step in self.data]
            axes.bar(iterations, share, bottom=bottom, width=0.8, label=f"hidden layer {layer + 1}")
            bottom = [b + s for b, s in zip(bottom, share)]
        axes.set(xlabel="pruning iteration (missing bars: iterations that would keep what the one before kept)",
                 ylabel="% of all hidden neurons retained", title="Distribution of retained neurons")
        step = max(1, round(len(range(iterations[0], iterations[-1] + 1)) / 16))
        axes.set_xticks(range(iterations[0], iterations[-1] + 1, step))
        axes.xaxis.label.set_fontsize(8)
        axes.legend()
        if save:
            save_figure(figure, self.dir / "pruneNodesDistribution.png")
        return figure


def read_retain(path: str | os.PathLike, hidden: Sequence[int] | None = None) -> list[RetentionStep]:
    """Return the schedule in a retain.txt, checked: whole numbers, never growing, never above `hidden`."""
    path = Path(path)
    if not path.is_file():
        kind = "is a folder, not the retain.txt file in it" if path.is_dir() else \
            "is not a regular file (a device, pipe or socket)" if path.exists() else "does not exist"
        raise ScheduleError(f"retain file {path} {kind}: pass a retain.txt, or write one with notebook "
                            f"03_retention, GeneratePruneData().generate_data() or `nbprune retain`.")
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise ScheduleError(f"{path} is not a plain-text retain.txt (it holds bytes that are not ASCII: another "
                            f"encoding such as UTF-16, or a binary file): save it as plain text, or write it again "
                            f"with `nbprune retain`.") from None
    except OSError as error:
        raise ScheduleError(f"retain file {path} cannot be read ({error.strerror}).") from None
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = lines[0] if lines else []
    measures = {column: measure for measure, column in BUDGET_COLUMNS.items()}
    has_inputs, has_budget = header[1:2] == [INPUTS_COLUMN], bool(header) and header[-1] in measures
    measure = measures[header[-1]] if has_budget else "parameters"
    layers = len(header) - 2 - has_inputs - has_budget
    if layers < 1 or header != retain_header(layers, has_inputs, has_budget, measure):
        raise ScheduleError(f"{path}: the header {' '.join(header)[:120] if lines else '(empty file)'!r} is not "
                            f"retain.txt's: expected 'Iteration h1NodesRetained ... perNodesRetained' (with "
                            f"{INPUTS_COLUMN} after Iteration and {' or '.join(BUDGET_COLUMNS.values())} at the "
                            f"end when used).")
    if hidden is not None and len(hidden) != layers:
        raise ScheduleError(f"{path} lists {layers} hidden layers, the model has {len(hidden)} "
                            f"({list(hidden)}): generate a schedule for this model.")
    steps: list[RetentionStep] = []
    for number, fields in enumerate(lines[1:], start=2):
        steps.append(_retain_row(path, number, fields, len(header), has_inputs, has_budget, hidden, steps
                                 )._replace(measure=measure))
    if not steps:
        raise ScheduleError(f"{path} has a header but no rows: expected one row per iteration.")
    return steps


def _retain_row(path: Path, number: int, fields: list[str], width: int, has_inputs: bool, has_budget: bool,
                hidden: Sequence[int] | None, steps: list[RetentionStep]) -> RetentionStep:
    """Return one checked row of a retain.txt."""
    if len(fields) != width:
        raise ScheduleError(f"{path} line {number}: {len(fields)} fields, expected {width}.")
    if any(len(field) > 12 for field in fields):
        raise ScheduleError(f"{path} line {number}: {' '.join(fields)[:60]!r} holds a number too long to be an "
                            f"iteration, a neuron count or a percentage.")
    budget_field = fields.pop() if has_budget else None
    try:
        iteration, *counts = (int(field) for field in fields[:-1])
        percentage = float(fields[-1])
        budget = int(budget_field) if budget_field is not None else None
    except ValueError:
        raise ScheduleError(f"{path} line {number}: {' '.join(fields)!r} holds a value that is not a whole "
                            f"number: iterations and neuron counts must be integers.") from None
    inputs = counts.pop(0) if has_inputs else None
    if not 0 <= iteration < MAX_ITERATIONS or any(not 1 <= count <= MAX_NEURONS for count in counts):
        raise ScheduleError(f"{path} line {number}: iteration {iteration}, counts {counts}: expected an "
                            f"iteration from 0 to {MAX_ITERATIONS - 1} and 1 to {MAX_NEURONS} neurons per layer.")
    if not 0 < percentage <= 100:  # also refuses nan and inf
        raise ScheduleError(f"{path} line {number}: percentage {fields[-1]!r} is not allowed: expected the share "
                            f"of hidden neurons kept, above 0 and at most 100.")
    if (inputs is not None and inputs < 1) or (budget is not None and budget < 1):
        raise ScheduleError(f"{path} line {number}: inputs {inputs} and budget {budget}: expected at least 1.")
    if hidden is not None and any(count > size for count, size in zip(counts, hidden)):
        raise ScheduleError(f"{path} line {number}: keeps {counts} neurons but the model has only "
                            f"{list(hidden)}: lower the counts or use a bigger model.")
    step = RetentionStep(iteration, tuple(counts), percentage, inputs, budget)
    if steps:
        _check_follows(path, number, steps[-1], step)
    return step


def _check_follows(path, number, previous: RetentionStep, step: RetentionStep) -> None:
    """Refuse a step that does not come after `previous` or keeps more than it."""
    if step.iteration <= previous.iteration:
        raise ScheduleError(f"{path} line {number}: iteration {step.iteration} does not follow "
                            f"{previous.iteration}: iterations must increase.")
    inputs_grow = None not in (step.inputs, previous.inputs) and step.inputs > previous.inputs
    if any(count > before for count, before in zip(step.retained, previous.retained)) or inputs_grow:
        raise ScheduleError(f"{path} line {number}: counts grow from {list(previous.retained)} to "
                            f"{list(step.retained)}: pruning only removes neurons, so counts may never grow.")


def format_retain(steps: Sequence[RetentionStep]) -> str:
    """Return the text of a retain.txt holding `steps` (with the optional columns when the steps use them)."""
    if not steps:
        return format_table(["Iteration", "perNodesRetained"], [])
    inputs, budget = steps[0].inputs is not None, steps[0].budget is not None
    rows = [[step.iteration, *([step.inputs] if inputs else []), *step.retained, step.percentage,
             *([step.budget] if budget else [])] for step in steps]
    return format_table(retain_header(len(steps[0].retained), inputs, budget, steps[0].measure), rows)


def as_schedule(data, hidden: Sequence[int]) -> list[RetentionStep]:
    """Return a checked schedule from a list of steps, a GeneratePruneData, or a retain.txt path."""
    if isinstance(data, GeneratePruneData):
        data = data.data
    if isinstance(data, (str, os.PathLike)):
        return read_retain(data, hidden)
    try:
        steps = [RetentionStep(int(step[0]), tuple(int(n) for n in step[1]), float(step[2]),
                               *(None if value is None else int(value) for value in step[3:5]),
                               *(str(measure) for measure in step[5:6])) for step in data]
        if any(step.measure not in BUDGET_COLUMNS for step in steps):
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise ScheduleError("the retention schedule is not a list of (iteration, neurons per layer, percentage) "
                            "rows: pass GeneratePruneData().generate_data() or a retain.txt path.") from None
    if not steps:
        raise ScheduleError("the retention schedule is empty: expected at least iteration 0.")
    for before, after in zip(steps, steps[1:]):
        _check_follows("the schedule", f"of iteration {after.iteration}", before, after)
    for step in steps:
        if len(step.retained) != len(hidden) or any(not 1 <= n <= h for n, h in zip(step.retained, hidden)):
            raise ScheduleError(f"schedule step {step.iteration} keeps {list(step.retained)} neurons, but the "
                                f"model's hidden layers are {list(hidden)}: generate a schedule for this model.")
    return steps


def base_steps(config: RunConfig, steps=None) -> list[RetentionStep]:
    """Return the schedule's rows a configuration asks for, before the columns that need the data's shape: `steps`,
    else its retain.txt (checked), else round(h * q**t) for its hidden sizes."""
    if steps is not None or config.schedule.retain is not None:
        return as_schedule(steps if steps is not None else config.schedule.retain, config.model.hidden)
    return GeneratePruneData(config.model.hidden, config.schedule.q, range(config.schedule.iterations)).data


def default_steps(config: RunConfig, features: int | None = None, classes: int | None = None, steps=None
                  ) -> list[RetentionStep]:
    """Return the schedule a configuration asks for: `steps`, else its retain.txt, else round(h * q**t) for its
    hidden sizes; with the inputs column (input pruning) and the parameter budget (global parameter allocation)
    added as its settings need them. `features` and `classes` are the data's, needed for those two columns only
    (None: the configuration's declared dataset's; a data file's shape is known once it is read)."""
    from .model import mlp_parameters  # model loads torch, which `nbprune retain` does without

    options = config.prune
    by_parameters = options.allocation == "global" and options.budget == "parameters"
    if (options.prune_inputs or by_parameters) and (features is None or classes is None):
        if is_data_file(config.data.dataset):
            raise ScheduleError(f"the schedule of {config.data.dataset} needs the data's number of features and "
                                f"classes: read the data first and pass them (default_steps(config, features, "
                                f"classes)).")
        dataset = dataset_named(config.data.dataset)
        features, classes = dataset.features, len(dataset.classes)
    from_rows = steps is not None or config.schedule.retain is not None
    steps = base_steps(config, steps)
    if options.prune_inputs and config.schedule.input_q is None and from_rows:  # one source: the rows' own rate
        steps = inputs_as_hidden(steps, features)
    parameters = mlp_parameters(features, steps[0].retained, classes) if by_parameters else None
    return with_budgets(steps, features if options.prune_inputs else None,
                        config.schedule.input_q or config.schedule.q, parameters)


def inputs_as_hidden(steps: Sequence[RetentionStep], features: int) -> list[RetentionStep]:
    """Return the steps with each input count (where missing) at the share of hidden neurons the step keeps: pixels
    shrink as the schedule's neurons do (about q**t for a schedule of q), all of them at the first step."""
    return [step if step.inputs is not None else
            step._replace(inputs=features if position == 0 else max(1, round(features * step.percentage / 100)))
            for position, step in enumerate(steps)]

"""Planning a pruning run: every check a run needs, made once before its first write, and what the run starts from.

`plan_iterations` reads the schedule, resolves `begin_itr` against the session (a resume needs the iteration before
it complete), cuts the schedule at `end_itr`, loads the teacher file and, for a resume, the previous iteration's
model (refusing one trained on other data or too small for the schedule) and the dense model it distils from. The
result, a PlannedRun, is what `IterativePruning.run` consumes; nothing is written until then.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from .config import RunConfig
from .data import InputSpec
from .epoch import image_shift
from .errors import ScheduleError
from .layers import hidden_units, is_mlp
from .modelfile import load_pruned_model
from .networkfile import network_for_resume
from .prune import MACS_NEED_LAYERS
from .retention import BUDGET_COLUMNS, RetentionStep, as_schedule
from .session import Session
from .teacher import Teacher, load_teacher

log = logging.getLogger(__name__)


@dataclass
class PlannedRun:
    """A pruning run checked before its first write: the schedule to follow (cut at end_itr), the position in it
    to start at, the model to start from, and what the pruned iterations distil from."""

    session: Session
    model: nn.Module  # the network the run was given: its architecture and initial weights
    steps: list[RetentionStep]
    position: int
    start: nn.Module  # `model` at position 0, else the previous iteration's model
    teacher_file: Teacher | None  # the teacher setting's network, checked against the run's data
    dense: nn.Module | None  # a resume's dense model, when it teaches (distill without a teacher file)
    begin_itr: int | str
    end_itr: int | None

    @property
    def first(self) -> int | None:
        """Return the first iteration this run writes (None: the schedule is complete up to end_itr)."""
        return self.steps[self.position].iteration if self.position < len(self.steps) else None


def plan_iterations(model: nn.Module, data: Any, session: Session, config: RunConfig, spec: InputSpec | None,
                    begin_itr: int | str, end_itr: int | None) -> PlannedRun:
    """Check everything a run of `config` on data described by `spec` needs in `session`, writing nothing; return
    the plan. `data`: the schedule (steps, a GeneratePruneData or a retain.txt path)."""
    steps = as_schedule(data, hidden_units(model))
    options = config.prune
    _check_units(model, config)
    if options.prune_inputs and steps[0].inputs is None:
        raise ScheduleError("prune_inputs is on but the schedule has no inputsRetained column: build it with "
                            "default_steps(config) (or nbprune.retention.with_budgets).")
    if options.allocation == "global" and options.budget != "neurons" and (
            steps[0].budget is None or steps[0].measure != options.budget):
        raise ScheduleError(f"budget={options.budget!r} but the schedule has no {BUDGET_COLUMNS[options.budget]} "
                            f"column: build it with default_steps(config) (or nbprune.retention.with_budgets).")
    position = resolve_begin(session, steps, begin_itr)
    steps = _cut(steps, position, begin_itr, end_itr)
    image_shift(config.train.augment_shift, spec)  # an augmentation the data cannot take is refused now
    teacher_file = load_teacher(config.train.teacher, spec) if config.train.teacher is not None else None
    start, dense = model, None
    if position:
        previous = steps[position - 1].iteration
        start = _load(model, session.model_file(previous))
        _check_fits(start, steps, position, config, session)
        _check_same_data(spec, getattr(start, "spec", None), previous, session)
        if teacher_file is None and config.train.distill:
            dense = _load(start, session.model_file(steps[0].iteration)).eval()
    session.check_writable()
    session.history.runs()  # a damaged run.json is refused now, not after the first write
    return PlannedRun(session, model, steps, position, start, teacher_file, dense, begin_itr, end_itr)


def _load(model: nn.Module, file) -> nn.Module:
    """Return the network of `model`'s kind that a session's model file holds."""
    return load_pruned_model(copy.deepcopy(model), file) if is_mlp(model) else network_for_resume(model, file)


def _check_units(model: nn.Module, config: RunConfig) -> None:
    """Refuse the prune settings that do not apply to the network: input pruning to a network of layers, a
    budget of multiply-accumulates to an MLP."""
    options = config.prune
    if is_mlp(model):
        if options.allocation == "global" and options.budget == "macs":
            raise ScheduleError(MACS_NEED_LAYERS)
        return
    if options.prune_inputs:
        raise ScheduleError(f"prune_inputs is not supported for a network of layers (architecture "
                            f"{config.model.architecture!r}): a convolution reads every pixel of its image, so "
                            f"leave prune_inputs off.")


def resolve_begin(session: Session, steps: list[RetentionStep], begin_itr: int | str) -> int:
    """Return the schedule position to start at, checking that the iteration before it is complete."""
    iterations = [step.iteration for step in steps]
    if begin_itr == "auto":
        position = next((p for p, it in enumerate(iterations) if not session.is_complete(it)), len(steps))
        if position:
            log.info("begin_itr='auto': iterations up to %s are complete", iterations[position - 1])
        return position
    if isinstance(begin_itr, str) and begin_itr.strip().lstrip("-").isdigit() and len(begin_itr) < 12:
        begin_itr = int(begin_itr)
    if isinstance(begin_itr, bool) or not isinstance(begin_itr, int) or begin_itr not in iterations:
        raise ScheduleError(f"begin_itr={begin_itr!r} is not an iteration of the schedule: expected one of "
                            f"{iterations} or 'auto' (continue after the last complete iteration).")
    position = iterations.index(begin_itr)
    if position and not session.is_complete(iterations[position - 1]):
        missing = session.model_file(iterations[position - 1])
        raise ScheduleError(f"begin_itr={begin_itr} needs iteration {iterations[position - 1]}'s model, but "
                            f"{missing} is missing or incomplete: run that iteration first, or use "
                            f"begin_itr='auto'.")
    return position


def _cut(steps: list[RetentionStep], position: int, begin_itr, end_itr: int | None) -> list[RetentionStep]:
    """Return the schedule without the iterations after `end_itr` (None: the whole schedule)."""
    if end_itr is None:
        return steps
    if isinstance(end_itr, bool) or not isinstance(end_itr, int):
        raise ScheduleError(f"end_itr={end_itr!r} is not allowed: expected a whole number or None.")
    if position < len(steps) and end_itr < steps[position].iteration and begin_itr != "auto":
        raise ScheduleError(f"end_itr={end_itr!r} comes before begin_itr={begin_itr}: expected "
                            f"end_itr >= begin_itr, or leave end_itr out to run to the end of the schedule.")
    return steps[:position] + [step for step in steps[position:] if step.iteration <= end_itr]


def _check_fits(start: nn.Module, steps: list[RetentionStep], position: int, config: RunConfig, session: Session
                ) -> None:
    """Refuse a resume whose previous model has fewer neurons than the schedule asks the next iteration to keep."""
    have = hidden_units(start)
    wanted = steps[position].retained if position < len(steps) else have
    if config.prune.allocation == "layer" and any(want > own for want, own in zip(wanted, have)):
        raise ScheduleError(
            f"the schedule asks iteration {steps[position].iteration} to keep {'+'.join(map(str, wanted))} "
            f"neurons, but iteration {steps[position - 1].iteration}'s model has only {'+'.join(map(str, have))}: "
            f"resume with the settings of the run that made this session (hidden sizes, q or retain.txt; run.json "
            f"in {session.pruning} records them).")


def _check_same_data(spec: InputSpec | None, recorded: InputSpec | None, previous: int, session: Session) -> None:
    """Refuse to resume on other data than the session's models were trained on (dataset, subset, split)."""
    if spec is None or recorded is None:
        return
    if not spec.same_inputs(recorded, tolerance=1e-6):
        raise ScheduleError(
            f"iteration {previous}'s model was trained on {recorded.describe()}, but this run's training data is "
            f"{spec.describe()}: resume with the data settings of the run that made this session (dataset, "
            f"subset, val_size, seed; run.json in {session.pruning} records them).")

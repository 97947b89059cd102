"""Iterative pruning: train the dense model, then prune, retrain and evaluate, iteration after iteration."""

from __future__ import annotations

import copy
import logging
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .config import RunConfig, or_default
from .data import InputSpec, Loader, TensorLoader, input_box
from .epoch import image_shift, shifted_teacher_probabilities, teacher_probabilities
from .errors import DivergenceWarning, ScheduleError, TrainingError
from .evaluation import evaluate as default_evaluate, loss_and_accuracy
from .io import cannot_write, format_table, read_table, write_text_atomic
from .model import SimpleNN, hidden_linears, linear_layers, mlp_parameters, parameter_count
from .modelfile import load_pruned_model, read_model_file, save_model_file
from .progress import progress_bar
from .prune import compensation_constants, global_counts, parameters_of, prune_by_scores
from .retention import RetentionStep, as_schedule, default_steps, format_retain
from .session import ADDED_COLUMNS, REFERENCE_COLUMNS, VALIDATION_FILE, Session
from .criteria import Criterion, PruningContext, make_criterion, node_significance
from .teacher import Teacher, load_teacher
from .training import fit, train as default_train

log = logging.getLogger(__name__)

SAMPLE = 8192  # training rows the criteria, the boxes and bias compensation look at

__all__ = ["IterativePruning", "as_schedule", "iteration_dir", "is_complete"]


def iteration_dir(session_dir: str | os.PathLike, iteration: int) -> Path:
    """Return `<session_dir>/<iteration>/prune_w_retrain` (session_dir: the iterative_pruning folder)."""
    return Session.for_pruning_dir(session_dir).iteration_dir(iteration)


def is_complete(session_dir: str | os.PathLike, iteration: int) -> bool:
    """Return whether an iteration's folder holds its model and both result files."""
    return Session.for_pruning_dir(session_dir).is_complete(iteration)


def environment_record() -> dict:
    """Return the versions a run depends on, so it can be repeated later."""
    from . import __version__
    return {"python": platform.python_version(), "torch": torch.__version__, "nbprune": __version__,
            "platform": platform.platform()}


class IterativePruning:
    """The reference workflow's experiment: holds the loaders and the train/evaluate functions, prunes and retrains.

    Settings come from `config` (default RunConfig()); any setting can also be given by name, e.g.
    IterativePruning(train_loader, test_loader, val_loader=val_loader, criterion="magnitude", distill=False,
    num_epochs=300). `val_loader` chooses each iteration's best epoch; without it, the training loss does.

    `train` is nbprune's train (the default: each iteration is retrained by `fit` with the run's training settings,
    validation split and teacher) or a function of the user's own in the reference workflow's shape, called as
    train(model, train_loader, test_loader, lr=..., num_epochs=..., patience=..., logdir=...) and returning the
    trained model.
    """

    def __init__(self, train_loader: Loader, test_loader: Loader, train: Callable = default_train,
                 evaluate: Callable = default_evaluate, *, val_loader: Loader | None = None,
                 config: RunConfig | None = None, progress: bool = True, **settings):
        if "num_epochs" in settings:  # the reference workflow's name for epochs
            settings["epochs"] = settings.pop("num_epochs")
        criterion = settings.get("criterion")
        self.criterion_function: Criterion | None = None
        if callable(criterion):  # a criterion of the user's own, used as is
            self.criterion_function = settings.pop("criterion")
        self.config = (config or RunConfig()).replace(**settings)
        self.train_loader, self.test_loader, self.val_loader = train_loader, test_loader, val_loader
        self.train, self.evaluate, self.progress = train, evaluate, progress
        self.teacher: nn.Module | None = None
        self.teacher_file: Teacher | None = None  # the teacher setting's network, loaded and checked by plan()
        self._teacher_file_outputs: torch.Tensor | None = None  # its softened outputs, computed once per run
        self.dense_hidden: tuple[int, ...] | None = None  # iteration 0's sizes, once a run knows them
        self._context: PruningContext | None = None
        if val_loader is None:
            warnings.warn("IterativePruning got no val_loader: each iteration keeps the epoch with the lowest "
                          "training loss. Pass val_loader=... from nbprune.load_data to choose on held-out data.",
                          stacklevel=2)

    @property
    def criterion(self) -> Criterion:
        """The run's criterion: the user's own, or the one the prune settings name, built with their options."""
        return self.criterion_function or make_criterion(options=self.config.prune)

    @property
    def seed(self) -> int:
        return self.config.seed

    def context(self) -> PruningContext:
        """Return what the criteria look at: the input box in the model's input space, a sample of training data
        and the run's seed."""
        if self._context is None:
            if isinstance(self.train_loader, TensorLoader):
                data = self.train_loader.dataset
                batch = (data.data[:SAMPLE], data.targets[:SAMPLE])
            else:
                batch = next(iter(self.train_loader))
            self._context = PruningContext(input_box=input_box(self.train_loader), batch=batch, seed=self.seed)
        return self._context

    def retrain(self, model: nn.Module, log_dir: str | os.PathLike | None) -> nn.Module:
        """Return `model` retrained into `log_dir`: by `fit` with the run's training settings, validation split and
        teacher, or by the user's own train function in the reference workflow's shape."""
        settings = self.config.train
        if self.train is not default_train:
            return self.train(model, self.train_loader, self.test_loader, lr=settings.lr, num_epochs=settings.epochs,
                              patience=settings.patience, logdir=log_dir)
        return fit(model, self.train_loader, self.val_loader, settings, test_loader=self.test_loader,
                   teacher=self.teacher if settings.distill else None, soft_targets=self._teacher_outputs(),
                   logdir=log_dir, progress=self.progress)

    def prune(self, model: nn.Module, retainNodes: Sequence[int], percentageRetain: float, retrain: bool = True,
              log_dir: str | os.PathLike | None = None, *, inputs: int | None = None, budget: int | None = None
              ) -> nn.Module:
        """Return the model pruned to `retainNodes` (and retrained); write its results into `log_dir`.

        With input pruning, `inputs` input features stay; with global allocation the nodes compete for
        sum(retainNodes) hidden neurons or `budget` parameters, and the results say what was kept."""
        pruned = self.cut(model, retainNodes, inputs, budget)
        if retrain:
            pruned = self.retrain(pruned, log_dir)
        results = self.evaluate(pruned, self.train_loader, self.test_loader)
        kept = [layer.out_features for layer in hidden_linears(pruned)]
        global_allocation = self.config.prune.allocation == "global" and self.dense_hidden is not None
        results["PercentageRetain"] = 100 * sum(kept) / sum(self.dense_hidden) if global_allocation \
            else float(percentageRetain)
        results["Parameters"] = parameter_count(pruned)
        if self.val_loader is not None:
            results["Val_Loss"], results["Val_Accuracy"] = loss_and_accuracy(pruned, self.val_loader)
        if log_dir is not None:
            columns = [*REFERENCE_COLUMNS, *(name for name in ADDED_COLUMNS if name in results)]
            write_text_atomic(Path(log_dir) / VALIDATION_FILE,
                              format_table(columns, [[results[name] for name in columns]]))
        return pruned

    def cut(self, model: nn.Module, retain: Sequence[int], inputs: int | None = None, budget: int | None = None
            ) -> nn.Module:
        """Return a pruned copy of `model`: the nodes to keep chosen by the criterion, under the allocation."""
        options = self.config.prune
        current = [layer.out_features for layer in hidden_linears(model)]
        reads = linear_layers(model)[0].in_features
        inputs = inputs if options.prune_inputs else None
        if options.allocation == "layer" and list(retain) == current and (inputs is None or inputs >= reads):
            return copy.deepcopy(model)
        scores = node_significance(model, self.criterion, self.context())
        if options.prune_inputs and scores[0] is None:
            raise ScheduleError("prune_inputs needs a criterion that scores the input features; this one scores "
                                "hidden neurons only.")
        if options.allocation == "global":
            inputs, retain = self.allocate(model, scores, retain, inputs, budget)
        constants = compensation_constants(model, options.bias_compensation, self.context())
        return prune_by_scores(model, scores, retain, inputs, constants)

    def allocate(self, model: nn.Module, scores: list, retain: Sequence[int], inputs: int | None,
                 budget: int | None) -> tuple[int | None, list[int]]:
        """Return (inputs, hidden counts) when all nodes compete for the iteration's budget."""
        options = self.config.prune
        hidden = [layer.out_features for layer in hidden_linears(model)]
        classes = linear_layers(model)[-1].out_features
        minimums = [1] * len(hidden)
        minimums[-1] = min(options.min_last_hidden or classes, hidden[-1])
        if options.budget == "neurons":
            budget = max(sum(retain), sum(minimums))  # inputs, if pruned, follow their own schedule
            return inputs, global_counts(scores[1:], minimums, sum, budget, options.normalise)
        if budget is None:
            raise ScheduleError("allocation='global' with budget='parameters' needs each step's parameter budget "
                                "(the parameterBudget column): build the schedule with default_steps(config).")
        reads = linear_layers(model)[0].in_features
        layers = [scores[0], *scores[1:]] if options.prune_inputs else scores[1:]
        floors = [1, *minimums] if options.prune_inputs else minimums
        cost = parameters_of(model) if options.prune_inputs else (lambda counts: mlp_parameters(reads, counts, classes))
        counts = global_counts(layers, floors, cost, max(budget, cost(floors)), options.normalise)
        return (counts[0], counts[1:]) if options.prune_inputs else (None, counts)

    def resolve_begin(self, session: Session, steps: list[RetentionStep], begin_itr: int | str) -> int:
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

    def plan(self, model: nn.Module, data, session: Session, begin_itr: int | str, end_itr: int | None
             ) -> tuple[list[RetentionStep], int, nn.Module]:
        """Check everything a run needs, writing nothing; return (steps, start position, the model to start from)."""
        steps = as_schedule(data, tuple(layer.out_features for layer in hidden_linears(model)))
        self.dense_hidden = steps[0].retained
        options = self.config.prune
        if options.prune_inputs and steps[0].inputs is None:
            raise ScheduleError("prune_inputs is on but the schedule has no inputsRetained column: build it with "
                                "default_steps(config) (or nbprune.retention.with_budgets).")
        if options.allocation == "global" and options.budget == "parameters" and steps[0].budget is None:
            raise ScheduleError("budget='parameters' but the schedule has no parameterBudget column: build it with "
                                "default_steps(config) (or nbprune.retention.with_budgets).")
        position = self.resolve_begin(session, steps, begin_itr)
        if end_itr is not None:
            if isinstance(end_itr, bool) or not isinstance(end_itr, int):
                raise ScheduleError(f"end_itr={end_itr!r} is not allowed: expected a whole number or None.")
            if position < len(steps) and end_itr < steps[position].iteration and begin_itr != "auto":
                raise ScheduleError(f"end_itr={end_itr!r} comes before begin_itr={begin_itr}: expected "
                                    f"end_itr >= begin_itr, or leave end_itr out to run to the end of the schedule.")
            steps = steps[:position] + [step for step in steps[position:] if step.iteration <= end_itr]
        self.teacher_file, self._teacher_file_outputs = self._load_teacher_file(), None
        if position:
            previous = steps[position - 1].iteration
            model = load_pruned_model(copy.deepcopy(model), session.model_file(previous))
            have = tuple(layer.out_features for layer in hidden_linears(model))
            wanted = steps[position].retained if position < len(steps) else have
            if self.config.prune.allocation == "layer" and any(want > own for want, own in zip(wanted, have)):
                raise ScheduleError(
                    f"the schedule asks iteration {steps[position].iteration} to keep {'+'.join(map(str, wanted))} "
                    f"neurons, but iteration {previous}'s model has only {'+'.join(map(str, have))}: resume with the "
                    f"settings of the run that made this session (hidden sizes, q or retain.txt; run.json in "
                    f"{session.pruning} records them).")
            self._check_same_data(getattr(model, "spec", None), previous, session)
            if self.teacher_file is not None:
                self.teacher = self.teacher_file.model
            elif self.config.train.distill:
                dense = session.model_file(steps[0].iteration)
                self.teacher = load_pruned_model(copy.deepcopy(model), dense).eval()
        session.check_writable()
        session.runs()  # a damaged run.json is refused now, not after the first write
        return steps, position, model

    def _teacher_outputs(self) -> torch.Tensor | None:
        """Return the teacher file's softened outputs for the training rows, computed once per run, when it teaches
        now, for every offset of the shifts when augment_shift is on (None: train computes the dense model's)."""
        if self.teacher_file is None or self.teacher is not self.teacher_file.model or \
                not isinstance(self.train_loader, TensorLoader):
            return None
        if self._teacher_file_outputs is None:
            teacher, rows = self.teacher.to(self.train_loader.device), self.train_loader.dataset.data
            augment = image_shift(self.config.train.augment_shift, self.train_loader.spec)
            self._teacher_file_outputs = (
                teacher_probabilities(teacher, rows, self.config.train.temperature) if augment is None else
                shifted_teacher_probabilities(teacher, rows, self.config.train.temperature, augment))
        return self._teacher_file_outputs

    def _load_teacher_file(self) -> Teacher | None:
        """Return the teacher setting's network checked against the run's data (None: the dense model teaches);
        also refuse an augmentation the data cannot take."""
        spec = getattr(self.train_loader, "spec", None)
        image_shift(self.config.train.augment_shift, spec)
        return load_teacher(self.config.train.teacher, spec) if self.config.train.teacher is not None else None

    def _check_same_data(self, recorded: InputSpec | None, previous: int, session: Session) -> None:
        """Refuse to resume on other data than the session's models were trained on (dataset, subset, split)."""
        spec = getattr(self.train_loader, "spec", None)
        if spec is None or recorded is None:
            return
        ours, theirs = _standardisation(spec), _standardisation(recorded)
        if spec.dataset != recorded.dataset or len(ours) != len(theirs) or not all(
                math.isclose(a, b, rel_tol=1e-6) for a, b in zip(ours, theirs)):
            raise ScheduleError(
                f"iteration {previous}'s model was trained on {_describe(recorded)}, but this run's training data is "
                f"{_describe(spec)}: resume with the data settings of the run that made this session (dataset, "
                f"subset, val_size, seed; run.json in {session.pruning} records them).")

    def run(self, model: nn.Module, data, session_dir: str | os.PathLike | None = None,
            begin_itr: int | str | None = None, end_itr: int | None = None,
            on_iteration: Callable[[dict], None] | None = None) -> list[dict]:
        """Run every iteration of the schedule from `begin_itr` (None: the configuration's) into `session_dir` (the
        reference's my_dir, the iterative_pruning folder); return one record per iteration run. Nothing is written if
        a check fails. `on_iteration` is called with each iteration's record as soon as its folder is published."""
        begin_itr = or_default(begin_itr, "begin_itr")
        session = Session.for_pruning_dir(session_dir) if session_dir is not None else Session.default()
        steps, position, start = self.plan(model, data, session, begin_itr, end_itr)
        if self.config.threads is not None:  # the configuration's threads hold for the run, from every door
            torch.set_num_threads(self.config.threads)
        with session.lock():
            session.clean_leftovers()
            if begin_itr == "auto":  # an iteration that clean_leftovers put back counts as complete
                steps, position, start = self.plan(model, data, session, begin_itr, end_itr)
            first = steps[position].iteration if position < len(steps) else None
            if first is not None:
                self._set_aside(session, first)
            session.record_run(self._run_record(model, steps, first, begin_itr, end_itr))
            return self._iterate(start, steps, position, session, on_iteration)

    @staticmethod
    def _set_aside(session: Session, first: int) -> None:
        """Move what earlier runs left from iteration `first` on out of the way: a session holds one run's chain."""
        moved = session.set_aside(first, session.next_run_number(session.runs()))
        if moved is not None:
            log.warning("iterations %s and later of an earlier run were moved to %s: this run starts at %s",
                        first, moved, first)

    def _run_record(self, model: nn.Module, steps: list[RetentionStep], first: int | None, begin_itr, end_itr
                    ) -> dict:
        config = self.config
        if isinstance(model, SimpleNN):
            config = config.replace(hidden=steps[0].retained, activation=model.activation)
        if self.teacher_file is not None:  # where it is, wherever the run was started from (07 reads it there)
            config = config.replace(teacher=str(self.teacher_file.file))
        spec = getattr(self.train_loader, "spec", None)
        return {"begin_itr": begin_itr, "first_iteration": first, "end_itr": end_itr, "config": config.to_dict(),
                "teacher": self.teacher_file.record() if self.teacher_file is not None else None,
                "criterion_function": getattr(self.criterion_function, "__name__", None),
                "input": spec.to_dict() if spec is not None else None,
                "samples": {name: _samples(loader) for name, loader in (
                    ("train", self.train_loader), ("validation", self.val_loader), ("test", self.test_loader))},
                "schedule": [[step.iteration, list(step.retained), step.percentage] for step in steps],
                "environment": environment_record()}

    def _iterate(self, model: nn.Module, steps: list[RetentionStep], position: int, session: Session,
                 on_iteration: Callable[[dict], None] | None = None) -> list[dict]:
        records, kept = [], self._kept_so_far(session, steps[:position])
        bar = progress_bar(steps[position:], desc="pruning iterations", unit="iteration", disable=not self.progress)
        for step in bar:
            bar.set_postfix(iteration=step.iteration, neurons="+".join(map(str, step.retained)))
            started = time.perf_counter()
            partial = session.partial_dir(step.iteration)
            try:
                partial.mkdir(parents=True)
            except OSError as error:
                raise cannot_write(partial, error) from None
            torch.manual_seed(self.seed + step.iteration)
            if isinstance(self.train_loader, TensorLoader):
                self.train_loader.reseed(self.seed + step.iteration)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DivergenceWarning)
                model = self.prune(model, step.retained, step.percentage, retrain=True, log_dir=partial,
                                   inputs=step.inputs, budget=step.budget)
            diverged = [w.message for w in caught if issubclass(w.category, DivergenceWarning)]
            for w in caught:
                if not issubclass(w.category, DivergenceWarning):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            criterion = self.config.prune.criterion if self.criterion_function is None else None
            taught_by = self.teacher_file if step is not steps[0] else None
            save_model_file(model, partial / "best_model.pth", iteration=step.iteration,
                            criterion=criterion if step is not steps[0] else None,
                            teacher=taught_by.record() if taught_by is not None else None)
            final = session.publish(partial, step.iteration)
            header, rows = read_table(final / VALIDATION_FILE)
            kept[step.iteration] = step._replace(
                retained=tuple(layer.out_features for layer in hidden_linears(model)),
                percentage=rows[0][header.index("PercentageRetain")],
                inputs=linear_layers(model)[0].in_features if step.inputs is not None else None)
            write_text_atomic(session.run_retain_file, format_retain([kept[it] for it in sorted(kept)]))
            if self.config.train.distill and step is steps[0]:
                self.teacher = self.teacher_file.model if self.teacher_file is not None else copy.deepcopy(model).eval()
            records.append({"iteration": step.iteration, "retained": kept[step.iteration].retained,
                            "inputs": linear_layers(model)[0].in_features, "parameters": parameter_count(model),
                            "seconds": time.perf_counter() - started, **dict(zip(header, rows[0]))})
            if on_iteration is not None:
                on_iteration(records[-1])
            if diverged:
                bar.close()
                raise TrainingError(
                    f"iteration {step.iteration}: {diverged[0]} That model is in {final / 'best_model.pth'}. "
                    f"Run this iteration again with a lower learning rate (begin_itr={step.iteration}, "
                    f"--begin-itr {step.iteration}), or go on from it with begin_itr='auto'.")
        bar.close()
        return records

    @staticmethod
    def _kept_so_far(session: Session, done: list[RetentionStep]) -> dict[int, RetentionStep]:
        """Return what the complete iterations before this run's first one kept, from their model files."""
        kept = {}
        for step in done:
            state, _ = read_model_file(session.model_file(step.iteration))
            weights = [value for key, value in state.items() if key.endswith(".weight")]
            header, rows = read_table(session.iteration_dir(step.iteration) / VALIDATION_FILE)
            kept[step.iteration] = step._replace(retained=tuple(int(w.shape[0]) for w in weights[:-1]),
                                                 percentage=rows[0][header.index("PercentageRetain")],
                                                 inputs=int(weights[0].shape[1]) if step.inputs is not None else None)
        return kept


def _samples(loader) -> int | None:
    """Return how many samples a loader holds (None when it does not say)."""
    try:
        return len(loader.dataset) if loader is not None else None
    except (AttributeError, TypeError):
        return None


def _standardisation(spec: InputSpec) -> tuple[float, ...]:
    """Return a spec's mean and std values as one tuple: two numbers for images, two per feature otherwise."""
    return tuple(value for part in (spec.mean, spec.std) for value in (part if isinstance(part, tuple) else (part,)))


def _describe(spec: InputSpec) -> str:
    def number(value) -> str:
        return f"{len(value)} values" if isinstance(value, tuple) else f"{value:.6g}"
    return f"{spec.dataset} standardised with mean {number(spec.mean)} and std {number(spec.std)}"


@dataclass
class PlannedRun:
    """A pruning run checked as `nbprune prune` checks it before its first write, ready to run."""

    experiment: IterativePruning
    model: nn.Module
    steps: list[RetentionStep]


def plan_run(config: RunConfig, session: Session, begin_itr: int | str | None = None, end_itr: int | None = None,
             progress: bool = True, download: bool = True, data=None) -> PlannedRun:
    """Return the run a configuration asks for in `session`, after every check that needs no write: the device,
    the schedule, the data (read, or downloaded when missing unless `download` is False; `data`: loaders already
    read for this configuration) and the iterations a resume starts from (begin_itr None: the configuration's)."""
    from .config import resolve_device
    from .data import load_data_for

    begin_itr = or_default(begin_itr, "begin_itr")
    resolve_device(config.device)
    default_steps(config)  # a bad retain.txt is refused before the data is read
    data = data if data is not None else load_data_for(config, download=download)
    steps = default_steps(config, data.spec.features, len(data.classes))
    torch.manual_seed(config.seed)
    model = SimpleNN(hidden=config.model.hidden, in_features=data.spec.features, num_classes=len(data.classes),
                     activation=config.model.activation)
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                                  progress=progress)
    experiment.plan(model, steps, session, begin_itr, end_itr)
    return PlannedRun(experiment, model, steps)

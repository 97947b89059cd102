"""Iterative pruning: train the dense model, then prune, retrain and evaluate, iteration after iteration."""

from __future__ import annotations

import copy
import logging
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .architectures import architecture_for, count_parameters, multiply_accumulates
from .channels import prune_units
from .config import RunConfig, or_default
from .criteria import Criterion, PruningContext, make_criterion
from .data import Loader, TensorLoader
from .errors import DivergenceWarning, TrainingError
from .evaluation import evaluate as default_evaluate, loss_and_accuracy
from .files import cannot_write, format_table, read_table, write_text_atomic
from .layers import hidden_units, inputs_read, is_mlp
from .model import SimpleNN, parameter_count
from .modelfile import save_model_file
from .networkfile import file_shape, save_network_file
from .plan import PlannedRun, plan_iterations
from .progress import progress_bar
from .prune import prune_nodes
from .retention import RetentionStep, base_steps, default_steps, format_retain, with_budgets
from .session import ADDED_COLUMNS, REFERENCE_COLUMNS, VALIDATION_FILE, Session
from .teacher import Teacher
from .training import Distillation, dense_training, fit, train as default_train

log = logging.getLogger(__name__)

__all__ = ["IterativePruning", "PlannedRun", "plan_run"]


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
        self.criterion_function: Criterion | None = settings.pop("criterion") \
            if callable(settings.get("criterion")) else None  # a criterion of the user's own, used as is
        self.config = (config or RunConfig()).replace(**settings)
        self.train_loader, self.test_loader, self.val_loader = train_loader, test_loader, val_loader
        self.train, self.evaluate, self.progress = train, evaluate, progress
        self.distillation: Distillation | None = None  # what retraining distils from, once a run knows
        self.dense_hidden: tuple[int, ...] | None = None  # iteration 0's sizes, once a run knows them
        self.training_dense = False  # whether the model being retrained is the dense one (iteration 0)
        self._context: PruningContext | None = None
        if val_loader is None:
            warnings.warn("IterativePruning got no val_loader: each iteration keeps the epoch with the lowest "
                          "training loss. Pass val_loader=... from nbprune.load_data to choose on held-out data.",
                          stacklevel=2)

    @property
    def criterion(self) -> Criterion:
        """The run's criterion: the user's own, or the one the prune settings name, built with their options."""
        return self.criterion_function or make_criterion(options=self.config.prune)

    def context(self) -> PruningContext:
        """Return what the criteria look at: the training inputs' box, a sample of them, and the run's seed."""
        if self._context is None:
            self._context = PruningContext.of(self.train_loader, self.config.seed)
        return self._context

    def retrain(self, model: nn.Module, log_dir: str | os.PathLike | None) -> nn.Module:
        """Return `model` retrained into `log_dir`: by `fit` with the run's training settings, validation split and
        teacher, or by the user's own train function in the reference workflow's shape."""
        settings = dense_training(self.config.train) if self.training_dense else self.config.train
        if self.train is not default_train:
            return self.train(model, self.train_loader, self.test_loader, lr=settings.lr, num_epochs=settings.epochs,
                              patience=settings.patience, logdir=log_dir)
        return fit(model, self.train_loader, self.val_loader, settings, test_loader=self.test_loader,
                   teacher=self.distillation if settings.distill else None, logdir=log_dir, progress=self.progress)

    def prune(self, model: nn.Module, retainNodes: Sequence[int], percentageRetain: float, retrain: bool = True,
              log_dir: str | os.PathLike | None = None, *, inputs: int | None = None, budget: int | None = None
              ) -> nn.Module:
        """Return the model pruned to `retainNodes` (and retrained); write its results into `log_dir`.

        With input pruning, `inputs` input features stay; with global allocation the nodes compete for
        sum(retainNodes) hidden neurons or `budget` parameters, and the results say what was kept."""
        options = self.config.prune
        pruned = prune_step(model, retainNodes, self.criterion_function, self.context(), options, inputs, budget)
        if retrain:
            pruned = self.retrain(pruned, log_dir)
        results = self.evaluate(pruned, self.train_loader, self.test_loader)
        kept = hidden_units(pruned)
        global_allocation = options.allocation == "global" and self.dense_hidden is not None
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

    def plan(self, model: nn.Module, data, session: Session | str | os.PathLike | None = None,
             begin_itr: int | str | None = None, end_itr: int | None = None) -> PlannedRun:
        """Return the run of `model` along the schedule `data` in `session` (a Session, the reference's my_dir, or
        None: the default session), checked as `nbprune prune` checks it, writing nothing."""
        if not isinstance(session, Session):
            session = Session.for_pruning_dir(session) if session is not None else Session.default()
        return plan_iterations(model, data, session, self.config, getattr(self.train_loader, "spec", None),
                               or_default(begin_itr, "begin_itr"), end_itr)

    def run(self, model: nn.Module | PlannedRun, data=None, session_dir: Session | str | os.PathLike | None = None,
            begin_itr: int | str | None = None, end_itr: int | None = None,
            on_iteration: Callable[[dict], None] | None = None) -> list[dict]:
        """Run every iteration of the schedule `data` from `begin_itr` (None: the configuration's) into
        `session_dir` (the reference's my_dir, the iterative_pruning folder; or a Session); or run a PlannedRun
        made by `plan`. Return one record per iteration run; `on_iteration` gets each as soon as its folder is
        published. Nothing is written if a check fails."""
        planned = model if isinstance(model, PlannedRun) else self.plan(model, data, session_dir, begin_itr, end_itr)
        session = planned.session
        if self.config.threads is not None:  # the configuration's threads hold for the run, from every door
            torch.set_num_threads(self.config.threads)
        with session.lock():
            if session.clean_leftovers() and planned.begin_itr == "auto":  # an iteration put back counts as done
                planned = self.plan(planned.model, planned.steps, session, "auto", planned.end_itr)
            begin_run(session, planned, run_record(self, planned))
            return self._iterate(planned, on_iteration)

    def _iterate(self, planned: PlannedRun, on_iteration: Callable[[dict], None] | None) -> list[dict]:
        session, steps, model = planned.session, planned.steps, planned.start
        self.dense_hidden = steps[0].retained
        self.distillation = _distillation(planned, planned.dense) if planned.position else None
        records, kept = [], kept_so_far(session, steps[:planned.position])
        bar = progress_bar(steps[planned.position:], desc="pruning iterations", unit="iteration",
                           disable=not self.progress)
        for step in bar:
            bar.set_postfix(iteration=step.iteration, neurons="+".join(map(str, step.retained)))
            started = time.perf_counter()
            partial = session.partial_dir(step.iteration)
            try:
                partial.mkdir(parents=True)
            except OSError as error:
                raise cannot_write(partial, error) from None
            torch.manual_seed(self.config.seed + step.iteration)
            if isinstance(self.train_loader, TensorLoader):
                self.train_loader.reseed(self.config.seed + step.iteration)
            dense = self.training_dense = step is steps[0]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DivergenceWarning)
                model = self.prune(model, step.retained, step.percentage, retrain=True, log_dir=partial,
                                   inputs=step.inputs, budget=step.budget)
            self.training_dense = False
            diverged = _divergences(caught)
            criterion = None if dense or self.criterion_function else self.config.prune.criterion
            final, row = publish_iteration(session, partial, model, step, kept, criterion=criterion,
                                           teacher=None if dense else planned.teacher_file,
                                           architecture=self.config.model.architecture)
            if dense and self.config.train.distill:
                self.distillation = _distillation(planned, copy.deepcopy(model).eval())
            records.append({"iteration": step.iteration, "retained": kept[step.iteration].retained,
                            "inputs": inputs_read(model), "parameters": parameter_count(model),
                            "seconds": time.perf_counter() - started, **row})
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


def prune_step(model: nn.Module, retain: Sequence[int], criterion: Criterion | None, context: PruningContext,
               options, inputs: int | None, budget: int | None) -> nn.Module:
    """Return one iteration's pruned model: node pruning for an MLP, unit pruning (channels and neurons) for a
    network of layers; `criterion` a user's own, else the one the options name."""
    if is_mlp(model):
        return prune_nodes(model, retain, criterion or make_criterion(options=options), context, options=options,
                           budget=budget, inputs=inputs if options.prune_inputs else None)
    by_cost = options.budget != "neurons"
    return prune_units(model, retain, criterion or options.criterion, context, options,
                       budget=budget if by_cost else None, measure=options.budget if by_cost else "parameters")


def _divergences(caught: list[warnings.WarningMessage]) -> list:
    """Return the messages of the divergence warnings among `caught`, showing the other warnings again."""
    for w in caught:
        if not issubclass(w.category, DivergenceWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return [w.message for w in caught if issubclass(w.category, DivergenceWarning)]


def _distillation(planned: PlannedRun, dense: nn.Module | None) -> Distillation | None:
    """Return what the pruned iterations distil from: the teacher file (its outputs computed once per run, for every
    shift), else the dense model."""
    if planned.teacher_file is not None:
        return Distillation(planned.teacher_file.model, every_offset=True)
    return Distillation(dense) if dense is not None else None


def begin_run(session: Session, planned: PlannedRun, record: dict) -> None:
    """Set aside what earlier runs left from the run's first iteration on (a session holds one run's chain), and
    record the run in run.json."""
    if planned.first is not None:
        moved = session.set_aside(planned.first, session.history.next_number(session.history.runs()))
        if moved is not None:
            log.warning("iterations %s and later of an earlier run were moved to %s: this run starts at %s",
                        planned.first, moved, planned.first)
    session.history.record(record)


def publish_iteration(session: Session, partial: Path, model: nn.Module, step: RetentionStep,
                      kept: dict[int, RetentionStep], *, criterion: str | None, teacher: Teacher | None,
                      architecture: str | None = None) -> tuple[Path, dict]:
    """Save the iteration's model file (recording its criterion and teacher, and a network of layers' architecture
    name), publish its folder in one rename,
    add what it kept to `kept` and rewrite the run's retain.txt; return the folder and its results row."""
    if is_mlp(model):
        save_model_file(model, partial / "best_model.pth", iteration=step.iteration, criterion=criterion,
                        teacher=teacher.record() if teacher is not None else None)
    else:  # a network of layers (nbprune.architectures): its file records the layer list
        save_network_file(model, partial / "best_model.pth", architecture=architecture,
                          spec=getattr(model, "spec", None), iteration=step.iteration, criterion=criterion,
                          teacher=teacher.record() if teacher is not None else None)
    final = session.publish(partial, step.iteration)
    header, rows = read_table(final / VALIDATION_FILE)
    kept[step.iteration] = step._replace(
        retained=hidden_units(model),
        percentage=rows[0][header.index("PercentageRetain")],
        inputs=inputs_read(model) if step.inputs is not None else None)
    write_text_atomic(session.run_retain_file, format_retain([kept[it] for it in sorted(kept)]))
    return final, dict(zip(header, rows[0]))


def kept_so_far(session: Session, done: list[RetentionStep]) -> dict[int, RetentionStep]:
    """Return what the complete iterations before a run's first one kept, from their model files."""
    kept = {}
    for step in done:
        shape = file_shape(session.model_file(step.iteration))
        header, rows = read_table(session.iteration_dir(step.iteration) / VALIDATION_FILE)
        kept[step.iteration] = step._replace(retained=shape.hidden,
                                             percentage=rows[0][header.index("PercentageRetain")],
                                             inputs=shape.inputs if step.inputs is not None else None)
    return kept


def run_record(experiment: IterativePruning, planned: PlannedRun) -> dict:
    """Return what run.json records of a run: its settings (with the network it was given), the data, the schedule
    and the environment."""
    config, model, teacher = experiment.config, planned.model, planned.teacher_file
    if isinstance(model, SimpleNN):
        config = config.replace(hidden=planned.steps[0].retained, activation=model.activation)
    if teacher is not None:  # where it is, wherever the run was started from (07 reads it there)
        config = config.replace(teacher=str(teacher.file))
    spec = getattr(experiment.train_loader, "spec", None)
    return {"begin_itr": planned.begin_itr, "first_iteration": planned.first, "end_itr": planned.end_itr,
            "config": config.to_dict(), "teacher": teacher.record() if teacher is not None else None,
            "criterion_function": getattr(experiment.criterion_function, "__name__", None),
            "input": spec.to_dict() if spec is not None else None,
            "samples": {name: _samples(loader) for name, loader in (
                ("train", experiment.train_loader), ("validation", experiment.val_loader),
                ("test", experiment.test_loader))},
            "schedule": [[step.iteration, list(step.retained), step.percentage] for step in planned.steps],
            "environment": environment_record()}


def _samples(loader) -> int | None:
    """Return how many samples a loader holds (None when it does not say)."""
    try:
        return len(loader.dataset) if loader is not None else None
    except (AttributeError, TypeError):
        return None


def network_steps(config: RunConfig, model: nn.Module, features: int, classes: int) -> list[RetentionStep]:
    """Return the schedule of a network of layers: default_steps for its hidden units (config.model.hidden), with a
    global budget counted on the network itself (its parameters or multiply-accumulates), not an MLP's."""
    steps = default_steps(config, features, classes)
    if config.prune.allocation == "global" and config.prune.budget != "neurons":
        total = count_parameters(model) if config.prune.budget == "parameters" else multiply_accumulates(model)
        steps = with_budgets([step._replace(budget=None) for step in steps], **{config.prune.budget: total})
    return steps


def plan_run(config: RunConfig, session: Session, begin_itr: int | str | None = None, end_itr: int | None = None,
             progress: bool = True, download: bool = True, data=None) -> tuple[IterativePruning, PlannedRun]:
    """Return the experiment a configuration asks for and its run in `session`, after every check that needs no
    write: the device, the schedule, the data (read, or downloaded when missing unless `download` is False; `data`:
    loaders already read for this configuration) and the iterations a resume starts from (begin_itr None: the
    configuration's). `experiment.run(planned)` runs it."""
    from .config import resolve_device
    from .data import load_data_for

    resolve_device(config.device)
    base_steps(config)  # a bad retain.txt is refused before the data is read
    data = data if data is not None else load_data_for(config, download=download)
    steps = default_steps(config, data.spec.features, len(data.classes))
    torch.manual_seed(config.seed)
    if config.model.architecture is None:
        model = SimpleNN(hidden=config.model.hidden, in_features=data.spec.features, num_classes=len(data.classes),
                         activation=config.model.activation)
    else:
        model = architecture_for(config.model.architecture, data.spec)
        config = config.replace(hidden=hidden_units(model))
        steps = network_steps(config, model, data.spec.features, len(data.classes))
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                                  progress=progress)
    return experiment, experiment.plan(model, steps, session, begin_itr, end_itr)


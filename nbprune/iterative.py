"""Iterative pruning: train the dense model, then prune, retrain and evaluate, iteration after iteration."""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import platform
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Loader, TensorLoader, input_box
from .errors import DivergenceWarning, NbpruneError, ScheduleError, TrainingError
from .evaluate import evaluate as default_evaluate
from .io import format_table, load_pruned_model, read_table, write_text_atomic
from .model import parameter_count
from .prune import prune_nodes
from .retention import GeneratePruneData, RetentionStep, read_retain
from .significance import PruningContext, hidden_linears
from .train import train as default_train

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("Train_Loss", "Test_Loss", "Train_Accuracy", "Test_Accuracy", "PercentageRetain")
STAGE = "prune_w_retrain"
PARTIAL, STALE = ".partial", ".stale"
TAYLOR_BATCH = 1024
MAX_EPOCHS = 40  # per iteration: the tiniest networks otherwise creep on for hundreds of epochs


def default_session_dir(results_root: str | os.PathLike = ".", date: datetime.date | None = None) -> Path:
    """Return `<results_root>/sessions/<YYYY-MM-DD>/iterative_pruning`."""
    date = date or datetime.date.today()
    return Path(results_root) / "sessions" / date.isoformat() / "iterative_pruning"


def iteration_dir(session_dir: str | os.PathLike, iteration: int) -> Path:
    """Return `<session_dir>/<iteration>/prune_w_retrain`."""
    return Path(session_dir) / str(iteration) / STAGE


def is_complete(session_dir: str | os.PathLike, iteration: int) -> bool:
    """Return whether an iteration's folder holds its model and both result files."""
    folder = iteration_dir(session_dir, iteration)
    return all((folder / name).is_file() for name in ("best_model.pth", "train_results.txt",
                                                         "validation_results.txt"))


def as_schedule(data, hidden: Sequence[int]) -> list[RetentionStep]:
    """Return a checked schedule from a list of steps, a GeneratePruneData, or a retain.txt path."""
    if isinstance(data, GeneratePruneData):
        data = data.data
    if isinstance(data, (str, os.PathLike)):
        return read_retain(data, hidden)
    steps = [RetentionStep(int(step[0]), tuple(int(n) for n in step[1]), float(step[2])) for step in data]
    if not steps:
        raise ScheduleError("the retention schedule is empty: expected at least iteration 0.")
    for before, after in zip(steps, steps[1:]):
        if after.iteration <= before.iteration or any(a > b for a, b in zip(after.retained, before.retained)):
            raise ScheduleError(f"schedule step {after} does not follow {before}: iterations must increase "
                                f"and neuron counts may never grow.")
    for step in steps:
        if len(step.retained) != len(hidden) or any(n > h for n, h in zip(step.retained, hidden)):
            raise ScheduleError(f"schedule step {step.iteration} keeps {list(step.retained)} neurons, but the "
                                f"model's hidden layers are {list(hidden)}: generate a schedule for this model.")
    return steps


def environment_record() -> dict:
    """Return the versions a run depends on, so it can be repeated later."""
    from . import __version__
    return {"python": platform.python_version(), "torch": torch.__version__, "nbprune": __version__,
            "platform": platform.platform()}


def _restore_stale(session_dir: Path) -> None:
    """Put back an iteration that a run killed between _publish's two renames had moved aside."""
    for stale in session_dir.glob(f"*/{STAGE}{STALE}"):
        if not stale.with_name(STAGE).exists():
            os.replace(stale, stale.with_name(STAGE))


def _clean_partials(session_dir: Path) -> None:
    """Remove folders that an interrupted iteration left behind."""
    for leftover in list(session_dir.glob(f"*/{STAGE}{PARTIAL}")) + list(session_dir.glob(f"*/{STAGE}{STALE}")):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in session_dir.rglob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def _publish(partial: Path, final: Path) -> None:
    """Move a finished iteration folder into place, replacing an older one."""
    stale = final.with_name(final.name + STALE)
    if final.exists():
        os.replace(final, stale)
    os.replace(partial, final)
    shutil.rmtree(stale, ignore_errors=True)


class IterativePruning:
    """The seed's experiment: holds the loaders and the train/evaluate functions, prunes and retrains."""

    def __init__(self, train_loader: Loader, test_loader: Loader, train: Callable = default_train,
                 evaluate: Callable = default_evaluate, *, val_loader: Loader | None = None,
                 criterion: str = "interval_adjoint", seed: int = 0, progress: bool = True, distill: bool = True,
                 **train_kwargs):
        """`train_kwargs` go to `train` on every iteration (default num_epochs=MAX_EPOCHS).

        With `distill` (the default) every pruned iteration retrains against the dense iteration-0 model's
        softened outputs as well as the labels (knowledge distillation); distill=False retrains on labels only.
        """
        self.train_loader, self.test_loader = train_loader, test_loader
        self.train, self.evaluate = train, evaluate
        self.val_loader = val_loader if val_loader is not None else getattr(train_loader, "val_loader", None)
        self.criterion, self.seed, self.progress, self.distill = criterion, seed, progress, distill
        self.train_kwargs = {"num_epochs": MAX_EPOCHS, **train_kwargs} if train is default_train else train_kwargs
        self.teacher: nn.Module | None = None
        self._context: PruningContext | None = None

    def context(self) -> PruningContext:
        """Return what the criteria look at: the input box in the model's input space and a training batch."""
        if self._context is None:
            if isinstance(self.train_loader, TensorLoader):
                data = self.train_loader.dataset
                batch = (data.data[:TAYLOR_BATCH], data.targets[:TAYLOR_BATCH])
            else:
                batch = next(iter(self.train_loader))
            self._context = PruningContext(input_box=input_box(self.train_loader), batch=batch, seed=self.seed)
        return self._context

    def prune(self, model: nn.Module, retainNodes: Sequence[int], percentageRetain: float, retrain: bool = True,
              log_dir: str | os.PathLike | None = None) -> nn.Module:
        """Return the model pruned to `retainNodes` (and retrained); write its results into `log_dir`."""
        current = tuple(layer.out_features for layer in hidden_linears(model))
        if tuple(retainNodes) == current:
            pruned = copy.deepcopy(model)
        else:
            pruned = prune_nodes(model, retainNodes, self.criterion, self.context())
        if retrain:
            kwargs = dict(self.train_kwargs)
            if self.train is default_train:  # a train function of the user's own gets only its own arguments
                kwargs["progress"] = self.progress
                if self.distill and self.teacher is not None:
                    kwargs["teacher"] = self.teacher
                if self.val_loader is not None:
                    kwargs["val_loader"] = self.val_loader
            pruned = self.train(pruned, self.train_loader, self.test_loader, logdir=log_dir, **kwargs)
        results = self.evaluate(pruned, self.train_loader, self.test_loader)
        results["PercentageRetain"] = float(percentageRetain)
        if log_dir is not None:
            write_text_atomic(Path(log_dir) / "validation_results.txt",
                              format_table(RESULT_COLUMNS, [[results[name] for name in RESULT_COLUMNS]]))
        return pruned

    def resolve_begin(self, session_dir: Path, steps: list[RetentionStep], begin_itr: int | str) -> int:
        """Return the schedule position to start at, checking that the iteration before it is complete."""
        iterations = [step.iteration for step in steps]
        if begin_itr == "auto":
            position = next((p for p, it in enumerate(iterations) if not is_complete(session_dir, it)), len(steps))
            if position:
                log.info("begin_itr='auto': iterations up to %s are complete", iterations[position - 1])
            return position
        if isinstance(begin_itr, str) and begin_itr.lstrip("-").isdigit():
            begin_itr = int(begin_itr)
        if not isinstance(begin_itr, int) or begin_itr not in iterations:
            raise ScheduleError(f"begin_itr={begin_itr!r} is not an iteration of the schedule: expected one of "
                                f"{iterations} or 'auto' (continue after the last complete iteration).")
        position = iterations.index(begin_itr)
        if position and not is_complete(session_dir, iterations[position - 1]):
            missing = iteration_dir(session_dir, iterations[position - 1]) / "best_model.pth"
            raise ScheduleError(f"begin_itr={begin_itr} needs iteration {iterations[position - 1]}'s model, but "
                                f"{missing} is missing or incomplete: run that iteration first, or use "
                                f"begin_itr='auto'.")
        return position

    def run(self, model: nn.Module, data, session_dir: str | os.PathLike | None = None, begin_itr: int | str = 0,
            end_itr: int | None = None, config: dict | None = None) -> list[dict]:
        """Run every iteration of the schedule from `begin_itr`; return one record per iteration run."""
        session_dir = Path(session_dir) if session_dir is not None else default_session_dir()
        steps = as_schedule(data, tuple(layer.out_features for layer in hidden_linears(model)))
        _restore_stale(session_dir)
        # Check everything before writing anything else, so bad input never damages a session.
        position = self.resolve_begin(session_dir, steps, begin_itr)
        if end_itr is not None:
            if begin_itr != "auto" and end_itr < steps[position].iteration:
                raise ScheduleError(f"end_itr={end_itr!r} comes before begin_itr={begin_itr}: expected "
                                    f"end_itr >= begin_itr, or leave end_itr out to run to the end of the schedule.")
            steps = steps[:position] + [step for step in steps[position:] if step.iteration <= end_itr]
        if position:
            previous = iteration_dir(session_dir, steps[position - 1].iteration) / "best_model.pth"
            model = load_pruned_model(copy.deepcopy(model), previous)
        try:
            session_dir.mkdir(parents=True, exist_ok=True)
            probe = session_dir / ".write-test.tmp"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise NbpruneError(f"session folder {session_dir} cannot be written ({error.strerror}): choose a "
                               f"folder you can write to (session_dir=... or --session-dir).") from None
        _clean_partials(session_dir)
        record = {"config": dict(config or {}, criterion=self.criterion, seed=self.seed, distill=self.distill,
                                 train={k: str(v) for k, v in self.train_kwargs.items()}),
                  "schedule": [list(step) for step in steps], "environment": environment_record()}
        write_text_atomic(session_dir / "run.json", json.dumps(record, indent=2) + "\n")
        if self.distill and position:
            dense = iteration_dir(session_dir, steps[0].iteration) / "best_model.pth"
            if dense.is_file():
                self.teacher = load_pruned_model(copy.deepcopy(model), dense).eval()
            else:
                warnings.warn(f"distillation is on but the dense model {dense} is missing: retraining on labels only.")
        records = []
        bar = tqdm(steps[position:], desc="pruning iterations", unit="iteration", disable=not self.progress)
        for step in bar:
            bar.set_postfix(iteration=step.iteration, neurons="+".join(map(str, step.retained)))
            started = time.perf_counter()
            final = iteration_dir(session_dir, step.iteration)
            partial = final.with_name(STAGE + PARTIAL)
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            torch.manual_seed(self.seed + step.iteration)
            if isinstance(self.train_loader, TensorLoader):
                self.train_loader.reseed(self.seed + step.iteration)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DivergenceWarning)
                model = self.prune(model, step.retained, step.percentage, retrain=True, log_dir=partial)
            diverged = [w.message for w in caught if issubclass(w.category, DivergenceWarning)]
            for w in caught:
                if not issubclass(w.category, DivergenceWarning):
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            _publish(partial, final)
            if self.distill and step is steps[0]:
                self.teacher = copy.deepcopy(model).eval()
            _, rows = read_table(final / "validation_results.txt")
            records.append({"iteration": step.iteration, "retained": step.retained,
                            "parameters": parameter_count(model), "seconds": time.perf_counter() - started,
                            **dict(zip(RESULT_COLUMNS, rows[0]))})
            if diverged:
                bar.close()
                raise TrainingError(
                    f"iteration {step.iteration}: {diverged[0]} That model is in {final / 'best_model.pth'}. "
                    f"Run this iteration again with a lower learning rate (begin_itr={step.iteration}, "
                    f"--begin-itr {step.iteration}), or go on from it with begin_itr='auto'.")
        bar.close()
        return records


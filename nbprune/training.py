"""Training: epochs until the validation loss stops improving, keeping the best model (never chosen on the test set)."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig
from .data import Loader, TensorLoader
from .epoch import ImageShift, Trainer, image_shift, shifted_teacher_probabilities, teacher_probabilities
from .errors import ConfigError, DivergenceWarning
from .evaluation import loss_and_accuracy
from .fast_mlp import FlatMLPTrainer
from .files import format_table, write_text_atomic
from .model import SimpleNN
from .modelfile import save_model_file
from .progress import progress_bar

TRAIN_COLUMNS = ("TrainLoss", "TrainAccuracy", "TestLoss", "TestAccuracy", "ValLoss", "ValAccuracy")
LR_FACTOR = 0.2
CYCLE_RISE, CYCLE_START_DIV, CYCLE_END_DIV = 0.3, 25.0, 1e4  # torch's OneCycleLR defaults (pct_start, div factors)


def training_settings(config: TrainConfig | None = None, **changes) -> TrainConfig:
    """Return `config` (default: TrainConfig()) with training settings changed by name, checked."""
    config = config or TrainConfig()
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}: expected any of "
                          f"{', '.join(f.name for f in dataclasses.fields(TrainConfig))}.")
    return dataclasses.replace(config, **changes)


class Stopping:
    """Early stopping on the validation loss, with the default recipe's learning-rate drops on plateaus (onecycle runs
    its whole cycle; every recipe keeps the epoch with the lowest validation loss)."""

    def __init__(self, settings: TrainConfig, optimizer: torch.optim.Optimizer):
        self.settings, self.optimizer = settings, optimizer
        self.best_loss, self.stale, self.drops_since_best = math.inf, 0, 0
        self.scheduler = None
        if settings.recipe == "default":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=LR_FACTOR, patience=settings.lr_patience,
                threshold=settings.min_delta, threshold_mode="abs")

    def improved(self, val_loss: float) -> bool:
        """Record one epoch's validation loss; return whether it is the best so far."""
        better = val_loss < self.best_loss - self.settings.min_delta
        if better:
            self.best_loss, self.stale, self.drops_since_best = val_loss, 0, 0
        else:
            self.stale += 1
        if self.scheduler is not None:
            rate = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step(val_loss)
            self.drops_since_best += self.optimizer.param_groups[0]["lr"] < rate
        return better

    @property
    def done(self) -> bool:
        if self.settings.recipe == "onecycle":  # a cycle runs to its end: its last epochs are its best
            return False
        return self.stale >= self.settings.patience or self.drops_since_best >= self.settings.lr_drops


def one_cycle_rates(max_lr: float, total_steps: int) -> list[float]:
    """Return the learning rate of each of `total_steps` steps: a cosine rise from max_lr/25 to max_lr over the first
    30% of them, then a cosine fall to max_lr/25/1e4 (torch's OneCycleLR without its momentum cycle)."""
    start, end = max_lr / CYCLE_START_DIV, max_lr / CYCLE_START_DIV / CYCLE_END_DIV
    peak = CYCLE_RISE * total_steps - 1

    def cosine(high: float, low: float, done: float) -> float:
        return low + (high - low) / 2 * (1 + math.cos(math.pi * done))

    rates = []
    for step in range(total_steps):
        if step <= peak:
            rates.append(cosine(start, max_lr, step / peak if peak > 0 else 1.0))
        else:
            rates.append(cosine(max_lr, end, (step - peak) / max(total_steps - 1 - peak, 1e-9)))
    return rates


def dense_training(settings: TrainConfig) -> TrainConfig:
    """Return the settings a dense model (iteration 0) trains under: onecycle's cycle is dense_cycle_epochs long."""
    return dataclasses.replace(settings, cycle_epochs=settings.dense_cycle_epochs)


def epochs_of(settings: TrainConfig) -> int:
    """Return how many epochs `fit` runs at most: the one cycle's length, or the early-stopping recipes' limit."""
    return settings.cycle_epochs if settings.recipe == "onecycle" else settings.epochs


def rebatched(loader: Loader, batch_size: int) -> Loader:
    """Return a loader over the same rows and shuffles in batches of `batch_size` (other loaders as they are)."""
    if not isinstance(loader, TensorLoader) or loader.batch_size == batch_size:
        return loader
    again = TensorLoader(loader.dataset.data, loader.dataset.targets, batch_size, loader.shuffle, loader.seed,
                         loader.spec)
    again.dataset, again.epoch = loader.dataset, loader.epoch  # the same rows object: a teacher's outputs are kept
    return again


class TrainLog:
    """Where a training run writes: train_results.txt and (with `save_model`) best_model.pth in `logdir`, and
    TensorBoard if installed. `fit` takes one, or a folder for TrainLog(folder)."""

    def __init__(self, logdir: str | os.PathLike | None, save_model: bool = True,
                 columns: tuple[str, ...] = TRAIN_COLUMNS):
        self.logdir = Path(logdir) if logdir is not None else None
        self.save_model = save_model and self.logdir is not None
        self.columns = columns
        self.rows: list[list[float]] = []
        self.writer = None

    def open(self, columns: tuple[str, ...]) -> "TrainLog":
        """Start the log with these result columns (and TensorBoard, if installed); return it."""
        self.columns = columns
        if self.logdir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.logdir / "tensorboard"))
            except ImportError:  # TensorBoard is optional
                pass
        return self

    def epoch(self, row: list[float]) -> None:
        self.rows.append(row)
        if self.writer is not None:
            for name, value in zip(self.columns, row):
                self.writer.add_scalar(name, value, len(self.rows) - 1)
        self.write_results()

    def write_results(self) -> None:
        if self.logdir is not None:
            write_text_atomic(self.logdir / "train_results.txt", format_table(self.columns, self.rows))

    def best(self, model: nn.Module) -> None:
        if self.save_model:
            save_model_file(model, self.logdir / "best_model.pth")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def train(model: nn.Module, train_loader: Loader, test_loader: Loader, lr: float | None = None,
          num_epochs: int | None = None, patience: int | None = None, logdir: str | os.PathLike | None = None,
          save_model: bool = True, *, val_loader: Loader | None = None, config: TrainConfig | None = None,
          teacher: nn.Module | None = None, seed: int | None = None, progress: bool = True, **settings
          ) -> nn.Module:
    """Return `model` trained by `fit`, called in the reference workflow's shape.

    lr, num_epochs, patience and any other training setting given by name (recipe, weight_decay, lr_patience,
    lr_drops, min_delta, distill_weight, temperature, augment_shift) change `config` (None: TrainConfig());
    `seed`, when given, seeds torch first.
    """
    given = {"lr": lr, "epochs": num_epochs, "patience": patience}
    config = training_settings(config, **{k: v for k, v in given.items() if v is not None}, **settings)
    if seed is not None:
        torch.manual_seed(seed)
    return fit(model, train_loader, val_loader, config, test_loader=test_loader, teacher=teacher,
               logdir=TrainLog(logdir, save_model), progress=progress)


class Distillation:
    """What retraining distils from: a teacher network, and its softened outputs for the training rows, computed
    once per loader and kept. With shifted images (augment_shift), a teacher file's outputs are computed for every
    offset at once (`every_offset`); other teachers answer each shifted batch as it comes."""

    def __init__(self, teacher: nn.Module, every_offset: bool = False):
        self.teacher, self.every_offset = teacher, every_offset
        self._kept: tuple[torch.Tensor, tuple, torch.Tensor] | None = None  # (rows, settings, their targets)

    def soft_targets(self, loader: Loader, temperature: float, augment: ImageShift | None, device: torch.device
                     ) -> torch.Tensor | None:
        """Return the teacher's softened outputs for the loader's rows (rows, classes), or for every offset (rows,
        offsets, classes); None when they are computed batch by batch instead."""
        if not isinstance(loader, TensorLoader) or loader.device != device or \
                (augment is not None and not self.every_offset):
            return None
        rows, settings = loader.dataset.data, (temperature, None if augment is None else augment.max_shift)
        if self._kept is None or self._kept[0] is not rows or self._kept[1] != settings:
            teacher = self.teacher.to(device)
            targets = teacher_probabilities(teacher, rows, temperature) if augment is None else \
                shifted_teacher_probabilities(teacher, rows, temperature, augment)
            self._kept = (rows, settings, targets)
        return self._kept[2]


def fit(model: nn.Module, train_loader: Loader, val_loader: Loader | None, config: TrainConfig | None = None, *,
        test_loader: Loader | None = None, teacher: nn.Module | Distillation | None = None,
        logdir: str | os.PathLike | TrainLog | None = None, progress: bool = True) -> nn.Module:
    """Train `model` under `config` (None: TrainConfig()) where its parameters are; return it holding the weights
    with the lowest validation loss.

    `val_loader` chooses the best epoch (None: the training loss does, with a warning); `test_loader` is only
    evaluated and logged, never used to choose. With a `teacher` (a network, or a Distillation that keeps its
    outputs), the loss also follows the teacher's softened outputs (knowledge distillation); with augment_shift,
    every training batch is shifted at random first. `logdir` receives train_results.txt and best_model.pth (a
    TrainLog says whether to save the model).
    """
    settings = config or TrainConfig()
    epochs, batched = epochs_of(settings), train_loader
    if settings.recipe == "onecycle":
        train_loader = rebatched(train_loader, settings.cycle_batch_size)
    if val_loader is None:
        warnings.warn("training got no val_loader: early stopping and model selection use the training loss "
                      "(pass val_loader=... from nbprune.load_data to select on held-out data).", stacklevel=2)
    device = next(model.parameters()).device
    if isinstance(model, (SimpleNN, nn.Sequential)) and getattr(train_loader, "spec", None) is not None:
        model.spec = train_loader.spec  # the model now belongs to this data and its standardisation
    augment = image_shift(settings.augment_shift, getattr(train_loader, "spec", None))
    distillation = teacher if isinstance(teacher, Distillation) or teacher is None else Distillation(teacher)
    network = distillation.teacher.to(device) if distillation is not None else None
    trainer = make_trainer(model, settings.lr, settings.weight_decay, teacher=network,
                           distill_weight=settings.distill_weight, temperature=settings.temperature, augment=augment)
    soft_targets = distillation.soft_targets(train_loader, settings.temperature, augment, device) \
        if distillation is not None else None
    columns = TRAIN_COLUMNS if test_loader is not None else tuple(c for c in TRAIN_COLUMNS if not c.startswith("Test"))
    log = (logdir if isinstance(logdir, TrainLog) else TrainLog(logdir)).open(columns)
    stopping = Stopping(settings, trainer.optimizer)
    if settings.recipe == "onecycle":
        trainer.rates = iter(one_cycle_rates(settings.max_lr, epochs * len(train_loader)))
    best_state = _snapshot(model)
    bar = progress_bar(total=epochs, desc="epochs", unit="epoch", disable=not progress,
                       leave=None)  # stays on its own (02), disappears inside a loop's bar (04, 07)
    for epoch in range(epochs):
        train_loss, train_accuracy = trainer.epoch(train_loader, device, soft_targets)
        if not math.isfinite(train_loss):
            warnings.warn(f"training stopped at epoch {epoch + 1}: the loss became {train_loss}. Kept the last good "
                          f"model (lower the learning rate, now lr={settings.lr}, to train further).",
                          DivergenceWarning, stacklevel=2)
            break
        tested = loss_and_accuracy(model, test_loader) if test_loader is not None else ()
        val_loss, val_accuracy = (loss_and_accuracy(model, val_loader) if val_loader is not None
                                  else (train_loss, train_accuracy))
        log.epoch([train_loss, train_accuracy, *tested, val_loss, val_accuracy])
        bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.2f}",
                        refresh=False)
        bar.update()  # counted here, not by iterating the bar, so that an early stop reports the epochs that ran
        if stopping.improved(val_loss):
            best_state = _snapshot(model)
            log.best(model)
        if stopping.done:
            break
    bar.close()
    log.close()
    trainer.finish()
    if batched is not train_loader:
        batched.epoch = train_loader.epoch  # the caller's loader goes on with the shuffles that follow
    model.load_state_dict(best_state)
    log.write_results()  # also when the first epoch diverged, so the folder is complete
    log.best(model)
    return model


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of the model's state with every tensor in its own storage."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def make_trainer(model: nn.Module, lr: float, weight_decay: float, **distillation) -> Trainer:
    """Return the fastest trainer that handles `model`: FlatMLPTrainer for plain MLPs, else Trainer."""
    trainer = FlatMLPTrainer if FlatMLPTrainer.supports(model) else Trainer
    return trainer(model, lr, weight_decay, **distillation)

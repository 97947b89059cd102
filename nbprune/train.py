"""Training with AdamW, early stopping and best-model selection on the validation split (never the test set)."""

from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Loader, TensorLoader
from .errors import DivergenceWarning, NbpruneError
from .evaluate import loss_and_accuracy
from .io import format_table, save_model_atomic, write_text_atomic

RECIPES = ("default", "seed")
TRAIN_COLUMNS = ("TrainLoss", "TrainAccuracy", "TestLoss", "TestAccuracy", "ValLoss", "ValAccuracy")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device to run on: 'cpu', 'cuda', or 'auto' (CUDA when available)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NbpruneError(f"device={str(device)!r} was asked for but CUDA is not available here: "
                           f"use device='cpu' (or 'auto').")
    return device


def _tensorboard_writer(directory: Path | None):
    if directory is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional
        return None
    return SummaryWriter(str(directory))


def _optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused AdamW needs torch >= 2.4 on the CPU
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def train(model: nn.Module, train_loader: Loader, test_loader: Loader, lr: float = 1e-3, num_epochs: int = 300,
          patience: int = 10, logdir: str | os.PathLike | None = None, save_model: bool = True, *,
          val_loader: Loader | None = None, recipe: str = "default", weight_decay: float = 1e-4,
          min_delta: float = 1e-4, device: str | torch.device | None = None, seed: int | None = None,
          progress: bool = True, tensorboard_dir: str | os.PathLike | None = None,
          teacher: nn.Module | None = None, distill_weight: float = 0.5, temperature: float = 4.0) -> nn.Module:
    """Train `model` and return it holding the weights with the lowest validation loss.

    The validation split is `val_loader`, else the one nbprune.load_data attached to `train_loader`; the test
    loader is only evaluated and logged, never used to choose.

    recipe="seed" is the seed's recipe exactly (constant learning rate); recipe="default" adds a
    learning-rate drop (x0.2) whenever the validation loss stalls for 3 epochs, and stops once the rate
    has dropped 3 times without improvement or `patience` epochs pass without one. With a `teacher`, the loss
    blends cross-entropy with the teacher's softened outputs (knowledge distillation, weight `distill_weight`).
    """
    if recipe not in RECIPES:
        raise NbpruneError(f"recipe={recipe!r} is not known: expected one of {', '.join(RECIPES)}.")
    if num_epochs < 1 or patience < 1:
        raise NbpruneError(f"num_epochs={num_epochs!r}, patience={patience!r}: expected whole numbers >= 1.")
    if not 0 < lr < math.inf:
        raise NbpruneError(f"lr={lr!r} is not allowed: expected a learning rate > 0 (the seed uses 1e-3).")
    if val_loader is None:
        val_loader = getattr(train_loader, "val_loader", None)
    if val_loader is None:
        warnings.warn("train() got no val_loader: early stopping and model selection use the training loss "
                      "(pass val_loader=... from nbprune.load_data to select on held-out data).", stacklevel=2)
    if seed is not None:
        torch.manual_seed(seed)
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    logdir = Path(logdir) if logdir is not None else None
    writer = _tensorboard_writer(Path(tensorboard_dir) if tensorboard_dir else (logdir / "tensorboard" if logdir else None))
    optimizer = _optimizer(model, lr, weight_decay)
    soft_targets = None
    if teacher is not None and isinstance(train_loader, TensorLoader) and train_loader.device == device:
        soft_targets = _teacher_probabilities(teacher.to(device), train_loader.dataset.data, temperature)
    scheduler = None
    if recipe == "default":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.2, patience=2, threshold=min_delta, threshold_mode="abs")
    best_loss, best_state, stale, drops_since_best = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    rows: list[list[float]] = []
    bar = tqdm(range(num_epochs), desc="epochs", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        train_loss, train_accuracy = _train_epoch(model, train_loader, optimizer, device, teacher,
                                                  distill_weight, temperature, soft_targets)
        if not math.isfinite(train_loss):
            message = (f"training stopped at epoch {epoch + 1}: the loss became {train_loss}. Kept the last good "
                       f"model (lower the learning rate, now lr={lr}, to train further).")
            warnings.warn(message, DivergenceWarning, stacklevel=2)
            break
        test_loss, test_accuracy = loss_and_accuracy(model, test_loader)
        val_loss, val_accuracy = (loss_and_accuracy(model, val_loader) if val_loader is not None
                                  else (train_loss, train_accuracy))
        rows.append([train_loss, train_accuracy, test_loss, test_accuracy, val_loss, val_accuracy])
        bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_accuracy:.2f}")
        if writer is not None:
            for name, value in zip(TRAIN_COLUMNS, rows[-1]):
                writer.add_scalar(name, value, epoch)
        if val_loss < best_loss - min_delta:
            best_loss, best_state, stale, drops_since_best = val_loss, copy.deepcopy(model.state_dict()), 0, 0
            if save_model and logdir is not None:
                save_model_atomic(best_state, logdir / "best_model.pth")
        else:
            stale += 1
        if logdir is not None:
            write_text_atomic(logdir / "train_results.txt", format_table(TRAIN_COLUMNS, rows))
        if scheduler is not None:
            rate = optimizer.param_groups[0]["lr"]
            scheduler.step(val_loss)
            drops_since_best += optimizer.param_groups[0]["lr"] < rate
            if drops_since_best >= 3:
                break
        if stale >= patience:
            break
    bar.close()
    if writer is not None:
        writer.close()
    model.load_state_dict(best_state)
    if logdir is not None:  # also when the first epoch diverged, so the folder is complete
        write_text_atomic(logdir / "train_results.txt", format_table(TRAIN_COLUMNS, rows))
    if save_model and logdir is not None:
        save_model_atomic(best_state, logdir / "best_model.pth")
    return model


@torch.no_grad()
def _teacher_probabilities(teacher: nn.Module, inputs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return the teacher's softened class probabilities for every input row, computed in large batches."""
    teacher.eval()
    return torch.cat([F.softmax(teacher(chunk) / temperature, dim=1) for chunk in inputs.split(8192)])


def _train_epoch(model: nn.Module, loader: Loader, optimizer: torch.optim.Optimizer, device: torch.device,
                 teacher: nn.Module | None = None, distill_weight: float = 0.5, temperature: float = 4.0,
                 soft_targets: torch.Tensor | None = None) -> tuple[float, float]:
    """Run one pass over `loader`; return (mean training loss, accuracy in %) without a sync per step.

    With a teacher, `soft_targets` (its probabilities for every row of a TensorLoader) ride along with the
    shuffled batches; for other loaders the teacher runs on each batch.
    """
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    on_device = isinstance(loader, TensorLoader) and loader.device == device
    if soft_targets is not None and on_device:
        batches = loader.batches(soft_targets)
    else:
        batches = ((inputs, targets, None) for inputs, targets in loader)
    for inputs, targets, soft in batches:
        if not on_device:
            inputs = inputs.reshape(len(inputs), -1).to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
        outputs = model(inputs)
        loss = F.cross_entropy(outputs, targets)
        if teacher is not None:
            if soft is None:
                soft = _teacher_probabilities(teacher.to(device), inputs, temperature)
            distill = F.kl_div(F.log_softmax(outputs / temperature, dim=1), soft, reduction="batchmean")
            loss = (1 - distill_weight) * loss + distill_weight * temperature ** 2 * distill
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss * len(targets)
            correct += (outputs.argmax(dim=1) == targets).sum()
        count += len(targets)
    return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)

"""Training with AdamW, early stopping and best-model selection on the validation split (never the test set)."""

from __future__ import annotations

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
from .model import mlp_layers

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


def train(model: nn.Module, train_loader: Loader, test_loader: Loader, lr: float = 1e-3, num_epochs: int = 300,
          patience: int = 10, logdir: str | os.PathLike | None = None, save_model: bool = True, *,
          val_loader: Loader | None = None, recipe: str = "default", weight_decay: float = 1e-4,
          min_delta: float = 1e-4, device: str | torch.device | None = None, seed: int | None = None,
          progress: bool = True, tensorboard_dir: str | os.PathLike | None = None,
          teacher: nn.Module | None = None, distill_weight: float = 0.5, temperature: float = 2.0,
          lr_patience: int = 1, lr_drops: int = 3) -> nn.Module:
    """Train `model` and return it holding the weights with the lowest validation loss.

    The validation split is `val_loader`, else the one nbprune.load_data attached to `train_loader`; the test
    loader is only evaluated and logged, never used to choose.

    recipe="seed" is the seed's recipe exactly (constant learning rate); recipe="default" adds a
    learning-rate drop (x0.2) whenever the validation loss stalls for more than `lr_patience` epochs, and
    stops once the rate has dropped `lr_drops` times without improvement or `patience` epochs pass without one. With a `teacher`, the loss
    blends cross-entropy with the teacher's softened outputs (knowledge distillation, weight `distill_weight`).
    """
    if recipe not in RECIPES:
        raise NbpruneError(f"recipe={recipe!r} is not known: expected one of {', '.join(RECIPES)}.")
    if num_epochs < 1 or patience < 1 or lr_drops < 1:
        raise NbpruneError(f"num_epochs={num_epochs!r}, patience={patience!r}, lr_drops={lr_drops!r}: expected "
                           f"whole numbers >= 1.")
    if lr_patience < 0:
        raise NbpruneError(f"lr_patience={lr_patience!r}: expected a whole number >= 0 (epochs of stalled "
                           f"validation loss tolerated before the learning rate drops).")
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
    trainer = make_trainer(model, lr, weight_decay, teacher=teacher, distill_weight=distill_weight,
                           temperature=temperature)
    optimizer = trainer.optimizer
    soft_targets = None
    if teacher is not None and isinstance(train_loader, TensorLoader) and train_loader.device == device:
        soft_targets = _teacher_probabilities(teacher.to(device), train_loader.dataset.data, temperature)
    scheduler = None
    if recipe == "default":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.2, patience=lr_patience, threshold=min_delta, threshold_mode="abs")
    best_loss, best_state, stale, drops_since_best = math.inf, _snapshot(model), 0, 0
    rows: list[list[float]] = []
    bar = tqdm(range(num_epochs), desc="epochs", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        train_loss, train_accuracy = trainer.epoch(train_loader, device, soft_targets)
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
            best_loss, best_state, stale, drops_since_best = val_loss, _snapshot(model), 0, 0
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
            if drops_since_best >= lr_drops:
                break
        if stale >= patience:
            break
    bar.close()
    if writer is not None:
        writer.close()
    trainer.finish()
    model.load_state_dict(best_state)
    if logdir is not None:  # also when the first epoch diverged, so the folder is complete
        write_text_atomic(logdir / "train_results.txt", format_table(TRAIN_COLUMNS, rows))
    if save_model and logdir is not None:
        save_model_atomic(best_state, logdir / "best_model.pth")
    return model


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a copy of the model's state with every tensor in its own storage."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


@torch.no_grad()
def _teacher_probabilities(teacher: nn.Module, inputs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return the teacher's softened class probabilities for every input row, computed in large batches."""
    teacher.eval()
    return torch.cat([F.softmax(teacher(chunk) / temperature, dim=1) for chunk in inputs.split(8192)])


def _batches(loader: Loader, device: torch.device, soft_targets: torch.Tensor | None):
    """Yield `(inputs, targets, soft_targets or None)` on `device` from any loader."""
    if isinstance(loader, TensorLoader) and loader.device == device:
        if soft_targets is not None:
            yield from loader.batches(soft_targets)
        else:
            yield from ((inputs, targets, None) for inputs, targets in loader.batches())
        return
    for inputs, targets in loader:
        yield inputs.reshape(len(inputs), -1).to(device, non_blocking=True), targets.to(device, non_blocking=True), None


class Trainer:
    """One epoch at a time with autograd and AdamW: works for any model."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, teacher: nn.Module | None = None,
                 distill_weight: float = 0.5, temperature: float = 2.0):
        self.model, self.teacher = model, teacher
        self.distill_weight, self.temperature = distill_weight, temperature
        self.optimizer = self._adamw(list(model.parameters()), lr, weight_decay)

    @staticmethod
    def _adamw(parameters: list[torch.Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        try:
            return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # fused AdamW needs torch >= 2.4 on the CPU
            return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)

    def _teacher_soft(self, inputs: torch.Tensor, soft: torch.Tensor | None) -> torch.Tensor:
        return soft if soft is not None else _teacher_probabilities(self.teacher, inputs, self.temperature)

    def epoch(self, loader: Loader, device: torch.device,
              soft_targets: torch.Tensor | None = None) -> tuple[float, float]:
        """Run one pass over `loader`; return (mean training loss, accuracy in %) without a sync per step."""
        model, optimizer, temperature, weight = self.model, self.optimizer, self.temperature, self.distill_weight
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        for inputs, targets, soft in _batches(loader, device, soft_targets):
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets)
            if self.teacher is not None:
                distill = F.kl_div(F.log_softmax(outputs / temperature, dim=1), self._teacher_soft(inputs, soft),
                                   reduction="batchmean")
                loss = (1 - weight) * loss + weight * temperature ** 2 * distill
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss * len(targets)
                correct += (outputs.argmax(dim=1) == targets).sum()
            count += len(targets)
        return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)

    def finish(self) -> nn.Module:
        """Return the model, ready for use outside the trainer."""
        return self.model


class FlatMLPTrainer(Trainer):
    """The same training for MLPs of nn.Linear, nn.ReLU and nn.Sigmoid, without autograd's per-step overhead.

    The parameters live in one flat buffer (the layers hold views of it) so that AdamW updates them in one call,
    and the backward pass is written out by hand: for logits o = W h + b, dL/dW = g^T h, dL/db = sum g, and the
    gradient flowing back is g W times the activation's derivative. Tests check it against autograd.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, teacher: nn.Module | None = None,
                 distill_weight: float = 0.5, temperature: float = 2.0):
        self.model, self.teacher = model, teacher
        self.distill_weight, self.temperature = distill_weight, temperature
        self.layers = mlp_layers(model)
        self.linears = [layer for layer in self.layers if isinstance(layer, nn.Linear)]
        reference = self.linears[0].weight
        total = sum(layer.weight.numel() + layer.bias.numel() for layer in self.linears)
        flat = torch.empty(total, device=reference.device, dtype=reference.dtype)
        self.flat = nn.Parameter(flat)
        self.flat.grad = torch.zeros_like(flat)
        self.grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        offset = 0
        with torch.no_grad():
            for layer in self.linears:
                views = []
                for name in ("weight", "bias"):
                    tensor = getattr(layer, name)
                    size = tensor.numel()
                    self.flat[offset:offset + size].copy_(tensor.reshape(-1))
                    setattr(layer, name, nn.Parameter(self.flat[offset:offset + size].view_as(tensor)))
                    views.append(self.flat.grad[offset:offset + size].view_as(tensor))
                    offset += size
                self.grads.append((views[0], views[1]))
        self.activations = [type(layer) for layer in self.layers if not isinstance(layer, nn.Linear)]
        self.optimizer = self._adamw([self.flat], lr, weight_decay)  # holds lr for the scheduler
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.device)

    def _adamw_step(self) -> None:
        """Apply AdamW to the flat buffer: the kernel torch's fused AdamW runs, without its per-call bookkeeping."""
        if not hasattr(torch, "_fused_adamw_") or self.flat.device.type not in ("cpu", "cuda"):
            self.optimizer.step()
            return
        group = self.optimizer.param_groups[0]
        self.steps += 1
        torch._fused_adamw_([self.flat], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.steps],
                            lr=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                            weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False, maximize=False)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """Return whether `model` is a plain MLP of biased linear layers with ReLU/Sigmoid between them."""
        try:
            layers = mlp_layers(model)
        except NbpruneError:
            return False
        linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        alternating = all(isinstance(a, nn.Linear) != isinstance(b, nn.Linear) for a, b in zip(layers, layers[1:]))
        return (bool(linears) and isinstance(layers[0], nn.Linear) and isinstance(layers[-1], nn.Linear)
                and alternating and all(layer.bias is not None for layer in linears)
                and not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules()))

    @torch.no_grad()
    def epoch(self, loader: Loader, device: torch.device,
              soft_targets: torch.Tensor | None = None) -> tuple[float, float]:
        linears, grads = self.linears, self.grads
        relus = [activation is nn.ReLU for activation in self.activations]
        temperature, weight = self.temperature, self.distill_weight
        rows, minus_one = torch.arange(0, device=device), torch.tensor(-1.0, dtype=self.flat.dtype, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        for inputs, targets, soft in _batches(loader, device, soft_targets):
            batch = len(targets)
            hidden = [inputs]
            for position, layer in enumerate(linears[:-1]):
                value = torch.addmm(layer.bias, hidden[-1], layer.weight.t())
                hidden.append(value.relu_() if relus[position] else value.sigmoid_())
            outputs = torch.addmm(linears[-1].bias, hidden[-1], linears[-1].weight.t())
            log_probabilities = outputs.log_softmax(dim=1)
            loss = -log_probabilities.gather(1, targets[:, None]).mean()
            gradient = log_probabilities.exp_()
            if len(rows) < batch:
                rows = torch.arange(batch, device=device)
            gradient.index_put_((rows[:batch], targets), minus_one, accumulate=True)
            if self.teacher is not None:
                soft = self._teacher_soft(inputs, soft)
                log_student = (outputs / temperature).log_softmax(dim=1)
                distill = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum() / batch
                loss = (1 - weight) * loss + weight * temperature ** 2 * distill
                gradient = gradient.mul_(1 - weight).add_(log_student.exp_().sub_(soft), alpha=weight * temperature)
            gradient.div_(batch)
            for position in range(len(linears) - 1, -1, -1):
                weight_grad, bias_grad = grads[position]
                torch.mm(gradient.t(), hidden[position], out=weight_grad)
                torch.sum(gradient, dim=0, out=bias_grad)
                if position:
                    gradient = gradient.mm(linears[position].weight)
                    below = hidden[position]
                    gradient = (torch.ops.aten.threshold_backward(gradient, below, 0) if relus[position - 1]
                                else gradient.mul_(below * (1 - below)))
            self._adamw_step()
            loss_sum += loss * batch
            correct += (outputs.argmax(dim=1) == targets).sum()
            count += batch
        return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)

    def finish(self) -> nn.Module:
        """Give every layer its own parameters again (no views of the flat buffer) and return the model."""
        for layer in self.linears:
            layer.weight = nn.Parameter(layer.weight.detach().clone())
            layer.bias = nn.Parameter(layer.bias.detach().clone())
        return self.model


def make_trainer(model: nn.Module, lr: float, weight_decay: float, **distillation) -> Trainer:
    """Return the fastest trainer that handles `model`: FlatMLPTrainer for plain MLPs, else Trainer."""
    trainer = FlatMLPTrainer if FlatMLPTrainer.supports(model) else Trainer
    return trainer(model, lr, weight_decay, **distillation)

"""One epoch of training: the autograd Trainer, the batches it reads, and the teacher's softened outputs."""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .config import or_default
from .data import InputSpec, Loader, TensorLoader
from .errors import ConfigError

Augment = Callable[[torch.Tensor], torch.Tensor]


def adamw(parameters: list[torch.Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Return AdamW over `parameters`, fused where this torch offers it."""
    try:
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused AdamW needs torch >= 2.4 on the CPU
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def teacher_probabilities(teacher: nn.Module, inputs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return the teacher's softened class probabilities for every input row, computed in large batches."""
    teacher.eval()
    return torch.cat([F.softmax(teacher(chunk) / temperature, dim=1) for chunk in inputs.split(8192)])


def shifted_images(inputs: torch.Tensor, max_shift: int, image_shape: tuple[int, int], fill: float,
                   offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Return flat image rows, each moved by its own offset of up to `max_shift` pixels per axis (`offsets`: rows and
    columns, shape (2, count, 1), values 0..2*max_shift; None: drawn at random); the pixels uncovered take `fill`
    (the standardised background)."""
    count, (height, width) = len(inputs), image_shape
    images = F.pad(inputs.reshape(count, height, width), (max_shift,) * 4, value=fill)
    if offsets is None:
        offsets = torch.randint(0, 2 * max_shift + 1, (2, count, 1), device=inputs.device)
    rows = torch.arange(height, device=inputs.device) + offsets[0]
    columns = torch.arange(width, device=inputs.device) + offsets[1]
    picked = images[torch.arange(count, device=inputs.device)[:, None, None], rows[:, :, None], columns[:, None, :]]
    return picked.reshape(count, -1)


class ImageShift:
    """The augmentation that moves each image by a random offset of up to `max_shift` pixels per axis. Its
    (2 * max_shift + 1)**2 possible offsets are numbered, so a teacher's outputs for every offset of every training
    image can be computed once (`every_offset`) and looked up for the offsets a batch drew (`shift`)."""

    def __init__(self, max_shift: int, image_shape: tuple[int, int], fill: float):
        self.max_shift, self.image_shape, self.fill = max_shift, image_shape, fill
        self.offsets = (2 * max_shift + 1) ** 2

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.shift(inputs)[0]

    def shift(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the rows moved at random and the number of the offset each row drew."""
        drawn = torch.randint(0, 2 * self.max_shift + 1, (2, len(inputs), 1), device=inputs.device)
        return (shifted_images(inputs, self.max_shift, self.image_shape, self.fill, drawn),
                drawn[0, :, 0] * (2 * self.max_shift + 1) + drawn[1, :, 0])

    def every_offset(self, inputs: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield the rows moved by offset 0, 1, ... (the numbering `shift` reports)."""
        side = 2 * self.max_shift + 1
        for number in range(self.offsets):
            fixed = torch.tensor([number // side, number % side], device=inputs.device).view(2, 1, 1)
            yield shifted_images(inputs, self.max_shift, self.image_shape, self.fill, fixed.expand(2, len(inputs), 1))


@torch.no_grad()
def shifted_teacher_probabilities(teacher: nn.Module, inputs: torch.Tensor, temperature: float,
                                  augment: ImageShift) -> torch.Tensor:
    """Return the teacher's softened class probabilities for every input row under every offset the augmentation
    can draw: shape (rows, offsets, classes), computed once so retraining with shifts needs no teacher pass."""
    return torch.stack([teacher_probabilities(teacher, moved, temperature) for moved in augment.every_offset(inputs)],
                       dim=1)


def image_shift(max_shift: int, spec: InputSpec | None) -> ImageShift | None:
    """Return the augmentation that shifts each training image by up to `max_shift` pixels (None for 0)."""
    if not max_shift:
        return None
    if spec is None or spec.image_shape is None or isinstance(spec.mean, tuple):
        raise ConfigError(f"augment_shift={max_shift} shifts images, but the training data "
                          f"{'has no record of what it is' if spec is None else 'holds flat features'}: use "
                          f"augment_shift=0, or nbprune's MNIST/FashionMNIST loaders (load_data).")
    return ImageShift(max_shift, spec.image_shape, (0.0 - spec.mean) / spec.std)  # fill: a black pixel, standardised


def batches(loader: Loader, device: torch.device, soft_targets: torch.Tensor | None, augment: Augment | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Yield `(inputs, targets, soft_targets or None)` on `device` from any loader; with `augment`, the inputs are
    augmented, and the soft targets looked up for the offset each row drew when `soft_targets` holds them for every
    offset (rows, offsets, classes; shifted_teacher_probabilities), else left to be computed for what the student
    sees (None)."""
    if augment is not None:
        if soft_targets is not None and soft_targets.dim() == 3 and isinstance(augment, ImageShift):
            for inputs, targets, soft in batches(loader, device, soft_targets):
                moved, drawn = augment.shift(inputs)
                yield moved, targets, soft[torch.arange(len(drawn), device=soft.device), drawn]
            return
        yield from ((augment(inputs), targets, None) for inputs, targets, _ in batches(loader, device, None))
        return
    if isinstance(loader, TensorLoader) and loader.device == device:
        if soft_targets is not None:
            yield from loader.batches(soft_targets)
        else:
            yield from ((inputs, targets, None) for inputs, targets in loader.batches())
        return
    for inputs, targets in loader:
        yield inputs.reshape(len(inputs), -1).to(device, non_blocking=True), targets.to(device, non_blocking=True), None


class Trainer:
    """One epoch at a time with autograd and AdamW: works for any model.

    With a `teacher`, the loss blends cross-entropy with the teacher's softened outputs (knowledge distillation);
    with `augment`, every batch is augmented first (and the teacher sees the augmented inputs).
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, teacher: nn.Module | None = None,
                 distill_weight: float | None = None, temperature: float | None = None, augment: Augment | None = None):
        self.model, self.teacher, self.augment = model, teacher, augment
        self.distill_weight = or_default(distill_weight, "distill_weight")
        self.temperature = or_default(temperature, "temperature")
        self.optimizer = self.make_optimizer(lr, weight_decay)
        self.rates: Iterator[float] | None = None  # a learning rate per step (a one-cycle schedule); None: the group's

    def next_rate(self) -> None:
        """Set the learning rate of the coming step from `rates`, when a schedule gives one per step."""
        if self.rates is not None:
            self.optimizer.param_groups[0]["lr"] = next(self.rates)

    def make_optimizer(self, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        return adamw(list(self.model.parameters()), lr, weight_decay)

    def soft(self, inputs: torch.Tensor, soft: torch.Tensor | None) -> torch.Tensor:
        """Return the teacher's softened outputs for a batch: precomputed, or computed now."""
        return soft if soft is not None else teacher_probabilities(self.teacher, inputs, self.temperature)

    def epoch(self, loader: Loader, device: torch.device,
              soft_targets: torch.Tensor | None = None) -> tuple[float, float]:
        """Run one pass over `loader`; return (mean training loss, accuracy in %) without a sync per step."""
        model, optimizer, temperature, weight = self.model, self.optimizer, self.temperature, self.distill_weight
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        for inputs, targets, soft in batches(loader, device, soft_targets, self.augment):
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets)
            if self.teacher is not None:
                distill = F.kl_div(F.log_softmax(outputs / temperature, dim=1), self.soft(inputs, soft),
                                   reduction="batchmean")
                loss = (1 - weight) * loss + weight * temperature ** 2 * distill
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.next_rate()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss * len(targets)
                correct += (outputs.argmax(dim=1) == targets).sum()
            count += len(targets)
        return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)

    def finish(self) -> nn.Module:
        """Return the model, ready for use outside the trainer."""
        return self.model

"""A stronger teacher: a small convolutional network trained on the training split, saved as a self-describing file,
and the loading that any teacher file (this one's, or a SimpleNN best_model.pth) goes through before a run uses it.

The network takes the same standardised flat rows as SimpleNN and reshapes them to images itself. Its file is a
state dict whose `_metadata` carries the record under "nbprune_teacher" (channels, head, classes, dataset and
standardisation, how it was trained), written atomically and loaded with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import or_default
from .data import DataSplits, InputSpec, TensorLoader
from .datasets import DEFAULT
from .epoch import adamw, batches, image_shift
from .errors import ModelFileError, NbpruneError
from .evaluation import loss_and_accuracy
from .files import write_bytes_atomic
from .model import SimpleNN
from .modelfile import PROBE_RADIUS, Advice, _spec_from_dict, read_model_file
from .progress import progress_bar

TEACHER_KEY = "nbprune_teacher"
TEACHER_FORMAT = 1
TEACHER_ADVICE = Advice("expected a file `nbprune teacher` wrote or a best_model.pth nbprune wrote",
                        "Train the teacher again (`nbprune teacher`), or use another teacher file.")
STANDARDISATION_TOLERANCE = 0.02  # another seed's split moves MNIST's mean and std by about 0.1%; another
                                  # normalisation (e.g. 0.5/0.5) moves them by far more


class ConvTeacher(nn.Module):
    """Two 3x3 convolutions (each ReLU and 2x2 max-pooling) and a two-layer head, on standardised flat images."""

    def __init__(self, channels: tuple[int, int] = (16, 32), head: int = 128,
                 num_classes: int = len(DEFAULT.classes), image_shape: tuple[int, int] = DEFAULT.image_shape):
        super().__init__()
        self.channels, self.head, self.image_shape = tuple(channels), head, tuple(image_shape)
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        pooled = (image_shape[0] // 4) * (image_shape[1] // 4)
        self.fc1 = nn.Linear(channels[1] * pooled, head)
        self.fc2 = nn.Linear(head, num_classes)

    @property
    def num_classes(self) -> int:
        return self.fc2.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(len(x), 1, *self.image_shape)
        features = F.max_pool2d(F.relu(self.conv1(images)), 2)
        features = F.max_pool2d(F.relu(self.conv2(features)), 2)
        return self.fc2(F.relu(self.fc1(features.flatten(1))))


@dataclass(frozen=True)
class TrainedTeacher:
    """A teacher network and how its training went (the epoch kept was chosen on the validation split)."""

    model: ConvTeacher
    best_epoch: int
    val_accuracy: float
    seconds: float
    settings: dict


@dataclass(frozen=True)
class TeacherRecipe:
    """How `nbprune teacher` builds and trains its network: channels of the two convolutions, the head's width,
    AdamW's learning rate and weight decay, random shifts of up to `max_shift` pixels, and the batch size."""

    channels: tuple[int, int] = (16, 32)
    head: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_shift: int = 2
    batch_size: int = 128


def train_teacher(data: DataSplits, epochs: int = 8, recipe: TeacherRecipe | None = None, *, seed: int | None = None,
                  progress: bool = True, **changes) -> TrainedTeacher:
    """Return a ConvTeacher trained on `data`'s training split only (AdamW, one-cycle schedule, random shifts),
    holding the weights of the epoch with the best validation accuracy. `recipe` (default TeacherRecipe()) says how,
    with any of its fields changed by name (e.g. channels=(4, 8), head=16)."""
    recipe = dataclasses.replace(recipe or TeacherRecipe(), **changes)
    channels, head, lr, batch_size = recipe.channels, recipe.head, recipe.lr, recipe.batch_size
    weight_decay, max_shift = recipe.weight_decay, recipe.max_shift
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise NbpruneError(f"epochs={epochs!r} is not allowed: expected a whole number >= 1 (8 is the default).")
    spec = data.spec
    if spec.image_shape is None or len(spec.image_shape) != 2:
        raise NbpruneError(f"the teacher is a convolutional network for images, but {spec.dataset} holds flat "
                           f"features: train a wide SimpleNN as the teacher instead (nbprune.train).")
    started, seed = time.perf_counter(), or_default(seed, "seed")
    torch.manual_seed(seed)
    source = data.train_loader.dataset
    loader = TensorLoader(source.data, source.targets, batch_size, shuffle=True, seed=seed, spec=spec)
    model = ConvTeacher(channels, head, len(spec.classes), spec.image_shape).to(source.data.device)
    optimizer = adamw(list(model.parameters()), lr, weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    augment = image_shift(max_shift, spec)
    best_accuracy, best_epoch, best_state = -math.inf, 0, None
    bar = progress_bar(range(1, epochs + 1), desc="teacher epochs", unit="epoch", disable=not progress)
    for epoch in bar:
        _train_epoch(model, loader, optimizer, schedule, augment)
        accuracy = loss_and_accuracy(model, data.val_loader)[1]
        bar.set_postfix(val_acc=f"{accuracy:.2f}", refresh=False)
        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch
            best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    bar.close()
    model.load_state_dict(best_state)
    settings = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "max_shift": max_shift,
                "batch_size": batch_size, "seed": seed, "training_images": len(source)}
    return TrainedTeacher(model.eval(), best_epoch, best_accuracy, time.perf_counter() - started, settings)


def _train_epoch(model: nn.Module, loader: TensorLoader, optimizer: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler, augment) -> None:
    """Run one pass over `loader` on labels alone, stepping the one-cycle schedule after every batch."""
    model.train()
    for inputs, targets, _ in batches(loader, loader.device, None, augment):
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()


def save_teacher(trained: TrainedTeacher, spec: InputSpec, path: str | os.PathLike) -> Path:
    """Write the teacher's weights and record to `path` atomically and return the path."""
    from . import __version__

    model = trained.model
    record = {"format": TEACHER_FORMAT, "channels": list(model.channels), "head": model.head,
              "num_classes": model.num_classes, "input": spec.to_dict(), "nbprune": __version__,
              "training": {**trained.settings, "best_epoch": trained.best_epoch,
                           "val_accuracy": trained.val_accuracy, "seconds": round(trained.seconds, 1)}}
    state = OrderedDict((key, value.detach().cpu().clone()) for key, value in model.state_dict().items())
    state._metadata = OrderedDict({"": {"version": 1, TEACHER_KEY: record}})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


# --- loading a teacher for a run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Teacher:
    """A network to distil from, what data it belongs to, which file (by content) it came from, and how
    `nbprune teacher` trained it (empty for a SimpleNN model file)."""

    model: nn.Module
    spec: InputSpec | None
    file: Path
    sha256: str
    training: dict = field(default_factory=dict)

    def record(self) -> dict:
        """Return what a model's record says about the teacher that trained it."""
        return {"file": str(self.file), "sha256": self.sha256}


def load_teacher(file: str | os.PathLike, spec: InputSpec | None = None) -> Teacher:
    """Return the teacher a file holds (a `nbprune teacher` file or a SimpleNN best_model.pth), in eval mode;
    with `spec`, refuse one trained on other data (dataset, classes, features or standardisation)."""
    file = Path(file)
    try:
        state, record = read_model_file(file, TEACHER_ADVICE)  # the safe load: plain, dense, finite tensors
    except ModelFileError as error:
        raise ModelFileError(f"teacher: {error}") from None
    training = {}
    if record is not None:
        model = SimpleNN.from_file(file)
        teacher_spec = model.spec
    else:
        teacher_record = _teacher_record(file)
        if teacher_record is None:
            raise ModelFileError(f"{file} holds no record of the data it was trained on (a plain state_dict): "
                                 f"expected a best_model.pth nbprune wrote or a file `nbprune teacher` wrote.")
        model, teacher_spec = _conv_teacher(file, state, teacher_record)
        _refuse_overflow(file, model)
        training = teacher_record.get("training") if isinstance(teacher_record.get("training"), dict) else {}
    teacher = Teacher(model.eval(), teacher_spec, file.resolve(), hashlib.sha256(file.read_bytes()).hexdigest(),
                      training)
    if spec is not None:
        check_teacher_fits(teacher, spec)
    return teacher


def _teacher_record(file: Path) -> dict | None:
    # read_model_file keeps only nbprune's SimpleNN record; the file was checked safe by it just before
    state = torch.load(file, map_location="cpu", weights_only=True)
    metadata = getattr(state, "_metadata", None)
    found = metadata.get("", {}).get(TEACHER_KEY) if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else None


def _conv_teacher(file: Path, state: dict[str, torch.Tensor], record: dict[str, Any]
                  ) -> tuple[ConvTeacher, InputSpec]:
    """Return the ConvTeacher and data a teacher record describes, refusing a record its tensors contradict."""
    def damaged(what: str) -> ModelFileError:
        return ModelFileError(f"{file} carries a damaged teacher record ({what}): train the teacher again with "
                              f"`nbprune teacher {file}`.")

    channels, head, classes = record.get("channels"), record.get("head"), record.get("num_classes")
    if record.get("format") != TEACHER_FORMAT:
        raise damaged(f"format {record.get('format')!r}, expected {TEACHER_FORMAT}")
    numbers = [*channels, head, classes] if isinstance(channels, list) and len(channels) == 2 else [None]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4096 for n in numbers):
        raise damaged(f"channels {channels!r}, head {head!r}, num_classes {classes!r}, expected whole numbers")
    values = record.get("input")
    features = values.get("features") if isinstance(values, dict) else None
    if not isinstance(features, int) or not isinstance(values.get("image_shape"), list):
        raise damaged(f"input {values!r}, expected the images' dataset, classes, shape and standardisation")
    spec = _spec_from_dict(values, features, classes, damaged)
    if len(spec.image_shape) != 2:
        raise damaged(f"image_shape {list(spec.image_shape)}, expected height and width")
    model = ConvTeacher(tuple(channels), head, classes, spec.image_shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise damaged(f"its weights do not fit: {str(error).splitlines()[-1].strip()[:160]}") from None
    return model, spec


def _refuse_overflow(file: Path, model: ConvTeacher) -> None:
    """Refuse weights so large that some input within PROBE_RADIUS of the mean gets Inf or NaN outputs, as model
    files are refused: each layer's outputs are bounded by |W| (summed over a kernel) times the bound of its inputs
    plus |b|; ReLU and max-pooling keep the bound. Finite weights of 3e38 pass the finite check but overflow."""
    limit = torch.finfo(torch.promote_types(model.fc1.weight.dtype, torch.float32)).max
    bound = torch.full((1,), PROBE_RADIUS, dtype=torch.float64)
    pooled = (model.image_shape[0] // 4) * (model.image_shape[1] // 4)
    for layer in (model.conv1, model.conv2, model.fc1, model.fc2):
        weight = layer.weight.detach().double().abs()
        if layer is model.fc1:
            bound = bound.repeat_interleave(pooled)  # flatten(1) keeps each channel's positions together
        bound = (weight.sum(dim=(2, 3)) if weight.dim() == 4 else weight) @ bound + layer.bias.detach().double().abs()
        if not float(bound.max()) <= limit:  # NaN (Inf times a zero weight) fails this too
            largest = max(float(each.detach().abs().max()) for each in model.parameters())
            raise ModelFileError(f"teacher {file} holds weights so large (up to {largest:.3g}) that its outputs "
                                 f"overflow to Inf or NaN for inputs within {PROBE_RADIUS:g} standard deviations of "
                                 f"the mean: the network it came from diverged. Train the teacher again (`nbprune "
                                 f"teacher {file}`), or leave teacher out.")


def check_teacher_fits(teacher: Teacher, spec: InputSpec) -> None:
    """Refuse a teacher trained on another dataset, number of classes or features, or standardisation."""
    theirs = teacher.spec
    if theirs is None:
        raise ModelFileError(f"teacher {teacher.file} does not say which data it was trained on: expected a "
                             f"best_model.pth nbprune wrote or a file `nbprune teacher` wrote.")
    fix = f"train one on this data with `nbprune teacher FILE --dataset {spec.dataset}`, or leave teacher out"
    if (theirs.dataset, len(theirs.classes), theirs.features) != (spec.dataset, len(spec.classes), spec.features):
        raise ModelFileError(f"teacher {teacher.file} was trained on {theirs.dataset} ({len(theirs.classes)} "
                             f"classes, {theirs.features} features), this run's data is {spec.dataset} "
                             f"({len(spec.classes)} classes, {spec.features} features): {fix}.")
    if not spec.same_inputs(theirs, tolerance=STANDARDISATION_TOLERANCE):
        raise ModelFileError(f"teacher {teacher.file} takes inputs standardised with mean {_values(theirs.mean)} and "
                             f"std {_values(theirs.std)}, this run's with mean {_values(spec.mean)} and std "
                             f"{_values(spec.std)}: {fix}.")


def _values(value: float | tuple[float, ...]) -> str:
    return f"{len(value)} values" if isinstance(value, tuple) else f"{value:.4g}"


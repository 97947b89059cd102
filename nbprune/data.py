"""MNIST (or FashionMNIST) as in-memory tensor loaders: decoded once, standardised once, reshuffled per epoch."""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import torch
from torch.utils.data import DataLoader, TensorDataset

from .errors import DataError

DATASETS = ("MNIST", "FashionMNIST")
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}

Loader = Union["TensorLoader", DataLoader]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return where the data lives: the argument, else $NBPRUNE_DATA_ROOT, else ./data."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("NBPRUNE_DATA_ROOT") or "data")


class InMemoryDataset(TensorDataset):
    """A TensorDataset that also offers `.data` and `.targets`, as torchvision datasets do."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor):
        super().__init__(data, targets)
        self.data = data
        self.targets = targets


class TensorLoader:
    """Batches `(inputs[B, 784], targets[B])` from tensors in memory; each epoch is a seeded reshuffle."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 64,
                 shuffle: bool = True, seed: int = 0):
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size!r} is not allowed: expected a whole number >= 1.")
        self.dataset = InMemoryDataset(inputs, targets)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.val_loader: TensorLoader | None = None

    @property
    def device(self) -> torch.device:
        return self.dataset.data.device

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()

    def batches(self, *aligned: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield `(inputs, targets, *aligned)` batches: tensors with one row per sample share the epoch's shuffle."""
        tensors = (self.dataset.data, self.dataset.targets, *aligned)
        count, size = len(self.dataset), self.batch_size
        self.epoch += 1
        if not self.shuffle:
            for start in range(0, count, size):
                yield tuple(tensor[start:start + size] for tensor in tensors)
            return
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch - 1)
        order = torch.randperm(count, generator=generator).to(self.device)
        for start in range(0, count, size):
            rows = order[start:start + size]
            yield tuple(tensor.index_select(0, rows) for tensor in tensors)

    def reseed(self, seed: int) -> None:
        """Restart the shuffle sequence from `seed`, so a resumed run sees the batches a fresh one would."""
        self.seed, self.epoch = seed, 0

    def to(self, device: str | torch.device) -> "TensorLoader":
        """Return this loader with its tensors on `device`."""
        moved = TensorLoader(self.dataset.data.to(device), self.dataset.targets.to(device),
                             self.batch_size, self.shuffle, self.seed)
        moved.epoch = self.epoch
        return moved


@dataclass
class MNISTData:
    """The three loaders and the standardisation that made their inputs."""

    train_loader: TensorLoader
    val_loader: TensorLoader
    test_loader: TensorLoader
    mean: float
    std: float
    name: str = "MNIST"

    def __iter__(self):
        return iter((self.train_loader, self.val_loader, self.test_loader))

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return standardised inputs as 28x28 images with values in [0, 1]."""
        return (inputs * self.std + self.mean).reshape(-1, 28, 28).clamp(0, 1)


def _check_idx_file(path: Path) -> None:
    """Raise DataError unless `path` is a complete IDX file whose size matches its header."""
    ndim = 1 if "labels" in path.name else 3
    size = path.stat().st_size
    with open(path, "rb") as stream:
        header = stream.read(4 + 4 * ndim)
    fix = (f"Delete {path} and download it again (torchvision does this when the file is missing), "
           f"or point NBPRUNE_DATA_ROOT at a folder with intact files.")
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated: {size} bytes, shorter than an IDX header. {fix}")
    magic, *dims = struct.unpack(f">{1 + ndim}I", header)
    if magic != IDX_MAGIC[ndim]:
        raise DataError(f"{path} is not an IDX file: magic number {magic:#010x}, expected "
                        f"{IDX_MAGIC[ndim]:#010x}. {fix}")
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt: its header promises {expected} bytes, "
                        f"the file has {size}. {fix}")


def _raw_folder(root: Path, name: str) -> Path:
    return root / name / "raw"


def read_raw(root: str | os.PathLike | None = None, name: str = "MNIST", download: bool = True):
    """Return `(train_images, train_labels, test_images, test_labels)` as uint8/int64 tensors."""
    if name not in DATASETS:
        raise DataError(f"dataset {name!r} is not supported: expected one of {', '.join(DATASETS)}.")
    import torchvision

    root = data_root(root)
    raw = _raw_folder(root, name)
    missing = [f for f in RAW_FILES if not (raw / f).exists()]
    if missing and download:
        try:
            getattr(torchvision.datasets, name)(str(root), train=True, download=True)
            getattr(torchvision.datasets, name)(str(root), train=False, download=True)
        except Exception as error:  # no network, a mirror down, a disk full: all end in the same advice
            reason = f" (the download failed: {type(error).__name__}: {' '.join(str(error).split())})"
        else:
            reason = ""
        missing = [f for f in RAW_FILES if not (raw / f).exists()]
    else:
        reason = "" if download else " (download=False)"
    if missing:
        raise DataError(
            f"{name} not found in {raw.resolve()}: missing {', '.join(missing)}{reason}. Expected the four "
            f"files {', '.join(RAW_FILES)} there. Put them there, pass data_root=..., or set "
            f"NBPRUNE_DATA_ROOT to the folder that holds {name}/raw/.")
    for file in RAW_FILES:
        _check_idx_file(raw / file)
    dataset_class = getattr(torchvision.datasets, name)
    try:
        train = dataset_class(str(root), train=True, download=False)
        test = dataset_class(str(root), train=False, download=False)
    except Exception as error:
        raise DataError(f"{raw.resolve()} holds files torchvision cannot read ({error}). "
                        f"Delete them and download again.") from error
    if len(train.data) != len(train.targets) or len(test.data) != len(test.targets):
        raise DataError(f"{raw.resolve()}: image and label files disagree on the number of samples. "
                        f"Delete them and download again.")
    for images, labels, split in ((train.data, train.targets, "train"), (test.data, test.targets, "t10k")):
        if tuple(images.shape[1:]) != (28, 28):
            raise DataError(f"{raw.resolve() / f'{split}-images-idx3-ubyte'} holds images of shape "
                            f"{list(images.shape[1:])}, expected [28, 28]. Delete it and download again.")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise DataError(f"{raw.resolve() / f'{split}-labels-idx1-ubyte'} is corrupt: labels range from "
                            f"{int(labels.min())} to {int(labels.max())}, expected 0 to 9. Delete it and download "
                            f"again.")
    return train.data, train.targets.long(), test.data, test.targets.long()


def load_data(data_root: str | os.PathLike | None = None, name: str = "MNIST", batch_size: int = 64,
              val_size: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
              subset: int | None = None, download: bool = True) -> MNISTData:
    """Return train, validation and test loaders; unpacks as `train_loader, val_loader, test_loader`.

    The validation split holds `val_size` training images (default: 1 in 12, i.e. 5,000 of MNIST's 60,000).
    """
    train_images, train_labels, test_images, test_labels = read_raw(data_root, name, download)
    if val_size is None:
        val_size = len(train_labels) // 12
    if not 0 < val_size < len(train_labels):
        raise DataError(f"val_size={val_size!r} is not allowed: expected 0 < val_size < "
                        f"{len(train_labels)} (the training images).")
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[:val_size], order[val_size:]
    if subset is not None:
        if subset < 1:
            raise DataError(f"subset={subset!r} is not allowed: expected a whole number >= 1, or None.")
        train_index = train_index[:subset]
        test_images, test_labels = test_images[:subset], test_labels[:subset]
    pixels = train_images[train_index].reshape(len(train_index), -1).float().div_(255)
    mean, std = pixels.mean().item(), pixels.std().item()

    def standardise(images: torch.Tensor) -> torch.Tensor:
        return images.reshape(len(images), -1).float().div_(255).sub_(mean).div_(std).to(device)

    def loader(images, labels, shuffle):
        return TensorLoader(standardise(images), labels.to(device), batch_size, shuffle, seed)

    train_loader = loader(train_images[train_index], train_labels[train_index], True)
    train_loader.val_loader = loader(train_images[val_index], train_labels[val_index], False)
    return MNISTData(train_loader=train_loader, val_loader=train_loader.val_loader,
                     test_loader=loader(test_images, test_labels, False), mean=mean, std=std, name=name)


def iterate_flat(loader: Loader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(inputs[B, features], targets[B])` from any loader, flattening image batches."""
    for inputs, targets in loader:
        yield inputs.reshape(len(inputs), -1), targets


def input_box(loader: Loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the per-feature (min, max) of a loader's inputs, in the model's input space."""
    if isinstance(loader, TensorLoader):
        inputs = loader.dataset.data
        return inputs.min(dim=0).values, inputs.max(dim=0).values
    lower = upper = None
    for inputs, _ in iterate_flat(loader):
        batch_lower, batch_upper = inputs.min(dim=0).values, inputs.max(dim=0).values
        lower = batch_lower if lower is None else torch.minimum(lower, batch_lower)
        upper = batch_upper if upper is None else torch.maximum(upper, batch_upper)
    if lower is None:
        raise DataError("input_box got an empty loader: expected at least one batch of inputs.")
    return lower, upper

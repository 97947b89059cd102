"""Data as in-memory tensor loaders: a declared dataset (nbprune.datasets), a user's own data file, or a user's own
tensors, standardised once with the training split's statistics."""

from __future__ import annotations

import errno
import math
import os
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

import torch
from torch.utils.data import DataLoader, TensorDataset

from .config import RunConfig, data_root, or_default, resolve_device
from .datafile import read_data_file
from .datasets import DATASETS, DEFAULT, RAW_FILES, Dataset, is_data_file
from .errors import DataError

IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}
OWN_TENSORS = "custom"  # the dataset name of a user's own tensors (load_arrays)

Loader = Union["TensorLoader", DataLoader]

__all__ = ["DataSplits", "InputSpec", "OWN_TENSORS", "TensorLoader", "data_root", "input_box", "load_arrays",
           "load_data", "load_data_for", "read_raw"]


@dataclass(frozen=True)
class InputSpec:
    """What a model's inputs are: the dataset, its class names, and the standardisation that made them.

    `mean` and `std` are one number each (pixels / 255, for an image dataset) or one per feature (a user's own
    data); `image_shape` is the images' (height, width), None for flat features. `dataset` is a declared dataset's
    name, the resolved path of a user's data file, or "custom" for a user's own tensors.
    """

    dataset: str
    classes: tuple[str, ...]
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    features: int
    image_shape: tuple[int, ...] | None = DEFAULT.image_shape

    @classmethod
    def published(cls, dataset: Dataset) -> "InputSpec":
        """Return the inputs of a declared dataset standardised with its published mean and std."""
        return cls(dataset.name, dataset.classes, *dataset.standardisation, dataset.features, dataset.image_shape)

    def standardise(self, raw: torch.Tensor) -> torch.Tensor:
        """Return raw inputs (grey levels 0..255 for images, features as given otherwise) as model inputs."""
        values = raw.reshape(len(raw), -1).float()
        if self.image_shape is not None:
            values = values / 255
        return (values - torch.as_tensor(self.mean)) / torch.as_tensor(self.std)

    @property
    def standardisation(self) -> tuple[float, ...]:
        """Return the mean and std values as one tuple: two numbers for images, two per feature otherwise."""
        parts = (self.mean, self.std)
        return tuple(value for part in parts for value in (part if isinstance(part, tuple) else (part,)))

    def same_inputs(self, other: "InputSpec", tolerance: float) -> bool:
        """Return whether `other` describes inputs of this dataset standardised alike (relative `tolerance`)."""
        ours, theirs = self.standardisation, other.standardisation
        return self.dataset == other.dataset and len(ours) == len(theirs) and all(
            math.isclose(a, b, rel_tol=tolerance) for a, b in zip(ours, theirs))

    def describe(self) -> str:
        """Return the dataset and its standardisation in words, for messages."""
        def number(value) -> str:
            return f"{len(value)} values" if isinstance(value, tuple) else f"{value:.6g}"
        return f"{self.dataset} standardised with mean {number(self.mean)} and std {number(self.std)}"

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "classes": list(self.classes), "features": self.features,
                "mean": list(self.mean) if isinstance(self.mean, tuple) else self.mean,
                "std": list(self.std) if isinstance(self.std, tuple) else self.std,
                "image_shape": list(self.image_shape) if self.image_shape else None}


class InMemoryDataset(TensorDataset):
    """A TensorDataset that also offers `.data` and `.targets`, as torchvision datasets do."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor):
        super().__init__(data, targets)
        self.data = data
        self.targets = targets


class TensorLoader:
    """Batches `(inputs[B, features], targets[B])` from tensors in memory; each epoch is a seeded reshuffle.

    `spec` says what the inputs are (dataset, classes, standardisation); None for tensors of unknown origin.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int | None = None,
                 shuffle: bool = True, seed: int | None = None, spec: InputSpec | None = None):
        batch_size, seed = or_default(batch_size, "batch_size"), or_default(seed, "seed")
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size!r} is not allowed: expected a whole number >= 1.")
        self.dataset = InMemoryDataset(inputs, targets)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.spec = spec

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
                             self.batch_size, self.shuffle, self.seed, self.spec)
        moved.epoch = self.epoch
        return moved


@dataclass
class DataSplits:
    """The three loaders and what their inputs are; unpacks as `train_loader, val_loader, test_loader`."""

    train_loader: TensorLoader
    val_loader: TensorLoader
    test_loader: TensorLoader
    spec: InputSpec

    def __iter__(self):
        return iter((self.train_loader, self.val_loader, self.test_loader))

    @property
    def mean(self) -> float | tuple[float, ...]:
        return self.spec.mean

    @property
    def std(self) -> float | tuple[float, ...]:
        return self.spec.std

    @property
    def name(self) -> str:
        return self.spec.dataset

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def images(self) -> bool:
        """Return whether the inputs are images (False: rows of features, which have no pixels to show)."""
        return self.spec.image_shape is not None

    def to(self, device: str | torch.device) -> "DataSplits":
        """Return the splits with their tensors on `device`."""
        return DataSplits(self.train_loader.to(device), self.val_loader.to(device), self.test_loader.to(device),
                          self.spec)

    def raw(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return standardised inputs as the data's files hold them: grey levels 0..255 for images (rounded), the
        features' own values otherwise (what an exported predict.py reads)."""
        values = inputs.reshape(len(inputs), -1) * torch.as_tensor(self.spec.std) + torch.as_tensor(self.spec.mean)
        if self.spec.image_shape is None:
            return values
        return (values * 255).round().clamp(0, 255).reshape(-1, *self.spec.image_shape).to(torch.uint8)

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return standardised image inputs as images (height x width) with values in [0, 1]."""
        if self.spec.image_shape is None:
            raise DataError(f"{self.spec.dataset} holds flat features, not images: there are no pixels to show.")
        pixels = inputs * torch.as_tensor(self.spec.std) + torch.as_tensor(self.spec.mean)
        return pixels.reshape(-1, *self.spec.image_shape).clamp(0, 1)


@dataclass(frozen=True)
class RawData:
    """A dataset as read from its files, before the split and the standardisation: train and test rows, labels
    0..C-1, the class names, and the images' shape (None for flat features, which are not scaled by 255)."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: tuple[str, ...]
    image_shape: tuple[int, ...] | None


# --- the raw files --------------------------------------------------------------------------------------------
def _fix(path: Path) -> str:
    return (f"Delete {path} and download it again (torchvision does this when the file is missing), or point "
            f"NBPRUNE_DATA_ROOT at a folder with intact files.")


def _check_idx_file(path: Path) -> None:
    """Raise DataError unless `path` is a regular, complete IDX file whose size matches its header."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise DataError(f"{path} is {kind}: expected the IDX file of that name. {_fix(path)}")
    ndim = 1 if "labels" in path.name else 3
    size = path.stat().st_size
    with open(path, "rb") as stream:
        header = stream.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated: {size} bytes, shorter than an IDX header. {_fix(path)}")
    magic, *dims = struct.unpack(f">{1 + ndim}I", header)
    if magic != IDX_MAGIC[ndim]:
        raise DataError(f"{path} is not an IDX file: magic number {magic:#010x}, expected "
                        f"{IDX_MAGIC[ndim]:#010x}. {_fix(path)}")
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt: its header promises {expected} bytes, "
                        f"the file has {size}. {_fix(path)}")


def _read_idx_file(path: Path) -> torch.Tensor:
    """Return a checked IDX file's numbers as a uint8 tensor of the shape its header gives (as torchvision reads it,
    without importing torchvision, which only the download needs)."""
    _check_idx_file(path)
    ndim = 1 if "labels" in path.name else 3
    data = path.read_bytes()
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * ndim).reshape(dims)


def _download(root: Path, dataset: Dataset) -> str:
    """Let torchvision download `dataset` into root; return why it failed ('' on success), leaving no new folders."""
    import torchvision

    name = dataset.name
    created = [folder for folder in (root, root / name, root / name / "raw") if not folder.exists()]
    try:
        for train in (True, False):
            getattr(torchvision.datasets, dataset.download)(str(root), train=train, download=True)
    except Exception as error:  # no network, a mirror down, a disk full: all end in the same advice
        if created:  # the outermost folder this call made holds only what the failed download left
            shutil.rmtree(created[0], ignore_errors=True)
        return f" (the download failed: {type(error).__name__}: {' '.join(str(error).split())[:200]})"
    return ""


def _check_root(root: Path, name: str) -> None:
    """Raise DataError if the data folder exists but cannot be opened (a symbolic-link loop, no permission)."""
    try:
        os.stat(root)
    except FileNotFoundError:  # a missing folder is made by the download
        return
    except OSError as error:
        loop = " (a symbolic link that leads back to itself)" if error.errno == errno.ELOOP else ""
        raise DataError(f"data folder {root} cannot be opened: {error.strerror}{loop}. Point NBPRUNE_DATA_ROOT "
                        f"(or data_root / --data-root) at a real folder that holds {name}/raw/.") from None


def _resolved(path: Path) -> Path:
    """Return `path` resolved for a message, or as given when it cannot be (a symbolic-link loop below it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python before 3.13 raises RuntimeError for a loop
        return path.absolute()


def _declared(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"dataset {name!r} is not supported: expected one of {', '.join(DATASETS)}, a file of your own "
                        f"data (.npz or .csv), or your own tensors through load_arrays(train=(features, labels), "
                        f"test=(features, labels)).")
    return DATASETS[name]


def read_raw(root: str | os.PathLike | None = None, name: str | None = None, download: bool = True) -> RawData:
    """Return a dataset as its files hold it: a declared dataset from `root` (downloaded when missing, if it can
    be), or a user's data file (name ending .npz or .csv). None: the configuration's dataset."""
    name = or_default(name, "dataset")
    if is_data_file(name):
        train, test, classes = read_data_file(name)
        return own_tensors(train, test, classes, name=str(_resolved(Path(name))))
    dataset = _declared(name)
    root = data_root(root)
    _check_root(root, name)
    raw = root / name / "raw"
    if root.exists() and not root.is_dir():
        raise DataError(f"data folder {root} is a file: expected a folder holding {name}/raw/. Pass another "
                        f"data_root or set NBPRUNE_DATA_ROOT.")
    missing = [f for f in RAW_FILES if not (raw / f).exists()]
    reason = ""
    if missing and download and dataset.download is not None:
        reason = _download(root, dataset)
        missing = [f for f in RAW_FILES if not (raw / f).exists()]
    elif missing:
        reason = " (download=False)" if download is False else " (nbprune cannot download it)"
    if missing:
        fetch = "connect to the internet so torchvision can download it" if dataset.download is not None else \
            "copy its IDX files there"
        raise DataError(
            f"{name} was not found: set NBPRUNE_DATA_ROOT (or data_root / --data-root) to the folder that holds "
            f"{name}/raw/, or {fetch}. Looked in {_resolved(raw)}: missing {', '.join(missing)}{reason}.")
    train_images, train_labels, test_images, test_labels = (_read_idx_file(raw / file) for file in RAW_FILES)
    if len(train_images) != len(train_labels) or len(test_images) != len(test_labels):
        raise DataError(f"{_resolved(raw)}: image and label files disagree on the number of samples. "
                        f"Delete them and download again.")
    last = len(dataset.classes) - 1
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "t10k")):
        if tuple(images.shape[1:]) != dataset.image_shape:
            raise DataError(f"{_resolved(raw) / f'{split}-images-idx3-ubyte'} holds images of shape "
                            f"{list(images.shape[1:])}, expected {list(dataset.image_shape)}. Delete it and download "
                            f"again.")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= last:
            raise DataError(f"{_resolved(raw) / f'{split}-labels-idx1-ubyte'} is corrupt: labels range from "
                            f"{int(labels.min())} to {int(labels.max())}, expected 0 to {last}. Delete it and "
                            f"download again.")
    return RawData(name, (train_images, train_labels.long()), (test_images, test_labels.long()), dataset.classes,
                   dataset.image_shape)


# --- a user's own tensors ---------------------------------------------------------------------------------------
def _as_tensors(pair, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a (features[N, F], labels[N]) pair as float32 and int64 tensors, checked."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise DataError(f"{split}= expects a pair (features, labels), got {type(pair).__name__}.")
    features, labels = _numbers(pair[0], split, "features"), _numbers(pair[1], split, "labels")
    if features.dim() != 2 or len(features) < 1:
        raise DataError(f"{split} features have shape {list(features.shape)}: expected [samples, features] (flat "
                        f"rows; reshape images with x.reshape(len(x), -1)).")
    if features.is_complex() or features.dtype == torch.bool or not torch.isfinite(features.float()).all():
        raise DataError(f"{split} features must be finite real numbers (dtype {features.dtype}).")
    if labels.dim() != 1 or len(labels) != len(features):
        raise DataError(f"{split} labels have shape {list(labels.shape)}: expected [{len(features)}], one whole "
                        f"number per row of features.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"{split} labels have dtype {labels.dtype}: expected whole numbers 0, 1, ... (one per "
                        f"class); convert with labels.long().")
    if len(labels) and int(labels.min()) < 0:
        raise DataError(f"{split} labels include {int(labels.min())}: expected class numbers 0, 1, 2, ...")
    return features.float(), labels.long()


def _numbers(values, split: str, part: str) -> torch.Tensor:
    """Return features or labels as a tensor, refusing what is not numbers (text, objects, ragged rows)."""
    try:
        return torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as error:  # torch names the offending type in its own words
        fix = ("convert them with np.asarray(features, dtype=np.float32), encoding text columns as numbers first"
               if part == "features" else "turn class names into numbers first, e.g. [names.index(label) for label "
               "in labels], and pass classes=names")
        raise DataError(f"{split} {part} are not numbers ({type(values).__name__}: "
                        f"{' '.join(str(error).split())[:80]}): {fix}.") from None


def own_tensors(train, test, classes: Sequence[str] | None = None, name: str = OWN_TENSORS) -> RawData:
    """Return a user's own (features, labels) pairs as raw data, checked: flat rows, labels 0..C-1 (`classes` names
    them; default "0", "1", ...)."""
    train_x, train_y = _as_tensors(train, "train")
    test_x, test_y = _as_tensors(test, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise DataError(f"train rows have {train_x.shape[1]} features, test rows {test_x.shape[1]}: expected "
                        f"the same features in both.")
    count = int(max(train_y.max(), test_y.max())) + 1
    names = tuple(classes) if classes is not None else tuple(str(k) for k in range(count))
    if len(names) < count:
        raise DataError(f"classes names {len(names)} classes, but the labels go up to {count - 1}: expected "
                        f"one name per class.")
    return RawData(name, (train_x, train_y), (test_x, test_y), names, None)


# --- loaders --------------------------------------------------------------------------------------------------
def load_data(data_root: str | os.PathLike | None = None, name: str | None = None, batch_size: int | None = None,
              val_size: int | None = None, seed: int | None = None, subset: int | None = None, *,
              download: bool = True, standardisation: tuple | None = None) -> DataSplits:
    """Return train, validation and test loaders; unpacks as `train_loader, val_loader, test_loader`.

    `name`: a declared dataset (MNIST, FashionMNIST, ...) read from `data_root`, or a file of your own data
    (.npz with x_train, y_train, x_test, y_test; .csv with a label and a split column). The validation split holds
    `val_size` training rows (default: 1 in 12, i.e. 5,000 of MNIST's 60,000). Inputs are standardised with the
    training split's statistics, or with `standardisation=(mean, std)` (what a model file records, so a model is
    evaluated on the inputs it was trained on). None: the configuration's default (dataset `name`, batch_size,
    seed). The loaders live on the CPU: `.to(device)` moves them.
    """
    return split_data(read_raw(data_root, name, download), batch_size, val_size, seed, subset, standardisation)


def load_arrays(train, test, classes: Sequence[str] | None = None, batch_size: int | None = None,
                val_size: int | None = None, seed: int | None = None, *,
                standardisation: tuple | None = None) -> DataSplits:
    """Return loaders over your own tensors or arrays: `train=(features, labels)` and `test=(features, labels)`,
    flat rows with labels 0..C-1 (`classes` names them), split and standardised per feature as load_data does."""
    return split_data(own_tensors(train, test, classes), batch_size, val_size, seed, None, standardisation)


def split_data(raw: RawData, batch_size: int | None, val_size: int | None, seed: int | None, subset: int | None,
               standardisation: tuple | None) -> DataSplits:
    """Return the loaders of raw data: `val_size` training rows held out (seeded), the first `subset` of the rest
    and of the test rows kept, every split standardised with the training split's statistics (or the given ones)."""
    batch_size, seed = or_default(batch_size, "batch_size"), or_default(seed, "seed")
    (train_x, train_y), (test_x, test_y) = raw.train, raw.test
    if val_size is None:
        val_size = len(train_y) // 12
    if not 0 < val_size < len(train_y):
        raise DataError(f"val_size={val_size!r} is not allowed: expected 0 < val_size < "
                        f"{len(train_y)} (the training rows).")
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[:val_size], order[val_size:]
    if subset is not None:
        if subset < 1:
            raise DataError(f"subset={subset!r} is not allowed: expected a whole number >= 1, or None.")
        train_index = train_index[:subset]
        test_x, test_y = test_x[:subset], test_y[:subset]
    scale = 255 if raw.image_shape is not None else 1
    values = train_x[train_index].reshape(len(train_index), -1).float().div_(scale)
    if standardisation is not None:
        mean, std = standardisation
    elif raw.image_shape is not None:  # one mean and std over all pixels, as the reference workflow's normalisation
        mean, std = values.mean().item(), values.std().item()
    else:  # features on their own scales: one mean and std per feature
        mean = tuple(values.mean(dim=0).tolist())
        std = tuple(s if s > 0 else 1.0 for s in values.std(dim=0).nan_to_num(1.0).tolist())
    spec = InputSpec(raw.name, raw.classes, mean, std, values.shape[1], raw.image_shape)
    _check_standardisation(spec)

    def loader(features, labels, shuffle):
        return TensorLoader(spec.standardise(features), labels, batch_size, shuffle, seed, spec)

    return DataSplits(train_loader=loader(train_x[train_index], train_y[train_index], True),
                      val_loader=loader(train_x[val_index], train_y[val_index], False),
                      test_loader=loader(test_x, test_y, False), spec=spec)


def _check_standardisation(spec: InputSpec) -> None:
    for label, values in (("mean", spec.mean), ("std", spec.std)):
        numbers = values if isinstance(values, tuple) else (values,)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise DataError(f"the standardisation {label} {values!r} is not a finite number: the training data "
                            f"or a model record is corrupt.")
    stds = spec.std if isinstance(spec.std, tuple) else (spec.std,)
    if min(stds) <= 1e-6:
        raise DataError(f"the training inputs of {spec.dataset} have standard deviation 0 ({min(stds):.1g}): every "
                        f"image is the same, so nothing can be learned. The data files are corrupt or empty: "
                        f"delete them and download again.")


def load_data_for(config: RunConfig, standardisation=None, download: bool = True) -> DataSplits:
    """Return the loaders a configuration asks for (dataset, folder, split, batch size, seed, device)."""
    settings = config.data
    data = load_data(settings.data_root, settings.dataset, settings.batch_size, settings.val_size, config.seed,
                     settings.subset, download=download, standardisation=standardisation)
    return data.to(resolve_device(config.device))


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

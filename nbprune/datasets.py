"""The datasets nbprune knows, each declared once: its name, classes, image shape, published standardisation and
where its files come from. Data, model, export, teacher, the workbook and the schedule read what they need here, so
adding an IDX dataset in torchvision's layout is one `declare(Dataset(...))`.

A user's own data is not declared: the `dataset` setting may also name a file of features and integer labels
(`.npz` with x_train, y_train, x_test, y_test, or `.csv` with a label and a split column; nbprune.data reads it).
This module imports nothing heavy, so the settings (nbprune.config) can check a dataset's name without torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# The four IDX files of a dataset in torchvision's layout, under <data_root>/<name>/raw/.
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FILE_SUFFIXES = (".npz", ".csv")  # a user's own data: features and integer labels


@dataclass(frozen=True)
class Dataset:
    """An image dataset in torchvision's IDX layout.

    standardisation: the published mean and std of its pixels / 255, used only for a plain state_dict that records
    no standardisation of its own. download: the torchvision.datasets class that fetches the files (None: the files
    must already be in <data_root>/<name>/raw/).
    """

    name: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int]
    standardisation: tuple[float, float]
    download: str | None = None

    @property
    def features(self) -> int:
        """Return the number of input features: one per pixel."""
        return math.prod(self.image_shape)


DATASETS: dict[str, Dataset] = {}


def is_data_file(name: str) -> bool:
    """Return whether a dataset setting names a file of the user's own data (by its suffix) rather than a dataset."""
    return isinstance(name, str) and Path(name).suffix.lower() in FILE_SUFFIXES


def declare(dataset: Dataset) -> Dataset:
    """Make `dataset` known by its name to every door (the dataset setting, loaders, export, teacher); return it."""
    if dataset.name in DATASETS and DATASETS[dataset.name] != dataset:
        raise ValueError(f"dataset {dataset.name!r} is declared twice, differently")
    if is_data_file(dataset.name):
        raise ValueError(f"dataset name {dataset.name!r} looks like a file of your own data: choose another name")
    DATASETS[dataset.name] = dataset
    return dataset


MNIST = declare(Dataset("MNIST", tuple(str(digit) for digit in range(10)), (28, 28), (0.1307, 0.3081),
                        download="MNIST"))
FASHION_MNIST = declare(Dataset("FashionMNIST", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                 "Shirt", "Sneaker", "Bag", "Ankle boot"), (28, 28), (0.2860, 0.3530),
                                download="FashionMNIST"))
DEFAULT = MNIST  # the reference workflow's data: SimpleNN() is built for it


def dataset_named(name: str) -> Dataset:
    """Return the declared dataset `name`, or refuse it in one line naming the choices."""
    if name not in DATASETS:
        raise ConfigError(f"dataset {name!r} is not known: expected one of {', '.join(DATASETS)}, or a file of your "
                          f"own data ({' or '.join(FILE_SUFFIXES)}; see docs/configuration.md).")
    return DATASETS[name]


def check_dataset_name(value: object) -> str:
    """Return a dataset setting's value when it names a declared dataset or a data file, else refuse it."""
    if isinstance(value, (str, os.PathLike)) and is_data_file(os.fspath(value)):
        return os.fspath(value)
    if isinstance(value, str) and value in DATASETS:
        return value
    raise ConfigError(f"dataset={value!r} is not allowed: expected one of {', '.join(DATASETS)}, or the path of a "
                      f"file of your own data ending in {' or '.join(FILE_SUFFIXES)} (features and integer "
                      f"labels; see docs/configuration.md).")

"""A user's own data in one file: features and integer labels, split into training and test rows.

- `.npz` (numpy.savez): arrays x_train [rows, features], y_train [rows], x_test, y_test, and optionally `classes`
  (one name per class); read with allow_pickle=False, so the file cannot run code.
- `.csv`: a header row naming the columns; a `label` column of whole numbers 0..C-1, a `split` column of `train` or
  `test`, and every other column a numeric feature.

Each problem is refused in one line naming the file and what to fix: missing arrays or columns, labels that are not
0..C-1, NaN or infinite values, rows of different lengths. nbprune.data standardises and splits what this returns.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
LABEL, SPLIT = "label", "split"
MAX_BYTES = 4 * 1024 ** 3  # a data file larger than this is refused before it is read


def read_data_file(path: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray],
                                                       tuple[str, ...] | None]:
    """Return ((x_train, y_train), (x_test, y_test), class names or None) from a .npz or .csv file, every array
    checked: features float32 [rows, features], labels int64 [rows] from 0."""
    path = Path(path)
    if not path.is_file():
        kind = "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise DataError(f"data file {path} {kind}: expected a .npz with {', '.join(NPZ_ARRAYS)} or a .csv with "
                        f"'{LABEL}' and '{SPLIT}' columns (docs/configuration.md, your own data).")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(f"data file {path} is larger than {MAX_BYTES // 1024 ** 3} GiB: split it or use a subset.")
    train, test, classes = _read_npz(path) if path.suffix.lower() == ".npz" else _read_csv(path)
    features = [_features(x, path, split) for x, split in ((train[0], "train"), (test[0], "test"))]
    labels = [_labels(train[1], path, "train", len(features[0])), _labels(test[1], path, "test", len(features[1]))]
    if features[0].shape[1] != features[1].shape[1]:
        raise DataError(f"{path}: training rows have {features[0].shape[1]} features, test rows "
                        f"{features[1].shape[1]}: expected the same columns in both.")
    top = max(int(labels[0].max()), int(labels[1].max()))
    if classes is not None and top >= len(classes):
        raise DataError(f"{path}: labels go up to {top} but `classes` names {len(classes)}: expected labels 0 to "
                        f"{len(classes) - 1}, one per name.")
    absent = sorted(set(range(top + 1)) - set(np.unique(labels[0]).tolist()))
    if absent:
        hint = " (labels counted from 1? subtract 1)" if absent == [0] else ""
        raise DataError(f"{path}: no training row has label {', '.join(map(str, absent[:5]))}: expected labels 0 to "
                        f"{top} with every class among the training rows{hint}.")
    return (features[0], labels[0]), (features[1], labels[1]), classes


def _read_npz(path: Path):
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds one array (a .npy file), not a .npz: expected {', '.join(NPZ_ARRAYS)} "
                            f"(np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)).")
        with loaded as arrays:
            missing = [name for name in NPZ_ARRAYS if name not in arrays.files]
            if missing:
                raise DataError(f"{path} lacks the array(s) {', '.join(missing)}: expected {', '.join(NPZ_ARRAYS)} "
                                f"(np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)).")
            values = {name: _array(arrays, name, path) for name in NPZ_ARRAYS}
            classes = _array(arrays, "classes", path) if "classes" in arrays.files else None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:  # ValueError: a pickle, not a .npz
        raise DataError(f"{path} is not a readable .npz file ({type(error).__name__}): write it again with "
                        f"np.savez.") from None
    if classes is not None:
        if classes.ndim != 1 or classes.dtype.kind not in "US" or not len(classes):
            raise DataError(f"{path}: `classes` must be a 1-D array of names, got shape {list(classes.shape)} of "
                            f"{classes.dtype}.")
        classes = tuple(str(name) for name in classes.tolist())
    return (values["x_train"], values["y_train"]), (values["x_test"], values["y_test"]), classes


def _array(arrays, name: str, path: Path) -> np.ndarray:
    """Return the array `name` of an open .npz, refusing one that only pickle could load (pickle can run code)."""
    try:
        return arrays[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(f"{path}: {name} is an object array (rows of different lengths, or Python objects), "
                            f"which only pickle could load, and pickle can run code: save numbers only, rows of "
                            f"one length (np.savez with numeric arrays, class names as a string array).") from None
        raise DataError(f"{path}: {name} is not a readable array ({' '.join(str(error).split())[:120]}): write "
                        f"it again with np.savez.") from None


def _read_csv(path: Path):
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text: save the CSV as UTF-8.") from None
    except (OSError, csv.Error) as error:
        raise DataError(f"{path} cannot be read as CSV ({error}).") from None
    rows = [row for row in rows if any(field.strip() for field in row)]
    if not rows:
        raise DataError(f"{path} is empty: expected a header row and one row per sample.")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in (LABEL, SPLIT) if name not in header]
    if missing:
        raise DataError(f"{path}: the header {','.join(header)[:80]!r} lacks the column(s) {', '.join(missing)}: "
                        f"expected a '{LABEL}' column (0, 1, ...), a '{SPLIT}' column (train or test) and feature "
                        f"columns.")
    label_at, split_at = header.index(LABEL), header.index(SPLIT)
    feature_at = [k for k in range(len(header)) if k not in (label_at, split_at)]
    if not feature_at:
        raise DataError(f"{path} has no feature columns besides '{LABEL}' and '{SPLIT}'.")
    parts = {"train": ([], []), "test": ([], [])}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {number} has {len(row)} fields, the header {len(header)}: expected rows of "
                            f"the same length.")
        split = row[split_at].strip()
        if split not in parts:
            raise DataError(f"{path} line {number}: split {split[:20]!r} is not allowed: expected train or test.")
        try:
            label = int(row[label_at])
            values = [float(row[k]) for k in feature_at]
        except ValueError:
            raise DataError(f"{path} line {number}: {','.join(row)[:60]!r} holds a value that is not a number "
                            f"(labels must be whole numbers).") from None
        parts[split][0].append(values)
        parts[split][1].append(label)
    for split in parts:
        if not parts[split][0]:
            raise DataError(f"{path} has no '{split}' rows: expected both train and test rows in the split column.")
    return tuple((np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)) for x, y in parts.values()) + (None,)


def _features(x: np.ndarray, path: Path, split: str) -> np.ndarray:
    if x.dtype.kind not in "biuf" or x.dtype.kind == "b":
        raise DataError(f"{path}: x_{split} holds {x.dtype} values: expected numbers.")
    if x.ndim != 2 or not len(x) or not x.shape[1]:
        raise DataError(f"{path}: x_{split} has shape {list(x.shape)}: expected [rows, features] with at least one "
                        f"of each (flatten images with x.reshape(len(x), -1)).")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).nonzero()[0][0])
        raise DataError(f"{path}: x_{split} holds NaN or infinite values (first in row {bad}): fill or drop them.")
    if not np.isfinite(x.astype(np.float32)).all():
        raise DataError(f"{path}: x_{split} holds values too large for float32 (above {np.finfo(np.float32).max:.3g}):"
                        f" rescale them.")
    return x.astype(np.float32)


def _labels(y: np.ndarray, path: Path, split: str, rows: int) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: y_{split} holds {y.dtype} values: expected whole numbers 0, 1, ... (one class per "
                        f"row; convert with y.astype(int)).")
    if y.ndim != 1 or len(y) != rows:
        raise DataError(f"{path}: y_{split} has shape {list(y.shape)}: expected [{rows}], one label per row of "
                        f"x_{split}.")
    if int(y.min()) < 0:
        raise DataError(f"{path}: y_{split} includes {int(y.min())}: expected class numbers 0, 1, 2, ...")
    if int(y.max()) >= 100_000:
        raise DataError(f"{path}: y_{split} goes up to {int(y.max())}: expected class numbers 0 to C-1.")
    return y.astype(np.int64)

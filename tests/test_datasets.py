"""Datasets: one declaration makes a new IDX dataset usable by every door, and a user's own data file (.npz, .csv)
goes through prune, evaluate and export, with bad files refused in one line before anything is written."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re

import numpy as np
import pytest
import torch

from conftest import tree_bytes, write_idx
from nbprune.cli import main
from nbprune.data import load_data
from nbprune.datasets import DATASETS, Dataset, declare
from nbprune.export import run_standalone, standalone_predictions
from nbprune.model import SimpleNN
from nbprune.modelfile import save_model_file
from nbprune.session import Session

TINY_SHAPE = (6, 5)  # a dataset of another shape than MNIST's, so nothing can lean on 28x28 or 784


@pytest.fixture
def tiny_letters(tmp_path):
    """Declare a three-class IDX dataset of 6x5 images (in the test, as a user would in their own code) and write
    its files; yield its data root, then forget the declaration."""
    declare(Dataset("TinyLetters", ("a", "b", "c"), TINY_SHAPE, (0.3, 0.3)))
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "TinyLetters" / "raw"
    for split, count in (("train", 300), ("t10k", 90)):
        labels = rng.integers(0, 3, size=count)
        images = rng.integers(0, 50, size=(count, *TINY_SHAPE))
        for image, label in zip(images, labels):
            image[:, label:label + 2] += 180  # each class lights its own columns
        write_idx(raw / f"{split}-images-idx3-ubyte", np.clip(images, 0, 255))
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    yield tmp_path / "data"
    DATASETS.pop("TinyLetters")


@pytest.mark.slow
def test_a_dataset_declared_once_runs_through_prune_evaluate_and_export(tiny_letters, tmp_path, capsys):
    data = load_data(tiny_letters, "TinyLetters", val_size=30, download=False)
    assert data.spec.image_shape == TINY_SHAPE and data.spec.features == 30 and data.classes == ("a", "b", "c")
    session = tmp_path / "session"
    assert main(["prune", "--dataset", "TinyLetters", "--data-root", str(tiny_letters), "--session-dir",
                 str(session), "--hidden", "12", "6", "--epochs", "2", "--val-size", "30", "--end-itr", "2",
                 "--prune-inputs", "--no-progress"]) == 0
    model_file = Session(session).model_file(2)
    capsys.readouterr()
    assert main(["evaluate", str(model_file), "--data-root", str(tiny_letters)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["dataset"] == "TinyLetters"
    assert main(["export", str(model_file), str(tmp_path / "out"), "--no-onnx"]) == 0
    images = np.frombuffer((tiny_letters / "TinyLetters" / "raw" / "t10k-images-idx3-ubyte").read_bytes()[16:],
                           dtype=np.uint8).reshape(-1, *TINY_SHAPE)
    labels = np.frombuffer((tiny_letters / "TinyLetters" / "raw" / "t10k-labels-idx1-ubyte").read_bytes()[8:],
                           dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    rows = standalone_predictions(run_standalone(tmp_path / "out", tmp_path / "images.npy"))
    accuracy = 100 * np.mean([label == "abc"[k] for (_, label, _), k in zip(rows, labels)])
    assert len(rows) == len(images) == 90
    assert round(accuracy, 2) == round(evaluated["Test_Accuracy"], 2)


def write_npz(path, rows: int = 400, features: int = 7, count: int = 3, seed: int = 0, **changes):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32) * np.arange(1, features + 1) + 5
    y = (x[:, :count] / np.arange(1, count + 1)).argmax(axis=1)
    arrays = {"x_train": x[:rows * 3 // 4], "y_train": y[:rows * 3 // 4], "x_test": x[rows * 3 // 4:],
              "y_test": y[rows * 3 // 4:], **changes}
    np.savez(path, **{name: value for name, value in arrays.items() if value is not None})
    return path


@pytest.mark.slow
def test_a_users_npz_runs_through_prune_evaluate_and_export_which_agree_on_the_test_accuracy(tmp_path, capsys,
                                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "my.npz", rows=800)
    assert main(["prune", "--dataset", "my.npz", "--session-dir", "s", "--hidden", "16", "8", "--epochs", "3",
                 "--end-itr", "2", "--no-progress"]) == 0
    model_file = Session(tmp_path / "s").model_file(2)
    capsys.readouterr()
    assert main(["evaluate", str(model_file)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["dataset"] == str(tmp_path / "my.npz")
    assert main(["export", str(model_file), "out", "--no-onnx"]) == 0
    arrays = np.load(tmp_path / "my.npz")
    np.save(tmp_path / "test.npy", arrays["x_test"])
    with open(tmp_path / "test.csv", "w", newline="") as stream:  # the same rows as CSV, with a header and labels
        writer = csv.writer(stream)
        writer.writerow([*(f"x{k}" for k in range(7)), "label"])
        writer.writerows([*map(float, row), int(label)] for row, label in zip(arrays["x_test"], arrays["y_test"]))
    for inputs in ("test.npy", "test.csv"):
        rows = standalone_predictions(run_standalone(tmp_path / "out", tmp_path / inputs))
        accuracy = 100 * np.mean([label == str(k) for (_, label, _), k in zip(rows, arrays["y_test"])])
        assert f"{accuracy:.2f}" == f"{evaluated['Test_Accuracy']:.2f}", inputs


def test_evaluate_says_how_to_point_at_a_data_file_that_moved(tmp_path, capsys):
    path = write_npz(tmp_path / "my.npz")
    data = load_data(name=str(path), val_size=10)
    model = SimpleNN((4,), data.spec.features, len(data.classes))
    model.spec = data.spec
    model_file = save_model_file(model, tmp_path / "best_model.pth")
    (tmp_path / "moved").mkdir()
    path.rename(tmp_path / "moved" / "my.npz")
    assert main(["evaluate", str(model_file)]) == 2
    err = capsys.readouterr().err
    assert f"was trained on {path}, which is not there now: if it moved, say where with --dataset NEW/PLACE.npz" in \
        err and err.count("\n") == 1, err
    assert main(["evaluate", str(model_file), "--dataset", str(tmp_path / "moved" / "my.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == str(tmp_path / "moved" / "my.npz")

def test_a_users_csv_is_read_with_its_split_column(tmp_path):
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["height", "label", "width", "split"])
        writer.writerows([[k, k % 2, 2 * k, "train" if k < 40 else "test"] for k in range(50)])
    data = load_data(name=str(path), val_size=5)
    assert data.spec.features == 2 and data.classes == ("0", "1") and data.spec.image_shape is None
    assert len(data.train_loader.dataset) == 35 and len(data.test_loader.dataset) == 10
    assert data.name == str(path.resolve())


BAD_NPZ = [
    ({"x_test": None}, r"lacks the array\(s\) x_test"),
    ({"y_train": np.arange(300) % 3 + 1}, "no training row has label 0.*counted from 1"),
    ({"y_train": -(np.arange(300) % 3)}, "includes -2"),
    ({"y_train": np.arange(300) % 3 * 1.0}, "y_train holds float64 values"),
    ({"x_train": np.full((300, 7), np.nan)}, "NaN or infinite values"),
    ({"x_test": np.ones((100, 6))}, "training rows have 7 features, test rows 6"),
    ({"y_test": np.arange(99) % 3}, r"y_test has shape \[99\]: expected \[100\]"),
    ({"classes": np.array(["a", "b"])}, "labels go up to 2 but `classes` names 2"),
    ({"x_train": np.array([["a"] * 7] * 300)}, "x_train holds <U1 values"),
]


@pytest.mark.parametrize("changes, says", BAD_NPZ, ids=[says[:30] for _, says in BAD_NPZ])
def test_a_bad_npz_is_refused_in_one_line_before_anything_is_written(changes, says, tmp_path, capsys):
    path = write_npz(tmp_path / "bad.npz", **changes)
    before = tree_bytes(tmp_path)
    assert main(["prune", "--dataset", str(path), "--session-dir", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and err.startswith("nbprune: error:") and err.count("\n") == 1, err
    assert tree_bytes(tmp_path) == before


class CodePayload:
    """An object whose unpickling creates a folder: proof that loading the file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def ragged_rows(rows: int, features: int) -> np.ndarray:
    """Return rows of different lengths, as numpy stores them: an object array, which only pickle can load."""
    x = np.empty(rows, dtype=object)
    x[:] = [[1.0] * (features - k % 2) for k in range(rows)]
    return x


NEEDS_PICKLE = [
    ("x_train", lambda marker: np.array([CodePayload(marker)] * 300, dtype=object),
     "x_train is an object array"),
    ("classes", lambda marker: np.array([CodePayload(marker)] * 3, dtype=object), "classes is an object array"),
    ("x_train", lambda marker: ragged_rows(300, 7), r"x_train is an object array \(rows of different lengths"),
]


@pytest.mark.parametrize("name, array, says", NEEDS_PICKLE, ids=["code in x_train", "code in classes",
                                                                  "rows of different lengths"])
def test_an_npz_that_needs_pickle_is_refused_in_one_line_and_runs_no_code(name, array, says, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    path = write_npz(tmp_path / "bad.npz", **{name: array(marker)})
    before = tree_bytes(tmp_path)
    assert main(["prune", "--dataset", str(path), "--session-dir", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and "pickle" in err and err.startswith("nbprune: error:") and err.count("\n") == 1, err
    assert not marker.exists() and tree_bytes(tmp_path) == before



def write_not_an_npz(path, kind: str, marker) -> None:
    if kind == "pickle":
        with open(path, "wb") as stream:
            pickle.dump({"x_train": CodePayload(marker)}, stream)
    elif kind == "npy":
        with open(path, "wb") as stream:
            np.save(stream, np.ones((4, 3)))
    else:
        path.write_bytes({"text": b"x_train,y_train\n", "empty": b""}[kind])


@pytest.mark.parametrize("kind, says", [("pickle", "is not a readable .npz file"),
                                        ("npy", r"holds one array \(a .npy file\), not a .npz"),
                                        ("text", "is not a readable .npz file"),
                                        ("empty", "is not a readable .npz file")])
def test_a_file_named_npz_that_is_not_one_is_refused_in_one_line_and_runs_no_code(kind, says, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    write_not_an_npz(tmp_path / "bad.npz", kind, marker)
    before = tree_bytes(tmp_path)
    assert main(["prune", "--dataset", str(tmp_path / "bad.npz"), "--session-dir", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and err.startswith("nbprune: error:") and err.count("\n") == 1, err
    assert not marker.exists() and tree_bytes(tmp_path) == before


BAD_CSV = [
    ("a,b,label\n1,2,0\n", r"lacks the column\(s\) split"),
    ("a,label,split\n1,0,train\n2,1\n", "line 3 has 2 fields, the header 3"),
    ("a,label,split\n1,0,train\nx,1,test\n", "line 3: .* not a number"),
    ("a,label,split\n1,0,train\n2,1,validation\n", "split 'validation' is not allowed"),
    ("a,label,split\n1,0,train\n2,1,train\n", "has no 'test' rows"),
    ("a,label,split\nnan,0,train\n2,0,test\n", "NaN or infinite values"),
]


@pytest.mark.parametrize("text, says", BAD_CSV, ids=[says[:30] for _, says in BAD_CSV])
def test_a_bad_csv_is_refused_in_one_line_before_anything_is_written(text, says, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    before = tree_bytes(tmp_path)
    assert main(["prune", "--dataset", str(path), "--session-dir", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and err.startswith("nbprune: error:") and err.count("\n") == 1, err
    assert tree_bytes(tmp_path) == before


def test_a_dataset_that_is_neither_declared_nor_a_data_file_is_refused_by_name(capsys):
    assert main(["prune", "--dataset", "KMNIST", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "dataset='KMNIST' is not allowed: expected one of MNIST, FashionMNIST, or a file of your own data" in err


def test_declaring_a_dataset_twice_differently_or_with_a_file_name_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        declare(Dataset("MNIST", ("x",), (2, 2), (0.5, 0.5)))
    with pytest.raises(ValueError, match="looks like a file"):
        declare(Dataset("mine.npz", ("x",), (2, 2), (0.5, 0.5)))
    assert declare(DATASETS["MNIST"]) is DATASETS["MNIST"]  # the same declaration again is harmless
    assert torch.Size(DATASETS["FashionMNIST"].image_shape).numel() == DATASETS["FashionMNIST"].features


@pytest.mark.slow
def test_a_sweep_runs_on_a_users_npz_and_its_models_evaluate_as_the_sweep_reports(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray", reason="the sweep runs its chains on Ray: pip install 'ray>=2.9'")
    from nbprune.sweeps import sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    write_npz(tmp_path / "my.npz", rows=600)
    table = sweep({"set": {"dataset": "my.npz", "hidden": [12, 6], "epochs": 2},
                   "grid": {"criterion": ["interval_adjoint", "magnitude"]}, "end_itr": 2}, tmp_path / "sw",
                  workers=2, progress=False)
    rows = list(csv.DictReader(open(table)))
    assert {row["criterion"] for row in rows} == {"interval_adjoint", "magnitude"} and len(rows) == 6
    last = next(row for row in rows if row["iteration"] == "2" and row["criterion"] == "magnitude")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "sw" / last["model_file"])]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["dataset"] == str(tmp_path / "my.npz")
    assert f"{evaluated['Test_Accuracy']:.4f}" == f"{float(last['test_acc']):.4f}"


@pytest.mark.slow
def test_the_workbook_runs_on_a_users_npz_and_says_where_there_are_no_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "my.npz", rows=600)
    session = tmp_path / "session"
    assert main(["workbook", "--session-dir", str(session), "-p", "dataset", "my.npz", "-p", "hidden", "12,6",
                 "-p", "iterations", "4", "-p", "q", "0.5", "-p", "compare_seeds", "1"]) == 0
    executed = session / "notebooks"
    said = {name: "".join("".join(output.get("text", "")) for cell in json.loads(
        (executed / f"{name}.ipynb").read_text())["cells"] for output in cell.get("outputs", []))
        for name in ("01_data", "04_iterative_pruning", "06_deploy", "08_conv")}
    assert "rows of 7 features, not images: there are no pictures to show" in said["01_data"]
    assert re.search(r"train: \d+ rows, classes from", said["01_data"]) and " images, " not in said["01_data"]
    assert re.search(r"\d+ of your 150 test rows have a feature outside the training box", said["04_iterative_pruning"])
    assert "rows of 7 features, not images" in said["06_deploy"]
    assert "the standalone folder agrees with the library on all 16 rows" in said["06_deploy"]
    assert "a convolutional network has nothing to convolve, so steps 5 to 7 are skipped" in said["08_conv"]
    assert "every gradient inside the interval adjoint: True" in said["08_conv"]  # the hand part runs all the same
    assert not (session / "conv").exists()
    assert Session(session).model_file(0).is_file() and (session / "deploy" / "rows.npy").is_file()

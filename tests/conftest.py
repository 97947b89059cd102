"""Shared fixtures: tiny IDX datasets the tests write themselves, and the real MNIST when configured."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from nbprune.retention import schedule

REAL_ROOT = os.environ.get("NBPRUNE_DATA_ROOT")
HAVE_MNIST = bool(REAL_ROOT and (Path(REAL_ROOT) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file())


def pytest_collection_modifyitems(config, items):
    """One marker for the real data: tests that read the real MNIST are marked `mnist` (those using the `real_data`
    fixture are marked here), and skipped unless NBPRUNE_DATA_ROOT holds it."""
    skip = pytest.mark.skip(reason="needs the real MNIST: set NBPRUNE_DATA_ROOT to the folder holding MNIST/raw/")
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mnist)
        if not HAVE_MNIST and item.get_closest_marker("mnist"):
            item.add_marker(skip)


def small_model(hidden=(12, 7), in_features: int = 20, classes: int = 4, activation: str = "relu", seed: int = 0):
    """Return a SimpleNN of these widths, its weights drawn from `seed` (the tests' small network)."""
    import torch

    from nbprune.model import SimpleNN

    torch.manual_seed(seed)
    return SimpleNN(hidden, in_features, classes, activation).eval()


def tree_bytes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Return every path under `root`, relative, with its bytes (None for a folder), leaving out names in `skip`;
    {} when `root` does not exist. Two equal snapshots prove nothing was written, moved or removed."""
    if not root.exists():
        return {}
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob("*")) if path.name not in skip}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic 0x0801 for labels, 0x0803 for images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def tiny_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `count` learnable 28x28 images: class k is a bright blob at a class-dependent place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count)
    images = rng.integers(0, 40, size=(count, 28, 28))
    for image, label in zip(images, labels):
        row, col = 3 + 5 * (label // 4), 3 + 6 * (label % 4)
        image[row:row + 6, col:col + 6] += 200
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def make_tiny_mnist(root: Path, train: int = 600, test: int = 200, name: str = "MNIST") -> Path:
    """Write a tiny dataset in torchvision's layout under root/<name>/raw and return root."""
    raw = root / name / "raw"
    images, labels = tiny_digits(train, seed=1)
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    images, labels = tiny_digits(test, seed=2)
    write_idx(raw / "t10k-images-idx3-ubyte", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    return root


def write_stand_ins(folder: Path, bodies: dict[str, str] | None = None) -> Path:
    """Write a stand-in for each workbook notebook into `folder`: its parameters cell (session_dir, seed) and one
    code cell (from `bodies`, else `pass`); return the folder."""
    import nbformat

    from nbprune.course.workbook import NOTEBOOKS
    folder.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.metadata["language_info"] = {"name": "python"}
        parameters = nbformat.v4.new_code_cell("session_dir = None\nseed = 0")
        parameters.metadata["tags"] = ["parameters"]
        notebook.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), parameters,
                          nbformat.v4.new_code_cell((bodies or {}).get(name, "pass"))]
        nbformat.write(notebook, folder / f"{name}.ipynb")
    return folder


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, guard: float = 900) -> None:
    """Wait until `condition` holds; fail as soon as `process` ends first. Tests wait for events, not for a time
    (`guard` only ends a hang)."""
    deadline = time.monotonic() + guard
    while not condition():
        assert process.poll() is None, f"the process ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {guard:.0f} s"
        time.sleep(0.02)


HOLD_LOCK = """
import sys
from nbprune.session import Session
with Session.for_pruning_dir(sys.argv[1]).lock():  # the lock `nbprune prune` takes
    print("locked", flush=True)
    sys.stdin.read()  # held until the test ends the process
"""


@contextlib.contextmanager
def session_held_elsewhere(pruning_dir: Path, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Hold the lock of the session whose pruning folder is `pruning_dir` in another process for the block; yield that
    process (the block may kill it early). Waits for the lock to be taken, not for a time."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(pruning_dir)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A folder holding a tiny, learnable MNIST in torchvision's layout."""
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_data(tiny_root):
    """Loaders over the tiny dataset (100 validation images)."""
    from nbprune import load_data
    return load_data(tiny_root, val_size=100, download=False)


@pytest.fixture(scope="session")
def real_data():
    """Loaders over the real MNIST (its users are marked `mnist`, so they skip without NBPRUNE_DATA_ROOT)."""
    from nbprune import load_data
    return load_data(REAL_ROOT)


# --- the command-line runs of the reliability tests --------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
HIDDEN, Q, END_ITR, SEED = (16, 8), 0.6, 3, 0
STEPS = [step for step in schedule(HIDDEN, Q) if step.iteration <= END_ITR]
SCHEDULE = [step.iteration for step in schedule(HIDDEN, Q)]
# Subprocesses run single-threaded: results are then bitwise reproducible and the shared CPU is not oversubscribed.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
           PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
LEFTOVER_SUFFIXES = (".tmp", ".partial", ".stale")
# How long a subprocess may take before the test calls it hung: never a measure of speed, only an end to a hang,
# so generous enough for a loaded machine (tests synchronise on what the processes say, not on time).
HANG = 900


def prune_argv(session_dir: Path, data_root: Path, *extra: str) -> list[str]:
    """Return `nbprune prune` arguments for the small configuration every test here uses."""
    return ["prune", "--session-dir", str(session_dir), "--data-root", str(data_root),
            "--hidden", *map(str, HIDDEN), "--q", str(Q), "--epochs", "3", "--patience", "3",
            "--end-itr", str(END_ITR), "--seed", str(SEED), "--no-progress", *extra]


def nbprune_cli(*argv: str, cwd: Path, timeout: float = HANG) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "nbprune.cli", *argv], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(LEFTOVER_SUFFIXES)]


@pytest.fixture(scope="session")
def reference(tiny_root, tmp_path_factory) -> Path:
    """An uninterrupted run of the small configuration, made by the real command line."""
    session_dir = tmp_path_factory.mktemp("reference") / "iterative_pruning"
    done = nbprune_cli(*prune_argv(session_dir, tiny_root), cwd=session_dir.parent)
    assert done.returncode == 0, done.stderr
    return session_dir


def write_damaged_model(kind: str, path: Path) -> None:
    """Write a file at `path` that is no sound model file of its `kind`: text, empty, truncated, random bytes, a bare
    tensor, or a state dict holding NaN or Inf."""
    import random

    import torch

    from nbprune.model import SimpleNN

    state = SimpleNN(hidden=HIDDEN).state_dict()
    torch.save(state, path)
    data = path.read_bytes()
    if kind == "text":
        path.write_text("Train_Loss Test_Loss\n0.1 0.2\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(2000))
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind in ("nan", "inf"):
        state["fc2.weight"][0, 0] = float(kind)
        torch.save(state, path)

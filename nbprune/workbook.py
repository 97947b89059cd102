"""The workbook: session folders, the figures the notebooks show, and running all six notebooks with papermill."""

from __future__ import annotations

import ast
import datetime
import logging
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch
from matplotlib.figure import Figure

from .errors import NbpruneError
from .retention import save_figure

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_data", "02_model", "03_retention", "04_iterative_pruning", "05_test", "06_deploy")

# Sub-folders of a session: each notebook writes into its own.
DATA, MODEL, RETAIN, PRUNING, TEST, DEPLOY = "data", "model", "retain", "iterative_pruning", "test", "deploy"

# Every knob a batch run may set (`-p NAME VALUE`), with the kind of value it takes.
PARAMETERS = {
    "data_root": "path",      # folder holding MNIST/raw/ (None: $NBPRUNE_DATA_ROOT, else <repo>/data)
    "session_dir": "path",    # the session folder every notebook writes into
    "subset": "int?",         # use only this many training and test images (None: all)
    "seed": "int",            # seed for the split, the shuffles and the initial weights
    "device": "str",          # cpu, cuda or auto
    "threads": "int",         # 02/04: CPU threads for torch (one is fastest for this small network)
    "demo_epochs": "int",     # 02: epochs of the short demonstration run
    "hidden": "ints",         # 03: hidden layer sizes, e.g. [256, 64]
    "q": "float",             # 03: fraction of neurons kept per iteration
    "iterations": "int",      # 03: schedule iterations 0..iterations-1
    "begin_itr": "int|auto",  # 04: 0 from scratch, k resume at iteration k, auto continue
    "end_itr": "int?",        # 04: stop after this iteration (None: the whole schedule)
    "epochs": "int",          # 04: most epochs per iteration
    "patience": "int",        # 04: early-stopping patience
    "criterion": "str",       # 04: interval_adjoint, magnitude, taylor or random
    "recipe": "str",          # 04: default (learning-rate drops) or seed (constant rate)
    "distill": "bool",        # 04: retrain pruned iterations on the dense model's outputs as well as the labels
    "chosen_itr": "int?",     # 05/06: the iteration to deploy (None: smallest within 1 point of dense)
}

BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

PROFILES = {
    "quick": {"epochs": 3, "patience": 1},
    "full": {"epochs": 300, "patience": 10},
}


# --- sessions -------------------------------------------------------------------------------------------------
def project_root(start: str | os.PathLike | None = None) -> Path:
    """Return the nearest folder at or above `start` (default: cwd) that holds notebooks/ and pyproject.toml."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return start


def session_path(session_dir: str | os.PathLike | None = None) -> Path:
    """Return the session folder: the argument, else `<project root>/sessions/<YYYY-MM-DD>`; create it."""
    if session_dir is None:
        session_dir = project_root() / "sessions" / datetime.date.today().isoformat()
    session = Path(session_dir).resolve()
    session.mkdir(parents=True, exist_ok=True)
    return session


def data_path(data_root: str | os.PathLike | None = None) -> Path:
    """Return the data folder: the argument, else $NBPRUNE_DATA_ROOT, else `<project root>/data`."""
    if data_root is not None:
        return Path(data_root).resolve()
    if os.environ.get("NBPRUNE_DATA_ROOT"):
        return Path(os.environ["NBPRUNE_DATA_ROOT"]).resolve()
    return project_root() / "data"


# --- figures the notebooks show -------------------------------------------------------------------------------
def plot_digits(images: torch.Tensor, labels: Sequence[int], predictions: Sequence[int] | None = None,
                columns: int = 8, path: str | os.PathLike | None = None) -> Figure:
    """Return a grid of 28x28 images titled with their labels (and predictions); save it when `path` is given."""
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(1.1 * columns, 1.25 * rows), layout="constrained")
    for index, image in enumerate(images):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(image.reshape(28, 28).cpu(), cmap="gray", vmin=0, vmax=1)
        title, colour = f"label {int(labels[index])}", "black"
        if predictions is not None:
            title += f"\npredicted {int(predictions[index])}"
            colour = "black" if int(predictions[index]) == int(labels[index]) else "red"
        axes.set_title(title, fontsize=8, color=colour)
        axes.axis("off")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_class_balance(splits: dict[str, torch.Tensor], path: str | os.PathLike | None = None) -> Figure:
    """Return grouped bars of each split's share of every class (labels per split); save it when `path` is given."""
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(splits)
    for position, (name, labels) in enumerate(splits.items()):
        counts = Counter(int(label) for label in labels)
        shares = [100 * counts[digit] / len(labels) for digit in range(10)]
        axes.bar([digit + (position - (len(splits) - 1) / 2) * width for digit in range(10)], shares, width,
                 label=f"{name} ({len(labels):,} images)")
    axes.axhline(10, color="gray", linestyle=":", linewidth=1)
    axes.set(xticks=range(10), xlabel="digit", ylabel="% of the split", title="Class balance",
             ylim=(0, 1.3 * axes.get_ylim()[1]))
    axes.legend(fontsize=8, loc="upper center", ncols=len(splits))
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_significance(scores: torch.Tensor, kept: torch.Tensor, layer: int = 1,
                      path: str | os.PathLike | None = None) -> Figure:
    """Return one layer's significance scores, highest first, coloured by whether the neuron is kept."""
    order = torch.sort(scores, descending=True, stable=True).indices
    survives = torch.zeros(len(scores), dtype=torch.bool)
    survives[kept] = True
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.add_subplot()
    colours = ["tab:green" if survives[i] else "tab:gray" for i in order]
    axes.bar(range(len(scores)), scores[order], width=1.0, color=colours)
    axes.set(xlabel="neurons, most significant first",
             ylabel="significance", title=f"Hidden layer {layer}: {len(kept)} of {len(scores)} neurons survive "
                                            f"(green)")
    if path is not None:
        save_figure(figure, path)
    return figure


# --- batch runs -----------------------------------------------------------------------------------------------
def _parse_value(name: str, text: str):
    kind = PARAMETERS[name]
    if text.strip().lower() in ("none", "null", ""):
        if kind in ("path", "int?"):
            return None
        raise NbpruneError(f"parameter {name} cannot be None: expected {_expected(kind)}.")
    if kind in ("path", "str"):
        return text
    if kind == "int|auto" and text.strip() == "auto":
        return "auto"
    if kind == "bool" and text.strip().lower() in BOOLEANS:
        return BOOLEANS[text.strip().lower()]
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = text
    if kind == "ints" and isinstance(value, int):
        value = [value]
    if kind == "ints" and isinstance(value, (list, tuple)) and all(type(v) is int for v in value) and value:
        return list(value)
    if kind == "float" and type(value) in (int, float):
        return float(value)
    if kind in ("int", "int?", "int|auto") and type(value) is int:
        return value
    raise NbpruneError(f"parameter {name}={text!r} is not allowed: expected {_expected(kind)}.")


def _expected(kind: str) -> str:
    return {"path": "a folder", "str": "a word", "int": "a whole number", "int?": "a whole number or None",
            "int|auto": "a whole number or auto", "float": "a number", "ints": "whole numbers like 256,64",
            "bool": "true or false"}[kind]


def parse_parameters(pairs: list[list[str]]) -> dict:
    """Return the `-p NAME VALUE` pairs as a dict of typed values (ints, floats, lists, None, strings)."""
    values = {}
    for name, text in pairs:
        if name not in PARAMETERS:
            raise NbpruneError(f"unknown notebook parameter {name!r}: expected one of {', '.join(PARAMETERS)}.")
        values[name] = _parse_value(name, text)
    return values


def notebooks_path(notebooks_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder holding the six workbook notebooks: the argument, the checkout's, or ./notebooks."""
    candidates = [Path(notebooks_dir)] if notebooks_dir is not None else [
        Path(__file__).resolve().parent.parent / "notebooks", project_root() / "notebooks"]
    for folder in candidates:
        if all((folder / f"{name}.ipynb").is_file() for name in NOTEBOOKS):
            return folder
    raise NbpruneError(f"the workbook notebooks ({', '.join(n + '.ipynb' for n in NOTEBOOKS)}) are not in "
                       f"{' or '.join(str(c) for c in candidates)}: run from a checkout of nbprune, or pass "
                       f"notebooks_dir=... pointing at its notebooks/ folder.")


def _kernel_config(socket_dir: str):
    """Return papermill's kernel settings: this interpreter's python3 kernel, over local sockets (no TCP ports)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from traitlets.config import Config

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        raise NbpruneError(f"no python3 Jupyter kernel for {sys.executable}: install one with "
                           f"`{sys.executable} -m pip install ipykernel` (or `pip install 'nbprune[notebooks]'`).") \
            from None
    if os.name == "nt":  # no Unix sockets: the kernel's default TCP transport
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "kernel")}})


def run_workbook(session_dir: str | os.PathLike | None = None, profile: str = "quick",
                 parameters: dict | None = None, notebooks_dir: str | os.PathLike | None = None) -> Path:
    """Run the six notebooks in order into one session folder; return the folder of executed copies."""
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        raise NbpruneError("the workbook needs papermill: pip install 'nbprune[notebooks]'.") from None
    if profile not in PROFILES:
        raise NbpruneError(f"profile {profile!r} is not known: expected one of {', '.join(PROFILES)}.")
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise NbpruneError(f"unknown notebook parameter(s) {', '.join(unknown)}: expected any of "
                           f"{', '.join(PARAMETERS)}.")
    source = notebooks_path(notebooks_dir)
    session = session_path(session_dir if session_dir is not None else parameters.get("session_dir"))
    values = {**PROFILES[profile], **parameters, "session_dir": str(session),
              "data_root": str(data_path(parameters.get("data_root")))}
    executed = session / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        notebook, copy = source / f"{name}.ipynb", executed / f"{name}.ipynb"
        declared = papermill.inspect_notebook(str(notebook))
        log.info("running %s", name)
        with tempfile.TemporaryDirectory(prefix="nbprune-kernel-") as sockets:
            try:
                papermill.execute_notebook(str(notebook), str(copy), kernel_name="python3",
                                           parameters={k: v for k, v in values.items() if k in declared},
                                           progress_bar={"desc": name}, config=_kernel_config(sockets))
            except PapermillExecutionError as error:
                reason = (str(error.evalue).strip().splitlines() or [""])[0]
                raise NbpruneError(f"notebook {name} failed in cell [{error.exec_count}]: {error.ename}: {reason} "
                                   f"(executed copy: {copy})") from None
    return executed

"""Export: a standalone folder that runs a pruned model with torch alone, plus TorchScript (and ONNX) files."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import NbpruneError
from .io import atomic_path, load_pruned_model, load_state_dict, write_text_atomic
from .model import SimpleNN

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
TORCHSCRIPT_FILE, ONNX_FILE = "model_torchscript.pt", "model.onnx"
STANDALONE = Path(__file__).resolve().parent / "standalone"  # the folder's files, with placeholder constants
README = '''# A pruned MNIST classifier ({neurons} hidden neurons, {parameters:,} parameters)

Exported by `nbprune export`. Needs only torch. Classify digits (28x28 PNG or .npy, white digit on black, like
MNIST):

    python predict.py digit.png digits.npy

Or in Python, in the seed's three steps:

    from model import SimpleNN
    from loader import load_pruned_model, read_pixels, standardise
    model = SimpleNN()
    load_pruned_model(model, "best_model.pth")
    model(standardise(read_pixels("digit.png"))).argmax(dim=1)

The model takes standardised pixels, `(pixels / 255 - {mean:.4f}) / {std:.4f}`, of shape [batch, 784] or
[batch, 28, 28]; `standardise` in loader.py does this. `{torchscript}` is the same network as TorchScript
(`torch.jit.load`), with the same input.{onnx}
'''


def training_statistics(model_file: str | os.PathLike) -> tuple[float, float, str]:
    """Return (mean, std, activation) from the run.json of the session holding `model_file`, else MNIST's."""
    for folder in list(Path(model_file).resolve().parents)[:3]:  # <session>/<i>/prune_w_retrain/best_model.pth
        try:
            config = json.loads((folder / "run.json").read_text())["config"]
            return float(config["mean"]), float(config["std"]), str(config.get("activation", "relu"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return MNIST_MEAN, MNIST_STD, "relu"


def _standalone(name: str, **constants: str) -> str:
    """Return the text of standalone/<name> with each `NAME = value` line given the new value."""
    text = (STANDALONE / name).read_text()
    for constant, value in constants.items():
        text, found = re.subn(rf"^{re.escape(constant)} = [^#\n]*?(?=  #|$)", lambda _: f"{constant} = {value}",
                              text, count=1, flags=re.M)
        if not found:
            raise RuntimeError(f"standalone/{name} lacks the line `{constant} = ...` that export fills in")
    return text


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def _write_torchscript(network: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated since torch 2.9, yet what C++ and mobile read
        scripted = torch.jit.script(network)
    with atomic_path(path) as temporary:
        scripted.save(str(temporary))


def _write_onnx(network: nn.Module, path: Path) -> None:
    example = torch.zeros(2, network[1].in_features)
    with atomic_path(path) as temporary, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), str(temporary), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False)


def export_model(model_file: str | os.PathLike, out_dir: str | os.PathLike, onnx: bool | None = None) -> Path:
    """Write best_model.pth, model.py, loader.py, predict.py, README.md and TorchScript (and ONNX); return the folder.

    onnx=None writes model.onnx when the onnx extra is installed; True insists on it; False leaves it out.
    """
    model_file, out = Path(model_file), Path(out_dir)
    state = load_state_dict(model_file)
    if onnx and not _onnx_available():
        raise NbpruneError("ONNX export needs the onnx and onnxscript packages: pip install 'nbprune[onnx]', "
                           "or export without --onnx.")
    if out.exists() and not out.is_dir():
        raise NbpruneError(f"{out} exists and is not a folder: choose another OUT_DIR.")
    weights = [value for key, value in state.items() if key.endswith("weight")]
    hidden = tuple(int(weight.shape[0]) for weight in weights[:-1])
    mean, std, activation = training_statistics(model_file)
    model = load_pruned_model(SimpleNN(hidden, activation=activation), model_file)
    network = nn.Sequential(nn.Flatten(), *model.sequence()).eval()  # a plain module TorchScript and ONNX take

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "best_model.pth") as temporary:
        shutil.copyfile(model_file, temporary)
    write_text_atomic(out / "model.py", _standalone("model.py", HIDDEN=repr(hidden),
                                                    ACTIVATION=json.dumps(activation)))
    write_text_atomic(out / "loader.py", _standalone("loader.py", **{"MEAN, STD": f"{mean!r}, {std!r}"}))
    write_text_atomic(out / "predict.py", _standalone("predict.py"))
    _write_torchscript(network, out / TORCHSCRIPT_FILE)
    wrote_onnx = False
    if onnx or (onnx is None and _onnx_available()):
        try:
            _write_onnx(network, out / ONNX_FILE)
            wrote_onnx = True
        except Exception as error:  # the ONNX exporter changes often; the rest of the folder is still good
            if onnx:
                raise NbpruneError(f"ONNX export failed ({type(error).__name__}: {error}).") from error
            warnings.warn(f"skipped {ONNX_FILE}: the ONNX export failed ({type(error).__name__}: {error})")
    readme = README.format(
        neurons=" + ".join(map(str, hidden)), parameters=sum(int(value.numel()) for value in state.values()),
        mean=mean, std=std, torchscript=TORCHSCRIPT_FILE,
        onnx=f" `{ONNX_FILE}` is the same network as ONNX (input `input` of shape [batch, 784], output "
             f"`logits`)." if wrote_onnx else "")
    write_text_atomic(out / "README.md", readme)
    return out


def run_standalone(folder: str | os.PathLike, *inputs: str | os.PathLike) -> str:
    """Run the folder's predict.py in a fresh interpreter that cannot import nbprune; return what it printed."""
    folder = Path(folder).resolve()
    without_nbprune = ("import runpy, sys; sys.modules['nbprune'] = None; sys.argv = sys.argv[1:]; "
                       "runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [sys.executable, "-I", "-B", "-c", without_nbprune, str(folder / "predict.py"), *map(str, inputs)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder.parent)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise NbpruneError(f"the standalone folder {folder} failed (exit {result.returncode}): {last_line}")
    return result.stdout

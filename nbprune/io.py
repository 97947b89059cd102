"""Files: atomic writes, the seed's text tables, and safe loading of model files (weights_only=True)."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from .errors import ModelFileError


UMASK = os.umask(0o022)  # read the process umask (the only way is to set it), then put it back at once
os.umask(UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step, on failure it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the result the mode open() would
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def save_model_atomic(state_dict: dict, path: str | os.PathLike) -> Path:
    """Save a state dict with torch.save, atomically, and return the path."""
    with atomic_path(path) as temporary:
        torch.save(state_dict, temporary)
    return Path(path)


def format_table(header: Sequence[str], rows: Sequence[Sequence[float]]) -> str:
    """Return the seed's table format: a space-separated header and rows of %g numbers."""
    lines = [" ".join(header)]
    lines += [" ".join(f"{value:g}" for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def read_table(path: str | os.PathLike) -> tuple[list[str], list[list[float]]]:
    """Return the header and float rows of a table written by format_table."""
    lines = Path(path).read_text().split("\n")
    header = lines[0].split()
    rows = [[float(value) for value in line.split()] for line in lines[1:] if line.strip()]
    return header, rows


def _unreadable(file: Path, error: Exception) -> ModelFileError:
    reason = f": {str(error).splitlines()[0]}" if str(error) else ""
    if isinstance(error, pickle.UnpicklingError):  # torch's text here would suggest weights_only=False
        reason = ""
    return ModelFileError(f"{file} is not a readable model file (truncated, damaged or not a torch.save file: "
                          f"{type(error).__name__}{reason}). Expected a best_model.pth written by nbprune; "
                          f"copy it again.")


def load_state_dict(file: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Return the tensors of a model file, refusing anything but plain tensors (weights_only=True)."""
    file = Path(file)
    if not file.is_file():
        raise ModelFileError(f"model file {file} does not exist: expected a best_model.pth written by nbprune.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # the refusal below says more
            state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(error))
        if unsafe:
            raise ModelFileError(
                f"refused to load {file}: it asks to import and call {unsafe.group(1)} while loading, which could "
                f"run any code; nbprune loads plain tensors only (weights_only=True), so nothing in it ran. Ask the "
                f"sender for a state_dict saved with torch.save(model.state_dict(), path).") from error
        with open(file, "rb") as stream:
            pickled = stream.read(2) in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
        if not pickled:  # a text file or random bytes: the unpickler stumbled on its first byte
            raise _unreadable(file, error) from error
        opcode = re.search(r"Unsupported operand (\d+)", str(error))
        stopped_at = f"pickle opcode {opcode.group(1)}" if opcode else "an instruction it does not allow"
        raise ModelFileError(
            f"refused to load {file}: it is not a plain tensor file (the safe unpickler stopped at {stopped_at}); "
            f"nothing in it ran. Expected a best_model.pth written by nbprune or a state_dict saved with "
            f"torch.save(model.state_dict(), path).") from error
    except Exception as error:  # a foreign or damaged file fails in many ways: zip, EOF, OS, KeyError, ...
        raise _unreadable(file, error) from error
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise ModelFileError(f"{file} does not hold a model: expected a state_dict mapping layer names to "
                             f"tensors, found {type(state).__name__}.")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(f"{file} holds NaN or Inf values in {key}: the model it came from diverged. "
                                 f"Use an earlier iteration's best_model.pth.")
    return state


def _set_module(root: nn.Module, dotted_name: str, module: nn.Module) -> None:
    parent_name, _, child = dotted_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def load_pruned_model(model: nn.Module, file: str | os.PathLike) -> nn.Module:
    """Reshape `model`'s linear layers to the file's shapes, load its weights, and return the same model."""
    state = load_state_dict(file)
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    expected = {f"{name}.{kind}" for name, module in linears for kind, _ in module.named_parameters()}
    extra, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if extra or missing:
        raise ModelFileError(
            f"{file} is a model of another architecture: "
            + (f"it has layers the model lacks ({', '.join(extra)})" if extra else "")
            + ("; " if extra and missing else "")
            + (f"it lacks the model's {', '.join(missing)}" if missing else "")
            + f". Build the model the file was saved from (e.g. SimpleNN(hidden=...)) and load into that.")
    previous_out = None
    for position, (name, layer) in enumerate(linears):
        weight = state[f"{name}.weight"]
        if weight.dim() != 2:
            raise ModelFileError(f"{file}: layer {name} has a weight of shape {list(weight.shape)}, "
                                 f"expected a matrix [out_features, in_features].")
        out_features, in_features = weight.shape
        bias = state.get(f"{name}.bias")
        if bias is not None and list(bias.shape) != [out_features]:
            raise ModelFileError(f"{file}: layer {name} has bias of shape {list(bias.shape)}, expected "
                                 f"[{out_features}] to match its weight.")
        if position == 0 and in_features != layer.in_features:
            raise ModelFileError(f"{file} does not fit the model: layer {name} takes {in_features} inputs in the "
                                 f"file (weight {list(weight.shape)}), the model's takes {layer.in_features} "
                                 f"(weight {list(layer.weight.shape)}). Load it into a model built for "
                                 f"{in_features} inputs (SimpleNN(in_features={in_features}, ...)).")
        if position == len(linears) - 1 and out_features != layer.out_features:
            raise ModelFileError(f"{file} does not fit the model: layer {name} has {out_features} outputs in the "
                                 f"file (weight {list(weight.shape)}), the model's has {layer.out_features} "
                                 f"(weight {list(layer.weight.shape)}). Load it into a model built for "
                                 f"{out_features} classes (SimpleNN(num_classes={out_features}, ...)).")
        if previous_out is not None and in_features != previous_out:
            raise ModelFileError(f"{file} is inconsistent: layer {name} takes {in_features} inputs but the "
                                 f"layer before it gives {previous_out}.")
        previous_out = out_features
        if tuple(weight.shape) != tuple(layer.weight.shape):
            replacement = nn.Linear(in_features, out_features, bias=bias is not None)
            _set_module(model, name, replacement.to(layer.weight.device, layer.weight.dtype))
    model.load_state_dict(state)
    return model

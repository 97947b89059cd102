"""Files: atomic writes, the reference's text tables, and self-describing model files that are safe to load.

A model file is the seed's `torch.save(state_dict)`, loaded with `weights_only=True`. nbprune adds its record
(architecture, activation, standardisation, dataset, iteration, criterion) to the state dict's own `_metadata`,
the place PyTorch keeps per-module versions: plain strings and numbers that cannot run code, invisible to
`model.load_state_dict`. Files are written from memory, so the same weights give the same bytes.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from .errors import ModelFileError, NbpruneError, StorageError
from .model import KeepInputs, ModelRecord, SimpleNN

UMASK = os.umask(0o022)  # read the process umask (the only way is to set it), then put it back at once
os.umask(UMASK)
RECORD_KEY = "nbprune"
INDEX_KEY = "keep_inputs.index"
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# A loaded model must give finite logits for every input this many standard deviations from the training mean
# (standardised MNIST pixels lie within 2.9 of it).
PROBE_RADIUS = 10.0


def cannot_write(path: Path, error: OSError) -> StorageError:
    """Return the one-line error for a write that the file system refused."""
    reason = error.strerror or type(error).__name__
    return StorageError(f"could not write {path} ({reason}): make room on the disk or choose a folder you can "
                        f"write to; the file is as it was before.")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step, on failure it vanishes.

    A refused write (read-only, full disk, a file in the way) becomes a StorageError naming the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the result the mode open() would
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise cannot_write(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed to disk before the rename) and return the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def format_table(header: Sequence[str], rows: Sequence[Sequence[float]]) -> str:
    """Return the reference workflow's table format: a space-separated header and rows of %g numbers."""
    lines = [" ".join(header)]
    lines += [" ".join(f"{value:g}" for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def read_table(path: str | os.PathLike) -> tuple[list[str], list[list[float]]]:
    """Return the header and rows of a table written by format_table; every value must be a finite number."""
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise NbpruneError(f"{path} is not a text table (it is not UTF-8): expected a file nbprune wrote; "
                           f"delete it and run that step again.") from None
    except OSError as error:
        raise NbpruneError(f"{path} cannot be read ({error.strerror}): check the file exists and is "
                           f"readable.") from None
    header = lines[0].split()
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            row = [float(value) for value in line.split()]
        except ValueError:
            row = []
        if len(row) != len(header) or not all(math.isfinite(value) for value in row):
            raise NbpruneError(f"{path} line {number}: {line[:80]!r} is not a row of {len(header)} finite numbers "
                               f"under the header {' '.join(header)!r}: the file is damaged; run that step again.")
        rows.append(row)
    if not header or not rows:
        raise NbpruneError(f"{path} holds no table (header and at least one row): the file is damaged or empty; "
                           f"run that step again.")
    return header, rows


# --- model files ----------------------------------------------------------------------------------------------
def save_model_file(model: nn.Module | dict, path: str | os.PathLike, *, iteration: int | None = None,
                    criterion: str | None = None, teacher: dict | None = None) -> Path:
    """Save a model (or a state dict) atomically; a SimpleNN's file also carries its record (with the teacher file
    that trained it, when one did). Return the path."""
    if isinstance(model, nn.Module):
        state = model.state_dict()
        record = ModelRecord.of(model, iteration=iteration, criterion=criterion, teacher=teacher) \
            if isinstance(model, SimpleNN) else None
    else:
        state, record = model, None
    ordered = OrderedDict((key, value.detach().cpu().clone()) for key, value in state.items())  # compact storages
    ordered._metadata = OrderedDict({"": {"version": 1}})
    if record is not None:
        ordered._metadata[""][RECORD_KEY] = record.to_dict()
    buffer = io.BytesIO()  # from memory the zip entries are named 'archive/...', not after a random temporary file
    torch.save(ordered, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def save_model_atomic(state_dict: dict, path: str | os.PathLike) -> Path:
    """Save a plain state dict atomically and return the path."""
    return save_model_file(state_dict, path)


def _unreadable(file: Path, error: Exception) -> ModelFileError:
    reason = f": {str(error).splitlines()[0][:200]}" if str(error) else ""
    if isinstance(error, pickle.UnpicklingError):  # torch's text here would suggest weights_only=False
        reason = ""
    return ModelFileError(f"{file} is not a readable model file (truncated, damaged or not a torch.save file: "
                          f"{type(error).__name__}{reason}). Expected a best_model.pth written by nbprune; "
                          f"copy it again.")


def _called_globals(file: Path) -> list[str]:
    """Return the functions and classes a pickle would import when loaded, read without running it."""
    try:
        data = file.read_bytes()
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                member = next((name for name in archive.namelist() if name.endswith("data.pkl")), None)
                data = archive.read(member) if member else b""
        found, strings = [], []
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(argument).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(argument, str):
                strings.append(argument)
        return found
    except Exception:  # a damaged pickle: what it calls cannot be read, and it was refused anyway
        return []


SAFE_GLOBALS = ("collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage", "torch.BFloat16Storage",
                "torch.LongStorage")


def _is_torchscript(file: Path) -> bool:
    try:
        with zipfile.ZipFile(file) as archive:
            return any(name.endswith(("/constants.pkl", "/code/")) or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _torch_load(file: Path):
    """Return what torch.load(weights_only=True) reads from `file`, with every refusal explained."""
    if _is_torchscript(file):
        raise ModelFileError(f"{file} is a TorchScript program (like the model_torchscript.pt an export writes), "
                             f"not a state_dict: use the best_model.pth it was exported from, or torch.jit.load it "
                             f"yourself.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # the refusal below says more
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        with open(file, "rb") as stream:
            pickled = stream.read(2) in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
        if not pickled:  # a text file or random bytes: the unpickler stumbled on its first byte
            raise _unreadable(file, error) from error
        unsafe = [name for name in _called_globals(file) if name not in SAFE_GLOBALS]
        named = re.search(r"GLOBAL ([\w.]+)", str(error))
        if named and named.group(1) not in unsafe:
            unsafe.insert(0, named.group(1))
        if unsafe:
            raise ModelFileError(
                f"refused to load {file}: it asks to import and call {', '.join(dict.fromkeys(unsafe))} while "
                f"loading, which could run any code; nbprune loads plain tensors only (weights_only=True), so "
                f"nothing in it ran. Ask the sender for a state_dict saved with "
                f"torch.save(model.state_dict(), path).") from error
        raise ModelFileError(
            f"refused to load {file}: it is not a plain tensor file (the safe unpickler stopped at an instruction "
            f"it does not allow); nothing in it ran. Expected a best_model.pth written by nbprune or a state_dict "
            f"saved with torch.save(model.state_dict(), path).") from error
    except Exception as error:  # a foreign or damaged file fails in many ways: zip, EOF, OS, KeyError, ...
        raise _unreadable(file, error) from error


def _check_tensor(file: Path, key: str, tensor: torch.Tensor) -> None:
    """Refuse anything but a dense, real tensor with values: float weights, or the int64 kept-input index."""
    def refuse(what: str) -> ModelFileError:
        return ModelFileError(f"{file} holds {what} in {key}: expected dense floating-point weights as "
                              f"torch.save(model.state_dict(), path) writes them. Use a best_model.pth that "
                              f"nbprune wrote.")
    if tensor.is_nested:
        raise refuse("a nested tensor")
    if tensor.layout != torch.strided:
        raise refuse(f"a {str(tensor.layout).removeprefix('torch.')} tensor")
    if tensor.is_quantized:
        raise refuse(f"a quantized tensor ({tensor.dtype})")
    if tensor.is_meta or tensor.device.type == "meta":
        raise refuse("a meta tensor (shapes without values)")
    if key.endswith(INDEX_KEY):
        if tensor.dtype != torch.int64 or tensor.dim() != 1:
            raise refuse(f"a {tensor.dtype} tensor of shape {list(tensor.shape)} (the kept inputs must be a 1-D "
                         f"int64 index)")
        return
    if tensor.dtype not in FLOAT_DTYPES:
        raise refuse(f"{tensor.dtype} values")
    if not torch.isfinite(tensor).all():
        raise ModelFileError(f"{file} holds NaN or Inf values in {key}: the model it came from diverged. "
                             f"Use an earlier iteration's best_model.pth.")


def read_model_file(file: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Return a model file's tensors and its nbprune record (None for a plain state dict), both checked."""
    file = Path(file)
    if not file.is_file():
        kind = "is a folder" if file.is_dir() else "does not exist"
        raise ModelFileError(f"model file {file} {kind}: expected a best_model.pth written by nbprune.")
    state = _torch_load(file)
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise ModelFileError(f"{file} does not hold a model: expected a state_dict mapping layer names to "
                             f"tensors, found {type(state).__name__}.")
    for key, tensor in state.items():
        _check_tensor(file, key, tensor)
    metadata = getattr(state, "_metadata", None)
    record = metadata.get("", {}).get(RECORD_KEY) if isinstance(metadata, dict) and \
        isinstance(metadata.get(""), dict) else None
    return dict(state), record


def load_state_dict(file: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Return the tensors of a model file, refusing anything but plain tensors (weights_only=True)."""
    return read_model_file(file)[0]


def read_record(file: str | os.PathLike) -> ModelRecord | None:
    """Return the record a model file carries (None for a plain state dict), checked against its tensors."""
    state, record = read_model_file(file)
    if record is None:
        return None
    described = ModelRecord.from_dict(record, file)
    check_record_matches(file, described, state)
    return described


def check_record_matches(file, record: ModelRecord, state: dict[str, torch.Tensor]) -> None:
    """Refuse a record that disagrees with the tensors beside it."""
    weights = [state.get(f"fc{k}.weight") for k in range(1, len(record.hidden) + 2)]
    shapes = [list(w.shape) if w is not None else None for w in weights]
    inputs = len(state[INDEX_KEY]) if INDEX_KEY in state else record.in_features
    expected = [[out, into] for into, out in zip([inputs, *record.hidden], [*record.hidden, record.num_classes])]
    if shapes != expected or f"fc{len(record.hidden) + 2}.weight" in state:
        raise ModelFileError(f"{file}: its record describes a {record.describe()} but its weights have shapes "
                             f"{shapes}: the file is damaged or was edited; use a best_model.pth nbprune wrote.")


def _set_module(root: nn.Module, dotted_name: str, module: nn.Module) -> None:
    parent_name, _, child = dotted_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _check_against_model(file: Path, record: ModelRecord, model: nn.Module) -> None:
    """Refuse to load a file into a SimpleNN of another activation, depth, input size or number of classes."""
    if not isinstance(model, SimpleNN):
        return
    differences = [f"{name} {mine!r} in the file, {theirs!r} in the model" for name, mine, theirs in (
        ("activation", record.activation, model.activation), ("hidden layers", len(record.hidden), len(model.hidden)),
        ("inputs", record.in_features, model.in_features), ("classes", record.num_classes, model.num_classes))
        if mine != theirs]
    if differences:
        raise ModelFileError(f"{file} holds a {record.describe()}, which does not fit the model "
                             f"({'; '.join(differences)}). Build the right model from the file alone with "
                             f"SimpleNN.from_file(path), or SimpleNN(hidden={list(record.hidden)}, "
                             f"activation={record.activation!r}).")


def load_pruned_model(model: nn.Module, file: str | os.PathLike) -> nn.Module:
    """Reshape `model`'s linear layers to the file's shapes, load its weights, and return the same model.

    A file nbprune wrote carries a record: a SimpleNN of another activation or depth is refused, and the model
    learns the file's standardisation and dataset (`model.spec`). A plain state dict loads as in the seed.
    """
    file = Path(file)
    state, raw_record = read_model_file(file)
    record = ModelRecord.from_dict(raw_record, file) if raw_record is not None else None
    if record is not None:
        check_record_matches(file, record, state)
        _check_against_model(file, record, model)
    index = state.pop(INDEX_KEY, None)
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    expected = {f"{name}.{kind}" for name, module in linears for kind, _ in module.named_parameters()}
    extra, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if extra or missing:
        raise ModelFileError(
            f"{file} is a model of another architecture: "
            + (f"it has layers the model lacks ({', '.join(extra)})" if extra else "")
            + ("; " if extra and missing else "")
            + (f"it lacks the model's {', '.join(missing)}" if missing else "")
            + ". Build the model the file was saved from (e.g. SimpleNN(hidden=...)) and load into that.")
    model_inputs = getattr(model, "in_features", None)
    if index is not None:
        if not isinstance(model, SimpleNN):
            raise ModelFileError(f"{file} prunes input features ({INDEX_KEY}); only SimpleNN can load it: "
                                 f"build it with SimpleNN.from_file(path).")
        if len(index) < 1 or (index[1:] <= index[:-1]).any() or int(index[0]) < 0 or int(index[-1]) >= model_inputs:
            raise ModelFileError(f"{file}: {INDEX_KEY} must list kept inputs in increasing order, each from 0 to "
                                 f"{model_inputs - 1}: the file is damaged; use a best_model.pth nbprune wrote.")
    previous_out = None
    for position, (name, layer) in enumerate(linears):
        weight = state[f"{name}.weight"]
        if weight.dim() != 2 or weight.numel() == 0:
            raise ModelFileError(f"{file}: layer {name} has a weight of shape {list(weight.shape)}, "
                                 f"expected a non-empty matrix [out_features, in_features].")
        out_features, in_features = weight.shape
        bias = state.get(f"{name}.bias")
        if bias is not None and list(bias.shape) != [out_features]:
            raise ModelFileError(f"{file}: layer {name} has bias of shape {list(bias.shape)}, expected "
                                 f"[{out_features}] to match its weight.")
        if position == 0:
            takes = len(index) if index is not None else layer.in_features if model_inputs is None else model_inputs
            if in_features != takes:
                raise ModelFileError(f"{file} does not fit the model: layer {name} takes {in_features} inputs in "
                                     f"the file (weight {list(weight.shape)}), the model's takes {takes} "
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
    if isinstance(model, SimpleNN):
        device = model.linears[0].weight.device
        model.keep_inputs = KeepInputs(index).to(device) if index is not None else None
        model.spec = record.spec if record is not None else model.spec
        if index is not None:
            state[INDEX_KEY] = index
    model.load_state_dict(state)
    if isinstance(model, SimpleNN):
        _refuse_overflow(file, model)
    return model


def _refuse_overflow(file: Path, model: SimpleNN) -> None:
    """Refuse weights so large that some input within PROBE_RADIUS of the mean gets Inf or NaN logits.

    Each layer's outputs are bounded by |W| @ (bound of its inputs) + |b|; a ReLU keeps the bound, a sigmoid's
    outputs stay below 1. Finite weights of 3e38 pass the finite check but overflow on any input.
    """
    limit = torch.finfo(torch.promote_types(model.linears[0].weight.dtype, torch.float32)).max
    device = model.linears[0].weight.device
    bound = torch.full((model.inputs_kept,), PROBE_RADIUS, dtype=torch.float64, device=device)
    for position, layer in enumerate(model.linears):
        if position and model.activation == "sigmoid":
            bound = bound.clamp(max=1.0)
        bound = layer.weight.detach().double().abs() @ bound + layer.bias.detach().double().abs()
        if not float(bound.max()) <= limit:  # NaN (Inf times a zero weight) fails this too
            largest = max(float(each.weight.detach().abs().max()) for each in model.linears)
            raise ModelFileError(f"{file} holds weights so large (up to {largest:.3g}) that the model's outputs "
                                 f"overflow to Inf or NaN for inputs within {PROBE_RADIUS:g} standard deviations "
                                 f"of the mean: the model it came from diverged. Use an earlier iteration's "
                                 f"best_model.pth.")

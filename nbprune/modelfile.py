"""Model files: the record they carry, reading them safely, writing them, and loading them into a network.

A model file is the reference's `torch.save(state_dict)`, loaded with `weights_only=True`. nbprune adds its record
(architecture, activation, standardisation, dataset, iteration, criterion) to the state dict's own `_metadata`,
the place PyTorch keeps per-module versions: plain strings and numbers that cannot run code, invisible to
`model.load_state_dict`. Files are written from memory, so the same weights give the same bytes.

This module lies below model.py, whose `SimpleNN.from_file` calls it: it knows the network by what it has
(`RecordedNetwork`) rather than by importing SimpleNN, so no import runs back up.
"""

from __future__ import annotations

import errno
import io
import math
import os
import pickle
import pickletools
import re
import stat
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

from .config import ACTIVATIONS
from .data import InputSpec
from .errors import ModelFileError
from .files import write_bytes_atomic

RECORD_KEY = "nbprune"
RECORD_FORMAT = 1
INDEX_KEY = "keep_inputs.index"
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# A loaded model must give finite logits for every input this many standard deviations from the training mean
# (standardised MNIST pixels lie within 2.9 of it).
PROBE_RADIUS = 10.0


class Advice(NamedTuple):
    """What a refusal of a file that is missing or holds NaN/Inf tells the user to do (a teacher's load gives its own,
    nbprune.teacher.TEACHER_ADVICE)."""

    expected: str  # what the path should hold
    diverged: str  # what to use instead of a file whose model diverged


MODEL_ADVICE = Advice("expected a best_model.pth written by nbprune", "Use an earlier iteration's best_model.pth.")


@runtime_checkable
class RecordedNetwork(Protocol):
    """The network a record describes and a model file loads into with its kept inputs: SimpleNN in model.py."""

    activation: str
    spec: InputSpec | None

    @property
    def hidden(self) -> tuple[int, ...]: ...

    @property
    def in_features(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def inputs_kept(self) -> int: ...

    @property
    def linears(self) -> list[nn.Linear]: ...

    def keep(self, index: torch.Tensor | None) -> None: ...


# --- the record a model file carries ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRecord:
    """What a model file needs to be rebuilt and used alone: architecture, standardisation, dataset, provenance."""

    hidden: tuple[int, ...]
    activation: str
    in_features: int
    num_classes: int
    spec: InputSpec | None = None
    iteration: int | None = None
    criterion: str | None = None
    nbprune: str | None = None
    teacher: dict | None = None  # the teacher file that trained it: {"file": path, "sha256": its content's hash}

    @classmethod
    def of(cls, model: RecordedNetwork, *, iteration: int | None = None, criterion: str | None = None,
           teacher: dict | None = None) -> "ModelRecord":
        """Return the record of a SimpleNN as it is now."""
        from . import __version__
        return cls(model.hidden, model.activation, model.in_features, model.num_classes, model.spec, iteration,
                   criterion if isinstance(criterion, str) else None, __version__, teacher)

    def to_dict(self) -> dict:
        """Return the record as plain values (what torch.load(weights_only=True) may read)."""
        return {"format": RECORD_FORMAT, "hidden": list(self.hidden), "activation": self.activation,
                "in_features": self.in_features, "num_classes": self.num_classes,
                "input": self.spec.to_dict() if self.spec is not None else None,
                "iteration": self.iteration, "criterion": self.criterion, "nbprune": self.nbprune,
                **({"teacher": dict(self.teacher)} if self.teacher is not None else {})}

    @classmethod
    def from_dict(cls, record: Any, file: str | os.PathLike) -> "ModelRecord":
        """Return the record a model file holds, every field checked."""
        def corrupt(what: str) -> ModelFileError:
            return ModelFileError(f"{file} carries a damaged nbprune record ({what}): copy the file again, or "
                                  f"use a best_model.pth that nbprune wrote.")

        if isinstance(record, dict) and "layers" in record:
            raise ModelFileError(f"{file} holds a network of layers (as nbprune.networkfile saves one), not an "
                                 f"MLP: rebuild it with nbprune.networkfile.network_from_file(path).")
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            raise corrupt(f"format {record.get('format') if isinstance(record, dict) else record!r}, expected "
                          f"{RECORD_FORMAT}")
        hidden, activation = record.get("hidden"), record.get("activation")
        in_features, classes = record.get("in_features"), record.get("num_classes")
        if not isinstance(hidden, list) or not hidden or not all(_whole(h) and h >= 1 for h in hidden):
            raise corrupt(f"hidden {hidden!r}, expected whole numbers >= 1")
        if activation not in ACTIVATIONS:
            raise corrupt(f"activation {activation!r}, expected one of {', '.join(ACTIVATIONS)}")
        if not (_whole(in_features) and in_features >= 1 and _whole(classes) and classes >= 1):
            raise corrupt(f"in_features {in_features!r} and num_classes {classes!r}, expected whole numbers >= 1")
        iteration, criterion = record.get("iteration"), record.get("criterion")
        if not (iteration is None or (_whole(iteration) and iteration >= 0)):
            raise corrupt(f"iteration {iteration!r}")
        if not (criterion is None or isinstance(criterion, str)):
            raise corrupt(f"criterion {criterion!r}")
        spec = _spec_from_dict(record.get("input"), in_features, classes, corrupt)
        version, teacher = record.get("nbprune"), _teacher_from_dict(record.get("teacher"), corrupt)
        return cls(tuple(hidden), activation, in_features, classes, spec, iteration, criterion,
                   version if isinstance(version, str) else None, teacher)

    def describe(self) -> str:
        """Return the network in one phrase, e.g. '784-256-64-10 relu network'."""
        return f"{'-'.join(map(str, (self.in_features, *self.hidden, self.num_classes)))} {self.activation} network"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _teacher_from_dict(teacher: Any, corrupt) -> dict | None:
    """Return a record's teacher (the file that taught the model and its sha256), checked; None when it has none."""
    if not (teacher is None or (isinstance(teacher, dict) and isinstance(teacher.get("file"), str)
                                and re.fullmatch(r"[0-9a-f]{64}", str(teacher.get("sha256"))))):
        raise corrupt(f"teacher {teacher!r}, expected its file and sha256")
    return teacher


def _spec_from_dict(values: Any, in_features: int, classes: int, corrupt) -> InputSpec | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise corrupt(f"input {values!r}")
    dataset, names = values.get("dataset"), values.get("classes")
    if not isinstance(dataset, str) or not isinstance(names, list) or len(names) != classes or \
            not all(isinstance(name, str) for name in names):
        raise corrupt(f"dataset {dataset!r} with classes {names!r}, expected {classes} class names")
    statistics = []
    for label in ("mean", "std"):
        value = values.get(label)
        numbers = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) != in_features:
            raise corrupt(f"{label} has {len(value)} values for {in_features} features")
        if not numbers or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  for v in numbers):
            raise corrupt(f"{label} {value!r}, expected finite numbers")
        if label == "std" and min(numbers) <= 0:
            raise corrupt(f"std {value!r}, expected numbers > 0")
        statistics.append(tuple(float(v) for v in value) if isinstance(value, list) else float(value))
    shape = values.get("image_shape")
    if shape is not None and (not isinstance(shape, list) or not all(_whole(s) and s >= 1 for s in shape)
                              or math.prod(shape) != in_features):
        raise corrupt(f"image_shape {shape!r} for {in_features} features")
    return InputSpec(dataset, tuple(names), statistics[0], statistics[1], in_features,
                     tuple(shape) if shape is not None else None)


@dataclass(frozen=True)
class StateShape:
    """The widths a model file's weights give: input features read, neurons per hidden layer, classes, and the
    parameters (weights and biases)."""

    inputs: int
    hidden: tuple[int, ...]
    classes: int
    parameters: int


def state_shape(state: dict[str, torch.Tensor]) -> StateShape:
    """Return the widths of an MLP's state dict (its weight matrices in order, as SimpleNN's fc1, fc2, ... are)."""
    weights = [value for key, value in state.items() if key.endswith(".weight")]
    if not weights or any(weight.dim() != 2 or weight.numel() == 0 for weight in weights):
        raise ModelFileError(f"weights of shapes {[list(w.shape) for w in weights]}: expected non-empty matrices "
                             f"[out_features, in_features], one per layer (an MLP's; a network of layers, such as "
                             f"LeNet-5, is read by nbprune.networkfile.network_from_file).")
    parameters = sum(int(value.numel()) for key, value in state.items() if key.endswith((".weight", ".bias")))
    return StateShape(int(weights[0].shape[1]), tuple(int(w.shape[0]) for w in weights[:-1]),
                      int(weights[-1].shape[0]), parameters)


# --- writing --------------------------------------------------------------------------------------------------
def save_model_file(model: nn.Module | dict, path: str | os.PathLike, *, iteration: int | None = None,
                    criterion: str | None = None, teacher: dict | None = None) -> Path:
    """Save a model (or a state dict) atomically; a SimpleNN's file also carries its record (with the teacher file
    that trained it, when one did). Return the path."""
    if isinstance(model, nn.Module):
        state = model.state_dict()
        record = ModelRecord.of(model, iteration=iteration, criterion=criterion, teacher=teacher) \
            if isinstance(model, RecordedNetwork) else None
    else:
        state, record = model, None
    return write_model_state(state, path, record.to_dict() if record is not None else None)


def write_model_state(state: dict[str, torch.Tensor], path: str | os.PathLike, record: dict | None) -> Path:
    """Save a state dict atomically with `record` (plain values) as its nbprune record; return the path."""
    ordered = OrderedDict((key, value.detach().cpu().clone()) for key, value in state.items())  # compact storages
    ordered._metadata = OrderedDict({"": {"version": 1}})
    if record is not None:
        ordered._metadata[""][RECORD_KEY] = record
    buffer = io.BytesIO()  # from memory the zip entries are named 'archive/...', not after a random temporary file
    torch.save(ordered, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


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


def _check_tensor(file: Path, key: str, tensor: torch.Tensor, diverged: str) -> None:
    """Refuse anything but a dense, real tensor with values: float weights, or the int64 kept-input index
    (`diverged`: the advice for NaN or Inf values)."""
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
                             f"{diverged}")


def read_model_file(file: str | os.PathLike, advice: Advice = MODEL_ADVICE
                    ) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Return a model file's tensors and its nbprune record (None for a plain state dict), both checked; a refusal
    of a missing file or of NaN/Inf values gives `advice`."""
    file = Path(file)
    if not file.is_file():
        raise ModelFileError(f"model file {file} {_not_a_file(file)}: {advice.expected}.")
    state = _torch_load(file)
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise ModelFileError(f"{file} does not hold a model: expected a state_dict mapping layer names to "
                             f"tensors, found {type(state).__name__}.")
    for key, tensor in state.items():
        _check_tensor(file, key, tensor, advice.diverged)
    metadata = getattr(state, "_metadata", None)
    record = metadata.get("", {}).get(RECORD_KEY) if isinstance(metadata, dict) and \
        isinstance(metadata.get(""), dict) else None
    return dict(state), record


def _not_a_file(file: Path) -> str:
    """Return what a path that is not a regular file is, in words."""
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        return "is a symbolic link to nothing" if os.path.islink(file) else "does not exist"
    except OSError as error:
        loop = " (a symbolic link that leads back to itself)" if error.errno == errno.ELOOP else ""
        return f"cannot be opened: {error.strerror}{loop}"
    if stat.S_ISDIR(mode):
        return "is a folder"
    return "is not a regular file (a pipe, socket or device)"


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
    if not isinstance(model, RecordedNetwork):
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
    learns the file's standardisation and dataset (`model.spec`). A plain state dict loads as in the reference workflow.
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
        if not isinstance(model, RecordedNetwork):
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
    if isinstance(model, RecordedNetwork):
        model.keep(index)
        model.spec = record.spec if record is not None else model.spec
        if index is not None:
            state[INDEX_KEY] = index
    model.load_state_dict(state)
    if isinstance(model, RecordedNetwork):
        _refuse_overflow(file, model)
    return model


def _refuse_overflow(file: Path, model: RecordedNetwork) -> None:
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

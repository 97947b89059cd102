"""Model files of sequential networks (LeNet-5, or any nn.Sequential of the kinds nbprune.layers declares): the
record lists the layers with their options, so the file alone rebuilds the network (`network_from_file`).

The file is a state dict loaded with `weights_only=True`, as every nbprune model file (nbprune.modelfile); its record
holds {"format", "layers": [{"kind": "Conv2d", "in_channels": 1, ...}, ...], "architecture", "input", "iteration",
"criterion", "nbprune"}. A record's layers are first built on the meta device (no memory) and checked against the
tensors beside them, so a damaged or hostile record cannot make a huge network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import InputSpec
from .errors import ModelFileError, NbpruneError
from .layers import KINDS, hidden_units, input_shape_of, inputs_read, kind_of, layer_shapes, sequence_of
from .model import KeepInputs
from .modelfile import StateShape, _spec_from_dict, _teacher_from_dict, read_model_file, state_shape, write_model_state

NETWORK_FORMAT = 1
SAVED_KINDS = {kind.module.__name__: kind for kind in KINDS.values() if kind.module is not KeepInputs}
LARGEST = 2 ** 31 - 1  # no option of a layer is larger


MAX_VALUES = 2 ** 26  # no layer of a network file's pass holds more values per input (256 MiB of float32)

@dataclass(frozen=True)
class NetworkRecord:
    """What a network's model file records: its layers, the architecture's name, its data, its provenance."""

    layers: tuple[dict, ...]
    architecture: str | None = None
    spec: InputSpec | None = None
    iteration: int | None = None
    criterion: str | None = None
    nbprune: str | None = None
    teacher: dict | None = None  # the teacher file that trained it: {"file": path, "sha256": its content's hash}

    def to_dict(self) -> dict:
        """Return the record as plain values (what torch.load(weights_only=True) may read)."""
        return {"format": NETWORK_FORMAT, "layers": [dict(layer) for layer in self.layers],
                "architecture": self.architecture, "input": self.spec.to_dict() if self.spec is not None else None,
                "iteration": self.iteration, "criterion": self.criterion, "nbprune": self.nbprune,
                **({"teacher": dict(self.teacher)} if self.teacher is not None else {})}


def layer_list(model: nn.Module) -> list[dict]:
    """Return a network's layers as plain values: one {"kind": ..., options...} per layer."""
    layers = sequence_of(model)
    refused = [type(layer).__name__ for layer in layers if type(layer).__name__ not in SAVED_KINDS]
    if refused:
        raise NbpruneError(f"layers {refused} cannot be recorded in a layer list: save a SimpleNN with "
                           f"nbprune.modelfile.save_model_file.")
    return [{"kind": type(layer).__name__, **kind_of(layer).describe(layer)} for layer in layers]


def save_network_file(model: nn.Module, path: str | os.PathLike, *, architecture: str | None = None,
                      spec: InputSpec | None = None, iteration: int | None = None, criterion: str | None = None,
                      teacher: dict | None = None) -> Path:
    """Save a sequential network atomically with its layer list (and the architecture's name, its data's spec, the
    iteration, criterion and teacher file that made it); return the path."""
    from . import __version__
    layers = layer_list(model)
    shapes = layer_shapes(sequence_of(model))
    features, classes = math.prod(shapes[0]), math.prod(shapes[-1])
    if spec is not None and (spec.features, len(spec.classes)) != (features, classes):
        raise NbpruneError(f"spec of {spec.dataset} ({spec.features} features, {len(spec.classes)} classes) does "
                           f"not fit the network, which reads {features} features and gives {classes} classes: "
                           f"pass the spec of the data it was trained on.")
    record = NetworkRecord(tuple(layers), architecture, spec, iteration, criterion, __version__, teacher)
    state = nn.Sequential(*sequence_of(model)).state_dict()
    return write_model_state(state, path, record.to_dict())


def _plain(value: Any) -> bool:
    """Return whether an option is a flag, a whole number in range, or a short list of them."""
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return 0 < len(value) <= 4 and all(_plain(item) and not isinstance(item, (bool, list)) for item in value)
    return isinstance(value, int) and 0 <= value <= LARGEST


def _build(values: Any, device, corrupt) -> nn.Module:
    if not isinstance(values, dict) or values.get("kind") not in SAVED_KINDS:
        raise corrupt(f"layer {values!r}, expected a kind among {', '.join(SAVED_KINDS)}")
    kind = SAVED_KINDS[values["kind"]]
    options = {key: value for key, value in values.items() if key != "kind"}
    if not all(_plain(value) for value in options.values()):
        raise corrupt(f"layer {values!r}, expected whole numbers and flags")
    try:
        layer = kind.build(options, device)
        kind.check(layer)
    except (KeyError, TypeError, ValueError, RuntimeError, NbpruneError) as error:
        raise corrupt(f"layer {values!r}: {str(error).splitlines()[0][:120]}") from None
    if kind.describe(layer) != options:
        raise corrupt(f"layer {values!r}, expected the options {kind.describe(layer)}")
    return layer


def read_network_record(file: str | os.PathLike) -> tuple[dict[str, torch.Tensor], NetworkRecord]:
    """Return a network file's tensors and its record, checked against each other (shapes, a forward pass)."""
    state, record = read_model_file(file)

    def corrupt(what: str) -> ModelFileError:
        return ModelFileError(f"{file} carries a damaged network record ({what}): copy the file again, or use a "
                              f"best_model.pth that nbprune wrote.")

    if record is None or "layers" not in record:
        raise ModelFileError(f"{file} records no layer list (an MLP's file or a plain state_dict): load an MLP "
                             f"with SimpleNN.from_file(path).")
    if record.get("format") != NETWORK_FORMAT or not isinstance(record["layers"], list) or not record["layers"]:
        raise corrupt(f"format {record.get('format')!r} with layers of type {type(record['layers']).__name__}")
    meta = nn.Sequential(*(_build(values, "meta", corrupt) for values in record["layers"]))
    expected = {key: list(value.shape) for key, value in meta.state_dict().items()}
    found = {key: list(value.shape) for key, value in state.items()}
    if expected != found:
        raise corrupt(f"its layers need tensors {expected}, the file holds {found}")
    try:
        input_shape = input_shape_of(list(meta))
        shapes = layer_shapes(list(meta), input_shape)
    except (RuntimeError, ArithmeticError, NbpruneError) as error:  # a stride of 0 divides by zero on meta
        raise corrupt(f"its layers do not fit together: {str(error).splitlines()[0][:160]}") from None
    largest = max(math.prod(shape) for shape in shapes)
    if largest > MAX_VALUES:  # huge padding or an Unflatten would make every pass allocate that much per input
        raise corrupt(f"its layers make {largest:,} values per input, more than {MAX_VALUES:,}")
    output = shapes[-1]
    if len(output) != 1:
        raise corrupt(f"outputs of shape {list(output)}, expected one score per class")
    iteration, criterion, architecture = (record.get(name) for name in ("iteration", "criterion", "architecture"))
    if not (iteration is None or (isinstance(iteration, int) and not isinstance(iteration, bool) and iteration >= 0)):
        raise corrupt(f"iteration {iteration!r}")
    if not all(value is None or isinstance(value, str) for value in (criterion, architecture)):
        raise corrupt(f"criterion {criterion!r} or architecture {architecture!r}")
    spec = _spec_from_dict(record.get("input"), math.prod(input_shape), output[0], corrupt)
    version = record.get("nbprune")
    return state, NetworkRecord(tuple(record["layers"]), architecture, spec, iteration, criterion,
                                version if isinstance(version, str) else None,
                                _teacher_from_dict(record.get("teacher"), corrupt))


def network_from_file(file: str | os.PathLike) -> tuple[nn.Sequential, NetworkRecord]:
    """Return the network a network file describes, with its weights, and its record: no other file needed."""
    state, record = read_network_record(file)
    network = nn.Sequential(*(SAVED_KINDS[values["kind"]].build(
        {key: value for key, value in values.items() if key != "kind"}) for values in record.layers))
    floats = {value.dtype for value in state.values()}
    network = network.to(floats.pop()) if len(floats) == 1 else network
    network.load_state_dict(state)
    return network.eval(), record


def network_shape(file: str | os.PathLike) -> StateShape:
    """Return the widths of a network file's network: the input features it reads, the units (channels, neurons)
    of each hidden unit layer, the classes and the parameters."""
    network, _ = network_from_file(file)
    return StateShape(inputs_read(network), hidden_units(network), layer_shapes(list(network))[-1][0],
                      sum(parameter.numel() for parameter in network.parameters()))


def network_for_resume(model: nn.Module, file: str | os.PathLike) -> nn.Module:
    """Return the network a network file holds, on `model`'s device and dtype, knowing its data (`spec`): where a
    resumed run of `model`'s architecture goes on from."""
    network, record = network_from_file(file)
    like = next(model.parameters())
    network = network.to(like.device, like.dtype).train(model.training)
    network.spec = record.spec
    return network


def file_shape(file: str | os.PathLike) -> StateShape:
    """Return the widths of the network any nbprune model file holds: an MLP's (modelfile.state_shape) or a network
    of layers' (network_shape)."""
    state, record = read_model_file(file)
    return network_shape(file) if isinstance(record, dict) and "layers" in record else state_shape(state)

"""SimpleNN: the reference's 784-256-64-10 ReLU network for MNIST, with any number of hidden layers, rebuilt from a
model file by `SimpleNN.from_file` (reading, checking and loading the file is modelfile's work)."""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import torch
from torch import nn

from .config import or_default
from .data import InputSpec
from .datasets import DEFAULT
from .errors import InputError, ModelFileError, NbpruneError
from .modelfile import INDEX_KEY, ModelRecord, check_record_matches, load_pruned_model, read_model_file

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}  # the names config.ACTIVATIONS declares


class KeepInputs(nn.Module):
    """Input-node pruning: passes on only the kept input features (pixels), in order."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.int64).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{len(self.index)} inputs kept"


class SimpleNN(nn.Module):
    """An MLP whose linear layers are named fc1, fc2, ... fcN, as in the reference workflow.

    It takes standardised inputs of shape [batch, in_features] (or a batch of images of that many pixels); by
    default it is the reference's network for MNIST (nbprune.datasets.DEFAULT). After input-node pruning,
    `keep_inputs` selects the kept features itself, so the model still takes whole inputs. `spec` says which data
    and standardisation the model belongs to (None until it is trained on nbprune's loaders or loaded from a file).
    """

    def __init__(self, hidden: Sequence[int] | None = None, in_features: int = DEFAULT.features,
                 num_classes: int = len(DEFAULT.classes),
                 activation: str | None = None):
        super().__init__()
        hidden, activation = or_default(hidden, "hidden"), or_default(activation, "activation")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported: expected one of "
                             f"{', '.join(ACTIVATIONS)}.")
        sizes = [in_features, *hidden, num_classes]
        if any(isinstance(size, bool) or int(size) != size or size < 1 for size in sizes):
            raise ValueError(f"layer sizes {sizes} are not allowed: expected whole numbers >= 1.")
        self.activation = activation
        self._in_features = int(in_features)
        for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"fc{index}", nn.Linear(int(fan_in), int(fan_out)))
        self.act = ACTIVATIONS[activation]()
        self.keep_inputs: KeepInputs | None = None
        self.spec: InputSpec | None = None

    @classmethod
    def from_file(cls, file: str | os.PathLike) -> "SimpleNN":
        """Return the network a model file describes, with its weights: no other file or flag needed."""
        state, record = read_model_file(file)
        if record is None:
            raise ModelFileError(f"{file} holds no nbprune record (a plain state_dict): build the model it was "
                                 f"saved from yourself, e.g. SimpleNN(hidden=..., activation=...), and call "
                                 f"load_pruned_model(model, file).")
        described = ModelRecord.from_dict(record, file)
        check_record_matches(file, described, state)  # before building: a record may declare layers of any size
        kept = state.get(INDEX_KEY)
        model = cls(described.hidden, described.in_features if kept is None else len(kept), described.num_classes,
                    described.activation)
        model._in_features = described.in_features  # an input-pruned fc1 is built for the kept inputs only
        return load_pruned_model(model, file)

    def keep(self, index: torch.Tensor | None) -> None:
        """Read only the input features at `index` (increasing positions) from now on; all of them for None."""
        self.keep_inputs = KeepInputs(index).to(self.linears[0].weight.device) if index is not None else None

    @property
    def linears(self) -> list[nn.Linear]:
        """Return the linear layers in the order the input meets them."""
        return [module for name, module in self.named_children() if name.startswith("fc")]

    @property
    def hidden(self) -> tuple[int, ...]:
        """Return the number of neurons in each hidden layer."""
        return tuple(layer.out_features for layer in self.linears[:-1])

    @property
    def in_features(self) -> int:
        """Return the number of input features the model takes (before any input pruning)."""
        return self._in_features

    @property
    def inputs_kept(self) -> int:
        """Return how many input features reach the first layer."""
        return self.linears[0].in_features

    @property
    def num_classes(self) -> int:
        return self.linears[-1].out_features

    def sequence(self) -> list[nn.Module]:
        """Return the modules in the order forward() applies them: [keep_inputs,] fc1, act, ..., fcN."""
        layers: list[nn.Module] = [self.keep_inputs] if self.keep_inputs is not None else []
        for layer in self.linears[:-1]:
            layers += [layer, self.act]
        return layers + [self.linears[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_features, self.fc1.weight, "SimpleNN")
        x = x.reshape(x.shape[0], -1)
        if not math.isfinite(x.detach().sum().item()):  # one cheap number: NaN or Inf anywhere make it so (the
            refuse_non_finite(x, "SimpleNN")             # logits are no test: a ReLU turns -Inf into 0)
        outputs = x
        for layer in self.sequence():
            outputs = layer(outputs)
        return outputs

    def extra_repr(self) -> str:
        kept = f", inputs_kept={self.inputs_kept}" if self.keep_inputs is not None else ""
        return f"hidden={self.hidden}, activation={self.activation!r}{kept}"


def check_input(x: Any, in_features: int, weight: torch.Tensor, owner: str) -> None:
    """Raise InputError unless `x` is a dense, real, finite batch of `in_features` values per row for `weight`."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{owner} expects a torch.Tensor, got {type(x).__name__}. "
                         f"Convert with torch.as_tensor(x, dtype=torch.float32).")
    if x.layout != torch.strided or x.is_nested:
        raise InputError(f"{owner} expects a dense tensor, got layout {x.layout}{' (nested)' if x.is_nested else ''}. "
                         f"Convert with x.to_dense().")
    if x.is_meta:
        raise InputError(f"{owner} got a tensor on the meta device, which holds no values: expected real data.")
    if x.is_complex() or not x.is_floating_point():
        raise InputError(f"{owner} expects floating-point input, got dtype {x.dtype}. "
                         f"Convert with x.float() (and standardise as nbprune.data does).")
    if x.dtype != weight.dtype:
        raise InputError(f"{owner}'s weights are {weight.dtype}, the input is {x.dtype}: expected the same "
                         f"dtype. Convert with x.to({weight.dtype}).")
    if x.device != weight.device:
        raise InputError(f"{owner}'s weights are on {weight.device}, the input on {x.device}: move it with "
                         f"x.to('{weight.device}').")
    if x.dim() < 2 or math.prod(x.shape[1:]) != in_features:
        raise InputError(f"{owner} expects input of shape [batch, {in_features}] (or a batch of images of "
                         f"{in_features} pixels), "
                         f"got {list(x.shape)}. Add a batch dimension with x.unsqueeze(0) for one sample.")
    if x.shape[0] == 0:
        raise InputError(f"{owner} got an empty batch {list(x.shape)}: expected at least one row.")


def refuse_non_finite(x: torch.Tensor, owner: str) -> None:
    """Raise InputError if `x` holds NaN or Inf values, naming the first rows that do."""
    bad_rows = (~torch.isfinite(x.detach())).reshape(len(x), -1).any(dim=1).nonzero().reshape(-1)
    if len(bad_rows):
        raise InputError(f"{owner} got NaN or Inf values in {len(bad_rows)} input row(s) (first: "
                         f"{bad_rows[:5].tolist()}): expected finite, standardised values.")


def ordered_modules(model: nn.Module) -> list[nn.Module] | None:
    """Return the modules a network applies, in order: SimpleNN's `sequence()`, or an nn.Sequential's modules with
    nested nn.Sequentials opened; None for any other module (the caller says what it expected)."""
    if hasattr(model, "sequence"):
        return list(model.sequence())
    if not isinstance(model, nn.Sequential):
        return None
    layers = []
    for module in model:
        layers += ordered_modules(module) if isinstance(module, nn.Sequential) else [module]
    return layers


def mlp_layers(model: nn.Module) -> list[nn.Module]:
    """Return the modules of an MLP in the order its forward pass applies them."""
    layers = ordered_modules(model)
    if layers is None:
        raise NbpruneError(f"{type(model).__name__} is not supported: expected SimpleNN or an nn.Sequential "
                           f"of nn.Linear, nn.ReLU and nn.Sigmoid layers.")
    layers = [layer for layer in layers if not isinstance(layer, (nn.Flatten, nn.Identity))]
    for position, layer in enumerate(layers):
        if isinstance(layer, KeepInputs) and position == 0:
            continue
        if not isinstance(layer, (nn.Linear, nn.ReLU, nn.Sigmoid)):
            raise NbpruneError(f"layer {layer} is not supported: expected nn.Linear, nn.ReLU or nn.Sigmoid "
                               f"(and KeepInputs first).")
    return layers


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """Return every linear layer of an MLP, in order."""
    return [layer for layer in mlp_layers(model) if isinstance(layer, nn.Linear)]


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    """Return the linear layers whose outputs are hidden neurons (all but the last)."""
    return linear_layers(model)[:-1]


def parameter_count(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mlp_parameters(inputs: int, hidden: Sequence[int], classes: int) -> int:
    """Return the weights and biases of an MLP with these layer widths."""
    sizes = [inputs, *hidden, classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


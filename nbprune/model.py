"""SimpleNN: the seed's 784-256-64-10 ReLU network, with any number of hidden layers."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .errors import InputError, NbpruneError

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class SimpleNN(nn.Module):
    """An MLP whose linear layers are named fc1, fc2, ... fcN, as in the seed."""

    def __init__(self, hidden: Sequence[int] = (256, 64), in_features: int = 784, num_classes: int = 10,
                 activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported: expected one of "
                             f"{', '.join(ACTIVATIONS)}.")
        sizes = [in_features, *hidden, num_classes]
        if any(int(size) != size or size < 1 for size in sizes):
            raise ValueError(f"layer sizes {sizes} are not allowed: expected whole numbers >= 1.")
        self.activation = activation
        for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"fc{index}", nn.Linear(int(fan_in), int(fan_out)))
        self.act = ACTIVATIONS[activation]()

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
        return self.linears[0].in_features

    @property
    def num_classes(self) -> int:
        return self.linears[-1].out_features

    def sequence(self) -> list[nn.Module]:
        """Return the modules in the order forward() applies them: fc1, act, fc2, act, ..., fcN."""
        layers: list[nn.Module] = []
        for layer in self.linears[:-1]:
            layers += [layer, self.act]
        return layers + [self.linears[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InputError(f"SimpleNN expects a torch.Tensor, got {type(x).__name__}. "
                             f"Convert with torch.as_tensor(x, dtype=torch.float32).")
        weight = self.linears[0].weight
        if not x.is_floating_point():
            raise InputError(f"SimpleNN expects floating-point input, got dtype {x.dtype}. "
                             f"Convert with x.float() (and standardise as nbprune.data does).")
        if x.dtype != weight.dtype:
            raise InputError(f"SimpleNN's weights are {weight.dtype}, the input is {x.dtype}: expected the same "
                             f"dtype. Convert with x.to({weight.dtype}).")
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise InputError(f"SimpleNN expects input of shape [batch, {self.in_features}] (or [batch, 28, 28]), "
                             f"got {list(x.shape)}. Add a batch dimension with x.unsqueeze(0) for one sample.")
        x = x.reshape(x.shape[0], -1)
        for layer in self.sequence():
            x = layer(x)
        return x

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, activation={self.activation!r}"


def mlp_layers(model: nn.Module) -> list[nn.Module]:
    """Return the modules of an MLP in the order its forward pass applies them."""
    if hasattr(model, "sequence"):
        layers = list(model.sequence())
    elif isinstance(model, nn.Sequential):
        layers = []
        for module in model:
            layers += mlp_layers(module) if isinstance(module, nn.Sequential) else [module]
    else:
        raise NbpruneError(f"{type(model).__name__} is not supported: expected SimpleNN or an nn.Sequential "
                           f"of nn.Linear, nn.ReLU and nn.Sigmoid layers.")
    layers = [layer for layer in layers if not isinstance(layer, (nn.Flatten, nn.Identity))]
    for layer in layers:
        if not isinstance(layer, (nn.Linear, nn.ReLU, nn.Sigmoid)):
            raise NbpruneError(f"layer {layer} is not supported: expected nn.Linear, nn.ReLU or nn.Sigmoid.")
    return layers


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    """Return the linear layers whose outputs are hidden neurons (all but the last)."""
    return [layer for layer in mlp_layers(model) if isinstance(layer, nn.Linear)][:-1]


def parameter_count(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

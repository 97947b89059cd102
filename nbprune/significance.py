"""Neuron scores: the interval-adjoint significance of the seed, and simpler criteria to compare it with.

A criterion maps (model, context) to one score vector per hidden layer, higher meaning more worth keeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import NbpruneError
from .interval import Interval
from .model import KeepInputs, hidden_linears, mlp_layers


@dataclass
class PruningContext:
    """What a criterion may look at: the input box, a batch of training data, a seed."""

    input_box: tuple[torch.Tensor, torch.Tensor] | None = None
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _activation_derivative(layer: nn.Module, pre_activation: Interval) -> Interval:
    return pre_activation.relu_derivative() if isinstance(layer, nn.ReLU) else pre_activation.sigmoid_derivative()


@torch.no_grad()
def interval_forward(model: nn.Module, box: Interval) -> list[Interval]:
    """Return the interval of every linear layer's output (pre-activation) over the input box."""
    value, outputs = box, []
    for layer in mlp_layers(model):
        if isinstance(layer, KeepInputs):
            value = value[..., layer.index]
        elif isinstance(layer, nn.Linear):
            value = value @ layer.weight.T + layer.bias if layer.bias is not None else value @ layer.weight.T
            outputs.append(value)
        else:
            value = value.relu() if isinstance(layer, nn.ReLU) else value.sigmoid()
    return outputs


@torch.no_grad()
def interval_adjoint(model: nn.Module, pre_activations: list[Interval]) -> list[Interval]:
    """Return the interval adjoint of the summed outputs at every linear layer's output, seeded with 1s."""
    layers = mlp_layers(model)
    adjoint = Interval(torch.ones_like(pre_activations[-1].lower))
    adjoints = [adjoint]
    linear_index = len(pre_activations) - 1
    for layer in reversed(layers):
        if isinstance(layer, KeepInputs):
            continue
        if isinstance(layer, nn.Linear):
            adjoint = adjoint @ layer.weight
            linear_index -= 1
        else:
            adjoint = adjoint * _activation_derivative(layer, pre_activations[linear_index])
            adjoints.append(adjoint)
    return adjoints[::-1]


def interval_adjoint_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Significance = width of the layer's output interval x max(|adjoint lower|, |adjoint upper|)."""
    if context.input_box is None:
        raise NbpruneError("the interval_adjoint criterion needs the input box: pass input_box=(lower, upper) "
                           "from nbprune.input_box(train_loader).")
    weight = hidden_linears(model)[0].weight
    lower, upper = (bound.to(weight.device, weight.dtype).reshape(1, -1) for bound in context.input_box)
    forward = interval_forward(model, Interval(lower, upper))
    adjoints = interval_adjoint(model, forward)
    return [(value.width * adjoint.magnitude).reshape(-1) for value, adjoint in zip(forward[:-1], adjoints[:-1])]


@torch.no_grad()
def magnitude_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = L2 norm of a neuron's incoming weights (and bias) and outgoing weights together."""
    linears = [layer for layer in mlp_layers(model) if isinstance(layer, nn.Linear)]
    scores = []
    for layer, following in zip(linears, linears[1:]):
        incoming = layer.weight.pow(2).sum(dim=1) + (layer.bias.pow(2) if layer.bias is not None else 0)
        scores.append((incoming + following.weight.pow(2).sum(dim=0)).sqrt())
    return scores


def taylor_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = mean over a batch of |activation x d loss / d activation| (first-order Taylor)."""
    if context.batch is None:
        raise NbpruneError("the taylor criterion needs a batch of training data: pass batch=(inputs, targets).")
    weight = hidden_linears(model)[0].weight
    inputs, targets = context.batch
    value = inputs.reshape(len(inputs), -1).to(weight.device, weight.dtype)
    activations = []
    layers = mlp_layers(model)
    with torch.enable_grad():
        for position, layer in enumerate(layers):
            value = layer(value)
            if isinstance(layer, (nn.ReLU, nn.Sigmoid)) and position < len(layers) - 1:
                activations.append(value)
        loss = F.cross_entropy(value, targets.to(weight.device))
        gradients = torch.autograd.grad(loss, activations)
    return [(activation * gradient).abs().mean(dim=0).detach() for activation, gradient in zip(activations, gradients)]


def random_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = uniform random numbers from the context's seed."""
    generator = torch.Generator().manual_seed(context.seed)
    return [torch.rand(layer.out_features, generator=generator) for layer in hidden_linears(model)]


Criterion = Callable[[nn.Module, PruningContext], list[torch.Tensor]]

CRITERIA: dict[str, Criterion] = {
    "interval_adjoint": interval_adjoint_scores,
    "magnitude": magnitude_scores,
    "taylor": taylor_scores,
    "random": random_scores,
}


def get_criterion(name: str | Criterion) -> Criterion:
    """Return the criterion registered under `name` (or `name` itself when it is a callable)."""
    if callable(name):
        return name
    if name not in CRITERIA:
        raise NbpruneError(f"criterion {name!r} is not known: expected one of {', '.join(CRITERIA)}.")
    return CRITERIA[name]


def significance(model: nn.Module, criterion: str | Criterion = "interval_adjoint",
                 context: PruningContext | None = None) -> list[torch.Tensor]:
    """Return one score vector per hidden layer under the named criterion."""
    scores = get_criterion(criterion)(model, context or PruningContext())
    return [score.detach().float().cpu() for score in scores]

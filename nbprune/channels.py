"""Unit pruning of any sequential network: one score per hidden unit (a Linear's neuron, a Conv2d's output channel)
under each criterion, and the surgery that removes the lowest-scored units (nbprune.layers.shrink_units).

A unit is what one output of a unit layer feeds on: a channel is one node spread over the image's positions. A
criterion maps (network, context) to one score vector per hidden unit layer, higher meaning more worth keeping, as
nbprune.criteria's do for MLPs; on a SimpleNN each gives exactly the hidden scores of its MLP namesake. UNIT_CRITERIA
holds them by the names nbprune.config.CRITERIA declares.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import AGGREGATIONS, CRITERIA as CRITERION_NAMES, PruneConfig
from .criteria import IntervalAdjoint, PruningContext
from .errors import NbpruneError
from .layers import interval_passes, kind_of, layer_shapes, sequence_of, shrink_units
from .interval import Interval
from .prune import _removed, check_compensation, global_counts, top

__all__ = ["AGGREGATIONS", "MEASURES", "UNIT_CRITERIA", "UnitIntervalAdjoint", "aggregate_positions", "prune_units",
           "unit_cost", "unit_magnitude", "unit_random", "unit_significance", "unit_taylor"]

MEASURES = ("units", "parameters", "macs")  # what a global budget counts

UnitCriterion = Callable[[nn.Module, PruningContext], list[torch.Tensor]]


def aggregate_positions(per_position: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Return [..., units] from per-position scores [..., units, *positions] ([..., units] as it is: a neuron has
    one position).

    'max' (the default) scores a channel by where it matters most: a channel that detects a stroke in one place of
    the image is needed even if it is silent everywhere else, and the score does not grow with the number of
    positions (576 in LeNet-5's first layer, 64 in its second, one for a linear layer's neuron), which matters where
    layers' scores are compared as they are (normalise 'none'; 'mean' and 'rank' remove each layer's scale whatever
    the aggregation). 'sum' is the total over the positions
    (the channel's significance as one node of the whole feature map), 'mean' the sum over the positions' count.
    Measured on LeNet-5 (benchmarks/conv_pareto.py, 3 seeds): max pruned better than sum at 22 of 27 retrained
    levels, and sum collapsed at the smallest; under normalise 'mean' or 'rank', mean prunes exactly as sum."""
    if how not in AGGREGATIONS:
        raise NbpruneError(f"aggregation={how!r} is not known: expected one of {', '.join(AGGREGATIONS)}.")
    if per_position.dim() <= 2:
        return per_position
    flat = per_position.flatten(2)
    return flat.amax(dim=-1) if how == "max" else flat.sum(dim=-1) if how == "sum" else flat.mean(dim=-1)


def _hidden_unit_positions(model: nn.Module) -> list[int]:
    layers = sequence_of(model)
    return [position for position, layer in enumerate(layers) if kind_of(layer).units][:-1]


def _classes(layers: list[nn.Module]) -> int:
    output = layer_shapes(layers)[-1]
    if len(output) != 1:
        raise NbpruneError(f"the network's outputs have shape {list(output)}: expected one score per class "
                           f"(end it with nn.Linear or nn.Flatten).")
    return output[0]


class UnitIntervalAdjoint:
    """The interval-adjoint criterion for units: a unit's significance at each position is the width of its
    pre-activation interval times its adjoint's magnitude (seeds combined as IntervalAdjoint does), aggregated over
    the channel's positions (`aggregation`, see aggregate_positions) and averaged over the input boxes.

    Its options are IntervalAdjoint's (adjoint seeds, input boxes) and the aggregation, read from a PruneConfig (an
    aggregation given here wins)."""

    def __init__(self, options: PruneConfig | None = None, aggregation: str | None = None, **changes):
        aggregation = aggregation or (options or PruneConfig()).aggregation
        aggregate_positions(torch.zeros(1, 1), aggregation)
        self.criterion = IntervalAdjoint(options, **changes)
        self.aggregation = aggregation

    def __repr__(self) -> str:
        return f"UnitIntervalAdjoint({self.criterion!r}, aggregation={self.aggregation!r})"

    @torch.no_grad()
    def __call__(self, model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
        layers = sequence_of(model)
        like = next(layer.weight for layer in layers if kind_of(layer).units)
        boxes = self.criterion.boxes(context, like)
        passes = interval_passes(model, boxes, self.criterion.seeds(_classes(layers)))
        return [aggregate_positions(value.width * self.criterion.combine_seeds(adjoint.magnitude),
                                    self.aggregation).mean(dim=0)
                for value, adjoint in zip(passes.pre_activations[:-1], passes.adjoints[:-1])]


def _outgoing(layers: list[nn.Module], position: int, following: int, units: int) -> torch.Tensor:
    """Return, per unit of the unit layer at `position`, the sum of the squared weights of the next unit layer
    (at `following`) that read it."""
    read = layers[following].weight.pow(2).sum(dim=0)  # per input feature (or per input channel and offset)
    read = read.flatten(1).sum(dim=1) if read.dim() > 1 else read
    shapes = layer_shapes(layers)
    index = torch.arange(units, device=read.device)
    for between in range(position + 1, following):
        index = kind_of(layers[between]).carry(layers[between], index, shapes[between])
    return read[index].reshape(units, -1).sum(dim=1)


@torch.no_grad()
def unit_magnitude(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = L2 norm of a unit's filter (its incoming weights and bias) and of the weights that read it, together:
    for a channel the next convolution's input channel or the first Linear's block of columns (as
    criteria.magnitude_scores scores a neuron)."""
    layers = sequence_of(model)
    units = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    scores = []
    for position, following in zip(units, units[1:]):
        layer = layers[position]
        incoming = layer.weight.pow(2).flatten(1).sum(dim=1) + (layer.bias.pow(2) if layer.bias is not None else 0)
        scores.append((incoming + _outgoing(layers, position, following, len(layer.weight))).sqrt())
    return scores


def unit_taylor(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = mean over a batch of |sum over a unit's positions of value x d loss / d value|, taken where the next
    unit layer reads the unit: the first-order change of the loss when the unit is removed (zeroed there)."""
    if context.batch is None:
        raise NbpruneError("the taylor criterion needs a batch of training data: pass batch=(inputs, targets).")
    layers = sequence_of(model)
    hidden = _hidden_unit_positions(model)
    reads = {layer_position: position for position, layer_position in zip(hidden, _next_units(layers, hidden))}
    like = layers[hidden[0]].weight if hidden else next(model.parameters())
    inputs, targets = context.batch
    with torch.enable_grad():
        value, nodes = inputs.reshape(len(inputs), -1).to(like.device, like.dtype).requires_grad_(), []
        for position, layer in enumerate(layers):
            if position in reads:
                nodes.append((value, len(layers[reads[position]].weight)))
            value = layer(value)
        loss = F.cross_entropy(value, targets.to(like.device))
        gradients = torch.autograd.grad(loss, [node for node, _ in nodes])
    return [(node * gradient).reshape(len(node), units, -1).sum(dim=-1).abs().mean(dim=0).detach()
            for (node, units), gradient in zip(nodes, gradients)]


def _next_units(layers: list[nn.Module], hidden: list[int]) -> list[int]:
    """Return, for each hidden unit layer's position, the position of the next unit layer."""
    units = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    return [units[units.index(position) + 1] for position in hidden]


def unit_random(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = uniform random numbers from the context's seed, drawn layer by layer (as criteria.random_scores draws
    the hidden layers)."""
    generator = torch.Generator().manual_seed(context.seed)
    layers = sequence_of(model)
    return [torch.rand(len(layers[position].weight), generator=generator)
            for position in _hidden_unit_positions(model)]


UNIT_CRITERIA: dict[str, Callable[..., UnitCriterion]] = {
    "interval_adjoint": UnitIntervalAdjoint,
    "magnitude": lambda options=None, **_: unit_magnitude,
    "taylor": lambda options=None, **_: unit_taylor,
    "random": lambda options=None, **_: unit_random,
}
if set(UNIT_CRITERIA) != set(CRITERION_NAMES):
    raise RuntimeError(f"unit criteria {sorted(UNIT_CRITERIA)} differ from nbprune.config.CRITERIA "
                       f"{sorted(CRITERION_NAMES)}: declare each criterion for units too.")


def unit_significance(model: nn.Module, criterion: str | UnitCriterion | None = None,
                      context: PruningContext | None = None, options: PruneConfig | None = None,
                      aggregation: str | None = None) -> list[torch.Tensor]:
    """Return one score vector per hidden unit layer (neurons or channels) under the named criterion (None: the
    options' criterion), or a callable of one's own; aggregation None: the options'."""
    options = options or PruneConfig()
    name = options.criterion if criterion is None else criterion
    if callable(name):
        scorer = name
    elif name in UNIT_CRITERIA:
        scorer = UNIT_CRITERIA[name](options, aggregation=aggregation)
    else:
        raise NbpruneError(f"criterion {name!r} is not known: expected one of {', '.join(UNIT_CRITERIA)}.")
    return [score.detach().float().cpu() for score in scorer(model, context or PruningContext())]


def unit_cost(model: nn.Module, measure: str = "parameters") -> Callable[[Sequence[int]], int]:
    """Return what the network costs with `counts[k]` units in hidden unit layer k: its units, its parameters
    (weights and biases, as architectures.count_parameters counts them) or its multiply-accumulates per input (as
    architectures.multiply_accumulates counts them)."""
    if measure not in MEASURES:
        raise NbpruneError(f"measure={measure!r} is not known: expected one of {', '.join(MEASURES)}.")
    layers = sequence_of(model)
    shapes = layer_shapes(layers)
    positions = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    units = [layers[position] for position in positions]
    outputs = [len(layer.weight) for layer in units]
    reads = [units[0].weight.shape[1], *outputs[:-1]]  # input units (channels or features) of each unit layer
    per_pair = [layer.weight.numel() // (out * into) for layer, out, into in zip(units, outputs, reads)]
    places = [math.prod(shapes[position + 1][1:]) if isinstance(layer, nn.Conv2d) else 1
              for position, layer in zip(positions, units)]

    def cost(counts: Sequence[int]) -> int:
        if measure == "units":
            return sum(counts)
        total = 0
        for layer, out, into, pair, place in zip(units, [*counts, outputs[-1]], [reads[0], *counts], per_pair,
                                                 places):
            weights = out * into * pair
            total += weights * place if measure == "macs" else weights + (out if layer.bias is not None else 0)
        return total

    return cost


def prune_units(model: nn.Module, retain: Sequence[int], criterion: str | UnitCriterion | None = None,
                context: PruningContext | None = None, options: PruneConfig | None = None,
                aggregation: str | None = None, budget: int | None = None, measure: str = "units") -> nn.Sequential:
    """Return a new, smaller nn.Sequential keeping the `retain[k]` most significant units (channels or neurons) of
    hidden unit layer k; the layers after them lose what the removed units fed.

    With options.allocation 'global', all units compete for one budget instead (scores made comparable by
    options.normalise): `budget` of the `measure` (units, parameters or multiply-accumulates; budget None: the
    sum of `retain` units), every layer keeping at least one unit."""
    options = options or PruneConfig()
    layers = sequence_of(model)
    counts = [len(layers[position].weight) for position in _hidden_unit_positions(model)]
    if len(retain) != len(counts):
        raise NbpruneError(f"retain={list(retain)} names {len(retain)} hidden unit layers, the network has "
                           f"{len(counts)} ({counts}): give one count per layer.")
    for layer, (count, have) in enumerate(zip(retain, counts), start=1):
        if isinstance(count, bool) or int(count) != count or not 1 <= count <= have:
            raise NbpruneError(f"retain count {count!r} for hidden unit layer {layer} is not allowed: expected a "
                               f"whole number from 1 to {have} (the units it has now).")
    context = context or PruningContext()
    scores = unit_significance(model, criterion, context, options, aggregation)
    if options.allocation == "global":
        cost = unit_cost(model, measure if budget is not None else "units")
        minimums = [1] * len(counts)
        retain = global_counts(scores, minimums, cost, max(budget if budget is not None else sum(retain),
                                                           cost(minimums)), options.normalise)
    kept = [top(score, count) for score, count in zip(scores, retain)]
    constants = read_constants(model, options.bias_compensation, context)
    return shrink_units(compensated(model, kept, constants) if constants is not None else model, kept)


@torch.no_grad()
def read_constants(model: nn.Module, compensation: str, context: PruningContext) -> list[torch.Tensor] | None:
    """Return, for each unit layer after the first, the value each of its inputs stands for when the unit feeding it
    is removed (None for compensation 'none'): the mean over the context's batch ('mean') or the midpoint of its
    interval over the input box ('midpoint'), per input feature of a Linear, per input channel of a Conv2d (averaged
    over the channel's positions: a constant channel is what a convolution's bias can take)."""
    check_compensation(compensation, context)
    if compensation == "none":
        return None
    layers = sequence_of(model)
    shapes = layer_shapes(layers)
    reads = [position for position, layer in enumerate(layers) if kind_of(layer).units][1:]
    like = layers[reads[0]].weight
    if compensation == "mean":
        inputs = context.batch[0]
        value = inputs.reshape(len(inputs), -1).to(like.device, like.dtype)
    else:
        value = Interval(*(bound.to(like.device, like.dtype).reshape(1, -1) for bound in context.input_box))
    seen = {}
    for position, layer in enumerate(layers[:reads[-1]]):
        value = layer(value) if compensation == "mean" else kind_of(layer).forward(layer, value, shapes[position])
        if position + 1 in reads:
            seen[position + 1] = value.mean(dim=0) if compensation == "mean" else value.midpoint[0]
    return [seen[position].flatten(1).mean(dim=1) if isinstance(layers[position], nn.Conv2d) else seen[position]
            for position in reads]


@torch.no_grad()
def compensated(model: nn.Module, kept: Sequence[torch.Tensor], constants: Sequence[torch.Tensor]) -> nn.Sequential:
    """Return a copy of the network in which what each removed unit feeds the next unit layer, standing for its
    constant, is folded into that layer's bias: a Linear's columns times the constants of the features it reads, a
    Conv2d's filters summed over their kernel times the channel's constant (exact for a constant channel and no
    padding)."""
    layers = [copy.deepcopy(layer) for layer in sequence_of(model)]
    shapes = layer_shapes(layers)
    units = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    for position, following, index, constant in zip(units, units[1:], kept, constants):
        gone = _removed(len(layers[position].weight), index).to(layers[position].weight.device)
        for between in range(position + 1, following):
            gone = kind_of(layers[between]).carry(layers[between], gone, shapes[between])
        target = layers[following]
        if target.bias is None:
            raise NbpruneError(f"bias compensation folds removed units into the next layer's bias, but {target} has "
                               f"none: build it with bias=True, or set bias_compensation='none'.")
        weight = target.weight[:, gone]
        target.bias += (weight.flatten(2).sum(dim=2) if weight.dim() > 2 else weight) @ constant.to(weight)[gone]
    return nn.Sequential(*layers)

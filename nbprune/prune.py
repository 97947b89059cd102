"""Node pruning: choose the most significant nodes and physically shrink the layers.

- prune_nodes: the whole act: score, allocate, compensate, shrink;
- keep_indices: per layer, the top-k scores (the reference workflow's fixed per-layer counts);
- allocate / global_counts: how many nodes each layer keeps when all nodes compete for one budget (neurons or
  parameters);
- shrink: the surgery, for hidden neurons and for input features, optionally folding what a removed node
  contributed on average into the next layer's bias (bias compensation).
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

from .config import COMPENSATIONS, NORMALISATIONS, PruneConfig, or_default
from .criteria import Criterion, PruningContext, first_layer_view, interval_forward, make_criterion, node_significance
from .errors import ScheduleError
from .interval import Interval
from .model import KeepInputs, SimpleNN, hidden_linears, linear_layers, mlp_layers, mlp_parameters

MACS_NEED_LAYERS = ("budget='macs' counts the multiply-accumulates of a network of layers (architecture): an MLP's "
                    "are its weights, so give it budget='parameters'.")


def top(score: torch.Tensor, count: int) -> torch.Tensor:
    """Return the sorted indices of the `count` highest scores (ties go to the lower index)."""
    return torch.sort(score, descending=True, stable=True).indices[:int(count)].sort().values


def keep_indices(scores: Sequence[torch.Tensor], retain: Sequence[int]) -> list[torch.Tensor]:
    """Return, per layer, the sorted indices of the `retain[k]` highest scores (ties go to the lower index)."""
    if len(scores) != len(retain):
        raise ScheduleError(f"retain={list(retain)} names {len(retain)} hidden layers, the model has {len(scores)}: "
                            f"give one count per hidden layer.")
    for layer, (score, count) in enumerate(zip(scores, retain), start=1):
        if int(count) != count or not 1 <= count <= len(score):
            raise ScheduleError(f"retain count {count!r} for hidden layer {layer} is not allowed: expected a whole "
                                f"number from 1 to {len(score)} (the neurons it has now).")
    return [top(score, count) for score, count in zip(scores, retain)]


def normalised(score: torch.Tensor, how: str) -> torch.Tensor:
    """Return a layer's scores made comparable with other layers': over the layer's mean ('mean'), as the share of
    the layer's nodes that score lower ('rank': every layer then shrinks at the same rate), or as they are."""
    if how == "mean":
        return score / score.mean().clamp_min(torch.finfo(score.dtype).tiny)
    if how == "rank":
        ranks = torch.empty(len(score))
        ranks[torch.sort(score, stable=True).indices] = torch.arange(len(score), dtype=torch.float32)
        return (ranks + 1) / len(score)
    if how == "none":
        return score
    raise ScheduleError(f"normalise={how!r} is not known: expected one of {', '.join(NORMALISATIONS)}.")


def global_counts(scores: Sequence[torch.Tensor], minimums: Sequence[int], cost: Callable[[list[int]], int],
                  budget: int, normalise: str | None = None) -> list[int]:
    """Return how many nodes each layer keeps when all compete: remove the lowest-scored nodes, one at a time,
    until `cost(counts)` is within `budget`, never taking a layer below its minimum.

    Scores are first made comparable across layers (see `normalised`; None: the configuration's normalise)."""
    normalise = or_default(normalise, "normalise")
    counts = [len(score) for score in scores]
    if any(count < minimum for count, minimum in zip(counts, minimums)):
        raise ScheduleError(f"the layers have {counts} nodes, fewer than their minimums {list(minimums)}.")
    normalised_scores = [normalised(score.float(), normalise) for score in scores]
    layer_of = torch.cat([torch.full((len(score),), k) for k, score in enumerate(normalised_scores)])
    order = torch.sort(torch.cat(normalised_scores), stable=True).indices
    for node in order.tolist():
        if cost(counts) <= budget:
            break
        layer = int(layer_of[node])
        if counts[layer] > minimums[layer]:
            counts[layer] -= 1
    if cost(counts) > budget:
        raise ScheduleError(f"a budget of {budget:,} cannot be met: at the minimum sizes {counts} the network still "
                            f"costs {cost(counts):,}. Lower the minimums or raise the budget.")
    return counts


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for name, module in model.named_modules():
        if module is old:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
            return
    raise ValueError(f"{old} is not a submodule of the model")


def _removed(size: int, kept: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(size, dtype=torch.bool)
    mask[kept.cpu()] = False
    return mask.nonzero().reshape(-1)


@torch.no_grad()
def shrink(model: nn.Module, kept: Sequence[torch.Tensor], kept_inputs: torch.Tensor | None = None,
           constants: Sequence[torch.Tensor | None] | None = None) -> nn.Module:
    """Return a copy of `model` whose hidden layer k keeps only the neurons `kept[k]` (the surgery).

    kept_inputs: positions among the features the first layer reads now, to keep (input-node pruning; SimpleNN).
    constants: per node layer (inputs first, then each hidden layer), the value each node stands for when it is
    removed; its weight times that value moves into the next layer's bias (bias compensation).
    """
    pruned = copy.deepcopy(model)
    linears = linear_layers(pruned)
    constants = list(constants) if constants is not None else [None] * (len(kept) + 1)
    if kept_inputs is not None:
        _shrink_inputs(pruned, linears[0], kept_inputs.to(linears[0].weight.device), constants[0])
    for layer, following, index, constant in zip(linears, linears[1:], kept, constants[1:]):
        index = index.to(layer.weight.device)
        if constant is not None:
            gone = _removed(layer.out_features, index).to(layer.weight.device)
            following.bias += following.weight[:, gone] @ constant.to(following.weight)[gone]
        narrow = nn.Linear(layer.in_features, len(index), bias=layer.bias is not None)
        narrow.weight.copy_(layer.weight[index])
        if layer.bias is not None:
            narrow.bias.copy_(layer.bias[index])
        _replace(pruned, layer, narrow.to(layer.weight.device, layer.weight.dtype))
        following.weight = nn.Parameter(following.weight[:, index].clone())
        following.in_features = len(index)
    return pruned


def _shrink_inputs(model: nn.Module, first: nn.Linear, kept: torch.Tensor, constant: torch.Tensor | None) -> None:
    """Keep only the input features `kept` (positions among those read now) and record them in KeepInputs."""
    if not isinstance(model, SimpleNN):
        raise ScheduleError(f"input-node pruning needs a SimpleNN (it records the kept inputs), got "
                            f"{type(model).__name__}.")
    if constant is not None:
        gone = _removed(first.in_features, kept).to(first.weight.device)
        first.bias += first.weight[:, gone] @ constant.to(first.weight)[gone]
    current = model.keep_inputs.index if model.keep_inputs is not None else torch.arange(first.in_features)
    model.keep_inputs = KeepInputs(current.to(kept.device)[kept]).to(first.weight.device)
    first.weight = nn.Parameter(first.weight[:, kept].clone())
    first.in_features = len(kept)


@torch.no_grad()
def node_means(model: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Return each node's mean value over `inputs`: the features the first layer reads, then each hidden
    layer's activations (what bias compensation 'mean' folds in)."""
    first = linear_layers(model)[0]
    value, means = inputs.reshape(len(inputs), -1).to(first.weight.device, first.weight.dtype), []
    layers = mlp_layers(model)
    for position, layer in enumerate(layers):
        if isinstance(layer, nn.Linear) and not means:
            means.append(value.mean(dim=0))
        value = layer(value)
        if isinstance(layer, (nn.ReLU, nn.Sigmoid)) and position < len(layers) - 1:
            means.append(value.mean(dim=0))
    return means


@torch.no_grad()
def node_midpoints(model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """Return each node's interval midpoint over the input box: the features the first layer reads, then each
    hidden layer's activations (what bias compensation 'midpoint' folds in)."""
    weight = linear_layers(model)[0].weight
    lower, upper = (bound.to(weight.device, weight.dtype).reshape(1, -1) for bound in box)
    data = Interval(lower, upper)
    inputs = first_layer_view(model, data)
    activation = next(layer for layer in mlp_layers(model) if isinstance(layer, (nn.ReLU, nn.Sigmoid)))
    hidden = [value.relu() if isinstance(activation, nn.ReLU) else value.sigmoid()
              for value in interval_forward(model, data)[:-1]]
    return [value.midpoint.reshape(-1) for value in (inputs, *hidden)]


def parameters_of(model: nn.Module) -> Callable[[list[int]], int]:
    """Return the parameter count of `model`'s shape with other node counts (inputs first, then hidden layers)."""
    classes = linear_layers(model)[-1].out_features
    return lambda counts: mlp_parameters(counts[0], counts[1:], classes)


def prune_nodes(model: nn.Module, retain: Sequence[int], criterion: str | Criterion | None = None,
                context: PruningContext | None = None, *, inputs: int | None = None, compensation: str | None = None,
                options: PruneConfig | None = None, budget: int | None = None) -> nn.Module:
    """Return a new, smaller model keeping the `retain[k]` most significant neurons of hidden layer k (and the
    `inputs` most significant input features, when given), with bias compensation.

    `options` (default PruneConfig()) say how: the criterion when `criterion` is None, its own options, the
    compensation when `compensation` is None, and the allocation: each layer its own count (the reference), or one
    global budget of sum(retain) neurons or `budget` parameters that all nodes compete for. A step that removes
    nothing under layer allocation returns a copy without scoring."""
    options = options or PruneConfig()
    compensation = options.bias_compensation if compensation is None else compensation
    reads = linear_layers(model)[0].in_features
    current = [layer.out_features for layer in hidden_linears(model)]
    if options.allocation == "layer" and list(retain) == current and (inputs is None or inputs >= reads):
        return copy.deepcopy(model)
    context = context or PruningContext()
    scores = node_significance(model, criterion if criterion is not None else make_criterion(options=options),
                               context)
    if inputs is not None and scores[0] is None:
        raise ScheduleError("input-node pruning (prune_inputs) needs a criterion that scores the input features; "
                            "this one scores hidden neurons only.")
    if options.allocation == "global":
        inputs, retain = allocate(model, scores, retain, options, inputs, budget)
    constants = compensation_constants(model, compensation, context)
    kept_inputs = top(scores[0], inputs) if inputs is not None and inputs < reads else None
    return shrink(model, keep_indices(scores[1:], retain), kept_inputs, constants)


def allocate(model: nn.Module, scores: list, retain: Sequence[int], options: PruneConfig, inputs: int | None,
             budget: int | None) -> tuple[int | None, list[int]]:
    """Return (inputs, hidden counts) when all nodes compete for one budget: the schedule's sum(retain) hidden
    neurons (inputs, if pruned, follow their own schedule), or `budget` parameters shared by inputs and neurons."""
    hidden = [layer.out_features for layer in hidden_linears(model)]
    classes = linear_layers(model)[-1].out_features
    minimums = [1] * len(hidden)
    minimums[-1] = min(options.min_last_hidden or classes, hidden[-1])
    if options.budget == "macs":
        raise ScheduleError(MACS_NEED_LAYERS)
    if options.budget == "neurons":
        neurons = max(sum(retain), sum(minimums))
        return inputs, global_counts(scores[1:], minimums, sum, neurons, options.normalise)
    if budget is None:
        raise ScheduleError("allocation='global' with budget='parameters' needs each step's parameter budget "
                            "(the parameterBudget column): build the schedule with default_steps(config).")
    reads = linear_layers(model)[0].in_features
    with_inputs = inputs is not None
    layers = [scores[0], *scores[1:]] if with_inputs else scores[1:]
    floors = [1, *minimums] if with_inputs else minimums
    cost = parameters_of(model) if with_inputs else (lambda counts: mlp_parameters(reads, counts, classes))
    counts = global_counts(layers, floors, cost, max(budget, cost(floors)), options.normalise)
    return (counts[0], counts[1:]) if with_inputs else (None, counts)


def compensation_constants(model: nn.Module, compensation: str, context: PruningContext
                           ) -> list[torch.Tensor] | None:
    """Return what bias compensation folds in for each node layer, or None for 'none'."""
    check_compensation(compensation, context)
    if compensation == "none":
        return None
    return node_means(model, context.batch[0]) if compensation == "mean" else node_midpoints(model, context.input_box)


def check_compensation(compensation: str, context: PruningContext) -> None:
    """Refuse a bias compensation that is not known, or whose data the context lacks."""
    if compensation not in COMPENSATIONS:
        raise ScheduleError(f"bias compensation {compensation!r} is not known: expected one of "
                            f"{', '.join(COMPENSATIONS)}.")
    if compensation == "mean" and context.batch is None:
        raise ScheduleError("bias compensation 'mean' needs a sample of training data: pass batch=(inputs, "
                            "targets).")
    if compensation == "midpoint" and context.input_box is None:
        raise ScheduleError("bias compensation 'midpoint' needs the input box: pass input_box=(lower, upper).")

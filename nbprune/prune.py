"""Node pruning: choose the most significant neurons per hidden layer and physically shrink the layers."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from .errors import ScheduleError
from .significance import Criterion, PruningContext, mlp_layers, significance


def keep_indices(scores: Sequence[torch.Tensor], retain: Sequence[int]) -> list[torch.Tensor]:
    """Return, per layer, the sorted indices of the `retain[k]` highest scores (ties go to the lower index)."""
    if len(scores) != len(retain):
        raise ScheduleError(f"retain={list(retain)} names {len(retain)} hidden layers, the model has {len(scores)}: "
                            f"give one count per hidden layer.")
    kept = []
    for layer, (score, count) in enumerate(zip(scores, retain), start=1):
        if int(count) != count or not 1 <= count <= len(score):
            raise ScheduleError(f"retain count {count!r} for hidden layer {layer} is not allowed: expected a whole "
                                f"number from 1 to {len(score)} (the neurons it has now).")
        order = torch.sort(score, descending=True, stable=True).indices
        kept.append(order[:int(count)].sort().values)
    return kept


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for name, module in model.named_modules():
        if module is old:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
            return
    raise ValueError(f"{old} is not a submodule of the model")


@torch.no_grad()
def shrink(model: nn.Module, kept: Sequence[torch.Tensor]) -> nn.Module:
    """Return a copy of `model` whose hidden layer k keeps only the neurons `kept[k]` (the surgery)."""
    pruned = copy.deepcopy(model)
    linears = [layer for layer in mlp_layers(pruned) if isinstance(layer, nn.Linear)]
    for layer, following, index in zip(linears, linears[1:], kept):
        index = index.to(layer.weight.device)
        narrow = nn.Linear(layer.in_features, len(index), bias=layer.bias is not None)
        narrow.weight.copy_(layer.weight[index])
        if layer.bias is not None:
            narrow.bias.copy_(layer.bias[index])
        _replace(pruned, layer, narrow.to(layer.weight.device, layer.weight.dtype))
        following.weight = nn.Parameter(following.weight[:, index].clone())
        following.in_features = len(index)
    return pruned


def prune_nodes(model: nn.Module, retain: Sequence[int], criterion: str | Criterion = "interval_adjoint",
                context: PruningContext | None = None, *, input_box=None, batch=None, seed: int = 0) -> nn.Module:
    """Return a new, smaller model keeping the `retain[k]` most significant neurons of hidden layer k."""
    if context is None:
        context = PruningContext(input_box=input_box, batch=batch, seed=seed)
    scores = significance(model, criterion, context)
    return shrink(model, keep_indices(scores, retain))


"""Diagnostics of the interval-adjoint criterion on a trained model: how wide its intervals are against what the
training images produce, what its input box holds, and how its rankings compare with other rankings (notebook 04
measures the student's model with these)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import torch.nn.functional as F

from ..interval import Interval
from ..model import hidden_linears, linear_layers, mlp_layers
from ..config import PruneConfig
from ..criteria import IntervalAdjoint, PruningContext, first_layer_view, interval_forward, significance


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Return Spearman's rank correlation of two score vectors (ties share their mean rank)."""
    ranks_a, ranks_b = _ranks(a.reshape(-1).double()), _ranks(b.reshape(-1).double())
    ranks_a, ranks_b = ranks_a - ranks_a.mean(), ranks_b - ranks_b.mean()
    spread = (ranks_a.norm() * ranks_b.norm()).item()
    return float((ranks_a @ ranks_b).item() / spread) if spread > 0 else float("nan")


def _ranks(values: torch.Tensor) -> torch.Tensor:
    raw = torch.empty_like(values)
    raw[values.argsort()] = torch.arange(len(values), dtype=values.dtype)
    _, tie_group = torch.unique(values, return_inverse=True)
    mean_rank = torch.zeros(int(tie_group.max()) + 1, dtype=values.dtype).index_add_(0, tie_group, raw)
    return (mean_rank / torch.bincount(tie_group).to(values.dtype))[tie_group]


@torch.no_grad()
def pre_activations(model: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Return every linear layer's output (pre-activation) for each input: one [inputs, units] tensor per layer."""
    weight = linear_layers(model)[0].weight
    value, outputs = inputs.reshape(len(inputs), -1).to(weight.device, weight.dtype), []
    for layer in mlp_layers(model):
        value = layer(value)
        if isinstance(layer, nn.Linear):
            outputs.append(value)
    return outputs


def observed_ranges(model: nn.Module, inputs: torch.Tensor) -> list[Interval]:
    """Return, per linear layer, the interval from the smallest to the largest pre-activation the inputs produce."""
    return [Interval(value.min(dim=0).values, value.max(dim=0).values) for value in pre_activations(model, inputs)]


def layer_names(model: nn.Module) -> list[str]:
    """Return a name for each linear layer's output: hidden 1, hidden 2, ..., logits."""
    return [*(f"hidden {k}" for k in range(1, len(hidden_linears(model)) + 1)), "logits"]


def width_table(model: nn.Module, context: PruningContext, inputs: torch.Tensor, options: PruneConfig | None = None):
    """Return a table (pandas) with one row per neuron of every linear layer: its interval's width over the
    interval-adjoint criterion's input boxes under `options` (the mean over boxes), the range the inputs produce,
    and their ratio."""
    return _width_rows(model, context, observed_ranges(model, inputs), IntervalAdjoint(options))


def _width_rows(model: nn.Module, context: PruningContext, observed: Sequence[Interval], criterion: IntervalAdjoint):
    import pandas as pd

    intervals = interval_forward(model, criterion.boxes(context, linear_layers(model)[0].weight))
    rows = []
    for name, interval, seen in zip(layer_names(model), intervals, observed):
        widths, ranges = interval.width.mean(dim=0).cpu(), seen.width.cpu()
        rows += [{"layer": name, "neuron": j, "interval width": float(w), "observed range": float(r),
                  "ratio": float(w / r) if r > 0 else float("inf")} for j, (w, r) in enumerate(zip(widths, ranges))]
    return pd.DataFrame(rows)


def contain_zero(intervals: Sequence[Interval]) -> list[tuple[int, int]]:
    """Return, per layer, (how many intervals hold 0, how many intervals there are)."""
    return [(int(((value.lower <= 0) & (value.upper >= 0)).sum()), value.lower.numel()) for value in intervals]


def derivative_intervals(model: nn.Module, pre_activations_: Sequence[Interval]) -> list[Interval]:
    """Return the activation's derivative interval over each hidden layer's pre-activation interval."""
    relu = next(layer for layer in mlp_layers(model) if isinstance(layer, (nn.ReLU, nn.Sigmoid)))
    return [value.relu_derivative() if isinstance(relu, nn.ReLU) else value.sigmoid_derivative()
            for value in pre_activations_[:-1]]


def magnitude_correlations(model: nn.Module, context: PruningContext, options: PruneConfig | None = None
                           ) -> list[float]:
    """Return, per hidden layer, the rank correlation of interval-adjoint significance (under `options`) with weight
    magnitude."""
    interval = significance(model, IntervalAdjoint(options), context)
    return [rank_correlation(a, b) for a, b in zip(interval, significance(model, "magnitude", context))]


def seed_correlations(model: nn.Module, context: PruningContext, seeds: str = "class_sum",
                      options: PruneConfig | None = None) -> list[float]:
    """Return, per hidden layer, the rank correlation of the default seed's significance (ones on every output)
    with the significance under `seeds` (one backward pass per class), both over the input boxes of `options`."""
    ones = significance(model, IntervalAdjoint(options, adjoint_seeds="ones"), context)
    per_class = significance(model, IntervalAdjoint(options, adjoint_seeds=seeds), context)
    return [rank_correlation(a, b) for a, b in zip(ones, per_class)]


def box_summary(model: nn.Module, context: PruningContext, inputs: torch.Tensor,
                boxes: Sequence[str] = ("data", "class", "local"), options: PruneConfig | None = None):
    """Return a table (pandas), per kind of input box and linear layer: the median ratio of interval width to the
    observed range, the share of intervals holding 0, and (hidden layers) the rank correlation with magnitude, all
    under the default adjoint seed (ones on every logit) whatever the seeds of `options` (local boxes: its
    box_radius and box_count)."""
    import pandas as pd

    weight = linear_layers(model)[0].weight
    observed, rows = observed_ranges(model, inputs), []  # the training images' ranges, measured once
    for kind in boxes:
        criterion = IntervalAdjoint(options, input_boxes=kind, adjoint_seeds="ones")
        table = _width_rows(model, context, observed, criterion)
        held = contain_zero(interval_forward(model, criterion.boxes(context, weight)))
        correlations = [*magnitude_correlations(model, context, criterion.options), float("nan")]
        for name, (zeros, total), correlation in zip(layer_names(model), held, correlations):
            rows.append({"boxes": kind, "layer": name,
                         "median width / range": table[table.layer == name]["ratio"].median(),
                         "% holding 0": 100 * zeros / total,
                         "corr. with magnitude": correlation})
    return pd.DataFrame(rows)


def outside_box(box: tuple[torch.Tensor, torch.Tensor], inputs: torch.Tensor) -> int:
    """Return how many inputs have at least one feature outside the box (lower, upper)."""
    lower, upper = (bound.reshape(1, -1) for bound in box)
    flat = inputs.reshape(len(inputs), -1).to(lower.dtype)
    return int(((flat < lower) | (flat > upper)).any(dim=1).sum())


def constant_features(box: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Return the indices of the features whose box has width 0: the same value in every training input."""
    lower, upper = (bound.reshape(-1) for bound in box)
    return (upper == lower).nonzero().reshape(-1)


@torch.no_grad()
def constant_feature_shift(model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Return, per first-layer neuron, how far removing the constant features moves its pre-activation:
    sum over constant features p of W[j, p] * value_p (what bias compensation folds into the bias instead)."""
    first = linear_layers(model)[0]
    lower, upper = (first_layer_view(model, bound.reshape(1, -1)).reshape(-1).to(first.weight) for bound in box)
    constant = (upper == lower).nonzero().reshape(-1)
    return first.weight[:, constant] @ lower[constant]


def neuron_costs(model: nn.Module) -> list[int]:
    """Return, per hidden layer, the parameters one of its neurons costs: its incoming weights, its bias and its
    outgoing weights."""
    linears = linear_layers(model)
    return [layer.in_features + (layer.bias is not None) + following.out_features
            for layer, following in zip(linears, linears[1:])]


def constant_feature_places(box: tuple[torch.Tensor, torch.Tensor], shape: Sequence[int]) -> dict[str, int]:
    """Return where an image's constant features (box width 0) lie: how many in the four corner squares (a quarter
    of the side each way), how many elsewhere on the two outermost rows and columns, and how many further in."""
    rows, columns = shape
    places = {"corners": 0, "border": 0, "inside": 0}
    for feature in constant_features(box).tolist():
        row, column = divmod(feature, columns)
        from_edge = (min(row, rows - 1 - row), min(column, columns - 1 - column))
        if from_edge[0] < rows // 4 and from_edge[1] < columns // 4:
            places["corners"] += 1
        elif min(from_edge) < 2:
            places["border"] += 1
        else:
            places["inside"] += 1
    return places


def correlation_words(value: float) -> str:
    """Return how alike two rankings are, in words, for Spearman's rank correlation `value`."""
    size = abs(value)
    words = ("nearly the same order" if size >= 0.9 else "much the same order" if size >= 0.7 else
             "a moderate likeness" if size >= 0.4 else "a weak likeness" if size >= 0.2 else "hardly related")
    return f"{words}{', reversed' if value < 0 and size >= 0.2 else ''}"


@torch.no_grad()
def removal_effects(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, layer: int = -1):
    """Return a table (pandas), one row per neuron of hidden layer `layer` (1 for the first; -1 for the last): how
    much the mean cross-entropy and the accuracy (points) on `inputs` change when that neuron alone is removed, its
    activation fixed at 0 as pruning does (no bias compensation, no retraining)."""
    import pandas as pd

    layers = mlp_layers(model)
    activations = [index for index, module in enumerate(layers) if isinstance(module, (nn.ReLU, nn.Sigmoid))]
    chosen = activations[layer - 1 if layer > 0 else layer]
    weight = linear_layers(model)[0].weight
    value = inputs.reshape(len(inputs), -1).to(weight.device, weight.dtype)
    targets = targets.to(weight.device)
    for module in layers[:chosen + 1]:
        value = module(value)

    def loss_and_accuracy(hidden: torch.Tensor) -> tuple[float, float]:
        for module in layers[chosen + 1:]:
            hidden = module(hidden)
        return (F.cross_entropy(hidden, targets).item(),
                100.0 * (hidden.argmax(dim=1) == targets).double().mean().item())

    loss, accuracy = loss_and_accuracy(value)
    rows = []
    for neuron in range(value.shape[1]):
        removed = value.clone()
        removed[:, neuron] = 0
        changed_loss, changed_accuracy = loss_and_accuracy(removed)
        rows.append({"neuron": neuron, "loss change": changed_loss - loss,
                     "accuracy change": changed_accuracy - accuracy})
    return pd.DataFrame(rows)


def _signed(value: float, digits: int) -> str:
    """Return `value` with its sign and `digits` decimals, never "-0.000"."""
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"


def removal_summary(effects, significance: torch.Tensor) -> str:
    """Return what removing each neuron alone measured (a removal_effects table) says about its significance
    scores, in words and numbers computed from both."""
    scores = significance.reshape(-1).double()
    loss = torch.tensor(effects["loss change"].to_numpy(), dtype=torch.float64)
    correlation = rank_correlation(scores, loss)
    order = torch.argsort(scores, descending=True, stable=True)
    rank_of = torch.empty_like(order)
    rank_of[order] = torch.arange(1, len(order) + 1)
    worst, top = int(torch.argmax(loss)), int(order[0])
    lowest, others = order[-max(1, len(order) // 4):], order[:len(order) - max(1, len(order) // 4)]
    meaning = ("so on this layer the score's order does follow, to a degree, what removing a neuron costs"
               if correlation >= 0.4 else
               "so on this layer the score says little about which single neuron can go: it bounds how far the sum "
               "of the logits can move over the whole box, not what removing the neuron does to the loss on real "
               "images")
    return (f"Spearman's rank correlation of the significance with the loss increase each removal causes: "
            f"{correlation:.2f} ({correlation_words(correlation)}), {meaning}. The neuron whose removal costs most "
            f"({_signed(loss[worst], 4)} loss, {_signed(effects['accuracy change'].iloc[worst], 2)} accuracy "
            f"points) ranks {int(rank_of[worst])} of {len(order)} by significance; removing the most significant "
            f"one changes the loss by {_signed(loss[top], 4)}. {int((loss <= 1e-3).sum())} of {len(order)} "
            f"neurons raise the loss by at most 0.001 when removed alone; the quarter the score ranks lowest change "
            f"it by {_signed(loss[lowest].mean(), 4)} on average, the others by {_signed(loss[others].mean(), 4)}.")

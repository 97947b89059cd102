"""Exercises of 00_intervals: a linear layer, an activation's derivative and a significance bounded by hand, the
dependency problem on the primer's 2-2-1 network, the interval forward and adjoint built by the student and checked
against nbprune's ("00.build"), and the notebook's questionnaire."""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from . import Verdict, ask, close, exercise, same_interval
from ...criteria import PruningContext, first_layer_view, interval_adjoint, interval_forward, significance
from ...data import DataSplits
from ...config import RunConfig
from ...interval import Interval
from ...model import SimpleNN, linear_layers, mlp_layers
from ..primer import primer_box, primer_network
from ...session import Session
from ...training import fit, training_settings


def _first_neuron_over(lower, upper) -> tuple[float, float]:
    z = interval_forward(primer_network(), primer_box(lower, upper))[0][..., 0]
    return float(z.lower), float(z.upper)


@exercise("00.1", "Bound the primer's first pre-activation z1 = x1 - 2 x2 over another box: x1 in [-1, 2], "
                  "x2 in [0, 1]. Answer (lower, upper).", solver=lambda: _first_neuron_over((-1, 0), (2, 1)))
def other_box(answer) -> Verdict:
    return same_interval(answer, *_first_neuron_over((-1, 0), (2, 1)), "[z1] over [-1, 2] x [0, 1]",
                         why="centre 1·0.5 - 2·0.5 = -0.5, radius |1|·1.5 + |-2|·0.5 = 2.5; or lower = 1·(-1) "
                             "+ (-2)·1, upper = 1·2 + (-2)·0.",
                         hint="centre W c, radius |W| r with c = (0.5, 0.5), r = (1.5, 0.5); a negative weight "
                              "takes the input's upper bound into the lower bound.")


def _sigmoid_slope(lower: float, upper: float) -> tuple[float, float]:
    slope = Interval(torch.tensor(lower, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64))
    derivative = slope.sigmoid_derivative()
    return float(derivative.lower), float(derivative.upper)


@exercise("00.2", "Give the interval of the sigmoid's derivative s'(z) = s(z)(1 - s(z)) over [z] = [-1, 2], as "
                  "(lower, upper), to 3 decimals.", solver=lambda: _sigmoid_slope(-1.0, 2.0))
def sigmoid_slope(answer) -> Verdict:
    return same_interval(answer, *_sigmoid_slope(-1.0, 2.0), "s' over [-1, 2]",
                         why="the interval holds 0, where s' peaks at 0.25; s' falls with |z|, so its smallest "
                             "value is at the end farther from 0, s'(2) = 0.105.",
                         hint="where does s' peak, and is that point inside [-1, 2]? Which end is farther from 0?")


def _changed_weight_significance() -> float:
    network, box = primer_network(first=((1.0, -1.0), (0.5, 1.0))), primer_box()
    return float(significance(network, "interval_adjoint", PruningContext(input_box=(box.lower, box.upper)))[0][0])


@exercise("00.3", "Change the primer's weight W1[0][1] from -2 to -1 (so z1 = x1 - x2). What is the significance "
                  "s1 of hidden neuron 1 now?", solver=_changed_weight_significance)
def changed_weight(answer) -> Verdict:
    return close(answer, _changed_weight_significance(), "s1 with z1 = x1 - x2",
                 why="[z1] = [0 - 1, 1 + 1] = [-1, 2], width 3; it still holds 0, so relu' is [0, 1] and the "
                     "adjoint [0, 1] · 1 = [0, 1]: s1 = 3 · 1.",
                 hint="redo step 1 for z1 only, then ask whether [z1] still holds 0.")


@torch.no_grad()
def _second_input_adjoint() -> tuple[float, float]:
    network = primer_network(second=((1.0, 1.0),))
    adjoint = interval_adjoint(network, interval_forward(network, primer_box()))[0] @ network.fc1.weight
    return float(adjoint.lower[0, 1]), float(adjoint.upper[0, 1])


@exercise("00.4", "Give the primer the output weights W2 = (1, 1) (as at the end of step 6) and carry its interval "
                  "adjoint back to the input x2 (x̄ = W1ᵀ z̄). Answer (lower, upper).",
          solver=_second_input_adjoint)
def input_adjoint(answer) -> Verdict:
    return same_interval(answer, *_second_input_adjoint(), "the adjoint of x2",
                         why="ā = W2ᵀ · 1 = (1, 1), so z̄1 = z̄2 = [0, 1] · 1 = [0, 1]; "
                             "x̄2 = W1[0][1] · z̄1 + W1[1][1] · z̄2 = -2 · [0, 1] + 1 · [0, 1] = [-2, 0] + [0, 1].",
                         hint="the transpose: x2 feeds z1 with weight -2 and z2 with weight 1; multiply each "
                              "adjoint interval by its weight (a negative weight swaps the ends) and add.")


@exercise("00.5", "With W2 = [1, 1], the interval of y is [0, 4.5] but no input of the box reaches 4.5. Which "
                  "point (z1, z2) of the rectangle [z1] x [z2] gives 4.5?", solver=lambda: (3.0, 1.5))
def unreachable_corner(answer) -> Verdict:
    z1, z2 = (float(value) for value in answer)
    if abs(z1 - 3.0) <= 1e-3 and abs(z2 - 1.5) <= 1e-3:
        return Verdict(True, "(3, 1.5): relu(3) + relu(1.5) = 4.5. z1 = 3 needs x = (1, -1), where z2 = -0.5; "
                             "interval arithmetic forgets that z1 and z2 depend on the same x (the dependency "
                             "problem), so it bounds y over the whole rectangle.")
    return Verdict(False, f"({z1:g}, {z2:g}) gives y = {max(z1, 0) + max(z2, 0):g}, not 4.5: y = relu(z1) + "
                          f"relu(z2) is largest where both are largest.")


# --- build it yourself: the interval forward and adjoint of a ReLU MLP in plain torch -------------------------------
Bounds = list[tuple[torch.Tensor, torch.Tensor]]


def interval_forward_by_hand(weights: list[torch.Tensor], biases: list[torch.Tensor], lower: torch.Tensor,
                             upper: torch.Tensor) -> Bounds:
    """Return (lower, upper) of every linear layer's output of a ReLU MLP over the box [lower, upper] (one row per
    box): the worked solution of 00.build."""
    bounds = []
    for k, (weight, bias) in enumerate(zip(weights, biases)):
        if k > 0:  # a ReLU between two linear layers: monotone, so its bounds are its values at the ends
            lower, upper = lower.clamp(min=0), upper.clamp(min=0)
        centre, radius = (lower + upper) / 2, (upper - lower) / 2
        centre, radius = centre @ weight.T + bias, radius @ weight.abs().T  # centre W c + b, radius |W| r
        lower, upper = centre - radius, centre + radius
        bounds.append((lower, upper))
    return bounds


def interval_adjoint_by_hand(weights: list[torch.Tensor], bounds: Bounds) -> Bounds:
    """Return (lower, upper) of the adjoint at every linear layer's output of a ReLU MLP, seeded with 1 on every
    output, from the forward bounds: the worked solution of 00.build."""
    lower = upper = torch.ones_like(bounds[-1][0])
    adjoints = [(lower, upper)]
    for k in reversed(range(len(weights) - 1)):  # from the last hidden layer back to the first
        weight, (z_lower, z_upper) = weights[k + 1], bounds[k]
        centre, radius = (lower + upper) / 2 @ weight, (upper - lower) / 2 @ weight.abs()  # the transpose: Wᵀ z̄
        lower, upper = centre - radius, centre + radius
        slope_lower, slope_upper = (z_lower > 0).to(lower.dtype), (z_upper > 0).to(lower.dtype)  # relu'([z])
        ends = torch.stack([slope_lower * lower, slope_lower * upper, slope_upper * lower, slope_upper * upper])
        lower, upper = ends.min(dim=0).values, ends.max(dim=0).values
        adjoints.insert(0, (lower, upper))
    return adjoints


class WorkedCode(tuple):
    """Functions that answer a build-it-yourself exercise; a notebook shows their source."""

    def source(self) -> str:
        return "\n\n".join(inspect.getsource(function) for function in self)

    def __repr__(self) -> str:
        return self.source()

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.source()}```"


TOLERANCE = 1e-4  # relative to the layer's largest bound: float32 sums of 784 products round differently by order


def linears_of(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Return an MLP's weights and biases, layer by layer, as the functions of 00.build take them."""
    layers = linear_layers(model)
    biases = [layer.bias if layer.bias is not None else torch.zeros(layer.out_features, dtype=layer.weight.dtype)
              for layer in layers]
    return [layer.weight.detach() for layer in layers], [bias.detach() for bias in biases]


def _box_of(model: nn.Module, box) -> Interval:
    """Return `box` (an Interval or a (lower, upper) pair) as one row [1, features] in the model's dtype."""
    lower, upper = (box.lower, box.upper) if isinstance(box, Interval) else box
    weight = linear_layers(model)[0].weight
    return Interval(*(torch.as_tensor(bound).to(weight.dtype).reshape(1, -1) for bound in (lower, upper)))


def _has_blank(function: Callable) -> bool:
    """Return whether a function's code still holds `...`, the scaffold's blank (Python folds `..., ...` into one
    tuple constant, so tuples and nested code are searched too)."""
    def holds(constant) -> bool:
        if constant is Ellipsis:
            return True
        if isinstance(constant, (tuple, frozenset)):
            return any(holds(item) for item in constant)
        return hasattr(constant, "co_consts") and any(holds(item) for item in constant.co_consts)
    return holds(getattr(function, "__code__", ()))


def _first_difference(mine, library: list[Interval], what: str, names: list[str]) -> str | None:
    """Return where the student's (lower, upper) pairs first differ from the library's intervals (None: nowhere)."""
    mine = list(mine)
    if len(mine) != len(library):
        return f"{what} returned {len(mine)} pairs, expected {len(library)}: one (lower, upper) per linear layer"
    for name, pair, interval in zip(names, mine, library):
        pair = tuple(pair)
        if len(pair) != 2:
            return f"{what} gave {len(pair)} tensors for {name}, expected a pair (lower, upper)"
        for end, value, expected in zip(("lower", "upper"), pair, (interval.lower, interval.upper)):
            value = torch.as_tensor(value).to(expected.dtype)
            if value.shape != expected.shape:
                return f"{what}: the {end} bound of {name} has shape {list(value.shape)}, expected " \
                       f"{list(expected.shape)}"
            gap = float((value - expected).abs().max())
            if not gap <= TOLERANCE * (1 + float(expected.abs().max())):
                return f"{what}: the {end} bound of {name} differs from nbprune's by up to {gap:.4g}"
    return None


def _run(function: Callable, name: str, *arguments) -> tuple[object, str | None]:
    """Return the function's result, or why it has none (a blank still empty, or the error it raised)."""
    try:
        return function(*arguments), None
    except Exception as error:  # the student's code: any error becomes a "not yet" with its message
        if _has_blank(function):
            return None, f"{name} still has blanks (...): fill them in and run its cell again"
        return None, f"{name} raised {type(error).__name__}: {error}"


def _built(model: nn.Module | None = None, box=None) -> WorkedCode:
    return WorkedCode((interval_forward_by_hand, interval_adjoint_by_hand))


@exercise("00.build", "Write the interval forward and the interval adjoint of a ReLU MLP in torch; answer the pair "
                      "(forward, adjoint), checked against nbprune on `model` over `box`.", solver=_built)
def build_it_yourself(answer, model: nn.Module, box) -> Verdict:
    forward, adjoint = answer
    if any(isinstance(layer, nn.Sigmoid) for layer in mlp_layers(model)):
        return Verdict(False, "this network uses sigmoid; the functions are for a ReLU network.")
    weights, biases = linears_of(model)
    rows = _box_of(model, box)
    sizes = "-".join(str(size) for size in [weights[0].shape[1], *(weight.shape[0] for weight in weights)])
    names = [f"hidden layer {k}" for k in range(1, len(weights))] + ["the output layer"]
    library = interval_forward(model, rows)
    seen = first_layer_view(model, rows)  # the features the first layer reads (all, unless inputs were pruned)
    bounds, failed = _run(forward, "your forward", weights, biases, seen.lower, seen.upper)
    if failed:
        return Verdict(False, f"{failed}. (On the {sizes} network.)")
    differs = _first_difference(bounds, library, "your forward", names)
    if differs:
        return Verdict(False, f"{differs}. Check the rule there: centre W c + b and radius |W| r for a linear layer, "
                              f"relu at both ends before it.")
    adjoints, failed = _run(adjoint, "your adjoint", weights, bounds)
    if failed:
        return Verdict(False, f"your forward agrees with nbprune's on every layer of the {sizes} network; {failed}.")
    differs = _first_difference(adjoints, interval_adjoint(model, library), "your adjoint", names)
    if differs:
        return Verdict(False, f"your forward agrees with nbprune's; {differs}. Check the rule there: the transpose "
                              f"(rows are boxes: z̄ W, centre-radius again), then relu'([z]) times [ā] as the min and "
                              f"max of the four products of ends.")
    return Verdict(True, f"your interval forward and adjoint agree with nbprune's on every layer of the {sizes} "
                         f"network: you have written the method's whole computation.")


QUICK_EPOCHS = 1  # enough for a network whose bounds are a trained model's, in about a second


def network_to_check(session: Session, data: DataSplits, config: RunConfig) -> tuple[SimpleNN, str]:
    """Return a trained ReLU network for `data` to check 00.build on, and where it comes from: the session's dense
    model (02_model trained it) when there is one, else a network of the configuration's hidden sizes trained here
    for one epoch (not saved)."""
    file = session.dense_model_file
    if file.is_file():
        model = SimpleNN.from_file(file)
        if model.activation == "relu" and model.spec is not None and model.spec.dataset == data.name \
                and model.in_features == data.spec.features:
            return model, f"the {'-'.join(map(str, (model.in_features, *model.hidden, model.num_classes)))} " \
                          f"network 02_model trained ({file})"
    torch.manual_seed(config.seed)
    model = SimpleNN(config.model.hidden, data.spec.features, len(data.classes), "relu")
    fit(model, data.train_loader, data.val_loader, training_settings(config.train, epochs=QUICK_EPOCHS),
        progress=False)  # no logdir: nothing is written
    sizes = "-".join(map(str, (model.in_features, *model.hidden, model.num_classes)))
    return model, (f"a {sizes} ReLU network trained here for {QUICK_EPOCHS} epoch on {data.name} (this session has "
                   f"no model from 02_model yet; after notebook 02, rerun this cell to check on that one)")


# --- the questionnaire -------------------------------------------------------------------------------------------
ask("00.q1", "What does it mean that an interval operation *encloses* its results, and why can a chain of exact "
             "rules give a bound wider than the true range?",
    "The result interval holds every value the operation gives on numbers taken from its operands. Each rule (sum, "
    "point factor, product, monotone function) returns the tightest such interval for its one operation. A chain "
    "of them treats every intermediate interval as if its values were free to vary independently; when two of "
    "them depend on the same inputs (z1 and z2 both depend on x), the chain also covers combinations no input "
    "produces: the dependency problem.")
ask("00.q2", "Why does a negative weight carry an input's *upper* bound into the lower bound of z = W x + b?",
    "For w < 0 the term w x decreases as x grows, so its smallest value over [x] is at the largest x. The lower "
    "bound of z takes each term at its smallest: the lower end of x where the weight is positive, the upper end "
    "where it is negative (the W⁺, W⁻ split of step 1).")
ask("00.q3", "Why is the product of two intervals found among the four products of their ends?",
    "For fixed b the product ab is linear in a, so over [a] it is largest and smallest at an end of [a]; likewise "
    "in b. Over the rectangle [a] × [b] its extremes are therefore at corners, and [a][b] = [min, max] of the four "
    "corner products. Two ends are not enough: with [1, 2] · [-3, 1] the lower bound -6 pairs the upper end of [a] "
    "with the lower end of [b].")
ask("00.q4", "Derive from the chain rule why the adjoint of a linear layer y = W a + b is W transposed times the "
             "adjoint of y.",
    "y_i = Σ_j W_ij a_j + b_i, so a_j reaches the seeded output ȳᵀy only through the outputs y_i it feeds, with "
    "∂y_i/∂a_j = W_ij. The chain rule adds the paths: ā_j = Σ_i ȳ_i W_ij = (Wᵀ ȳ)_j. The sum runs over the "
    "*first* index of W, which is what the transpose does.")
ask("00.q5", "The default seed is 1 on every output. Of which function is the interval adjoint then the derivative, "
             "and what do per-class seeds change?",
    "Of the sum of the outputs (the logits). In that sum, changes of different logits can cancel, and a change of "
    "all logits alike counts although it leaves the softmax unchanged. Per-class seeds (adjoint_seeds = "
    "'class_sum' or 'class_max') run one backward pass per class, each the derivative of one logit, and combine "
    "the magnitudes by sum or maximum.")
ask("00.q6", "What exactly does the significance s_j bound, and how is that different from a first-order Taylor "
             "estimate?",
    "Hold the inputs anywhere in the box and move z_j anywhere within [z_j]: the seed-weighted sum of the outputs "
    "changes by at most |Δz_j| · max|[z̄_j]| ≤ s_j, because [z̄_j] encloses the derivative at every point on the "
    "way (mean value theorem). It is a rigorous bound, built from first derivatives, over the whole box. A "
    "first-order Taylor estimate multiplies the change by the slope at one point: an approximation that can fall "
    "short of the true change. On the primer s_1 = 5 while the largest change is 3: the bound is not tight either.")
ask("00.q7", "Why does s_j cover removing a ReLU neuron whose interval [z_j] reaches 0 or below, but never removing a "
             "sigmoid neuron?",
    "Removing a neuron sets its activation to 0. For a ReLU neuron with lower bound of [z_j] at or below 0, "
    "activation 0 is the value at a point of its interval, so the move is one the bound covers. A sigmoid's "
    "activation is always above 0, so 0 is never inside its range and the bound says nothing about removing it.")
ask("00.q8", "Where did the dependency problem show on the primer, and why is one linear layer free of it?",
    "z1 - z2 = 0.5 x1 - 3 x2 ranges over [-3, 3.5], but [z1] - [z2] = [-3.5, 4]; with W2 = (1, 1) the interval of "
    "y is [0, 4.5] while no input gets above 3. In one linear layer each input appears once in each z_j and can "
    "take its extreme on its own, so the corner that attains a neuron's bound is a real input; a later layer "
    "combines hidden values that share the same inputs.")
ask("00.q9", "nbprune's Interval does no outward rounding. What does that mean for the word 'encloses'?",
    "Every bound is computed in ordinary floating-point arithmetic, rounded to nearest, so a computed lower bound "
    "can lie a rounding error above the true one (or an upper bound below). The enclosure holds up to "
    "floating-point rounding, which is enough to rank neurons; a verified interval library would round every "
    "lower bound down and every upper bound up to make it a proof.")
ask("00.q10", "On the primer, every significance of the sigmoid network is a quarter of the ReLU network's. Why, and "
              "does that hold for any network?",
    "Both hidden intervals hold 0, where the sigmoid's slope peaks at 1/4; the ReLU's derivative interval there "
    "is [0, 1]. The adjoint ā = (1, -1) is the same point in both, so max|[z̄_j]| is 1/4 against 1 and the widths "
    "are equal. In general the sigmoid's slope is at most 1/4, but its pre-activation intervals and the adjoints "
    "behind a layer differ from a ReLU network's, so there is no fixed ratio.")

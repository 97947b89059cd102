"""Node scores: the reference's interval-adjoint significance, its variants, and simpler criteria to compare it with.

A criterion maps (model, context) to one score vector per node layer, higher meaning more worth keeping: the input
features first, then each hidden layer. `significance()` returns the hidden layers' scores (the reference's contract);
`node_significance()` returns all of them. The context carries data only (the input box, a sample of training data,
the seed of any sampling); a criterion holds its own options, built once from a PruneConfig (`make_criterion`), as
Torch-Pruning's importance objects are. CRITERIA maps each name to the factory that builds it from the options.

The interval-adjoint criterion (IntervalAdjoint) has two options, PruneConfig.adjoint_seeds and .input_boxes:
- adjoint seeds: "ones" (the reference: one backward pass from 1 on every output, the gradient of the sum of the
  logits), or one pass per output class, the classes' max |adjoint| summed ("class_sum") or maxed ("class_max");
- input boxes: "data" (the reference: one box from each feature's min to max over the training data), "class" (one box
  per class, over its training inputs), or "local" (small boxes of radius `box_radius` around `box_count` training
  inputs, clipped to the data box). Scores over several boxes are averaged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ADJOINT_SEEDS, CRITERIA as CRITERION_NAMES, INPUT_BOXES, PruneConfig, declared_default
from .data import Loader, TensorLoader, input_box
from .errors import NbpruneError
from .interval import Interval
from .model import KeepInputs, hidden_linears, linear_layers, mlp_layers

__all__ = ["ADJOINT_SEEDS", "CRITERIA", "INPUT_BOXES", "Criterion", "IntervalAdjoint", "PruningContext",
           "first_layer_view", "interval_adjoint", "interval_forward", "magnitude_scores", "make_criterion",
           "node_significance", "random_scores", "significance", "taylor_scores", "without_options"]


SAMPLE = 8192  # training rows the criteria, the boxes and bias compensation look at


@dataclass
class PruningContext:
    """What a criterion may look at: the input box, a sample of training data, the seed of any sampling."""

    input_box: tuple[torch.Tensor, torch.Tensor] | None = None
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    seed: int = declared_default("seed")

    @classmethod
    def of(cls, train_loader: Loader, seed: int) -> "PruningContext":
        """Return the context of a run: the training inputs' box, their first SAMPLE rows (or a loader's first
        batch), and the run's seed."""
        if isinstance(train_loader, TensorLoader):
            data = train_loader.dataset
            batch = (data.data[:SAMPLE], data.targets[:SAMPLE])
        else:
            batch = next(iter(train_loader))
        return cls(input_box=input_box(train_loader), batch=batch, seed=seed)


Criterion = Callable[[nn.Module, PruningContext], list[torch.Tensor]]
CriterionFactory = Callable[[PruneConfig], Criterion]
CRITERIA: dict[str, CriterionFactory] = {}  # each criterion's factory by its name, in the order declared


def register(name: str, factory: CriterionFactory) -> CriterionFactory:
    """Register `factory` (options -> criterion) under `name`, which nbprune.config.CRITERIA declares (the choices
    of the criterion setting in every door); return it."""
    if name not in CRITERION_NAMES:
        raise RuntimeError(f"criterion {name!r} is not declared: add it to nbprune.config.CRITERIA first")
    CRITERIA[name] = factory
    return factory


def without_options(criterion: Criterion) -> CriterionFactory:
    """Return the registry entry of a criterion that has no options: a factory that returns it as it is."""
    return lambda options: criterion


def _activation_derivative(layer: nn.Module, pre_activation: Interval) -> Interval:
    return pre_activation.relu_derivative() if isinstance(layer, nn.ReLU) else pre_activation.sigmoid_derivative()


@torch.no_grad()
def interval_forward(model: nn.Module, box: Interval) -> list[Interval]:
    """Return the interval of every linear layer's output (pre-activation) over the input box (or boxes)."""
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
def interval_adjoint(model: nn.Module, pre_activations: list[Interval], seed: torch.Tensor | None = None
                     ) -> list[Interval]:
    """Return the interval adjoint at every linear layer's output, seeded with `seed` (default: 1 on every output).

    A seed with a leading dimension (e.g. the identity, one row per class) gives one adjoint per row.
    """
    layers = [layer for layer in mlp_layers(model) if not isinstance(layer, KeepInputs)]
    outputs = pre_activations[-1].lower
    seed = torch.ones_like(outputs) if seed is None else seed.to(outputs.dtype).to(outputs.device)
    adjoint = Interval(torch.broadcast_to(seed, torch.broadcast_shapes(seed.shape, outputs.shape)))
    adjoints = [adjoint]
    linear_index = len(pre_activations) - 1
    for layer in reversed(layers):
        if isinstance(layer, nn.Linear):
            adjoint = adjoint @ layer.weight
            linear_index -= 1
        else:
            adjoint = adjoint * _activation_derivative(layer, pre_activations[linear_index])
            adjoints.append(adjoint)
    return adjoints[::-1]


def first_layer_view(model: nn.Module, value):
    """Return the features of `value` (a tensor or an Interval, features last) that the model's first linear layer
    reads: all of them, or the ones input pruning kept."""
    first = mlp_layers(model)[0]
    return value[..., first.index] if isinstance(first, KeepInputs) else value


class IntervalAdjoint:
    """The interval-adjoint criterion, holding its options: the adjoint seeds and the input boxes (with the local
    boxes' radius and count), read from a PruneConfig, where they are declared.

    IntervalAdjoint() is the reference's criterion, IntervalAdjoint(config.prune) a run's; keywords change options:
    IntervalAdjoint(input_boxes="local", box_radius=0.2)."""

    def __init__(self, options: PruneConfig | None = None, **changes):
        self.options = dataclasses.replace(options or PruneConfig(), **changes)

    def __repr__(self) -> str:
        options = self.options
        return (f"IntervalAdjoint(adjoint_seeds={options.adjoint_seeds!r}, input_boxes={options.input_boxes!r}, "
                f"box_radius={options.box_radius!r}, box_count={options.box_count!r})")

    def boxes(self, context: PruningContext, like: torch.Tensor) -> Interval:
        """Return the input boxes as one Interval of shape [boxes, features] (see the module's notes)."""
        if context.input_box is None:
            raise NbpruneError("the interval_adjoint criterion needs the input box: pass input_box=(lower, upper) "
                               "from nbprune.input_box(train_loader).")
        lower, upper = (bound.to(like.device, like.dtype).reshape(1, -1) for bound in context.input_box)
        kind = self.options.input_boxes
        if kind == "data":
            return Interval(lower, upper)
        if context.batch is None:
            raise NbpruneError(f"input_boxes={kind!r} needs a sample of training data: pass batch=(inputs, "
                               f"targets).")
        inputs, targets = context.batch
        inputs = inputs.reshape(len(inputs), -1).to(like.device, like.dtype)
        if kind == "class":
            classes = sorted(set(targets.tolist()))
            lows = torch.stack([inputs[targets == c].min(dim=0).values for c in classes])
            highs = torch.stack([inputs[targets == c].max(dim=0).values for c in classes])
            return Interval(lows, highs)
        radius, count = self.options.box_radius, self.options.box_count  # local boxes
        chosen = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(context.seed))[:count]
        centres = inputs[chosen]
        return Interval(torch.maximum(centres - radius, lower), torch.minimum(centres + radius, upper))

    def seeds(self, classes: int) -> torch.Tensor:
        """Return the adjoint seeds: [1, 1, classes] ones, or [classes, 1, classes] one class per row."""
        if self.options.adjoint_seeds == "ones":
            return torch.ones(1, 1, classes)
        return torch.eye(classes).reshape(classes, 1, classes)

    def combine_seeds(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Combine per-seed adjoint magnitudes [seeds, boxes, nodes] into [boxes, nodes]."""
        return magnitude.amax(dim=0) if self.options.adjoint_seeds == "class_max" else magnitude.sum(dim=0)

    @torch.no_grad()
    def __call__(self, model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
        """Significance = width of a node's interval x max(|adjoint lower|, |adjoint upper|), averaged over boxes.

        Hidden neurons: the interval of the layer's output (pre-activation); input features: the input box itself,
        with the adjoint carried back through the first layer."""
        first = linear_layers(model)[0]
        boxes = self.boxes(context, first.weight)
        forward = interval_forward(model, boxes)
        adjoints = interval_adjoint(model, forward, self.seeds(linear_layers(model)[-1].out_features))
        hidden = [(value.width * self.combine_seeds(adjoint.magnitude)).mean(dim=0)
                  for value, adjoint in zip(forward[:-1], adjoints[:-1])]
        input_adjoint = adjoints[0] @ first.weight
        inputs = first_layer_view(model, boxes).width * self.combine_seeds(input_adjoint.magnitude)
        return [inputs.mean(dim=0), *hidden]


register("interval_adjoint", IntervalAdjoint)


@torch.no_grad()
def magnitude_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = L2 norm of a node's incoming weights (and bias) and outgoing weights together (inputs: outgoing)."""
    linears = linear_layers(model)
    scores = [linears[0].weight.pow(2).sum(dim=0).sqrt()]
    for layer, following in zip(linears, linears[1:]):
        incoming = layer.weight.pow(2).sum(dim=1) + (layer.bias.pow(2) if layer.bias is not None else 0)
        scores.append((incoming + following.weight.pow(2).sum(dim=0)).sqrt())
    return scores


register("magnitude", without_options(magnitude_scores))


def taylor_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = mean over a batch of |value x d loss / d value| (first-order Taylor), for inputs and activations."""
    if context.batch is None:
        raise NbpruneError("the taylor criterion needs a batch of training data: pass batch=(inputs, targets).")
    weight = linear_layers(model)[0].weight
    inputs, targets = context.batch
    layers = [layer for layer in mlp_layers(model) if not isinstance(layer, KeepInputs)]
    with torch.enable_grad():
        first = first_layer_view(model, inputs.reshape(len(inputs), -1)).to(weight.device, weight.dtype)
        value, nodes = first.requires_grad_(), []
        for position, layer in enumerate(layers):
            value = layer(value)
            if isinstance(layer, (nn.ReLU, nn.Sigmoid)) and position < len(layers) - 1:
                nodes.append(value)
        loss = F.cross_entropy(value, targets.to(weight.device))
        gradients = torch.autograd.grad(loss, [first, *nodes])
    return [(node * gradient).abs().mean(dim=0).detach() for node, gradient in zip([first, *nodes], gradients)]


register("taylor", without_options(taylor_scores))


def random_scores(model: nn.Module, context: PruningContext) -> list[torch.Tensor]:
    """Score = uniform random numbers from the context's seed (hidden layers drawn first, then the inputs)."""
    generator = torch.Generator().manual_seed(context.seed)
    hidden = [torch.rand(layer.out_features, generator=generator) for layer in hidden_linears(model)]
    return [torch.rand(linear_layers(model)[0].in_features, generator=generator), *hidden]


register("random", without_options(random_scores))
_unregistered = [name for name in CRITERION_NAMES if name not in CRITERIA]
if _unregistered:
    raise RuntimeError(f"criteria declared in nbprune.config.CRITERIA but not registered here: {_unregistered}")


def make_criterion(name: str | None = None, options: PruneConfig | None = None) -> Criterion:
    """Return the criterion registered under `name` (None: the options' criterion), built with `options` (None: the
    configuration's defaults)."""
    options = options or PruneConfig()
    name = options.criterion if name is None else name
    if not isinstance(name, str) or name not in CRITERIA:
        raise NbpruneError(f"criterion {name!r} is not known: expected one of {', '.join(CRITERIA)}.")
    return CRITERIA[name](options)


def node_significance(model: nn.Module, criterion: str | Criterion | None = None,
                      context: PruningContext | None = None) -> list[torch.Tensor | None]:
    """Return one score vector per node layer: the input features (None if the criterion gives none), then each
    hidden layer. criterion None: the configuration's."""
    scorer = criterion if callable(criterion) else make_criterion(criterion)
    scores = [score.detach().float().cpu() for score in scorer(model, context or PruningContext())]
    layers = len(hidden_linears(model))
    if len(scores) == layers:  # a criterion of the user's own that scores hidden neurons only
        return [None, *scores]
    if len(scores) != layers + 1:
        raise NbpruneError(f"the criterion gave {len(scores)} score vectors for a model of {layers} hidden layers: "
                           f"expected one per hidden layer, optionally preceded by one for the inputs.")
    return scores


def significance(model: nn.Module, criterion: str | Criterion | None = None,
                 context: PruningContext | None = None) -> list[torch.Tensor]:
    """Return one score vector per hidden layer under the named criterion."""
    return node_significance(model, criterion, context)[1:]

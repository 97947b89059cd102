"""Layer kinds, one declaration each: its interval forward, its interval adjoint, and how removing its units shrinks
it and the layer after it (micrograd's habit: each operation's forward and backward side by side).

A network is a sequence of layers (an nn.Sequential, nested ones flattened, or SimpleNN's `sequence()`).
`interval_passes` runs the interval forward over an input box and the interval adjoint back from a seed; it returns
the interval of every unit layer's output (its pre-activation) and the interval adjoint there. Unit layers
(nn.Linear, nn.Conv2d) own units: a Linear's neurons, a Conv2d's output channels. Every other kind passes units
on: activations and pooling keep channel k at channel k, Flatten turns channel k into a block of features.
`shrink_units` removes units physically.

Intervals carry leading dimensions (adjoint seeds, boxes) before a layer's own feature dimensions ([C, H, W] or
[F]); every rule takes any number of them. The linear rules use centre-radius form: for a linear map L and |L| its
entrywise absolute value, L maps [c - r, c + r] into [L c - |L| r, L c + |L| r]; L's adjoint is its transpose, applied
to the adjoint's centre and radius the same way. Monotone maps (ReLU, sigmoid, max-pooling) map the bounds.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from .errors import NbpruneError
from .interval import Interval
from .model import KeepInputs, mlp_layers, ordered_modules

Shape = tuple[int, ...]


def _lead(value: Interval, shape: Shape) -> Shape:
    """Return the leading (seed, box) dimensions of `value`, whose trailing dimensions are a layer's `shape`."""
    return tuple(value.shape[:len(value.shape) - len(shape)])


def _batched(function, tensor: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Apply a batch function (first dimension the batch) to a tensor with any leading dimensions before `shape`."""
    lead = tensor.shape[:tensor.dim() - len(shape)]
    result = function(tensor.reshape(-1, *shape))
    return result.reshape(*lead, *result.shape[1:])


def _linear_map(value: Interval, shape: Shape, apply, apply_absolute) -> Interval:
    """Return the enclosure of a linear map over `value` in centre-radius form: apply(c) -+ apply_absolute(r)."""
    centre = _batched(apply, value.midpoint, shape)
    radius = _batched(apply_absolute, value.radius, shape)
    return Interval(centre - radius, centre + radius)


class LayerKind:
    """One kind of layer: its interval rules and how units pass it. `shape` is always the layer's input feature
    shape (no batch dimension); `value` its input interval."""

    module: type = nn.Module
    units = False  # whether its outputs are units that can be removed (neurons, channels)

    def check(self, layer: nn.Module) -> None:
        """Raise NbpruneError if this layer uses an option the rules do not cover."""

    def forward(self, layer: nn.Module, value: Interval, shape: Shape) -> Interval:
        """Return an enclosure of the layer's outputs over the input interval `value`."""
        raise NotImplementedError

    def adjoint(self, layer: nn.Module, adjoint: Interval, value: Interval, shape: Shape) -> Interval:
        """Return an enclosure of the input adjoints, given an enclosure of the output adjoints over `value`."""
        raise NotImplementedError

    def carry(self, layer: nn.Module, index: torch.Tensor, shape: Shape) -> torch.Tensor:
        """Return where the kept units `index` (of the layer's input) are in its output: the same, by default."""
        return index

    def describe(self, layer: nn.Module) -> dict:
        """Return the layer's options as plain values (what a model file records); `build` makes it again."""
        return {}

    def build(self, values: dict, device: torch.device | str | None = None) -> nn.Module:
        """Return a new layer of this kind with the options `values` (as `describe` gives them)."""
        return self.module()


class LinearKind(LayerKind):
    """nn.Linear: y = W x + b; adjoint W^T a. Units: neurons (rows of W)."""

    module, units = nn.Linear, True

    def forward(self, layer, value, shape):
        return value @ layer.weight.T + layer.bias if layer.bias is not None else value @ layer.weight.T

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint @ layer.weight

    def describe(self, layer):
        return {"in_features": layer.in_features, "out_features": layer.out_features, "bias": layer.bias is not None}

    def build(self, values, device=None):
        return nn.Linear(values["in_features"], values["out_features"], bias=values["bias"], device=device)

    def keep_outputs(self, layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
        """Return the layer with only the neurons `index`."""
        return _new_linear(layer.weight[index], layer.bias[index] if layer.bias is not None else None)

    def keep_inputs(self, layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
        """Return the layer reading only the input features `index`."""
        return _new_linear(layer.weight[:, index], layer.bias)


def _new_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                      dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class Conv2dKind(LayerKind):
    """nn.Conv2d: y = W * x + b (cross-correlation); adjoint: the transposed convolution. Units: output channels."""

    module, units = nn.Conv2d, True

    def check(self, layer):
        if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise NbpruneError(f"{layer} is not supported: expected groups=1, padding_mode='zeros' and numeric "
                               f"padding. Build the convolution with those options.")

    def _options(self, layer):
        return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)

    def forward(self, layer, value, shape):
        weight, options = layer.weight, self._options(layer)
        result = _linear_map(value, shape, lambda x: F.conv2d(x, weight, None, **options),
                             lambda x: F.conv2d(x, weight.abs(), None, **options))
        return result + layer.bias.reshape(-1, 1, 1) if layer.bias is not None else result

    def adjoint(self, layer, adjoint, value, shape):
        weight, options = layer.weight, self._options(layer)
        out_shape = tuple(adjoint.shape[-3:])
        return _linear_map(adjoint, out_shape,
                           lambda a: conv2d_input((len(a), *shape), weight, a, **options),
                           lambda a: conv2d_input((len(a), *shape), weight.abs(), a, **options))

    def describe(self, layer):
        return {"in_channels": layer.in_channels, "out_channels": layer.out_channels,
                "kernel_size": list(layer.kernel_size), **{name: list(value) for name, value in
                                                          self._options(layer).items()}, "bias": layer.bias is not None}

    def build(self, values, device=None):
        return nn.Conv2d(values["in_channels"], values["out_channels"], tuple(values["kernel_size"]),
                         tuple(values["stride"]), tuple(values["padding"]), tuple(values["dilation"]),
                         bias=values["bias"], device=device)

    def keep_outputs(self, layer: nn.Conv2d, index: torch.Tensor) -> nn.Conv2d:
        """Return the convolution with only the output channels (filters) `index`."""
        return _new_conv(layer, layer.weight[index], layer.bias[index] if layer.bias is not None else None)

    def keep_inputs(self, layer: nn.Conv2d, index: torch.Tensor) -> nn.Conv2d:
        """Return the convolution reading only the input channels `index`."""
        return _new_conv(layer, layer.weight[:, index], layer.bias)


def _new_conv(like: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], like.kernel_size, like.stride, like.padding, like.dilation,
                      bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class ReLUKind(LayerKind):
    """nn.ReLU: monotone; its derivative over [l, u] is [l > 0, u > 0]."""

    module = nn.ReLU

    def forward(self, layer, value, shape):
        return value.relu()

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint * value.relu_derivative()


class SigmoidKind(LayerKind):
    """nn.Sigmoid: monotone; its derivative over an interval peaks at 0 (see Interval.sigmoid_derivative)."""

    module = nn.Sigmoid

    def forward(self, layer, value, shape):
        return value.sigmoid()

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint * value.sigmoid_derivative()


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _pool_options(layer) -> tuple[tuple[int, int], tuple[int, int]]:
    kernel = _pair(layer.kernel_size)
    return kernel, _pair(layer.stride if layer.stride is not None else kernel)


class _PoolKind(LayerKind):
    """What the two pooling kinds share: their recorded options (kernel and stride) and how they are rebuilt."""

    def describe(self, layer):
        kernel, stride = _pool_options(layer)
        return {"kernel_size": list(kernel), "stride": list(stride)}

    def build(self, values, device=None):
        return self.module(tuple(values["kernel_size"]), tuple(values["stride"]))


class MaxPool2dKind(_PoolKind):
    """nn.MaxPool2d: monotone, so the bounds pool. Adjoint: an output's adjoint goes to the window's maximum; an
    input that may be the maximum somewhere in the box gets hull(adjoint, 0) (it may or may not be chosen), the
    only input that can be the maximum gets the adjoint itself, the others 0; windows that overlap add up."""

    module = nn.MaxPool2d

    def check(self, layer):
        if _pair(layer.padding) != (0, 0) or _pair(layer.dilation) != (1, 1) or layer.ceil_mode \
                or layer.return_indices:
            raise NbpruneError(f"{layer} is not supported: expected padding=0, dilation=1, ceil_mode=False and "
                               f"return_indices=False.")

    def forward(self, layer, value, shape):
        kernel, stride = _pool_options(layer)
        pool = lambda x: F.max_pool2d(x, kernel, stride)  # noqa: E731
        return Interval(_batched(pool, value.lower, shape), _batched(pool, value.upper, shape))

    def adjoint(self, layer, adjoint, value, shape):
        kernel, stride = _pool_options(layer)
        channels, height, width = shape

        def windows(bound: torch.Tensor) -> torch.Tensor:  # [..., C, kernel positions, windows]
            unfolded = F.unfold(bound.reshape(-1, 1, height, width), kernel, stride=stride)
            return unfolded.reshape(*bound.shape[:-2], *unfolded.shape[1:])

        lower, upper = windows(value.lower), windows(value.upper)
        candidate = upper >= lower.amax(dim=-2, keepdim=True)  # may be the window's maximum somewhere in the box
        certain = candidate & (candidate.sum(dim=-2, keepdim=True) == 1)  # the only one that can be
        out_lower, out_upper = (bound.flatten(-2).unsqueeze(-2) for bound in (adjoint.lower, adjoint.upper))
        zero = torch.zeros((), dtype=out_lower.dtype)
        low = torch.where(certain, out_lower, torch.where(candidate, out_lower.clamp(max=0), zero))
        high = torch.where(certain, out_upper, torch.where(candidate, out_upper.clamp(min=0), zero))

        def fold(part: torch.Tensor) -> torch.Tensor:  # add each window's share back onto the input positions
            folded = F.fold(part.reshape(-1, *part.shape[-2:]), (height, width), kernel, stride=stride)
            return folded.reshape(*part.shape[:-2], height, width)

        return Interval(fold(low), fold(high))


class AvgPool2dKind(_PoolKind):
    """nn.AvgPool2d: linear with positive weights; adjoint: each output's adjoint spread evenly over its window."""

    module = nn.AvgPool2d

    def check(self, layer):
        if _pair(layer.padding) != (0, 0) or layer.ceil_mode or layer.divisor_override is not None:
            raise NbpruneError(f"{layer} is not supported: expected padding=0, ceil_mode=False and no "
                               f"divisor_override.")

    def forward(self, layer, value, shape):
        kernel, stride = _pool_options(layer)
        pool = lambda x: F.avg_pool2d(x, kernel, stride)  # noqa: E731
        return _linear_map(value, shape, pool, pool)

    def adjoint(self, layer, adjoint, value, shape):
        kernel, stride = _pool_options(layer)
        channels = shape[0]
        spread = torch.full((channels, 1, *kernel), 1 / math.prod(kernel), dtype=adjoint.lower.dtype,
                            device=adjoint.lower.device)
        transpose = lambda a: conv2d_input((len(a), *shape), spread, a, stride=stride, groups=channels)  # noqa: E731
        return _linear_map(adjoint, tuple(adjoint.shape[-3:]), transpose, transpose)


class FlattenKind(LayerKind):
    """nn.Flatten: a reshape; channel k of a [C, H, W] input becomes features k*H*W to (k+1)*H*W - 1."""

    module = nn.Flatten

    def check(self, layer):
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise NbpruneError(f"{layer} is not supported: expected nn.Flatten() (start_dim=1, end_dim=-1).")

    def forward(self, layer, value, shape):
        return value.reshape(*_lead(value, shape), -1)

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint.reshape(*adjoint.shape[:-1], *shape)

    def carry(self, layer, index, shape):
        positions = math.prod(shape[1:])
        return (index.reshape(-1, 1) * positions + torch.arange(positions, device=index.device)).reshape(-1)


class UnflattenKind(LayerKind):
    """nn.Unflatten(1, shape): a reshape of flat input rows into images (a network's first layer)."""

    module = nn.Unflatten

    def check(self, layer):
        if layer.dim != 1:
            raise NbpruneError(f"{layer} is not supported: expected nn.Unflatten(1, shape).")

    def describe(self, layer):
        return {"shape": list(layer.unflattened_size)}

    def build(self, values, device=None):
        return nn.Unflatten(1, tuple(values["shape"]))

    def forward(self, layer, value, shape):
        return value.reshape(*_lead(value, shape), *layer.unflattened_size)

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint.reshape(*adjoint.shape[:len(adjoint.shape) - len(layer.unflattened_size)], *shape)

    def carry(self, layer, index, shape):
        raise NbpruneError("units cannot be carried through nn.Unflatten: put it first, before any unit layer.")


class IdentityKind(LayerKind):
    """nn.Identity: passes everything on."""

    module = nn.Identity

    def forward(self, layer, value, shape):
        return value

    def adjoint(self, layer, adjoint, value, shape):
        return adjoint


class KeepInputsKind(LayerKind):
    """KeepInputs (input-node pruning of SimpleNN): selects features; its adjoint puts them back, 0 elsewhere."""

    module = KeepInputs

    def describe(self, layer):
        raise NbpruneError("KeepInputs is recorded by SimpleNN's own model files, not in a layer list: save the "
                           "SimpleNN with nbprune.modelfile.save_model_file.")

    def forward(self, layer, value, shape):
        return value[..., layer.index]

    def adjoint(self, layer, adjoint, value, shape):
        lower = adjoint.lower.new_zeros(*adjoint.shape[:-1], *shape)
        upper = lower.clone()
        lower[..., layer.index], upper[..., layer.index] = adjoint.lower, adjoint.upper
        return Interval(lower, upper)

    def carry(self, layer, index, shape):
        raise NbpruneError("units cannot be carried through KeepInputs: it is a network's first layer.")


KINDS: dict[type, LayerKind] = {kind.module: kind for kind in (
    LinearKind(), Conv2dKind(), ReLUKind(), SigmoidKind(), MaxPool2dKind(), AvgPool2dKind(), FlattenKind(),
    UnflattenKind(), IdentityKind(), KeepInputsKind())}  # a new layer kind is one entry here, with its tests


def kind_of(layer: nn.Module) -> LayerKind:
    """Return the declared kind of `layer`, checked against the options its rules cover."""
    kind = KINDS.get(type(layer))
    if kind is None:
        raise NbpruneError(f"layer {layer} is not supported: expected one of "
                           f"{', '.join(sorted(module.__name__ for module in KINDS))}.")
    kind.check(layer)
    return kind


def sequence_of(model: nn.Module) -> list[nn.Module]:
    """Return the layers of a network in the order its forward pass applies them: SimpleNN's `sequence()`, or an
    nn.Sequential's modules with nested nn.Sequentials opened; each of a declared kind."""
    layers = ordered_modules(model)
    if layers is None:
        raise NbpruneError(f"{type(model).__name__} is not supported: expected SimpleNN or an nn.Sequential of "
                           f"{', '.join(sorted(module.__name__ for module in KINDS))}.")
    for layer in layers:
        kind_of(layer)
    return layers


def unit_layers(model: nn.Module) -> list[nn.Module]:
    """Return the layers whose outputs are units (Linear, Conv2d), in order; the last one's are the outputs."""
    return [layer for layer in sequence_of(model) if kind_of(layer).units]


def hidden_units(model: nn.Module) -> tuple[int, ...]:
    """Return the units of each hidden unit layer: a SimpleNN's hidden sizes, a LeNet's channels and neurons."""
    return tuple(len(layer.weight) for layer in unit_layers(model)[:-1])


def inputs_read(model: nn.Module) -> int:
    """Return how many input features the network reads (after any input pruning)."""
    layers = sequence_of(model)
    first = next(layer for layer in layers if kind_of(layer).units)
    return first.in_features if isinstance(first, nn.Linear) else math.prod(input_shape_of(layers))


def is_mlp(model: nn.Module) -> bool:
    """Return whether node pruning (nbprune.prune) handles the network: SimpleNN, or only Linear, ReLU and Sigmoid
    layers; other networks' units are pruned by nbprune.channels."""
    try:
        mlp_layers(model)
    except NbpruneError:
        return False
    return True


def input_shape_of(layers: Sequence[nn.Module]) -> Shape:
    """Return the feature shape the first layer reads: a Linear's features or Unflatten's flat rows."""
    first = layers[0]
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    if isinstance(first, nn.Unflatten):
        return (math.prod(first.unflattened_size),)
    raise NbpruneError(f"the input shape of a network that starts with {first} is not known: start it with "
                       f"nn.Unflatten(1, (channels, height, width)) so it reads flat rows, or pass input_shape.")


@torch.no_grad()
def layer_shapes(layers: Sequence[nn.Module], input_shape: Shape | None = None) -> list[Shape]:
    """Return every layer's input feature shape, and last the network's output shape (one row of zeros, run)."""
    layer = next((layer for layer in layers if list(layer.parameters())), None)
    like = next(layer.parameters()) if layer is not None else torch.zeros(())
    value = torch.zeros(1, *(input_shape or input_shape_of(layers)), dtype=like.dtype, device=like.device)
    shapes = []
    for layer in layers:
        shapes.append(tuple(value.shape[1:]))
        value = layer(value)
    return shapes + [tuple(value.shape[1:])]


class Passes(NamedTuple):
    """The interval passes through a network: per unit layer, the interval of its outputs (pre-activations) over
    the box and the interval adjoint there; and the adjoint at the network's input."""

    pre_activations: list[Interval]
    adjoints: list[Interval]
    input_adjoint: Interval


@torch.no_grad()
def interval_passes(model: nn.Module, box: Interval, seed: torch.Tensor | None = None) -> Passes:
    """Run the interval forward over `box` ([boxes, *input features]) and the interval adjoint back from `seed`
    (default: 1 on every output; a seed with a leading dimension, e.g. one row per class, gives one adjoint per
    row); return Passes."""
    layers = sequence_of(model)
    shapes = layer_shapes(layers, tuple(box.shape[1:]))
    inputs, value = [], box
    for layer, shape in zip(layers, shapes):
        inputs.append(value)
        value = kind_of(layer).forward(layer, value, shape)
    outputs = value.lower
    seed = torch.ones_like(outputs) if seed is None else seed.to(outputs.dtype).to(outputs.device)
    adjoint = Interval(torch.broadcast_to(seed, torch.broadcast_shapes(seed.shape, outputs.shape)))
    pre_activations, adjoints = [], []
    for position in reversed(range(len(layers))):
        layer, kind = layers[position], kind_of(layers[position])
        if kind.units:
            pre_activations.append(inputs[position + 1] if position + 1 < len(layers) else value)
            adjoints.append(adjoint)
        adjoint = kind.adjoint(layer, adjoint, inputs[position], shapes[position])
    return Passes(pre_activations[::-1], adjoints[::-1], adjoint)


@torch.no_grad()
def shrink_units(model: nn.Module, kept: Sequence[torch.Tensor], input_shape: Shape | None = None
                 ) -> nn.Sequential:
    """Return a new nn.Sequential in which unit layer k (all but the last, whose units are the outputs) keeps only
    the units `kept[k]`: a Conv2d loses the other filters and their biases, and the next unit layer the inputs they
    fed (a Conv2d's input channels, or after Flatten the block of a Linear's columns each channel feeds)."""
    layers = [copy.deepcopy(layer) for layer in sequence_of(model)]
    shapes = layer_shapes(layers, input_shape)
    units = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    if len(kept) != len(units) - 1:
        raise NbpruneError(f"kept names {len(kept)} unit layers, the network has {len(units) - 1} (its last unit "
                           f"layer's units are the outputs): give one index tensor per hidden unit layer.")
    for position, following, index in zip(units, units[1:], kept):
        layer = layers[position]
        index = torch.as_tensor(index, dtype=torch.int64, device=layer.weight.device)
        count = len(layer.weight)
        if len(index) == 0 or index.min() < 0 or index.max() >= count or len(index.unique()) != len(index):
            raise NbpruneError(f"kept units {index.tolist()} of {layer} are not allowed: expected 1 to {count} "
                               f"distinct indices from 0 to {count - 1}.")
        layers[position] = kind_of(layer).keep_outputs(layer, index)
        for between in range(position + 1, following):
            index = kind_of(layers[between]).carry(layers[between], index, shapes[between])
        layers[following] = kind_of(layers[following]).keep_inputs(layers[following], index)
    return nn.Sequential(*layers)

"""The primer's worked example (notebook 00): a 2-2-1 network small enough to bound by hand, and sampling to see
how tight the bounds are."""

from __future__ import annotations

from typing import Sequence

import torch

from ..config import or_default
from ..interval import Interval
from ..model import SimpleNN

FIRST_WEIGHTS = ((1.0, -2.0), (0.5, 1.0))  # W1: row j holds hidden neuron j's weights
SECOND_WEIGHTS = ((1.0, -1.0),)            # W2: the one output's weights
BOX = ((0.0, -1.0), (1.0, 1.0))            # the input box [0, 1] x [-1, 1] as (lower, upper)


@torch.no_grad()
def primer_network(first: Sequence[Sequence[float]] = FIRST_WEIGHTS,
                   second: Sequence[Sequence[float]] = SECOND_WEIGHTS, activation: str = "relu") -> SimpleNN:
    """Return the primer's network x -> W2 act(W1 x): zero biases, weights as given (the primer's by default)."""
    first, second = torch.tensor(first, dtype=torch.float64), torch.tensor(second, dtype=torch.float64)
    model = SimpleNN((first.shape[0],), first.shape[1], second.shape[0], activation).double()
    for layer, weight in zip(model.linears, (first, second)):
        layer.weight.copy_(weight)
        layer.bias.zero_()
    return model


def primer_box(lower: Sequence[float] = BOX[0], upper: Sequence[float] = BOX[1]) -> Interval:
    """Return an input box as an Interval of shape [1, features] (the primer's [0, 1] x [-1, 1] by default)."""
    return Interval(torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64))


def sample_box(box: Interval, count: int = 20_000, seed: int | None = None) -> torch.Tensor:
    """Return `count` points drawn uniformly from a box of shape [1, features], its corners included (seed None: the
    configuration's)."""
    seed = or_default(seed, "seed")
    lower, upper = box.lower.reshape(-1), box.upper.reshape(-1)
    features = len(lower)
    corners = torch.cartesian_prod(*[torch.stack([low, high]) for low, high in zip(lower, upper)])
    uniform = torch.rand(count, features, generator=torch.Generator().manual_seed(seed), dtype=lower.dtype)
    return torch.cat([corners.reshape(-1, features), lower + uniform * (upper - lower)])


def sampled_range(values: torch.Tensor) -> Interval:
    """Return the smallest interval holding every row of `values`: the true range, as far as the samples show."""
    return Interval(values.min(dim=0).values, values.max(dim=0).values)


def as_pairs(interval: Interval, digits: int = 4) -> list[tuple[float, float]]:
    """Return an interval's entries as (lower, upper) pairs of rounded numbers, for printing."""
    pairs = zip(interval.lower.reshape(-1).tolist(), interval.upper.reshape(-1).tolist())
    return [(round(low, digits) + 0.0, round(high, digits) + 0.0) for low, high in pairs]


@torch.no_grad()
def largest_change(network: SimpleNN, inputs: torch.Tensor, neuron: int, interval: Interval, steps: int = 201
                   ) -> float:
    """Return the largest change of the sum of the outputs of a one-hidden-layer network when hidden neuron
    `neuron`'s pre-activation moves anywhere within `interval` (on a grid of `steps` values), the inputs fixed."""
    first, second = network.linears
    hidden = first(inputs).unsqueeze(1).repeat(1, steps, 1)
    hidden[..., neuron] = torch.linspace(float(interval.lower), float(interval.upper), steps, dtype=hidden.dtype)
    total = second(network.act(hidden)).sum(dim=-1)
    return float((total.max(dim=1).values - total.min(dim=1).values).max())

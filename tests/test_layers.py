"""Every layer kind's interval rules are sound: at points sampled inside the input box, every value lies in its
forward interval and every derivative autograd computes lies in its adjoint interval; and for SimpleNN the engine
gives exactly the intervals of nbprune.criteria's MLP passes."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nbprune.criteria import IntervalAdjoint, PruningContext, interval_adjoint, interval_forward
from nbprune.errors import NbpruneError
from nbprune.interval import Interval
from nbprune.layers import interval_passes, kind_of, sequence_of
from nbprune.model import SimpleNN

TOLERANCE = 1e-9
settings.register_profile("nbprune_layers", max_examples=15, deadline=None)
settings.load_profile("nbprune_layers")


def network(name: str, activation: type) -> nn.Sequential:
    """Return a small float64 network that exercises the layer kind `name` with `activation`."""
    image = nn.Unflatten(1, (2, 6, 6))
    layers = {
        "linear": [nn.Linear(7, 5), activation(), nn.Linear(5, 4), activation(), nn.Linear(4, 3)],
        "conv": [image, nn.Conv2d(2, 3, 3, padding=1), activation(), nn.Conv2d(3, 2, 3, stride=2), activation(),
                 nn.Flatten(), nn.Linear(8, 3)],
        "maxpool": [image, nn.Conv2d(2, 3, 3), activation(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 3)],
        "maxpool_overlapping": [image, nn.Conv2d(2, 3, 2), nn.MaxPool2d(3, stride=1), activation(), nn.Flatten(),
                                nn.Linear(27, 3)],
        "avgpool": [image, nn.Conv2d(2, 3, 3), activation(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 3)],
        "lenet": [image, nn.Conv2d(2, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 3, 2), nn.Flatten(), nn.Linear(3, 5),
                  activation(), nn.Linear(5, 3)],
    }[name]
    return nn.Sequential(*layers).double()


def features(model: nn.Sequential) -> int:
    first = model[0]
    return first.in_features if isinstance(first, nn.Linear) else 2 * 6 * 6


def run_with_unit_outputs(model: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Return the network's outputs and every unit layer's outputs (kept for their gradients)."""
    units, value = [], x
    for layer in sequence_of(model):
        value = layer(value)
        if kind_of(layer).units:
            value.retain_grad()
            units.append(value)
    return value, units


def assert_inside(interval: Interval, points: torch.Tensor, what: str):
    tolerance = TOLERANCE * (1 + interval.magnitude.max().item())
    inside = interval.contains(points, tolerance)
    assert inside.all(), f"{what}: {(~inside).sum().item()} values outside their intervals"


KINDS = ["linear", "conv", "maxpool", "maxpool_overlapping", "avgpool", "lenet"]


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Sigmoid])
@pytest.mark.parametrize("name", KINDS)
@given(weights=st.integers(0, 2**31 - 1), radius=st.floats(0.0, 2.0), centre=st.floats(-1.0, 1.0))
def test_values_and_derivatives_lie_in_their_intervals(name, activation, weights, radius, centre):
    torch.manual_seed(weights)
    model = network(name, activation)
    generator = torch.Generator().manual_seed(weights)
    middle = centre + torch.randn(1, features(model), generator=generator, dtype=torch.float64)
    box = Interval(middle - radius * torch.rand(middle.shape, generator=generator, dtype=torch.float64),
                   middle + radius * torch.rand(middle.shape, generator=generator, dtype=torch.float64))
    seed = torch.randn(3, generator=generator, dtype=torch.float64)
    passes = interval_passes(model, box, seed)

    t = torch.rand(24, features(model), generator=generator, dtype=torch.float64)
    t[:2] = torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(2, 1)  # two corners of the box too
    points = (box.lower + t * box.width).requires_grad_()
    outputs, units = run_with_unit_outputs(model, points)
    (outputs * seed).sum().backward()

    assert len(units) == len(passes.pre_activations) == len(passes.adjoints)
    for layer, (value, interval, adjoint) in enumerate(zip(units, passes.pre_activations, passes.adjoints)):
        assert_inside(interval, value.detach(), f"unit layer {layer}'s values")
        assert_inside(adjoint, value.grad, f"unit layer {layer}'s derivatives")
    assert_inside(passes.input_adjoint, points.grad, "the input derivatives")


def max_pool_adjoint(lower, upper, adjoint_lower, adjoint_upper) -> Interval:
    """Return the adjoint interval at a one-channel 2x2 input of a 2x2 max-pool."""
    model = nn.Sequential(nn.Unflatten(1, (1, 2, 2)), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[-1].weight.fill_(1.0)
    box = Interval(torch.tensor([lower], dtype=torch.float32), torch.tensor([upper], dtype=torch.float32))
    passes = interval_passes(model, box, seed=None)
    assert torch.equal(passes.adjoints[-1].lower, torch.ones(1, 1))
    seeded = interval_passes(model, box, torch.tensor([[adjoint_lower]]))
    if adjoint_upper != adjoint_lower:  # the hull of two seeds' adjoints is what an interval seed would give
        other = interval_passes(model, box, torch.tensor([[adjoint_upper]]))
        return Interval(torch.minimum(seeded.input_adjoint.lower, other.input_adjoint.lower),
                        torch.maximum(seeded.input_adjoint.upper, other.input_adjoint.upper))
    return seeded.input_adjoint


def test_max_pool_with_overlapping_intervals_routes_the_adjoint_to_every_possible_maximum():
    # pooled lower bound 1: [0, 2], [1, 3] and [0, 1] may be the maximum, [-1, 0.5] never is
    adjoint = max_pool_adjoint([0.0, 1.0, -1.0, 0.0], [2.0, 3.0, 0.5, 1.0], 2.0, 2.0)
    assert adjoint.lower.tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert adjoint.upper.tolist() == [[2.0, 2.0, 0.0, 2.0]]
    negative = max_pool_adjoint([0.0, 1.0, -1.0, 0.0], [2.0, 3.0, 0.5, 1.0], -3.0, -3.0)
    assert negative.lower.tolist() == [[-3.0, -3.0, 0.0, -3.0]]
    assert negative.upper.tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_max_pool_sends_the_whole_adjoint_to_the_only_possible_maximum():
    adjoint = max_pool_adjoint([5.0, 1.0, -1.0, 0.0], [6.0, 3.0, 0.5, 4.9], 2.0, 2.0)
    assert adjoint.lower.tolist() == adjoint.upper.tolist() == [[2.0, 0.0, 0.0, 0.0]]


def test_overlapping_pool_windows_add_their_shares():
    model = nn.Sequential(nn.Unflatten(1, (1, 1, 3)), nn.MaxPool2d((1, 2), stride=1), nn.Flatten(),
                          nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[-1].weight.copy_(torch.tensor([[1.0, 10.0]]))
    point = Interval(torch.tensor([[0.0, 5.0, 1.0]]))  # the middle input is the maximum of both windows
    assert interval_passes(model, point).input_adjoint.lower.tolist() == [[0.0, 11.0, 0.0]]


def simple_context(model: SimpleNN, boxes: str) -> tuple[IntervalAdjoint, PruningContext]:
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(40, model.in_features, generator=generator)
    targets = torch.arange(40) % model.num_classes
    context = PruningContext(input_box=(inputs.min(dim=0).values, inputs.max(dim=0).values), batch=(inputs, targets))
    return IntervalAdjoint(input_boxes=boxes, box_count=4, box_radius=0.3), context


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("boxes", ["data", "local"])
@pytest.mark.parametrize("kept_inputs", [False, True])
def test_simple_nn_gets_exactly_the_mlp_engines_intervals(activation, boxes, kept_inputs):
    torch.manual_seed(0)
    model = SimpleNN(hidden=[9, 6], in_features=12, num_classes=4, activation=activation)
    criterion, context = simple_context(model, boxes)
    box = criterion.boxes(context, model.fc1.weight)
    if kept_inputs:
        model.keep(torch.tensor([0, 2, 3, 7, 11]))
        model.fc1 = nn.Linear(5, 9)
    for seeds in ("ones", "class_sum"):
        seed = IntervalAdjoint(adjoint_seeds=seeds).seeds(model.num_classes)
        forward = interval_forward(model, box)
        adjoints = interval_adjoint(model, forward, seed)
        passes = interval_passes(model, box, seed)
        assert len(passes.pre_activations) == len(forward) and len(passes.adjoints) == len(adjoints)
        for old, new in zip(forward + adjoints, passes.pre_activations + passes.adjoints):
            assert torch.equal(old.lower, new.lower) and torch.equal(old.upper, new.upper)


def test_unsupported_layers_and_options_are_refused_in_one_line():
    with pytest.raises(NbpruneError, match="Tanh"):
        interval_passes(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), Interval(torch.zeros(1, 2)))
    with pytest.raises(NbpruneError, match="groups=1"):
        kind_of(nn.Conv2d(2, 2, 3, groups=2))
    with pytest.raises(NbpruneError, match="padding=0"):
        kind_of(nn.MaxPool2d(2, padding=1))
    with pytest.raises(NbpruneError, match="nn.Flatten()"):
        kind_of(nn.Flatten(0))

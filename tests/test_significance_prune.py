"""Significance: the interval passes enclose real values; criteria by name; pruning equals zeroing neurons."""

import dataclasses
import functools

import pytest
import torch
from torch import nn

from nbprune import IterativePruning, NbpruneError, RunConfig, SimpleNN
from nbprune.config import PruneConfig
from nbprune.interval import Interval
from nbprune.prune import keep_indices, prune_nodes, shrink
from nbprune.criteria import (CRITERIA, IntervalAdjoint, PruningContext, hidden_linears, interval_adjoint,
                              interval_forward, make_criterion, mlp_layers, node_significance, significance)


def models():
    torch.manual_seed(0)
    yield SimpleNN(hidden=(12, 7), in_features=6, num_classes=4)
    yield SimpleNN(hidden=(9, 5, 3), in_features=6, num_classes=4, activation="sigmoid")
    yield nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.Sigmoid(), nn.Linear(8, 4))


def real_pre_activations_and_adjoints(model, x):
    """Return each linear layer's output and the gradient of the summed outputs with respect to it."""
    value, outputs = x, []
    for layer in mlp_layers(model):
        value = layer(value)
        if isinstance(layer, nn.Linear):
            outputs.append(value)
    gradients = torch.autograd.grad(value.sum(), outputs)
    return [o.detach() for o in outputs], gradients


@pytest.mark.parametrize("model", list(models()), ids=["relu", "sigmoid-3-layers", "sequential"])
def test_forward_and_adjoint_intervals_enclose_sampled_points(model):
    model = model.double()
    lower, upper = -torch.rand(1, 6, dtype=torch.float64), torch.rand(1, 6, dtype=torch.float64)
    forward = interval_forward(model, Interval(lower, upper))
    adjoints = interval_adjoint(model, forward)
    points = lower + torch.rand(500, 6, dtype=torch.float64) * (upper - lower)
    points = torch.cat([points, lower, upper])
    values, gradients = real_pre_activations_and_adjoints(model, points)
    for box, value in zip(forward, values):
        assert box.contains(value, 1e-9).all()
    for box, gradient in zip(adjoints, gradients):
        assert box.contains(gradient, 1e-9).all()


def test_interval_adjoint_scores_follow_the_reference_definition():
    torch.manual_seed(1)
    model = SimpleNN(hidden=(12, 7), in_features=6, num_classes=4)
    box = (-torch.ones(6), torch.ones(6))
    scores = significance(model, "interval_adjoint", PruningContext(input_box=box))
    forward = interval_forward(model, Interval(box[0].reshape(1, -1), box[1].reshape(1, -1)))
    adjoints = interval_adjoint(model, forward)
    expected = forward[0].width * torch.maximum(adjoints[0].lower.abs(), adjoints[0].upper.abs())
    assert [len(s) for s in scores] == [12, 7]
    assert torch.allclose(scores[0], expected.reshape(-1))


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_gives_one_score_per_hidden_neuron(criterion):
    torch.manual_seed(2)
    model = SimpleNN(hidden=(12, 7), in_features=6, num_classes=4)
    context = PruningContext(input_box=(-torch.ones(6), torch.ones(6)),
                             batch=(torch.randn(32, 6), torch.randint(0, 4, (32,))), seed=3)
    scores = significance(model, criterion, context)
    assert [s.shape for s in scores] == [(12,), (7,)]
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores)


def test_random_criterion_is_seeded_and_unknown_names_are_refused():
    model = SimpleNN(hidden=(12, 7), in_features=6, num_classes=4)
    first = significance(model, "random", PruningContext(seed=5))
    assert all(torch.equal(a, b) for a, b in zip(first, significance(model, "random", PruningContext(seed=5))))
    with pytest.raises(NbpruneError, match="criterion 'oracle' is not known"):
        significance(model, "oracle")


class Position:
    """A toy criterion with an option of its own: hidden neurons scored by their position, last first or first
    first."""

    def __init__(self, options: PruneConfig, last_first: bool = True):
        self.last_first = last_first

    def __call__(self, model, context):
        return [torch.arange(layer.out_features, dtype=torch.float32) * (1 if self.last_first else -1)
                for layer in hidden_linears(model)]


def test_a_new_criterion_is_one_registry_entry_built_with_its_option(monkeypatch):
    torch.manual_seed(4)
    model = SimpleNN(hidden=(6, 5), in_features=3, num_classes=2)
    monkeypatch.setitem(CRITERIA, "position", functools.partial(Position, last_first=False))
    first = prune_nodes(model, [2, 3], "position", PruningContext())
    assert torch.equal(first.fc1.weight, model.fc1.weight[:2]) and torch.equal(first.fc2.bias, model.fc2.bias[:3])
    monkeypatch.setitem(CRITERIA, "position", Position)
    last = prune_nodes(model, [2, 3], "position", PruningContext())
    assert torch.equal(last.fc1.weight, model.fc1.weight[4:]) and torch.equal(last.fc2.bias, model.fc2.bias[2:])


def test_the_options_reach_the_interval_adjoint_scorer(tiny_data):
    torch.manual_seed(5)
    model = SimpleNN(hidden=(12, 7))
    train_loader, val_loader, test_loader = tiny_data
    scores = {}
    for radius in (0.2, 1.0):
        config = RunConfig.from_flat(input_boxes="local", box_radius=radius, box_count=16)
        experiment = IterativePruning(train_loader, test_loader, val_loader=val_loader, config=config, progress=False)
        criterion = experiment.criterion
        assert isinstance(criterion, IntervalAdjoint) and criterion.options == config.prune
        scores[radius] = node_significance(model, criterion, experiment.context())
        same = node_significance(model, make_criterion(options=config.prune), experiment.context())
        assert all(torch.equal(a, b) for a, b in zip(scores[radius], same))
    assert not any(torch.allclose(a, b) for a, b in zip(scores[0.2], scores[1.0]))
    assert make_criterion("interval_adjoint", PruneConfig(box_radius=0.2)).options.box_radius == 0.2
    assert IntervalAdjoint(PruneConfig(box_count=9), input_boxes="class").options == PruneConfig(
        box_count=9, input_boxes="class")


def test_the_context_carries_data_only_and_each_option_is_declared_once():
    data = {field.name for field in dataclasses.fields(PruningContext)}
    options = {field.name for field in dataclasses.fields(PruneConfig)}
    assert data & options == set()
    with pytest.raises(NbpruneError, match="box_radius=-1 is not allowed"):
        IntervalAdjoint(box_radius=-1)


def test_keep_indices_picks_top_scores_in_order():
    kept = keep_indices([torch.tensor([0.1, 5.0, 3.0, 4.0]), torch.tensor([2.0, 1.0])], [2, 1])
    assert kept[0].tolist() == [1, 3] and kept[1].tolist() == [0]
    with pytest.raises(NbpruneError, match="from 1 to 4"):
        keep_indices([torch.ones(4)], [5])


@pytest.mark.parametrize("model", list(models()), ids=["relu", "sigmoid-3-layers", "sequential"])
def test_pruned_model_equals_original_with_dropped_activations_zeroed(model):
    model.eval()
    hidden = [layer.out_features for layer in hidden_linears(model)]
    retain = [max(1, h // 2) for h in hidden]
    box = (-torch.ones(6), torch.ones(6))
    scores = significance(model, "interval_adjoint", PruningContext(input_box=box))
    kept = keep_indices(scores, retain)
    pruned = prune_nodes(model, retain, context=PruningContext(input_box=box))
    assert type(pruned) is type(model)
    assert [layer.out_features for layer in hidden_linears(pruned)] == retain
    linears = [m for m in mlp_layers(pruned) if isinstance(m, nn.Linear)]
    assert all(a.out_features == b.in_features == b.weight.shape[1] for a, b in zip(linears, linears[1:]))

    x = torch.randn(64, 6)
    value, k = x, 0
    for layer in mlp_layers(model):
        value = layer(value)
        if not isinstance(layer, nn.Linear) and k < len(kept):
            mask = torch.zeros(value.shape[1], dtype=torch.bool)
            mask[kept[k]] = True
            value = value * mask
            k += 1
    assert torch.allclose(pruned(x), value, atol=1e-6)


def test_shrink_leaves_the_original_untouched():
    model = SimpleNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = shrink(model, [torch.arange(10), torch.arange(5)])
    assert pruned.hidden == (10, 5) and model.hidden == (256, 64)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

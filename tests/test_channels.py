"""Unit pruning of sequential networks: the shrunk network computes what the original computes with the removed
channels and neurons zeroed where the next layer reads them; the unit criteria give SimpleNN exactly the MLP
criteria's hidden scores; the channel aggregations behave as documented."""

import pytest
import torch
from torch import nn

from nbprune.architectures import build_architecture, count_parameters, multiply_accumulates
from nbprune.channels import (AGGREGATIONS, UnitIntervalAdjoint, aggregate_positions, prune_units, unit_cost,
                              unit_significance)
from nbprune.datasets import MNIST
from nbprune.config import PruneConfig
from nbprune.criteria import PruningContext, significance
from nbprune.errors import ConfigError, NbpruneError
from nbprune.layers import hidden_units, kind_of, sequence_of, shrink_units, unit_layers
from nbprune.model import SimpleNN

CRITERIA = ["interval_adjoint", "magnitude", "taylor", "random"]


def conv_net(activation=nn.Sigmoid) -> nn.Sequential:
    """A small LeNet-like network: conv -> conv (channels feed a convolution), conv -> flatten -> linear (a block of
    columns each), then neurons; a sigmoid makes zeroing a channel's output differ from removing it."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Unflatten(1, (1, 10, 10)), nn.Conv2d(1, 5, 3), activation(), nn.MaxPool2d(2),
                         nn.Conv2d(5, 4, 2), activation(), nn.Flatten(), nn.Linear(4 * 3 * 3, 6), activation(),
                         nn.Linear(6, 3)).double()


def context_for(features: int, classes: int = 3) -> PruningContext:
    generator = torch.Generator().manual_seed(5)
    inputs = torch.randn(32, features, generator=generator, dtype=torch.float64)
    targets = torch.arange(32) % classes
    return PruningContext(input_box=(inputs.min(dim=0).values, inputs.max(dim=0).values), batch=(inputs, targets),
                          seed=7)


def masked_output(model: nn.Sequential, kept: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Return the original network's output with every removed unit zeroed where the next unit layer reads it."""
    layers = sequence_of(model)
    positions = [position for position, layer in enumerate(layers) if kind_of(layer).units]
    zero_at = {following: (len(layers[position].weight), index)
               for position, following, index in zip(positions, positions[1:], kept)}
    value = x
    for position, layer in enumerate(layers):
        if position in zero_at:
            units, index = zero_at[position]
            removed = torch.ones(units, dtype=torch.bool)
            removed[index] = False
            grouped = value.reshape(len(value), units, -1).clone()
            grouped[:, removed] = 0
            value = grouped.reshape(value.shape)
        value = layer(value)
    return value


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Sigmoid])
def test_the_shrunk_network_computes_what_the_masked_original_computes(activation):
    model = conv_net(activation)
    kept = [torch.tensor([0, 2, 3]), torch.tensor([1, 3]), torch.tensor([0, 1, 4, 5])]
    shrunk = shrink_units(model, kept)
    assert [len(layer.weight) for layer in unit_layers(shrunk)] == [3, 2, 4, 3]
    assert shrunk[4].in_channels == 3 and shrunk[7].in_features == 2 * 3 * 3
    x = torch.randn(16, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(shrunk(x), masked_output(model, kept, x), rtol=0, atol=1e-12)
    assert not torch.allclose(model(x), shrunk(x))  # removing them changed something: the check can fail


def test_a_channel_feeds_its_own_block_of_columns_after_flatten():
    model = conv_net()
    shrunk = shrink_units(model, [torch.arange(5), torch.tensor([2]), torch.arange(6)])
    assert torch.equal(shrunk[7].weight, model[7].weight[:, 2 * 9:3 * 9])


@pytest.mark.parametrize("criterion", CRITERIA)
def test_prune_units_keeps_the_highest_scored_units(criterion):
    model, context = conv_net(), context_for(100)
    scores = unit_significance(model, criterion, context)
    assert [len(score) for score in scores] == [5, 4, 6]
    assert all(torch.isfinite(score).all() and (score >= 0).all() for score in scores)
    pruned = prune_units(model, [2, 3, 4], criterion, context)
    assert [len(layer.weight) for layer in unit_layers(pruned)] == [2, 3, 4, 3]
    kept = scores[0].topk(2).indices.sort().values
    assert torch.equal(pruned[1].weight, model[1].weight[kept])
    assert torch.equal(pruned[4].weight, model[4].weight[scores[1].topk(3).indices.sort().values][:, kept])


@pytest.mark.parametrize("criterion", CRITERIA)
def test_a_dead_channel_scores_lowest_under_the_data_criteria(criterion):
    if criterion == "random":
        pytest.skip("random scores ignore the weights")
    model, context = conv_net(nn.ReLU), context_for(100)
    with torch.no_grad():  # channel 3 of the first conv computes 0 everywhere and nothing reads it
        model[1].weight[3] = 0
        model[1].bias[3] = 0
        model[4].weight[:, 3] = 0
    assert unit_significance(model, criterion, context)[0].argmin() == 3


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_simple_nn_gets_exactly_the_mlp_criteria_scores(criterion, activation):
    torch.manual_seed(0)
    model = SimpleNN(hidden=[9, 6], in_features=12, num_classes=4, activation=activation)
    context = context_for(12, classes=4)
    context.batch = tuple(part.float() if part.is_floating_point() else part for part in context.batch)
    context.input_box = tuple(bound.float() for bound in context.input_box)
    for options in (PruneConfig(), PruneConfig(adjoint_seeds="class_max", input_boxes="local", box_count=3)):
        mlp_criterion = UnitIntervalAdjoint(options).criterion if criterion == "interval_adjoint" else criterion
        old = significance(model, mlp_criterion, context)
        new = unit_significance(model, criterion, context, options)
        assert len(old) == len(new) == 2
        assert all(torch.equal(a, b) for a, b in zip(old, new)), (criterion, options)


def test_the_aggregations_over_positions():
    per_position = torch.tensor([[[[1.0, 3.0], [0.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # [boxes, channels, 2, 2]
    assert aggregate_positions(per_position).tolist() == [[4.0, 2.0]]
    assert aggregate_positions(per_position, "sum").tolist() == [[8.0, 8.0]]
    assert aggregate_positions(per_position, "mean").tolist() == [[2.0, 2.0]]
    neurons = torch.tensor([[1.0, 5.0]])
    assert all(torch.equal(aggregate_positions(neurons, how), neurons) for how in AGGREGATIONS)
    with pytest.raises(NbpruneError, match="expected one of max, sum, mean"):
        aggregate_positions(per_position, "median")


def test_channel_scores_under_sum_are_mean_scores_times_positions():
    model, context = conv_net(), context_for(100)
    mean = unit_significance(model, "interval_adjoint", context, aggregation="mean")
    total = unit_significance(model, "interval_adjoint", context, aggregation="sum")
    torch.testing.assert_close(total[0], mean[0] * 64)
    torch.testing.assert_close(total[2], mean[2])


def test_the_run_settings_aggregation_scores_the_channels_and_an_argument_overrides_it():
    from nbprune import RunConfig
    model, context = conv_net(), context_for(100)
    options = RunConfig.from_flat(aggregation="sum").prune
    from_setting = unit_significance(model, "interval_adjoint", context, options)
    torch.testing.assert_close(from_setting[0], unit_significance(model, "interval_adjoint", context,
                                                                  aggregation="sum")[0])
    assert not torch.equal(from_setting[0], unit_significance(model, "interval_adjoint", context)[0])  # max
    torch.testing.assert_close(unit_significance(model, "interval_adjoint", context, options, aggregation="max")[0],
                               unit_significance(model, "interval_adjoint", context)[0])
    with pytest.raises(ConfigError, match="aggregation"):
        RunConfig.from_flat(aggregation="median")


@pytest.mark.parametrize("compensation", ["mean", "midpoint"])
def test_bias_compensation_is_exact_for_units_that_are_constant_whatever_the_input(compensation):
    """A conv1 channel, a conv2 channel and an fc neuron whose weights are zero put out relu(bias) everywhere:
    removing them with compensation folds that constant into the next layer (a convolution, a Linear after Flatten,
    a Linear), so the outputs do not change; without it they do."""
    torch.manual_seed(0)
    model = build_architecture("lenet5_small")
    units = unit_layers(model)
    for layer, unit in zip(units[:3], (0, 3, 5)):
        layer.weight.data[unit] = 0.0
        layer.bias.data[unit] = 0.5
    inputs = torch.randn(64, 784)
    context = PruningContext(input_box=(inputs.min(dim=0).values, inputs.max(dim=0).values), batch=(inputs, None))

    def lowest_first(network, _):  # the constant units score lowest: they are the ones removed
        return [torch.tensor([0.0 if index == unit else 1.0 for index in range(len(layer.weight))])
                for layer, unit in zip(unit_layers(network)[:-1], (0, 3, 5, -1))]
    retain = [5, 15, 119, 84]
    options = PruneConfig(bias_compensation=compensation)
    pruned = prune_units(model, retain, lowest_first, context, options)
    assert hidden_units(pruned) == tuple(retain)
    torch.testing.assert_close(pruned(inputs), model(inputs), rtol=1e-5, atol=1e-5)
    plain = prune_units(model, retain, lowest_first, context, PruneConfig())
    assert not torch.allclose(plain(inputs), model(inputs), atol=1e-3)


def test_bias_compensation_of_units_needs_its_data_and_a_bias():
    model, inputs = build_architecture("lenet5_small"), torch.randn(8, 784)
    with pytest.raises(NbpruneError, match="'mean' needs a sample of training data"):
        prune_units(model, [5, 15, 119, 84], "magnitude", PruningContext(), PruneConfig(bias_compensation="mean"))
    layers = list(model)
    position = next(p for p, layer in enumerate(layers) if isinstance(layer, nn.Conv2d) and p > 1)
    layers[position] = nn.Conv2d(6, 16, 5, bias=False)
    with pytest.raises(NbpruneError, match="has none: build it with bias=True"):
        prune_units(nn.Sequential(*layers), [5, 15, 119, 84], "magnitude", PruningContext(batch=(inputs, None)),
                    PruneConfig(bias_compensation="mean"))


def test_bad_retain_counts_are_refused():
    model, context = conv_net(), context_for(100)
    with pytest.raises(NbpruneError, match="retain count 6 for hidden unit layer 1"):
        prune_units(model, [6, 2, 2], "magnitude", context)
    with pytest.raises(NbpruneError, match="give one count per layer"):
        prune_units(model, [2, 2], "magnitude", context)


@pytest.mark.parametrize("counts", [[5, 4, 6], [1, 1, 1], [3, 2, 5]])
def test_unit_cost_counts_as_the_shrunk_network_is_counted(counts):
    model = conv_net()
    shrunk = shrink_units(model, [torch.arange(count) for count in counts])
    assert unit_cost(model, "parameters")(counts) == count_parameters(shrunk)
    assert unit_cost(model, "macs")(counts) == multiply_accumulates(shrunk)
    assert unit_cost(model, "units")(counts) == sum(counts)
    lenet = build_architecture("lenet5", MNIST)
    assert unit_cost(lenet, "parameters")([20, 50, 500]) == 431_080


@pytest.mark.parametrize("measure, budget", [("parameters", 300), ("macs", 2_000), ("units", 7)])
def test_global_allocation_meets_a_budget_across_conv_and_linear_layers(measure, budget):
    model, context = conv_net(), context_for(100)
    options = PruneConfig(allocation="global")
    pruned = prune_units(model, [5, 4, 6], "interval_adjoint", context, options, budget=budget, measure=measure)
    counts = [len(layer.weight) for layer in unit_layers(pruned)][:-1]
    assert unit_cost(model, measure)(counts) <= budget
    assert all(count >= 1 for count in counts) and counts != [5, 4, 6]


def test_global_allocation_without_a_budget_keeps_the_schedules_total_units():
    model, context = conv_net(), context_for(100)
    pruned = prune_units(model, [3, 2, 4], "magnitude", context, PruneConfig(allocation="global"))
    assert sum(len(layer.weight) for layer in unit_layers(pruned)[:-1]) == 9

"""The method's options: input-node pruning, per-class adjoints, class and local boxes, bias compensation, global
allocation. Each is checked against what it claims: equal networks, sound intervals, budgets kept."""

import pytest
import torch
from torch import nn

from conftest import small_model
from nbprune import IterativePruning, load_pruned_model, read_record, RunConfig, SimpleNN
from nbprune.errors import ScheduleError
from nbprune.modelfile import save_model_file
from nbprune.interval import Interval
from nbprune.model import mlp_parameters
from nbprune.prune import global_counts, node_means, node_midpoints, shrink, top
from nbprune.retention import default_steps
from nbprune.criteria import IntervalAdjoint, PruningContext, interval_adjoint, interval_forward, node_significance


def sample(count: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(count, 20, generator=generator), torch.randint(0, 4, (count,), generator=generator)


def context() -> PruningContext:
    inputs, targets = sample()
    return PruningContext(input_box=(inputs.min(0).values, inputs.max(0).values), batch=(inputs, targets))


# --- input-node pruning -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_input_pruning_equals_the_original_with_the_dropped_columns_zeroed(activation):
    model = small_model(activation=activation)
    kept_inputs = torch.tensor([0, 3, 4, 9, 15, 19])
    pruned = shrink(model, [torch.arange(12), torch.arange(7)], kept_inputs=kept_inputs)
    zeroed = small_model(activation=activation)
    with torch.no_grad():
        dropped = torch.ones(20, dtype=torch.bool)
        dropped[kept_inputs] = False
        zeroed.fc1.weight[:, dropped] = 0
    x = sample(50)[0]
    assert pruned.fc1.in_features == 6 and pruned.in_features == 20  # it still takes whole inputs
    assert torch.allclose(pruned(x), zeroed(x), atol=1e-6)


def test_pruning_inputs_twice_composes_the_kept_indices_and_survives_a_file(tmp_path):
    model = small_model()
    once = shrink(model, [torch.arange(12), torch.arange(7)], kept_inputs=torch.tensor([1, 2, 5, 8, 13, 17, 18]))
    twice = shrink(once, [torch.arange(0, 12, 2), torch.arange(7)], kept_inputs=torch.tensor([0, 2, 6]))
    assert twice.keep_inputs.index.tolist() == [1, 5, 18]
    save_model_file(twice, tmp_path / "best_model.pth", iteration=2)
    loaded = SimpleNN.from_file(tmp_path / "best_model.pth")
    x = sample(10)[0]
    assert torch.equal(loaded(x), twice(x)) and loaded.keep_inputs.index.tolist() == [1, 5, 18]
    assert torch.equal(load_pruned_model(SimpleNN(hidden=(12, 7), in_features=20, num_classes=4),
                                         tmp_path / "best_model.pth")(x), twice(x))
    assert read_record(tmp_path / "best_model.pth").in_features == 20


# --- bias compensation --------------------------------------------------------------------------------------------
def replaced_by_constants(model: SimpleNN, kept, kept_inputs, constants, x: torch.Tensor) -> torch.Tensor:
    """The original network with every removed node's value replaced by its constant."""
    value = x.clone()
    if kept_inputs is not None:
        gone = torch.ones(value.shape[1], dtype=torch.bool)
        gone[kept_inputs] = False
        value[:, gone] = constants[0][gone]
    layer_index = 0
    for layer in model.sequence():
        value = layer(value)
        if isinstance(layer, (nn.ReLU, nn.Sigmoid)) and layer_index < len(kept):
            gone = torch.ones(value.shape[1], dtype=torch.bool)
            gone[kept[layer_index]] = False
            value = value.clone()
            value[:, gone] = constants[layer_index + 1][gone]
            layer_index += 1
    return value


@pytest.mark.parametrize("how", ["mean", "midpoint"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_bias_compensation_equals_the_original_with_removed_nodes_replaced_by_their_constant(how, activation):
    model = small_model((12, 7, 5), activation=activation)
    inputs, _ = sample()
    constants = node_means(model, inputs) if how == "mean" else \
        node_midpoints(model, (inputs.min(0).values, inputs.max(0).values))
    assert [len(c) for c in constants] == [20, 12, 7, 5]
    kept = [torch.tensor([0, 2, 3, 7, 11]), torch.tensor([1, 4, 6]), torch.tensor([0, 3])]
    kept_inputs = torch.tensor([2, 5, 6, 11, 12, 18])
    pruned = shrink(model, kept, kept_inputs, constants)
    x = sample(40)[0]
    with torch.no_grad():
        assert torch.allclose(pruned(x), replaced_by_constants(model, kept, kept_inputs, constants, x), atol=1e-5)


def test_node_means_are_the_mean_activations():
    model = small_model()
    inputs, _ = sample()
    means = node_means(model, inputs)
    with torch.no_grad():
        first = model.act(model.fc1(inputs))
        assert torch.allclose(means[0], inputs.mean(0)) and torch.allclose(means[1], first.mean(0))
        assert torch.allclose(means[2], model.act(model.fc2(first)).mean(0))


# --- global allocation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [2_000, 900, 400])
def test_global_allocation_keeps_the_parameter_budget_and_the_minimums(budget):
    generator = torch.Generator().manual_seed(3)
    scores = [torch.rand(100, generator=generator), torch.rand(30, generator=generator) * 5,
              torch.rand(12, generator=generator)]
    cost = lambda counts: mlp_parameters(counts[0], counts[1:], 10)  # noqa: E731
    counts = global_counts(scores, [1, 1, 10], cost, budget)
    assert cost(counts) <= budget and counts[2] >= 10 and min(counts) >= 1
    one_more = [[*counts[:k], counts[k] + 1, *counts[k + 1:]] for k in range(3)]
    assert any(cost(bigger) > budget for bigger in one_more)  # it stops as soon as the budget is met


def test_global_allocation_removes_the_lowest_nodes_first_and_refuses_an_impossible_budget():
    scores = [torch.tensor([5.0, 1.0, 4.0, 3.0]), torch.tensor([0.1, 9.0, 8.0])]
    counts = global_counts(scores, [1, 1], sum, 4)
    assert counts == [2, 2]  # by score over its layer's mean: 0.1 (layer 2), then 1.0 and 3.0 (layer 1)
    with pytest.raises(ScheduleError, match="cannot be met"):
        global_counts(scores, [3, 3], sum, 4)


def test_global_allocation_normalises_by_rank_or_not_at_all():
    scores = [torch.tensor([5.0, 1.0, 4.0, 3.0]), torch.tensor([0.1, 9.0, 8.0])]
    # rank: each layer's lowest node goes first, layer by layer (1.0, then 0.1), then the next lowest of each
    assert global_counts(scores, [1, 1], sum, 5, normalise="rank") == [3, 2]
    assert global_counts(scores, [1, 1], sum, 3, normalise="rank") == [2, 1]
    # none: the raw scores compete (0.1, 1.0, 3.0, 4.0 go; layer 1 keeps one node)
    assert global_counts(scores, [1, 1], sum, 3, normalise="none") == [1, 2]
    with pytest.raises(ScheduleError, match="normalise='median' is not known"):
        global_counts(scores, [1, 1], sum, 3, normalise="median")


def test_local_boxes_are_clipped_to_the_data_box_and_their_scores_averaged():
    model = small_model()
    ctx = context()
    wide = IntervalAdjoint(input_boxes="local", box_count=5, box_radius=10.0)  # wider than the data: all clipped
    box = wide.boxes(ctx, model.fc1.weight)
    lower, upper = ctx.input_box
    assert box.lower.shape == (5, 20)
    assert torch.equal(box.lower, lower.expand(5, -1)) and torch.equal(box.upper, upper.expand(5, -1))
    narrow = IntervalAdjoint(input_boxes="local", box_count=4, box_radius=0.2)
    boxes = narrow.boxes(ctx, model.fc1.weight)
    per_box = [node_significance(model, "interval_adjoint", PruningContext(
        input_box=(boxes.lower[k], boxes.upper[k]))) for k in range(4)]
    averaged = node_significance(model, narrow, ctx)
    for layer, scores in enumerate(averaged):  # the scores of the four boxes, averaged
        assert torch.allclose(scores, torch.stack([one[layer] for one in per_box]).mean(0), atol=1e-6)


def test_a_pixels_score_is_its_interval_width_times_its_largest_adjoint():
    model = small_model()
    ctx = context()
    box = Interval(ctx.input_box[0].reshape(1, -1), ctx.input_box[1].reshape(1, -1))
    adjoint = interval_adjoint(model, interval_forward(model, box))[0] @ model.fc1.weight  # carried back through fc1
    expected = (box.width * adjoint.magnitude).reshape(-1)
    assert torch.allclose(node_significance(model, "interval_adjoint", ctx)[0], expected)


def test_a_run_with_global_allocation_writes_what_it_chose(tiny_data, tmp_path):
    config = RunConfig.from_flat(prune_inputs=True, allocation="global", budget="parameters", epochs=1,
                                 bias_compensation="mean", iterations=4)
    train_loader, val_loader, test_loader = tiny_data
    steps = default_steps(config, 784, 10)
    assert [step.budget for step in steps][:2] == [218_058, round(218_058 * 0.8)]
    experiment = IterativePruning(train_loader, test_loader, val_loader=val_loader, config=config, progress=False)
    torch.manual_seed(0)
    records = experiment.run(SimpleNN(), steps, tmp_path / "iterative_pruning")
    for record, step in zip(records, steps):
        assert record["parameters"] <= step.budget and record["retained"][-1] >= 10
    from nbprune.retention import read_retain
    written = read_retain(tmp_path / "iterative_pruning" / "retain.txt")
    assert [step.retained for step in written] == [tuple(record["retained"]) for record in records]
    assert [step.inputs for step in written] == [record["inputs"] for record in records]
    assert written[-1].inputs < 784


# --- the interval-adjoint variants are sound ----------------------------------------------------------------------
@pytest.mark.parametrize("boxes", ["data", "class", "local"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_every_box_encloses_the_forward_values_of_points_inside_it(boxes, activation):
    model = small_model(activation=activation).double()
    box = IntervalAdjoint(input_boxes=boxes, box_count=7, box_radius=0.3).boxes(context(), model.fc1.weight)
    forward = interval_forward(model, box)
    generator = torch.Generator().manual_seed(5)
    points = box.lower + torch.rand((200, *box.shape), generator=generator, dtype=torch.float64) * box.width
    value = points
    outputs = []
    for layer in model.sequence():
        value = layer(value)
        if isinstance(layer, nn.Linear):
            outputs.append(value)
    for enclosure, values in zip(forward, outputs):
        assert enclosure.contains(values, 1e-9).all()
    if boxes == "class":
        assert box.shape == (4, 20)


@pytest.mark.parametrize("seeds", ["ones", "class_sum", "class_max"])
def test_per_class_adjoints_enclose_each_class_gradient(seeds):
    model = small_model(activation="sigmoid").double()
    criterion = IntervalAdjoint(adjoint_seeds=seeds, input_boxes="local", box_count=3)
    box = criterion.boxes(context(), model.fc1.weight)
    seed = criterion.seeds(4).double()
    adjoints = interval_adjoint(model, interval_forward(model, box), seed)
    generator = torch.Generator().manual_seed(6)
    points = (box.lower + torch.rand((50, *box.shape), generator=generator, dtype=torch.float64) * box.width)
    points.requires_grad_(True)
    value, pre = points, []
    for layer in model.sequence():
        value = layer(value)
        if isinstance(layer, nn.Linear):
            pre.append(value)
    for row in range(seed.shape[0]):
        gradients = torch.autograd.grad((value * seed[row, 0]).sum(), pre, retain_graph=True)
        for enclosure, gradient in zip(adjoints, gradients):
            assert Interval(enclosure.lower[row], enclosure.upper[row]).contains(gradient, 1e-9).all()


def test_the_reference_criterion_is_unchanged_and_the_variants_score_every_node():
    model = small_model()
    seed = node_significance(model, "interval_adjoint", context())
    box = context().input_box
    forward = interval_forward(model, Interval(box[0].reshape(1, -1), box[1].reshape(1, -1)))
    adjoints = interval_adjoint(model, forward)
    assert torch.allclose(seed[1], (forward[0].width * adjoints[0].magnitude).reshape(-1))
    for options in ({"adjoint_seeds": "class_sum"}, {"adjoint_seeds": "class_max"}, {"input_boxes": "class"},
                    {"input_boxes": "local", "box_count": 16}):
        scores = node_significance(model, IntervalAdjoint(**options), context())
        assert [len(s) for s in scores] == [20, 12, 7]
        assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores)
    for criterion in ("magnitude", "taylor", "random"):
        assert [len(s) for s in node_significance(model, criterion, context())] == [20, 12, 7]


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(Exception, match="needs allocation='global'"):
        RunConfig.from_flat(budget="parameters")
    assert top(torch.tensor([1.0, 3.0, 2.0]), 2).tolist() == [1, 2]

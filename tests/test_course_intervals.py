"""The interval primer (00_intervals) and the corrected 04: the hand numbers against the library (ReLU and sigmoid),
both activations' rules against sampling, the build-it-yourself solution against the library, the exercises'
solutions, the diagnostics on tiny models, input_q, and 00 run headless."""

import math

import nbformat
import papermill
import pytest
import torch
from torch import nn

from nbprune import (Interval, interval_adjoint, interval_forward, node_significance, PruningContext, RunConfig,
                     significance, SimpleNN)
from nbprune.config import PruneConfig
from nbprune.course import (box_summary, check, constant_feature_shift, constant_features, contain_zero,
                            default_steps, derivative_intervals, largest_change, magnitude_correlations,
                            neuron_costs, observed_ranges, outside_box, plot_primer_ranges,
                            plot_significance_distribution, plot_width_against_range, primer_box, primer_network,
                            rank_correlation, sample_box, sampled_range, seed_correlations, solution, width_table)
from nbprune.course.exercises import exercises_of, questions_of
from nbprune.course.exercises.intervals import (interval_adjoint_by_hand, interval_forward_by_hand, linears_of,
                                         network_to_check)
from nbprune.retention import GeneratePruneData, read_retain
from nbprune.course.workbook import notebooks_path


def pairs(interval: Interval) -> list[tuple[float, float]]:
    return list(zip(interval.lower.reshape(-1).tolist(), interval.upper.reshape(-1).tolist()))


def primer_context() -> PruningContext:
    box = primer_box()
    return PruningContext(input_box=(box.lower, box.upper))


# --- the primer's hand numbers --------------------------------------------------------------------------------
def test_the_primers_hand_numbers_are_the_librarys():
    network, box = primer_network(), primer_box()
    z, y = interval_forward(network, box)
    assert pairs(z) == [(-2.0, 3.0), (-1.0, 1.5)] and pairs(y) == [(-1.5, 3.0)]
    z_bar, y_bar = interval_adjoint(network, [z, y])
    assert pairs(y_bar) == [(1.0, 1.0)] and pairs(z_bar) == [(0.0, 1.0), (-1.0, 0.0)]
    with torch.no_grad():
        assert pairs(z_bar @ network.fc1.weight) == [(-0.5, 1.0), (-3.0, 0.0)]
    assert significance(network, "interval_adjoint", primer_context())[0].tolist() == [5.0, 2.5]
    assert node_significance(network, "interval_adjoint", primer_context())[0].tolist() == [1.0, 6.0]


def test_a_linear_layer_in_centre_radius_form_is_the_lower_upper_formula_and_exact_per_neuron():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 3, generator=generator, dtype=torch.float64)  # weights of either sign
    lower = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    box = Interval(lower, lower + torch.rand(1, 3, generator=generator, dtype=torch.float64))
    z = box @ weight.T
    positive, negative = weight.clamp(min=0), weight.clamp(max=0)
    assert torch.allclose(z.lower, box.lower @ positive.T + box.upper @ negative.T)
    assert torch.allclose(z.upper, box.upper @ positive.T + box.lower @ negative.T)
    assert torch.allclose(z.midpoint, box.midpoint @ weight.T) and torch.allclose(z.radius, box.radius @ weight.abs().T)
    reached = sampled_range(sample_box(box, 100) @ weight.T)  # the corners reach every neuron's bounds
    assert torch.allclose(reached.lower, z.lower.reshape(-1)) and torch.allclose(reached.upper, z.upper.reshape(-1))


# --- both activations against sampling ------------------------------------------------------------------------
INTERVALS = [(-2.0, 3.0), (0.5, 2.0), (-3.0, -0.5), (-1.0, 0.0), (0.0, 4.0)]


def sampled(lower: float, upper: float) -> torch.Tensor:
    return sample_box(Interval(torch.tensor([[lower]], dtype=torch.float64),
                               torch.tensor([[upper]], dtype=torch.float64)), 20_000).reshape(-1)


@pytest.mark.parametrize("lower, upper", INTERVALS)
def test_relu_bounds_and_derivative_interval_match_sampling(lower, upper):
    interval, points = Interval(torch.tensor(lower), torch.tensor(upper)), sampled(lower, upper)
    assert pairs(interval.relu()) == [(points.relu().min().item(), points.relu().max().item())]
    slopes = (points > 0).double()
    assert pairs(interval.relu_derivative()) == [(slopes.min().item(), slopes.max().item())]
    expected = (1.0, 1.0) if lower > 0 else (0.0, 0.0) if upper <= 0 else (0.0, 1.0)
    assert pairs(interval.relu_derivative()) == [expected]


@pytest.mark.parametrize("lower, upper", INTERVALS)
def test_sigmoid_bounds_and_derivative_interval_match_sampling(lower, upper):
    interval, points = Interval(torch.tensor(lower, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64)), \
        sampled(lower, upper)
    values = torch.sigmoid(points)
    assert list(pairs(interval.sigmoid())[0]) == pytest.approx([values.min().item(), values.max().item()])
    slopes = values * (1 - values)
    derivative = interval.sigmoid_derivative()
    assert derivative.lower.item() == pytest.approx(slopes.min().item(), abs=1e-9)
    assert derivative.upper.item() == pytest.approx(slopes.max().item(), abs=1e-6)
    if lower <= 0 <= upper:  # the peak: 0.25 at z = 0
        assert derivative.upper.item() == 0.25


def test_the_significance_bounds_the_move_within_the_interval_and_is_not_tight():
    network, box = primer_network(), primer_box()
    z = interval_forward(network, box)[0]
    scores = significance(network, "interval_adjoint", primer_context())[0]
    inputs = sample_box(box, 2000)
    changes = [largest_change(network, inputs, j, z[0, j]) for j in range(2)]
    assert changes == pytest.approx([3.0, 1.5]) and all(change <= score for change, score in zip(changes, scores))


def test_sampling_shows_the_dependency_problem():
    network, box = primer_network(), primer_box()
    z = interval_forward(network, box)[0]
    with torch.no_grad():
        hidden = network.fc1(sample_box(box))
        summing = primer_network(second=((1.0, 1.0),))
        outputs = summing(sample_box(box))
    assert pairs(sampled_range(hidden)) == pairs(z)  # each neuron exact ...
    difference = sampled_range(hidden[:, 0] - hidden[:, 1])  # ... but z1 - z2 is overestimated
    assert pairs(z[..., 0] - z[..., 1]) == [(-3.5, 4.0)] and list(pairs(difference)[0]) == pytest.approx([-3.0, 3.5])
    assert pairs(interval_forward(summing, box)[-1]) == [(0.0, 4.5)] and outputs.max().item() == pytest.approx(3.0)


def test_the_rules_of_interval_arithmetic_worked_in_00():
    a, b = Interval(torch.tensor(1.0), torch.tensor(2.0)), Interval(torch.tensor(-3.0), torch.tensor(1.0))
    assert pairs(a + b) == [(-2.0, 3.0)] and pairs(-2 * b) == [(-2.0, 6.0)] and pairs(a * b) == [(-6.0, 2.0)]


def flat(interval: Interval) -> list[float]:
    return [value for pair in pairs(interval) for value in pair]


def test_the_sigmoid_primers_hand_numbers_are_the_librarys():
    network, box = primer_network(activation="sigmoid"), primer_box()
    z, y = interval_forward(network, box)
    sigma = torch.sigmoid(torch.tensor([-2.0, 3.0, -1.0, 1.5], dtype=torch.float64)).tolist()
    slope = [s * (1 - s) for s in sigma]  # sigma' at -2, 3, -1, 1.5
    assert flat(z.sigmoid()) == pytest.approx(sigma)
    assert flat(y) == pytest.approx([sigma[0] - sigma[3], sigma[1] - sigma[2]])
    assert [round(v, 4) for v in flat(y)] == [-0.6984, 0.6836]
    z_bar = interval_adjoint(network, [z, y])[0]
    assert flat(z_bar) == pytest.approx([slope[1], 0.25, -0.25, -slope[3]])  # sigma'(3) < sigma'(-2)
    with torch.no_grad():
        x_bar = z_bar @ network.fc1.weight
    assert flat(x_bar) == pytest.approx([slope[1] - 0.125, 0.25 - 0.5 * slope[3], -0.75, -2 * slope[1] - slope[3]])
    assert [round(v, 4) for v in flat(x_bar)] == [-0.0798, 0.1754, -0.75, -0.2395]
    assert significance(network, "interval_adjoint", primer_context())[0].tolist() == [1.25, 0.625]
    inputs = node_significance(network, "interval_adjoint", primer_context())[0].tolist()
    assert inputs == pytest.approx([0.25 - 0.5 * slope[3], 1.5]) and round(inputs[0], 4) == 0.1754
    changes = [largest_change(network, sample_box(box, 2000), j, z[0, j]) for j in range(2)]
    assert changes == pytest.approx([sigma[1] - sigma[0], sigma[3] - sigma[2]])
    assert [round(change, 4) for change in changes] == [0.8334, 0.5486]


# --- build it yourself (00.build) ---------------------------------------------------------------------------------
def trained_mlp() -> SimpleNN:
    """Return a small ReLU MLP trained a few steps on random data (weights no longer at their initial values)."""
    torch.manual_seed(0)
    model = SimpleNN((16, 8), in_features=5, num_classes=3)
    inputs, targets = torch.randn(200, 5), torch.randint(0, 3, (200,))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(50):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    return model


def random_box(features: int) -> Interval:
    inputs = torch.randn(100, features, generator=torch.Generator().manual_seed(1))
    return Interval(inputs.min(dim=0).values.reshape(1, -1), inputs.max(dim=0).values.reshape(1, -1))


@pytest.mark.parametrize("case", ["primer", "trained MLP"])
def test_the_built_interval_forward_and_adjoint_are_the_librarys(case):
    model, box = (primer_network(), primer_box()) if case == "primer" else (trained_mlp(), random_box(5))
    weights, biases = linears_of(model)
    mine = interval_forward_by_hand(weights, biases, box.lower, box.upper)
    library = interval_forward(model, box)
    assert len(mine) == len(library) == len(weights)
    for (lower, upper), interval in zip(mine, library):
        assert torch.allclose(lower, interval.lower, rtol=1e-6, atol=1e-6)
        assert torch.allclose(upper, interval.upper, rtol=1e-6, atol=1e-6)
    for (lower, upper), interval in zip(interval_adjoint_by_hand(weights, mine), interval_adjoint(model, library)):
        assert torch.equal(lower, interval.lower) and torch.equal(upper, interval.upper)
    assert check("00.build", solution("00.build"), model=model, box=box).right
    if case == "primer":
        assert [pairs(Interval(*pair)) for pair in mine] == [[(-2.0, 3.0), (-1.0, 1.5)], [(-1.5, 3.0)]]


def scaffold_forward(weights, biases, lower, upper):  # the notebook's cell, blanks unfilled
    bounds = []
    for k, (weight, bias) in enumerate(zip(weights, biases)):
        if k > 0:
            lower, upper = ..., ...
        centre, radius = (lower + upper) / 2, (upper - lower) / 2
        centre, radius = ..., ...
        lower, upper = centre - radius, centre + radius
        bounds.append((lower, upper))
    return bounds


def scaffold_adjoint(weights, bounds):
    lower = upper = torch.ones_like(bounds[-1][0])
    adjoints = [(lower, upper)]
    for k in reversed(range(len(weights) - 1)):
        weight, (z_lower, z_upper) = weights[k + 1], bounds[k]  # noqa: F841 (the blanks below use them)
        centre, radius = ..., ...
        lower, upper = centre - radius, centre + radius
        slope_lower, slope_upper = ..., ...  # noqa: F841 (as the notebook's scaffold leaves them)
        ends = torch.stack([...])
        lower, upper = ends.min(dim=0).values, ends.max(dim=0).values
        adjoints.insert(0, (lower, upper))
    return adjoints


def forward_without_relu(weights, biases, lower, upper):
    bounds = []
    for weight, bias in zip(weights, biases):
        centre, radius = (lower + upper) / 2 @ weight.T + bias, (upper - lower) / 2 @ weight.abs().T
        lower, upper = centre - radius, centre + radius
        bounds.append((lower, upper))
    return bounds


def adjoint_without_transpose_abs(weights, bounds):  # the radius through W instead of |W|
    lower = upper = torch.ones_like(bounds[-1][0])
    adjoints = [(lower, upper)]
    for k in reversed(range(len(weights) - 1)):
        weight, (z_lower, z_upper) = weights[k + 1], bounds[k]  # noqa: F841 (the blanks below use them)
        centre, radius = (lower + upper) / 2 @ weight, ((upper - lower) / 2 @ weight).abs()
        lower, upper = centre - radius, centre + radius
        slope_lower, slope_upper = (z_lower > 0).to(lower.dtype), (z_upper > 0).to(lower.dtype)
        ends = torch.stack([slope_lower * lower, slope_lower * upper, slope_upper * lower, slope_upper * upper])
        lower, upper = ends.min(dim=0).values, ends.max(dim=0).values
        adjoints.insert(0, (lower, upper))
    return adjoints


def test_the_build_check_says_not_yet_for_blanks_and_names_the_first_wrong_layer():
    model, box = trained_mlp(), random_box(5)
    blanks = check("00.build", (scaffold_forward, scaffold_adjoint), model=model, box=box)
    assert not blanks.right and "your forward still has blanks (...)" in blanks.message
    half = check("00.build", (interval_forward_by_hand, scaffold_adjoint), model=model, box=box)
    assert not half.right and "your forward agrees" in half.message and "your adjoint still has blanks" in half.message
    no_relu = check("00.build", (forward_without_relu, interval_adjoint_by_hand), model=model, box=box)
    assert not no_relu.right and "the lower bound of hidden layer 2 differs" in no_relu.message
    no_abs = check("00.build", (interval_forward_by_hand, adjoint_without_transpose_abs), model=model, box=box)
    assert not no_abs.right and "your adjoint" in no_abs.message and "hidden layer 1" in no_abs.message

    def raising(weights, biases, lower, upper):
        raise RuntimeError("my bug")
    broken = check("00.build", (raising, interval_adjoint_by_hand), model=model, box=box)
    assert not broken.right and "your forward raised RuntimeError: my bug" in broken.message
    sigmoid = SimpleNN((4,), in_features=5, num_classes=3, activation="sigmoid")
    assert "for a ReLU network" in check("00.build", solution("00.build"), model=sigmoid, box=box).message
    assert "def interval_forward_by_hand" in solution("00.build")._repr_markdown_()


def test_the_network_to_check_is_the_sessions_relu_model_or_one_trained_here(tmp_path, tiny_data):
    from nbprune import RunConfig, Session, input_box
    from nbprune.modelfile import save_model_file
    config = RunConfig.from_flat({"hidden": (8,)})
    session = Session(tmp_path / "session")
    trained, origin = network_to_check(session, tiny_data, config)
    assert trained.hidden == (8,) and "trained here for 1 epoch" in origin
    assert not session.dense_model_file.exists()  # nothing written
    assert check("00.build", solution("00.build"), model=trained, box=input_box(tiny_data.train_loader)).right
    own = SimpleNN((6,))
    own.spec = tiny_data.spec
    save_model_file(own, session.dense_model_file)
    found, origin = network_to_check(session, tiny_data, config)
    assert found.hidden == (6,) and "02_model trained" in origin
    own = SimpleNN((6,), activation="sigmoid")
    own.spec = tiny_data.spec
    save_model_file(own, session.dense_model_file)
    assert network_to_check(session, tiny_data, config)[0].activation == "relu"  # a sigmoid model: one trained here


# --- exercises ------------------------------------------------------------------------------------------------
def tiny_session_inputs():
    torch.manual_seed(0)
    model = SimpleNN((6, 4), in_features=5, num_classes=3)
    inputs = torch.randn(40, 5)
    inputs[:, 0] = -0.4  # a constant feature, like a border pixel
    box = (inputs.min(dim=0).values, inputs.max(dim=0).values)
    schedule = GeneratePruneData((256, 64), 0.7, range(31)).data
    return {"model": model, "box": box, "schedule": schedule, "features": 784}


def context_of(key: str) -> dict:
    if key == "00.build":
        return {"model": trained_mlp(), "box": random_box(5)}
    return {}


WRONG = {"00.build": (forward_without_relu, interval_adjoint_by_hand),
         "00.1": (-2.0, 3.0), "00.2": (0.0, 0.25), "00.3": 5.0, "00.4": (-3.0, 0.0), "00.5": (3.0, -0.5)}


@pytest.mark.parametrize("key", exercises_of("00"))  # 04's: tests/test_course_pruning.py
def test_every_solution_is_accepted_and_a_wrong_answer_refused(key):
    context = context_of(key)
    assert check(key, solution(key, **context), **context).right, key
    refused = check(key, WRONG[key], **context)
    assert not refused.right and refused.message, key
    assert not check(key, None, **context).right  # an unanswered exercise says "not yet" and does not raise


def numbered(notebook: str) -> list[str]:
    """Return a notebook's numbered exercises (its closing Exercises section; 00.build sits in its step 8)."""
    return [key for key in exercises_of(notebook) if key.split(".")[1].isdigit()]


def test_the_notebooks_have_three_to_five_exercises_each():
    assert 3 <= len(numbered("00")) <= 5 and 3 <= len(numbered("04")) <= 5
    assert "00.build" in exercises_of("00")
    assert tiny_session_inputs()["schedule"][5].retained == (43, 11)
    assert solution("04.4", schedule=tiny_session_inputs()["schedule"], features=784) == round(784 * 48.75 / 100)


def test_an_exercise_about_an_iteration_the_schedule_leaves_out_says_so():
    schedule = GeneratePruneData((4, 1), 0.8, range(6)).data  # 4·0.8² = 2.56 rounds to 3, as at iteration 1
    assert 2 not in [step.iteration for step in schedule]
    verdict = check("04.4", 257, schedule=schedule, features=784)
    assert not verdict.right and "leaves iteration 2 out" in verdict.message
    short = GeneratePruneData((256, 64), 0.8, range(2)).data  # the iterations slider allows 2: iterations 0 and 1
    verdict = check("04.4", 257, schedule=short, features=784)
    assert not verdict.right and "ends at iteration 1" in verdict.message


# --- the diagnostics on tiny models with known answers ------------------------------------------------------
def test_rank_correlation_of_known_orders():
    scores = torch.tensor([0.1, 0.5, 0.3, 0.9])
    assert rank_correlation(scores, scores * 7) == pytest.approx(1.0)
    assert rank_correlation(scores, -scores) == pytest.approx(-1.0)
    assert rank_correlation(torch.tensor([1.0, 2, 2, 3]), torch.tensor([1.0, 3, 2, 4])) == pytest.approx(
        0.9486832980505138)  # ties share their mean rank (2.5, 2.5): Pearson of (1, 2.5, 2.5, 4) and (1, 3, 2, 4)


def test_box_coverage_constant_features_and_their_shift():
    box = (torch.tensor([0.0, -0.4, 0.0]), torch.tensor([1.0, -0.4, 2.0]))
    images = torch.tensor([[0.5, -0.4, 1.0], [1.5, -0.4, 1.0], [0.5, -0.3, 1.0], [0.0, -0.4, 2.0]])
    assert outside_box(box, images) == 2
    assert constant_features(box).tolist() == [1]
    model = SimpleNN((2,), in_features=3, num_classes=2)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, -0.5, 0.0]]))
    assert constant_feature_shift(model, box).tolist() == pytest.approx([2.0 * -0.4, -0.5 * -0.4])


def test_width_table_of_the_primer_is_exact_in_the_first_layer_and_wider_after():
    network = primer_network(second=((1.0, 1.0),))
    inputs = torch.cat([sample_box(primer_box()), torch.zeros(1, 2, dtype=torch.float64)])  # y is 0 only at 0
    table = width_table(network, primer_context(), inputs)
    hidden, logits = table[table.layer == "hidden 1"], table[table.layer == "logits"]
    assert hidden["ratio"].tolist() == pytest.approx([1.0, 1.0], abs=1e-3)
    assert logits["ratio"].item() == pytest.approx(4.5 / 3.0, rel=1e-3)
    assert [interval.width.tolist() for interval in observed_ranges(network, primer_box().lower)] == [[0.0, 0.0],
                                                                                                      [0.0]]


def test_intervals_holding_zero_and_the_derivative_intervals():
    z = [Interval(torch.tensor([[-1.0, 0.5, -2.0]]), torch.tensor([[1.0, 2.0, -0.5]])),
         Interval(torch.tensor([[-1.0]]), torch.tensor([[1.0]]))]
    assert contain_zero(z) == [(1, 3), (1, 1)]
    relu, sigmoid = SimpleNN((3,), 2, 1), SimpleNN((3,), 2, 1, activation="sigmoid")
    assert pairs(derivative_intervals(relu, z)[0]) == [(0.0, 1.0), (1.0, 1.0), (0.0, 0.0)]
    assert pairs(derivative_intervals(sigmoid, z)[0])[0][1] == 0.25


def test_neuron_costs_are_what_one_neuron_holds():
    assert neuron_costs(SimpleNN((256, 64))) == [784 + 1 + 64, 256 + 1 + 10]


def test_seed_and_magnitude_correlations_and_the_box_summary():
    torch.manual_seed(0)
    one_output = SimpleNN((5,), in_features=3, num_classes=1)
    inputs, targets = torch.randn(64, 3), torch.randint(0, 3, (64,))
    context = PruningContext(input_box=(inputs.min(dim=0).values, inputs.max(dim=0).values), batch=(inputs, targets))
    assert seed_correlations(one_output, context) == [pytest.approx(1.0)]  # one class: both seeds are the same
    model = SimpleNN((6, 4), in_features=3, num_classes=3)
    assert all(-1 <= value <= 1 for value in magnitude_correlations(model, context))
    options = PruneConfig(adjoint_seeds="class_sum", box_count=8)
    summary = box_summary(model, context, inputs, options=options)  # the default seed regardless
    assert summary["corr. with magnitude"].tolist()[:2] == pytest.approx(magnitude_correlations(model, context))
    assert summary["boxes"].tolist() == ["data"] * 3 + ["class"] * 3 + ["local"] * 3
    assert summary["% holding 0"].between(0, 100).all()
    assert math.isnan(summary["corr. with magnitude"].iloc[2])  # the logits are not pruned


def test_the_course_figures_are_saved(tmp_path):
    network, box = primer_network(), primer_box()
    z, y = interval_forward(network, box)
    with torch.no_grad():
        hidden, outputs = network.fc1(sample_box(box, 200)), network(sample_box(box, 200))
    plot_primer_ranges(hidden, z, outputs, y, path=tmp_path / "primer.png")
    plot_width_against_range(width_table(network, primer_context(), sample_box(box)), path=tmp_path / "width.png")
    plot_significance_distribution([torch.tensor([0.0, 1.0, 2.0, 4.0])], path=tmp_path / "scores.png")
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("primer.png", "width.png", "scores.png"))


# --- input_q: one source for neurons and pixels -----------------------------------------------------------------
def test_input_q_none_follows_the_schedule_read_from_retain_txt(tmp_path):
    GeneratePruneData((256, 64), 0.7, range(31), dir=tmp_path).generate_data()
    steps = read_retain(tmp_path / "retain.txt", (256, 64))
    followed = default_steps(RunConfig.from_flat({"prune_inputs": True}), 784, 10, steps=steps)  # config's q: 0.8
    assert {step.iteration: step.inputs for step in followed}[5] == 132  # q 0.8 would keep round(784 * 0.8**5) = 257
    assert followed[0].inputs == 784
    from_file = default_steps(RunConfig.from_flat({"prune_inputs": True, "retain": str(tmp_path / "retain.txt")}), 784)
    assert [step.inputs for step in from_file] == [step.inputs for step in followed]
    generated = default_steps(RunConfig.from_flat({"prune_inputs": True, "q": 0.7}), 784, 10)
    assert {step.iteration: step.inputs for step in generated}[5] == 132
    explicit = default_steps(RunConfig.from_flat({"prune_inputs": True, "input_q": 0.5}), 784, 10, steps=steps)
    assert {step.iteration: step.inputs for step in explicit}[2] == 196


# --- 00 headless --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_primer_runs_headless_and_its_copy_shows_its_figure_and_the_build_checks(tmp_path, tiny_root):
    """Run 00 headless twice: as committed (the scaffold's blanks say "not yet", the notebook runs on) and with the
    scaffold's cells filled by the worked solution (both checks say "right")."""
    source = nbformat.read(notebooks_path() / "00_intervals.ipynb", as_version=4)
    scaffolds = [cell for cell in source.cells if cell.source.startswith("def my_interval_")]
    assert len(scaffolds) == 2 and all("..." in cell.source for cell in scaffolds)
    solved = nbformat.from_dict(source)
    for cell in solved.cells:
        if cell.source.startswith("def my_interval_forward"):
            cell.source = ("from nbprune.course.exercises.intervals import interval_forward_by_hand as "
                           "my_interval_forward")
        elif cell.source.startswith("def my_interval_adjoint"):
            cell.source = ("from nbprune.course.exercises.intervals import interval_adjoint_by_hand as "
                           "my_interval_adjoint")
    nbformat.write(solved, tmp_path / "solved.ipynb")
    parameters = {"data_root": str(tiny_root), "val_size": 100}
    verdicts = {}
    runs = (("committed", notebooks_path() / "00_intervals.ipynb"), ("solved", tmp_path / "solved.ipynb"))
    for name, notebook in runs:
        executed = tmp_path / f"{name}_run.ipynb"
        papermill.execute_notebook(str(notebook), str(executed), kernel_name="python3", progress_bar=False,
                                   parameters={**parameters, "session_dir": str(tmp_path / name)})
        cells = [cell for cell in nbformat.read(executed, as_version=4).cells if cell.cell_type == "code"]
        outputs = [output for cell in cells for output in cell.outputs]
        assert not [output for output in outputs if output.output_type == "error"]
        verdicts[name] = [output.data["text/plain"] for cell in cells if 'check("00.build"' in cell.source
                          for output in cell.outputs if output.output_type == "execute_result"]
    assert any("image/png" in output.get("data", {}) for output in outputs)
    assert (tmp_path / "solved" / "intervals" / "primer.png").is_file()
    printed = "".join(output.get("text", "") for output in outputs)
    assert "significance of the hidden neurons [5.0, 2.5]" in printed
    assert "significance of the hidden neurons [1.25, 0.625], of the inputs [0.1754, 1.5]" in printed
    assert "checking on a 784-256-64-10 ReLU network trained here for 1 epoch on MNIST" in printed
    assert len(verdicts["committed"]) == len(verdicts["solved"]) == 2
    assert all(verdict.startswith("not yet: your forward still has blanks") for verdict in verdicts["committed"])
    assert verdicts["solved"][0].startswith("right") and "2-2-1 network" in verdicts["solved"][0]
    assert verdicts["solved"][1].startswith("right") and "784-256-64-10 network" in verdicts["solved"][1]
    shown = [output.data["text/plain"] for output in outputs if output.output_type == "execute_result"
             and 'solution("00.q10")' in output.data.get("text/plain", "")]
    assert len(shown) == 1 and 'solution("00.q1")' in shown[0]


def test_the_first_four_notebooks_close_with_a_questionnaire():
    """tests/test_questionnaire.py checks every notebook with a Questionnaire section; here: 00-03 have one."""
    for name in ("00_intervals", "01_data", "02_model", "03_retention"):
        cells = nbformat.read(notebooks_path() / f"{name}.ipynb", as_version=4).cells
        assert any(cell.source.startswith("## Questionnaire") for cell in cells), name
        assert 8 <= len(questions_of(name[:2])) <= 10, name

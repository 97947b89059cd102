"""04_iterative_pruning's measurements and exercises: removing one neuron against its significance, where the
constant pixels lie, the last hidden layer's significance by hand, global allocation's first cut, local boxes,
bias compensation, and the answers behind `solution`."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import small_model
from nbprune import PruningContext, interval_forward, node_significance
from nbprune.course.diagnostics import (constant_feature_places, correlation_words, rank_correlation, removal_effects,
                                 removal_summary)
from nbprune.course.exercises import check, exercises_of, questions_of, solution
from nbprune.course.figures import plot_removal_against_significance
from nbprune.interval import Interval
from nbprune.prune import shrink


def small_data() -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    inputs = torch.randn(200, 5, generator=torch.Generator().manual_seed(1))
    inputs[:, 0] = -0.4  # a constant feature, like a border pixel
    targets = torch.randint(0, 3, (200,), generator=torch.Generator().manual_seed(2))
    return inputs, targets, (inputs.min(dim=0).values, inputs.max(dim=0).values)


# --- removing one neuron at a time ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer, width", [(-1, 4), (2, 4), (1, 6)])
def test_removing_a_neuron_is_measured_as_the_cut_without_it(layer, width):
    model, (inputs, targets, _) = small_model((6, 4), 5, 3), small_data()
    effects = removal_effects(model, inputs, targets, layer=layer)
    assert effects["neuron"].tolist() == list(range(width))
    with torch.no_grad():
        outputs = model(inputs)
        loss, accuracy = F.cross_entropy(outputs, targets).item(), 100 * (outputs.argmax(1) == targets).double().mean()
        for neuron in (0, width - 1):
            kept = [torch.arange(6), torch.arange(4)]
            kept[(layer if layer > 0 else 2) - 1] = torch.tensor([j for j in range(width) if j != neuron])
            cut = shrink(model, kept)(inputs)  # the library's surgery: the neuron gone
            row = effects.iloc[neuron]
            assert row["loss change"] == pytest.approx(F.cross_entropy(cut, targets).item() - loss, abs=1e-6)
            cut_accuracy = 100 * (cut.argmax(1) == targets).double().mean()
            assert row["accuracy change"] == pytest.approx(float(cut_accuracy - accuracy), abs=1e-9)


def test_a_neuron_that_feeds_nothing_costs_nothing_to_remove():
    model, (inputs, targets, _) = small_model((6, 4), 5, 3), small_data()
    with torch.no_grad():
        model.fc3.weight[:, 2] = 0
    effects = removal_effects(model, inputs, targets)
    assert effects.loc[2, "loss change"] == 0 and effects.loc[2, "accuracy change"] == 0


def test_the_summary_says_what_the_measurement_shows_computed_from_it():
    effects = pd.DataFrame({"neuron": range(8), "loss change": [0.0, 0.0005, 0.002, 0.01, 0.02, 0.03, 0.04, 0.08],
                            "accuracy change": [0.0, 0.0, -0.1, -0.2, -0.3, -0.5, -0.6, -1.5]})
    agreeing = torch.arange(1.0, 9.0)  # the score orders the neurons as their cost does
    text = removal_summary(effects, agreeing)
    assert "rank correlation of the significance with the loss increase each removal causes: 1.00 (nearly the " \
           "same order), so on this layer the score's order does follow" in text
    assert "(+0.0800 loss, -1.50 accuracy points) ranks 1 of 8 by significance" in text
    assert "2 of 8 neurons raise the loss by at most 0.001" in text
    assert "the quarter the score ranks lowest change it by +0.0003 on average, the others by +0.0303" in text
    reversed_text = removal_summary(effects, -agreeing)
    assert "-1.00 (nearly the same order, reversed), so on this layer the score says little" in reversed_text
    assert "ranks 8 of 8" in reversed_text


def test_the_removal_figure_shows_both_changes_against_the_significance(tmp_path):
    model, (inputs, targets, box) = small_model((6, 4), 5, 3), small_data()
    effects = removal_effects(model, inputs, targets)
    scores = node_significance(model, "interval_adjoint", PruningContext(input_box=box))[-1]
    figure = plot_removal_against_significance(effects, scores, path=tmp_path / "removal.png")
    expected = rank_correlation(scores.double(), torch.tensor(effects["loss change"].to_numpy()))
    assert figure.axes[0].get_title() == f"Spearman's rank correlation {expected:.2f}"
    assert (tmp_path / "removal.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("value, words", [(0.95, "nearly the same order"), (0.75, "much the same order"),
                                          (0.5, "a moderate likeness"), (0.27, "a weak likeness"),
                                          (-0.04, "hardly related"), (-0.5, "a moderate likeness, reversed")])
def test_correlations_in_words(value, words):
    assert correlation_words(value) == words


def test_constant_pixels_are_placed_in_corners_on_the_border_or_inside():
    lower, upper = torch.zeros(64), torch.ones(64)
    for row, column in ((0, 0), (1, 6), (7, 7), (0, 3), (4, 1), (3, 4)):  # corners 3; border 2; inside 1
        upper[8 * row + column] = 0
    assert constant_feature_places((lower, upper), (8, 8)) == {"corners": 3, "border": 2, "inside": 1}


# --- the exercises --------------------------------------------------------------------------------------------
def contexts() -> dict[str, dict]:
    model, (_, _, box) = small_model((6, 4), 5, 3), small_data()
    scores = node_significance(model, "interval_adjoint", PruningContext(input_box=box))[1:]
    table = pd.DataFrame({"boxes": ["data"] * 3 + ["class"] * 3 + ["local"] * 3,
                          "layer": ["hidden 1", "hidden 2", "logits"] * 3,
                          "median width / range": [3.0, 18, 40, 2, 14, 30, 0.5, 2.7, 6],
                          "% holding 0": [100.0, 100, 100, 100, 100, 100, 94, 100, 100],
                          "corr. with magnitude": [0.95, 0.32, math.nan, 0.95, 0.33, math.nan, 0.92, 0.32, math.nan]})
    from nbprune.retention import GeneratePruneData
    return {"04.1": {"model": model, "box": box}, "04.2": {"scores": scores}, "04.3": {"table": table},
            "04.4": {"schedule": GeneratePruneData((256, 64), 0.7, range(31)).data, "features": 784},
            "04.5": {"model": model, "box": box}}


def test_04_has_five_exercises_and_one_question_to_think_about_and_a_questionnaire():
    assert exercises_of("04") == ["04.1", "04.2", "04.3", "04.4", "04.5"]
    assert "removal fixes the activation at 0" in solution("04.6")
    assert 8 <= len(questions_of("04")) <= 10


@pytest.mark.parametrize("key", ["04.1", "04.2", "04.3", "04.4", "04.5"])
def test_every_solution_of_04_is_accepted_and_a_wrong_answer_refused(key):
    context = contexts()[key]
    answer = solution(key, **context)
    assert check(key, answer, **context).right, check(key, answer, **context)
    if key == "04.3":
        wrong = "higher" if answer == "lower" else "lower"
    elif key == "04.2":
        wrong = 2 if answer == 1 else 1
    else:
        wrong = answer + 1 if isinstance(answer, int) else answer * 1.1 + 0.01
    refused = check(key, wrong, **context)
    assert not refused.right and refused.message
    assert not check(key, None, **context).right


def test_the_04_solutions_are_the_numbers_a_student_computes_by_hand():
    model, (_, _, box) = small_model((6, 4), 5, 3), small_data()
    with torch.no_grad():
        z = interval_forward(model, Interval(box[0].reshape(1, -1), box[1].reshape(1, -1)))[-2]
        column = model.fc3.weight[:, 0].sum().abs()
        slope = 1.0 if z.upper[0, 0] > 0 else 0.0
        assert solution("04.1", model=model, box=box) == pytest.approx(float(z.width[0, 0] * column * slope), rel=1e-6)
        low, high = z.lower[0, 0].clamp(min=0), z.upper[0, 0].clamp(min=0)
        expected = model.fc3.bias[0] + model.fc3.weight[0, 0] * (low + high) / 2
    assert solution("04.5", model=model, box=box) == pytest.approx(float(expected), rel=1e-6)
    scores = [torch.tensor([2.0, 6.0]), torch.tensor([30.0, 50.0])]  # 2/4 = 0.5 < 30/40 = 0.75: layer 1 first
    assert solution("04.2", scores=scores) == 1
    assert solution("04.2", scores=[torch.tensor([4.0, 4.0]), torch.tensor([1.0, 9.0])]) == 2
    assert "layer 1: 0.5, layer 2: 0.75" in check("04.2", 1, scores=scores).message
    assert solution("04.3", table=contexts()["04.3"]["table"]) == "lower"  # (0.92 + 0.32) / 2 < (0.95 + 0.32) / 2

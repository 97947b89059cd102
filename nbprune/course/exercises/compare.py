"""Exercises of 07_compare: the spread over seeds, the noise a gap must beat, the validation set's sampling error,
and what choosing on the test set would change."""

from __future__ import annotations

import math

import pandas as pd

from . import Verdict, ask, close, exercise


def _smallest_level(table: pd.DataFrame) -> int:
    return int(table.loc[table["parameters"].idxmin(), "level"])


def _means(table: pd.DataFrame, level: int, column: str) -> pd.Series:
    """Return each method's mean (over seeds) of `column` at `level`, in the table's order of methods."""
    rows = table[table["level"] == level]
    return rows.groupby("method", sort=False)[column].mean()


def _spread(table: pd.DataFrame, method: str) -> float:
    """Return the sample standard deviation over seeds of `method`'s validation accuracy at the smallest level."""
    rows = table[(table["level"] == _smallest_level(table)) & (table["method"] == method)]
    return float(rows["val_accuracy"].std(ddof=1))


def _needs_seeds(table: pd.DataFrame) -> Verdict | None:
    if table["seed"].nunique() < 2:
        return Verdict(False, "a spread over seeds needs two seeds or more: set compare_seeds = 2 in the parameters "
                              "cell, run the notebook again, and compute it then.")
    return None


@exercise("07.1", "The retraining's luck: compute the spread over seeds (the sample standard deviation, dividing by "
                  "n - 1) of interval_adjoint's validation accuracy at the smallest level compared, from the rows of "
                  "`table`.", solver=lambda table: _spread(table, "interval_adjoint"))
def seed_spread(answer, table: pd.DataFrame) -> Verdict:
    refused = _needs_seeds(table)
    if refused is not None:
        return refused
    rows = table[(table["level"] == _smallest_level(table)) & (table["method"] == "interval_adjoint")]
    return close(answer, _spread(table, "interval_adjoint"), "the seed spread (points)",
                 why=f"{len(rows)} seeds moved interval_adjoint's accuracy by this much with nothing else changed: "
                     f"a gap between two methods smaller than about twice it says nothing about the methods.",
                 hint=f"take the {len(rows)} val_accuracy values of interval_adjoint at the level with the fewest "
                      f"parameters; the sample standard deviation divides the sum of squared deviations from their "
                      f"mean by n - 1 = {len(rows) - 1} before the square root.", tolerance=1e-3)


def _noise(table: pd.DataFrame) -> float:
    means = _means(table, _smallest_level(table), "val_accuracy")
    images = int(table["val_images"].iloc[0])
    error = max(means["interval_adjoint"], means["magnitude"])
    error = math.sqrt(error * (100 - error) / images)
    return max(_spread(table, "interval_adjoint"), _spread(table, "magnitude"), error)


@exercise("07.2", "The noise a gap must beat: at the smallest level, interval_adjoint minus magnitude is a gap in "
                  "mean validation accuracy. Compute the noise it must beat: the larger of the two methods' seed "
                  "spreads (07.1's computation, for each) and the sampling error sqrt(p (100 - p) / n) at the higher "
                  "of their two mean accuracies p (n: the column val_images). Is the gap more than twice it?",
          solver=lambda table: _noise(table))
def gap_noise(answer, table: pd.DataFrame) -> Verdict:
    refused = _needs_seeds(table)
    if refused is not None:
        return refused
    means = _means(table, _smallest_level(table), "val_accuracy")
    gap, noise = float(means["interval_adjoint"] - means["magnitude"]), _noise(table)
    said = "more than twice it: clear" if abs(gap) > 2 * noise else "not more than twice it: within the noise"
    return close(answer, noise, "the noise (points)",
                 why=f"the gap is {gap:+.2f} points, {said}. The conclusion's verdict on magnitude is this test at "
                     f"every level.",
                 hint="compute both seed spreads and the sampling error, then take the largest of the three.",
                 tolerance=1e-3)


def _standard_error(table: pd.DataFrame) -> float:
    rows = table[(table["level"] == _smallest_level(table)) & (table["method"] == "interval_adjoint")]
    accuracy, images = rows["val_accuracy"].mean(), int(rows["val_images"].iloc[0])
    return math.sqrt(accuracy * (100 - accuracy) / images)


@exercise("07.3", "A validation accuracy of p % measured on n images has a sampling error of about "
                  "sqrt(p (100 - p) / n) points. Compute it for interval_adjoint at the smallest level (n is the "
                  "column val_images).", solver=lambda table: _standard_error(table))
def sampling_error(answer, table: pd.DataFrame) -> Verdict:
    error = _standard_error(table)
    return close(answer, error, "the sampling error (points)",
                 why=f"a different set of {int(table['val_images'].iloc[0]):,} images could move the accuracy by "
                     f"about that much, whatever the method. A gap below about twice it ({2 * error:.2f}) says "
                     f"nothing about the methods; more seeds add the retraining's own spread.",
                 hint="p is the mean val_accuracy in %, so p (100 - p) / n is in squared points.", tolerance=1e-3)


def _changed_choices(table: pd.DataFrame) -> int:
    changed = 0
    for level in table["level"].unique():
        validation, test = _means(table, level, "val_accuracy"), _means(table, level, "test_accuracy")
        changed += validation.idxmax() != test.idxmax()
    return changed


@exercise("07.4", "Suppose you chose the best method of each level on test accuracy instead of validation. At how "
                  "many of the compared levels would the choice change?", solver=lambda table: _changed_choices(table))
def test_choice(answer, table: pd.DataFrame) -> Verdict:
    changed = _changed_choices(table)
    levels = table["level"].nunique()
    return close(answer, changed, f"the number of levels (of {levels}) whose winner changes",
                 why="whatever the count, choosing on test would make the test figure optimistic: the best of "
                     "several noisy test accuracies is higher than the chosen method's accuracy on new images. The "
                     "count only shows whether the test set would have changed the choice this time.",
                 hint="for each level, compare the method with the best mean val_accuracy with the one with the best "
                      "mean test_accuracy.", tolerance=0)


ask("07.5", "Do the levels the conclusion called clear stay clear with a third seed, and would you expect them to?",
    "Not necessarily. With two or three seeds the sample standard deviation is a rough estimate: a third seed moves "
    "the means and usually the spread, so a margin just above twice the noise can fall inside it (and one just "
    "inside can come out). A margin far beyond the noise should keep its sign. That is why the conclusion calls "
    "its rule a rule of thumb, not a significance test: more seeds estimate the spread better.")

# --- the questionnaire --------------------------------------------------------------------------------------------
ask("07.q1", "Why does `scratch` train for more epochs than a pruned network in this comparison?",
    "Because the budget is counted from random weights: a pruned network inherits the epochs the dense model "
    "trained, then retrains. Giving `scratch` only the retraining's epochs would compare a well-trained network with "
    "a barely trained one, and the gap would measure the budget, not the method.")
ask("07.q2", "Why do all methods of one seed and one level start from the same random state?",
    "So that they are paired: the same shuffles of the training images (and, for `scratch`, weights drawn from "
    "the same state). What still differs between them is the method, so their difference is less noisy than two "
    "independent runs would be.")
ask("07.q3", "What does the `random` criterion tell you that `scratch` does not?",
    "Whether a criterion knows anything about which neurons matter. Random selection gets the same start, "
    "retraining and budget as the criteria; a criterion that does not beat it has learned nothing about the "
    "network, whatever it computes. `scratch` asks another question: whether starting from the dense model's "
    "weights helps at all.")
ask("07.q4", "Why is the best method of a level chosen on validation accuracy and not on test accuracy?",
    "Because whatever chooses is optimistic about what it chose: the best of several noisy numbers overstates the "
    "winner. The test set must choose nothing, so that its accuracy stays an honest report on new images.")
ask("07.q5", "Why does a comparison with one seed draw no verdict?",
    "Because the retraining's luck, the spread over seeds, is then unknown. The sampling error of the validation "
    "set does not include it, so any margin, however large, could be one lucky shuffle; two seeds or more measure "
    "it, roughly.")
ask("07.q6", "What does the sampling error $\\sqrt{p(100-p)/n}$ measure, and what does it leave out?",
    "How much an accuracy of $p$ % would move from one sample of $n$ validation images to another (a binomial "
    "standard error). It leaves out the retraining's luck, and it overstates the noise of a difference between "
    "two methods measured on the same images, whose errors partly coincide.")
ask("07.q7", "Why does the criterion matter more here than along notebook 04's chain of small steps?",
    "Here each level is reached in one cut from the dense model, so the criterion chooses most neurons to remove at "
    "once, with no retraining in between to repair the damage and no rescoring of the survivors. Along 04's chain "
    "every small cut is followed by retraining, which makes up for many poor choices.")
ask("07.q8", "Why can magnitude pruning, which looks at no data, do as well as the interval adjoint?",
    "Over the whole training box the intervals are wide, nearly all hold 0, and the ReLU derivative intervals are "
    "[0, 1]: the significance is then built from the weights and the pixel ranges alone, a weight-based score "
    "(notebook 04 measured how closely it follows magnitude's order, layer by layer, on your model). Retraining "
    "then repairs much of what either choice breaks.")
ask("07.q9", "Why can the benchmark's advantage of pruning over `scratch` not be read as the method's alone?",
    "Because the benchmark does not share one budget: `scratch` trains each shape for at most 40 epochs, while a "
    "pruned chain has retrained at every step before it, many more epochs in all. Its gap mixes the budget with the "
    "method, as 07's quick comparison did before every method got one budget.")
ask("07.q10", "With `distill` on, `scratch` learns from the dense model's softened outputs too. What does the "
              "comparison with `scratch` then ask?",
    "Whether the dense model's weights are a better start than random weights, given that both learn from the "
    "dense model's outputs. The knowledge in the dense model reaches `scratch` through distillation; only the "
    "starting point differs.")

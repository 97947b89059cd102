"""Exercises of 05_test: the choice rule on a small table, the old rule's mistake, the rule on your own run, what a
smaller tolerance can choose; the gap between validation and test, and the questionnaire."""

from __future__ import annotations

import warnings

from ...report import choose_iteration
from . import Verdict, ask, close, exercise

# A run whose dense model was trained too briefly: iterations 1-3 beat it on validation.
TABLE = [{"iteration": 0, "parameters": 218_058, "Val_Accuracy": 96.6},
         {"iteration": 1, "parameters": 171_951, "Val_Accuracy": 97.9},
         {"iteration": 2, "parameters": 135_925, "Val_Accuracy": 98.1},
         {"iteration": 3, "parameters": 107_531, "Val_Accuracy": 97.4},
         {"iteration": 4, "parameters": 85_451, "Val_Accuracy": 96.9},
         {"iteration": 5, "parameters": 67_945, "Val_Accuracy": 95.8}]


def _rule(records: list[dict], tolerance: float = 1.0) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning is the lesson of 05.2, not noise for the checker
        return choose_iteration(records, tolerance)


def _dense_rule(records: list[dict], tolerance: float = 1.0) -> int:
    """The rule 05 used before: within `tolerance` of the dense model's validation accuracy."""
    good = [record for record in records if record["Val_Accuracy"] >= records[0]["Val_Accuracy"] - tolerance]
    return min(good, key=lambda record: record["parameters"])["iteration"]


ROWS = "\n".join(f"  iteration {row['iteration']}: {row['parameters']:>7,} parameters, validation accuracy "
                 f"{row['Val_Accuracy']}%" for row in TABLE)


@exercise("05.1", f"A run whose dense model was trained too briefly:\n{ROWS}\nWhich iteration does the rule choose: "
                  f"the smallest model within one point of the run's best validation accuracy?",
          solver=lambda: _rule(TABLE))
def rule_on_table(answer) -> Verdict:
    return close(answer, _rule(TABLE), "the iteration the rule chooses",
                 why="the best validation accuracy is 98.1% (iteration 2), so the band is 97.1-98.1%: iterations 1, "
                     "2 and 3 are in it, and 3 is the smallest.",
                 hint="find the best validation accuracy first, subtract one point, and take the smallest model "
                      "at or above that.", tolerance=0)


@exercise("05.2", "Which iteration would the old rule have chosen on 05.1's table: the smallest model within one "
                  "point of the *dense* model's validation accuracy?", solver=lambda: _dense_rule(TABLE))
def old_rule_on_table(answer) -> Verdict:
    return close(answer, _dense_rule(TABLE), "the old rule's choice",
                 why="the dense model's 96.6% sets the bar at 95.6%, which even iteration 5 (95.8%) clears: the "
                     "undertrained dense model made the old rule accept a model 2.3 points below the best.",
                 hint="the bar is now 96.6 - 1 = 95.6%.", tolerance=0)


@exercise("05.3", "On your own run (`records`), which iteration does the rule choose with half a point of "
                  "tolerance?", solver=lambda records: _rule(records, 0.5))
def own_run_half_point(answer, records: list[dict]) -> Verdict:
    expected = _rule(records, 0.5)
    default = _rule(records, 1.0)
    return close(answer, expected, "the choice with tolerance 0.5",
                 why=f"a narrower band accepts fewer models, so the choice can only move to a larger model (or "
                     f"stay): {default} with one point, {expected} with half a point.",
                 hint="call choose_iteration(records, tolerance=0.5), or read the band off the table.", tolerance=0)


@exercise("05.4", "Can a smaller tolerance ever make the rule choose a *smaller* model than a larger tolerance does? "
                  "Answer 'yes' or 'no'.", solver=lambda: "no")
def smaller_tolerance(answer) -> Verdict:
    said = str(answer).strip().lower()
    if said == "no":
        return Verdict(True, "no: the band [best - tolerance, best] only narrows as the tolerance shrinks, so it "
                             "accepts a subset of the models it accepted before, and the smallest model of a subset is "
                             "never smaller than the smallest of the whole set. The best itself stays in the band.")
    if said == "yes":
        return Verdict(False, "yes is not it: compare the sets of models the two bands accept, and where the "
                              "smallest of each lies.")
    return Verdict(False, f"{answer!r} is not 'yes' or 'no'.")


ask("05.5", "Why can one run's gap between validation and test accuracy have either sign, while on average over "
            "many runs the chosen model's validation accuracy overstates its accuracy on new images?",
    "Each split is a finite sample, so each accuracy carries a sampling error of about sqrt(p (100 - p) / n) "
    "points (about 0.25 at 97% on 5,000 images): in one run the test images can happen to be easier than the "
    "validation images, and the gap is negative. But the validation images chose the epoch, the learning-rate drops "
    "and the iteration, and whatever is chosen for scoring well on a sample scores a little better there than on "
    "new images; that selection bias does not cancel over runs, the sampling luck does.")

# --- the questionnaire --------------------------------------------------------------------------------------------
ask("05.q1", "What is the choice rule, in one sentence?",
    "Among the finished iterations, take the one with the fewest parameters whose validation accuracy is within one "
    "point (the tolerance) of the best validation accuracy of the run.")
ask("05.q2", "Why is the band measured from the run's best validation accuracy and not from the dense model's?",
    "A dense model trained too briefly sets a low bar: retrained iterations can beat it, and a band measured from it "
    "would accept a much smaller model that is worse than what the run offered. The run's best is the bar the run "
    "itself reached.")
ask("05.q3", "What did the validation images choose in this workbook, before this notebook?",
    "The epoch kept in every iteration (early stopping on the validation loss) and the learning-rate drops on "
    "plateaus; in this notebook they also choose the iteration.")
ask("05.q4", "Why is the chosen model's validation accuracy optimistic?",
    "Because it helped choose: among several candidates, the one that scores best on a sample is partly the one "
    "the sample's luck favoured, so its score on that sample is a little higher than on new images.")
ask("05.q5", "Why does the picker hide the test curve until the choice is written?",
    "So that the test set takes no part in the choice: a student who saw the test accuracies while moving the "
    "slider could, knowingly or not, choose on them, and the reported test accuracy would no longer be honest.")
ask("05.q6", "What does `test/chosen.json` hold, and who reads it?",
    "The chosen iteration, its model file, its hidden sizes, its parameter count and its accuracies (validation and "
    "test); notebook 06 reads it to deploy that model.")
ask("05.q7", "Why can the dense model fail to be the run's best on validation?",
    "With a short training (the quick profile's three epochs) it has not converged, while every pruned iteration "
    "trains again from its weights and, with distillation, from its outputs: more training in all, so the first "
    "pruned iterations can beat it.")
ask("05.q8", "How large a validation difference between two iterations is worth acting on?",
    "About twice the sampling error or more: sqrt(p (100 - p) / n) is about 0.25 points at 97% on 5,000 images, so "
    "iterations within a few tenths of a point are indistinguishable; the one-point tolerance is wider than that "
    "noise on purpose.")

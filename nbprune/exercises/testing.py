"""Exercises of 05_test: the choice rule on a small table, the old rule's mistake, and the rule on your own run."""

from __future__ import annotations

import warnings

from ..report import choose_iteration
from . import Verdict, close, exercise

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

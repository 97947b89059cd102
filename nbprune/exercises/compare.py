"""Exercises of 07_compare: read the winner of a level, measure a gap and the noise it must beat, and see what
choosing on the test set would change."""

from __future__ import annotations

import math

import pandas as pd

from . import Verdict, close, exercise


def _smallest_level(table: pd.DataFrame) -> int:
    return int(table.loc[table["parameters"].idxmin(), "level"])


def _means(table: pd.DataFrame, level: int, column: str) -> pd.Series:
    """Return each method's mean (over seeds) of `column` at `level`, in the table's order of methods."""
    rows = table[table["level"] == level]
    return rows.groupby("method", sort=False)[column].mean()


def _best_on_validation(table: pd.DataFrame) -> str:
    return str(_means(table, _smallest_level(table), "val_accuracy").idxmax())


@exercise("07.1", "At the smallest level compared, which method has the highest mean validation accuracy? Read it "
                  "from `table` (answer its name, e.g. 'taylor').", solver=lambda table: _best_on_validation(table))
def best_method(answer, table: pd.DataFrame) -> Verdict:
    means = _means(table, _smallest_level(table), "val_accuracy")
    name = str(answer).strip()
    if name not in means.index:
        return Verdict(False, f"{answer!r} is not a method of the table: answer one of {', '.join(means.index)}.")
    if math.isclose(means[name], means.max()):
        return Verdict(True, f"{name}: {means[name]:.2f}% on validation at the smallest level, the highest. Its "
                             f"test accuracy plays no part in the choice.")
    return Verdict(False, f"{name} reaches {means[name]:.2f}% on validation there, not the highest. Look at the rows "
                          f"of the level with the fewest parameters, column val_accuracy (mean over seeds).")


def _adjoint_gap(table: pd.DataFrame) -> float:
    means = _means(table, _smallest_level(table), "val_accuracy")
    return float(means["interval_adjoint"] - means["magnitude"])


@exercise("07.2", "By how many points is interval_adjoint's mean validation accuracy above magnitude's at the "
                  "smallest level (negative when it is below)?", solver=lambda table: _adjoint_gap(table))
def adjoint_gap(answer, table: pd.DataFrame) -> Verdict:
    return close(answer, _adjoint_gap(table), "interval_adjoint minus magnitude (validation points)",
                 why="magnitude needs no interval analysis at all: this gap is what the interval adjoint bought "
                     "(or cost) at that size. Exercise 07.3 asks whether it is more than noise.",
                 hint="take both methods' val_accuracy at the level with the fewest parameters (mean over seeds) "
                      "and subtract.", tolerance=1e-3)


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
                 why="when it is not 0, the test set would be choosing: its accuracy would then be optimistic, and "
                     "nothing unseen would be left to report. Validation chooses; test only reports.",
                 hint="for each level, compare the method with the best mean val_accuracy with the one with the best "
                      "mean test_accuracy.", tolerance=0)

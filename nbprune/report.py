"""Results: concatenate each iteration's validation row and plot accuracy and loss against the nodes retained."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter, NullLocator

from .errors import NbpruneError
from .files import format_table, save_figure, write_text_atomic
from .session import ADDED_COLUMNS, REFERENCE_COLUMNS, Session

PERCENT_TICKS = (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1)

__all__ = ["best_validation", "choose_iteration", "concatenate", "draw_choice", "plot_accuracies",
           "plot_losses", "session_summary"]


def _session(session_dir: str | os.PathLike | Session) -> Session:
    return session_dir if isinstance(session_dir, Session) else Session.open(session_dir)


def session_summary(session_dir: str | os.PathLike | Session) -> list[dict]:
    """Return one record per complete iteration: iteration, hidden sizes, parameters and the results row."""
    return _session(session_dir).summary()


def percent_axis(axes, values) -> None:
    """Make the x axis a reversed log scale of % retained, ticked 100, 50, 20, 10, 5, 2, 1 (no powers of ten); a
    short range is ticked at its own points."""
    axes.set_xscale("log")
    low, high = min(values), max(values)
    ticks = [tick for tick in PERCENT_TICKS if low / 1.05 <= tick <= high * 1.05]
    if len(ticks) < 3:
        ticks = sorted({round(value, 3 if value < 1 else 1) for value in values}, reverse=True)
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}%"))
    axes.set_xlim(high * 1.1, low / 1.1)


def iteration_axis(axes, records: list[dict], gap: float = 0.025) -> None:
    """Label the top of `axes` (x: % retained, from percent_axis) with each record's iteration, in black, leaving out
    a label closer than `gap` (a share of the log axis's width) to the one before it, so that labels never overlap."""
    low, high = sorted(axes.get_xlim())
    span = math.log10(high / low)
    shown, last = [], None
    for record in records:
        x = record["PercentageRetain"]
        if last is None or abs(math.log10(last / x)) >= gap * span:
            shown.append(record)
            last = x
    top = axes.secondary_xaxis("top")
    top.xaxis.set_major_locator(FixedLocator([record["PercentageRetain"] for record in shown]))
    top.xaxis.set_minor_locator(NullLocator())
    top.xaxis.set_major_formatter(FixedFormatter([str(record["iteration"]) for record in shown]))
    top.tick_params(labelsize=7, length=3)
    top.set_xlabel("iteration", fontsize=8)


def _plot(records: list[dict], metric: str, label: str, test: bool = True) -> Figure:
    figure = Figure(figsize=(7, 4.6), layout="constrained")
    axes = figure.add_subplot()
    retained = [record["PercentageRetain"] for record in records]
    splits = [("Train", "o-"), ("Val", "^:")] + ([("Test", "s--")] if test else [])
    for split, style in splits:
        if all(f"{split}_{metric}" in record for record in records):
            axes.plot(retained, [record[f"{split}_{metric}"] for record in records], style, markersize=4,
                      label={"Val": "validation"}.get(split, split.lower()))
    percent_axis(axes, retained)
    iteration_axis(axes, records)
    axes.set(xlabel="hidden nodes retained (log scale)", ylabel=label,
             title=f"{label.capitalize()} after pruning and retraining")
    axes.margins(y=0.12)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend()
    return figure


def plot_accuracies(records: list[dict], test: bool = True) -> Figure:
    """Return train, validation and (unless `test` is False) test accuracy against % of nodes retained, the
    iterations labelled along the top."""
    return _plot(records, "Accuracy", "accuracy (%)", test)


def plot_losses(records: list[dict], test: bool = True) -> Figure:
    """Return train, validation and (unless `test` is False) test loss against % of nodes retained, the iterations
    labelled along the top."""
    return _plot(records, "Loss", "cross-entropy loss", test)


def concatenate(session_dir: str | os.PathLike | Session) -> Path:
    """Write prune_w_retrain_results/{validations.txt, accuracies.png, losses.png}; return that folder."""
    session = _session(session_dir)
    session.check_free()  # a run in progress is named before what it has not finished yet
    records = session.summary()
    if not records:
        raise NbpruneError(f"no finished iteration in {session.pruning}: expected folders <i>/prune_w_retrain/ "
                           f"with all three files. Run the pruning first (notebook 04_iterative_pruning or "
                           f"`nbprune prune`).")
    columns = [*REFERENCE_COLUMNS, *(name for name in ADDED_COLUMNS if all(name in record for record in records))]
    for record in records:
        if not 0 < record["PercentageRetain"] <= 100:
            raise NbpruneError(f"{session.iteration_dir(record['iteration'])}/validation_results.txt gives "
                               f"PercentageRetain {record['PercentageRetain']:g}: expected above 0 and at most 100; "
                               f"the file is damaged, run that iteration again.")
    session.check_writable(session.results)
    with session.lock():
        out = session.results
        write_text_atomic(out / "validations.txt", format_table(columns, [[r[c] for c in columns] for r in records]))
        save_figure(plot_accuracies(records), out / "accuracies.png")
        save_figure(plot_losses(records), out / "losses.png")
    return out


def best_validation(records: list[dict]) -> dict:
    """Return the record with the run's highest validation accuracy (the earliest of equals)."""
    _require_validation(records)
    return max(records, key=lambda record: (record["Val_Accuracy"], -record["iteration"]))


def _require_validation(records: list[dict]) -> None:
    if not records:
        raise NbpruneError("no finished iteration to choose from: run notebook 04_iterative_pruning (or "
                           "`nbprune prune`) first.")
    if not all("Val_Accuracy" in record for record in records):
        raise NbpruneError("these iterations carry no validation accuracy (they ran without a validation split), so "
                           "no model can be chosen without looking at the test set: rerun the pruning with "
                           "val_loader=..., or choose an iteration yourself.")


def _require_tolerance(tolerance: float) -> None:
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < float("inf")):
        raise NbpruneError(f"tolerance {tolerance!r} is not a number of percentage points: expected a finite number "
                           f">= 0, such as 1.0 (one point below the run's best validation accuracy).")


def choose_iteration(records: list[dict], tolerance: float = 1.0) -> int:
    """Return the iteration of the smallest model whose validation accuracy is within `tolerance` points of the
    run's best validation accuracy. The test accuracy plays no part: it is only reported.

    The bar is the run's best, not the dense model's: a dense model trained too briefly sets a low bar that only a
    much smaller model just clears, while retrained iterations do better. Warns when the dense model is not the best.
    """
    _require_tolerance(tolerance)
    best = best_validation(records)
    dense = records[0]
    if best is not dense:
        gap = best["Val_Accuracy"] - dense["Val_Accuracy"]
        advice = (" A gap this wide usually means the dense model was trained too briefly (raise epochs and patience "
                  "for a fair baseline)." if gap >= tolerance / 2 else "")
        warnings.warn(f"the dense model (iteration {dense['iteration']}, validation accuracy "
                      f"{dense['Val_Accuracy']:.2f}%) is not the run's best: iteration {best['iteration']} reached "
                      f"{best['Val_Accuracy']:.2f}% ({gap:.2f} points more), so the choice is measured against that."
                      f"{advice}", stacklevel=2)
    good = [record for record in records if record["Val_Accuracy"] >= best["Val_Accuracy"] - tolerance]
    return min(good, key=lambda record: (record["parameters"], -record["iteration"]))["iteration"]


def draw_choice(figure: Figure, records: list[dict], tolerance: float = 1.0, shown: dict | None = None,
                test: bool = True) -> Figure:
    """Return an accuracy figure of plot_accuracies with the band choose_iteration accepts shaded, zoomed to the
    iterations around the choice (and to `shown`, a record that must stay in view); `test` False: the figure has no
    test line, and the zoom ignores the test accuracies."""
    _require_tolerance(tolerance)
    axes = figure.axes[0]
    best = best_validation(records)
    low = best["Val_Accuracy"] - tolerance
    axes.axhspan(low, best["Val_Accuracy"], color="tab:orange", alpha=0.15, zorder=0,
                 label=f"validation within {tolerance:g} point{'' if tolerance == 1 else 's'} of the best "
                       f"({best['Val_Accuracy']:.2f}%)")
    inside = [position for position, record in enumerate(records) if record["Val_Accuracy"] >= low]
    last = max([inside[-1] + 2, *([records.index(shown)] if shown in records else [])])
    near = records[:last + 1]
    percent_axis(axes, [record["PercentageRetain"] for record in near])
    for child in list(axes.child_axes):  # the iteration labels, thinned again for the zoomed range
        child.remove()
    iteration_axis(axes, near)
    keys = ("Train_Accuracy", "Val_Accuracy", "Test_Accuracy") if test else ("Train_Accuracy", "Val_Accuracy")
    values = [record[key] for record in near for key in keys if key in record] + [low]
    spread = max(values) - min(values) or 1.0
    axes.set_ylim(min(values) - 0.08 * spread, max(values) + 0.12 * spread)
    axes.set_title(f"Accuracy near the choice (iterations {near[0]['iteration']} to {near[-1]['iteration']})",
                   fontsize=10)
    axes.legend(fontsize=8)
    return figure

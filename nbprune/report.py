"""Results: concatenate each iteration's validation row and plot accuracy and loss against nodes retained."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from .errors import NbpruneError
from .io import format_table, load_state_dict, read_table, write_text_atomic
from .iterative import RESULT_COLUMNS, iteration_dir
from .retention import save_figure

RESULTS_DIR = "prune_w_retrain_results"


def completed_iterations(session_dir: str | os.PathLike) -> list[int]:
    """Return, in order, the iterations whose validation_results.txt exists."""
    session_dir = Path(session_dir)
    iterations = [int(folder.name) for folder in session_dir.iterdir() if folder.name.isdigit()] \
        if session_dir.is_dir() else []
    return sorted(i for i in iterations if (iteration_dir(session_dir, i) / "validation_results.txt").is_file())


def session_summary(session_dir: str | os.PathLike) -> list[dict]:
    """Return one record per finished iteration: iteration, hidden sizes, parameters and the seed's results."""
    records = []
    for iteration in completed_iterations(session_dir):
        folder = iteration_dir(session_dir, iteration)
        _, rows = read_table(folder / "validation_results.txt")
        record = {"iteration": iteration, **dict(zip(RESULT_COLUMNS, rows[0]))}
        model_file = folder / "best_model.pth"
        if model_file.is_file():
            state = load_state_dict(model_file)
            weights = [value for key, value in state.items() if key.endswith("weight")]
            record["hidden"] = tuple(int(w.shape[0]) for w in weights[:-1])
            record["parameters"] = sum(int(value.numel()) for value in state.values())
        records.append(record)
    return records


def _plot(records: list[dict], metric: str, label: str) -> Figure:
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    axes = figure.add_subplot()
    retained = [record["PercentageRetain"] for record in records]
    for split, style in (("Train", "o-"), ("Test", "s--")):
        axes.plot(retained, [record[f"{split}_{metric}"] for record in records], style, markersize=4,
                  label=f"{split.lower()}")
    for record in records:
        axes.annotate(str(record["iteration"]), (record["PercentageRetain"], record[f"Test_{metric}"]),
                      textcoords="offset points", xytext=(0, -11 if metric == "Accuracy" else 6),
                      fontsize=6, ha="center")
    axes.set(xscale="log", xlabel="% of hidden nodes retained (log scale)", ylabel=label,
             title=f"{label} after pruning and retraining (labels: iteration)")
    axes.invert_xaxis()
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return figure


def plot_accuracies(records: list[dict]) -> Figure:
    """Return train and test accuracy against % of nodes retained, iterations labelled."""
    return _plot(records, "Accuracy", "accuracy (%)")


def plot_losses(records: list[dict]) -> Figure:
    """Return train and test loss against % of nodes retained, iterations labelled."""
    return _plot(records, "Loss", "cross-entropy loss")


def concatenate(session_dir: str | os.PathLike) -> Path:
    """Write prune_w_retrain_results/{validations.txt, accuracies.png, losses.png}; return that folder."""
    session_dir = Path(session_dir)
    records = session_summary(session_dir)
    if not records:
        raise NbpruneError(f"no finished iteration in {session_dir}: expected folders <i>/prune_w_retrain/ with "
                           f"validation_results.txt. Run the pruning first (nbprune prune).")
    out = session_dir / RESULTS_DIR
    rows = [[record[name] for name in RESULT_COLUMNS] for record in records]
    write_text_atomic(out / "validations.txt", format_table(RESULT_COLUMNS, rows))
    save_figure(plot_accuracies(records), out / "accuracies.png")
    save_figure(plot_losses(records), out / "losses.png")
    return out


def choose_iteration(records: list[dict], tolerance: float = 1.0) -> int:
    """Return the iteration of the smallest model whose test accuracy is within `tolerance` points of the dense one."""
    if not records:
        raise NbpruneError("no finished iteration to choose from: run the pruning first.")
    dense = records[0]["Test_Accuracy"]
    good = [record for record in records if record["Test_Accuracy"] >= dense - tolerance]
    return min(good, key=lambda record: (record["PercentageRetain"], -record["iteration"]))["iteration"]

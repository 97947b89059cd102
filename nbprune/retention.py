"""The retention schedule: how many neurons each hidden layer keeps at pruning iteration t."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

from matplotlib.figure import Figure

from .errors import ScheduleError
from .io import format_table, write_text_atomic


class RetentionStep(NamedTuple):
    """One row of retain.txt: the iteration, neurons kept per hidden layer, and % of hidden neurons kept."""

    iteration: int
    retained: tuple[int, ...]
    percentage: float


def retain_header(layers: int) -> list[str]:
    """Return retain.txt's header for `layers` hidden layers."""
    return ["Iteration", *(f"h{k}NodesRetained" for k in range(1, layers + 1)), "perNodesRetained"]


def schedule(hidden: Sequence[int] = (256, 64), q: float = 0.8, iterations: Sequence[int] = range(0, 31)
             ) -> list[RetentionStep]:
    """Return round(h * q**t) (at least 1) per layer, skipping iterations that would keep what the last one kept."""
    if not 0 < q < 1:
        raise ScheduleError(f"q={q!r} is not allowed: expected a retention factor between 0 and 1 (e.g. 0.8).")
    if not hidden or any(int(h) != h or h < 1 for h in hidden):
        raise ScheduleError(f"hidden={list(hidden)!r} is not allowed: expected whole numbers >= 1, one per layer.")
    total = sum(hidden)
    steps: list[RetentionStep] = []
    for t in iterations:
        retained = tuple(max(1, round(h * q ** t)) for h in hidden)
        if steps and retained == steps[-1].retained:
            continue
        steps.append(RetentionStep(int(t), retained, 100 * sum(retained) / total))
    return steps


class GeneratePruneData:
    """The seed's retention generator: writes retain.txt and draws its two plots into `dir`."""

    def __init__(self, hidden: Sequence[int] = (256, 64), q: float = 0.8, iterations: Sequence[int] = range(0, 31),
                 dir: str | os.PathLike = "retain"):
        self.hidden, self.q, self.iterations, self.dir = tuple(hidden), q, iterations, Path(dir)
        self.data = schedule(self.hidden, q, iterations)

    def generate_data(self, save_data: bool = True) -> list[RetentionStep]:
        """Return the schedule; with save_data, also write `<dir>/retain.txt`."""
        if save_data:
            rows = [[step.iteration, *step.retained, step.percentage] for step in self.data]
            write_text_atomic(self.dir / "retain.txt", format_table(retain_header(len(self.hidden)), rows))
        return self.data

    def plot_data_iterations(self, save: bool = True) -> Figure:
        """Plot neurons kept per layer against the iteration; save as pruneNodesIteration.png."""
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.add_subplot()
        iterations = [step.iteration for step in self.data]
        for layer in range(len(self.hidden)):
            axes.plot(iterations, [step.retained[layer] for step in self.data], "o-", markersize=3,
                      label=f"hidden layer {layer + 1} ({self.hidden[layer]} neurons)")
        axes.set(xlabel="pruning iteration", ylabel="neurons retained", yscale="log",
                 title=f"Neurons retained per iteration (q = {self.q:g})")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        if save:
            save_figure(figure, self.dir / "pruneNodesIteration.png")
        return figure

    def plot_data_distribution(self, save: bool = True) -> Figure:
        """Plot how the kept neurons split between layers at each iteration; save as pruneNodesDistribution.png."""
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.add_subplot()
        labels = [str(step.iteration) for step in self.data]
        bottom = [0.0] * len(self.data)
        total = sum(self.hidden)
        for layer in range(len(self.hidden)):
            share = [100 * step.retained[layer] / total for step in self.data]
            axes.bar(labels, share, bottom=bottom, label=f"hidden layer {layer + 1}")
            bottom = [b + s for b, s in zip(bottom, share)]
        axes.set(xlabel="pruning iteration", ylabel="% of all hidden neurons retained",
                 title="Distribution of retained neurons")
        axes.tick_params(axis="x", labelsize=7)
        axes.legend()
        if save:
            save_figure(figure, self.dir / "pruneNodesDistribution.png")
        return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Save a figure as PNG atomically and return the path."""
    from .io import atomic_path

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return Path(path)


def read_retain(path: str | os.PathLike, hidden: Sequence[int] | None = None) -> list[RetentionStep]:
    """Return the schedule in a retain.txt, checked: whole numbers, never growing, never above `hidden`."""
    path = Path(path)
    if not path.is_file():
        raise ScheduleError(f"retain file {path} does not exist: write one with GeneratePruneData().generate_data() "
                            f"or `nbprune retain`.")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0][:1] != ["Iteration"] or lines[0][-1] != "perNodesRetained" or len(lines[0]) < 3:
        raise ScheduleError(f"{path}: the header {' '.join(lines[0]) if lines else '(empty file)'!r} is not "
                            f"retain.txt's: expected 'Iteration h1NodesRetained ... perNodesRetained'.")
    layers = len(lines[0]) - 2
    if hidden is not None and len(hidden) != layers:
        raise ScheduleError(f"{path} lists {layers} hidden layers, the model has {len(hidden)} "
                            f"({list(hidden)}): generate a schedule for this model.")
    steps: list[RetentionStep] = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != layers + 2:
            raise ScheduleError(f"{path} line {number}: {len(fields)} fields, expected {layers + 2}.")
        try:
            iteration, *counts = (int(field) for field in fields[:-1])
            percentage = float(fields[-1])
        except ValueError:
            raise ScheduleError(f"{path} line {number}: {' '.join(fields)!r} holds a value that is not a whole "
                                f"number: iterations and neuron counts must be integers.") from None
        if iteration < 0 or any(count < 1 for count in counts):
            raise ScheduleError(f"{path} line {number}: iteration {iteration}, counts {counts}: expected an "
                                f"iteration >= 0 and at least 1 neuron per layer.")
        if hidden is not None and any(count > size for count, size in zip(counts, hidden)):
            raise ScheduleError(f"{path} line {number}: keeps {counts} neurons but the model has only "
                                f"{list(hidden)}: lower the counts or use a bigger model.")
        if steps:
            previous = steps[-1]
            if iteration <= previous.iteration:
                raise ScheduleError(f"{path} line {number}: iteration {iteration} does not follow "
                                    f"{previous.iteration}: iterations must increase.")
            if any(count > before for count, before in zip(counts, previous.retained)):
                raise ScheduleError(f"{path} line {number}: counts grow from {list(previous.retained)} to {counts}: "
                                    f"pruning only removes neurons, so counts may never grow.")
        steps.append(RetentionStep(iteration, tuple(counts), percentage))
    if not steps:
        raise ScheduleError(f"{path} has a header but no rows: expected one row per iteration.")
    return steps

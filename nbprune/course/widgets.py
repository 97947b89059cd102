"""Interactive controls of the workbook: schedule sliders (03) and the iteration picker (05). Needs ipywidgets."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from ..config import or_default
from ..errors import NbpruneError
from ..files import save_figure, write_text_atomic
from ..progress import headless
from ..report import best_validation, draw_choice, plot_accuracies, plot_losses
from ..retention import GeneratePruneData, schedule


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise NbpruneError("the workbook's sliders need ipywidgets: pip install 'nbprune[notebooks]'.") from None
    return ipywidgets


def _png(figure: Figure) -> bytes:
    """Return a figure as PNG bytes, for an Image widget.

    Image widgets rather than an Output widget: headless runs (papermill, nbclient) emulate Output widgets by
    writing to the kernel's shell socket mid-cell, which can hang the run (jupyter/nbclient#312).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


class _Control:
    """A control that displays as its widget in Jupyter; headless (an executed copy), as static pictures of what the
    widget shows, since a saved widget keeps no pictures."""

    widget = None
    plots: Sequence = ()

    def caption(self) -> str:
        """Return the HTML line the widget shows above its pictures."""
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import Image, display

        if not headless():
            display(self.widget)
            return
        display({"text/html": self.caption(), "text/plain": _plain(self.caption())}, raw=True)
        for plot in self.plots:
            display(Image(data=plot.value, format="png"))


def _plain(html: str) -> str:
    return html.replace("<b>", "").replace("</b>", "")


class ScheduleEditor(_Control):
    """Sliders for q, the iterations and every hidden size; each move redraws both plots and saves the schedule.

    `max_hidden` caps each size slider (the sizes of the model the schedule will prune), so the sliders cannot
    describe a schedule that model cannot follow. What the sliders show is always what retain.txt holds.
    """

    def __init__(self, hidden: Sequence[int] | None = None, q: float | None = None, iterations: int | None = None,
                 dir: str | os.PathLike = "retain", max_hidden: Sequence[int] | None = None, save: bool = True):
        hidden, q, iterations = or_default(hidden, "hidden"), or_default(q, "q"), or_default(iterations, "iterations")
        schedule(hidden, q, range(iterations))  # bad values raise ScheduleError here, before any slider exists
        limits = tuple(max_hidden) if max_hidden is not None else tuple(max(512, size) for size in hidden)
        if len(limits) != len(hidden) or any(size > limit for size, limit in zip(hidden, limits)):
            raise NbpruneError(f"hidden sizes {list(hidden)} do not fit the model's {list(limits)}: a schedule can "
                               f"only keep neurons the model has. Rerun 02_model with hidden={list(hidden)}, or "
                               f"choose sizes up to {list(limits)}.")
        widgets = _ipywidgets()
        style, layout = {"description_width": "initial"}, widgets.Layout(width="340px")
        self.dir, self.autosave = Path(dir), save
        self.q = widgets.FloatSlider(value=q, min=min(0.5, q), max=max(0.95, q), step=0.01, readout_format=".2f",
                                     description="q (fraction kept)", continuous_update=False, style=style,
                                     layout=layout)
        self.iterations = widgets.IntSlider(value=iterations, min=2, max=max(60, iterations), description="iterations",
                                            continuous_update=False, style=style, layout=layout)
        self.sizes = [widgets.IntSlider(value=size, min=1, max=limit, description=f"hidden layer {k}",
                                        continuous_update=False, style=style, layout=layout)
                      for k, (size, limit) in enumerate(zip(hidden, limits), start=1)]
        self.status = widgets.HTML()
        self.plots = [widgets.Image(format="png", layout=widgets.Layout(width="48%")) for _ in range(2)]
        for control in (self.q, self.iterations, *self.sizes):
            control.observe(self.redraw, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.q, self.iterations]), widgets.HBox(self.sizes),
                                    self.status, widgets.HBox(self.plots)])
        self.redraw()

    def caption(self) -> str:
        """Return what the sliders saved, as the line above the plots."""
        return self.status.value

    @property
    def generator(self) -> GeneratePruneData:
        """Return the schedule generator for the sliders' current values."""
        return GeneratePruneData(hidden=[size.value for size in self.sizes], q=self.q.value,
                                 iterations=range(self.iterations.value), dir=self.dir)

    def redraw(self, change=None) -> None:
        """Draw both schedule plots for the sliders' current values, and save them with retain.txt."""
        generator = self.generator
        figures = generator.plot_data_iterations(save=False), generator.plot_data_distribution(save=False)
        for plot, figure in zip(self.plots, figures):
            plot.value = _png(figure)
        if self.autosave:
            self.save(generator, figures)

    def save(self, generator: GeneratePruneData | None = None, figures=None) -> GeneratePruneData:
        """Write retain.txt, pruneNodesIteration.png and pruneNodesDistribution.png; return the generator."""
        generator = generator or self.generator
        figures = figures or (generator.plot_data_iterations(save=False), generator.plot_data_distribution(save=False))
        generator.generate_data(save_data=True)
        save_figure(figures[0], self.dir / "pruneNodesIteration.png")
        save_figure(figures[1], self.dir / "pruneNodesDistribution.png")
        steps = generator.data
        skipped = self.iterations.value - len(steps)
        self.status.value = (f"saved {self.dir.name}/retain.txt: {len(steps)} iterations, from "
                             f"{'+'.join(map(str, steps[0].retained))} to {'+'.join(map(str, steps[-1].retained))} "
                             f"neurons" + (f" ({skipped} of the {self.iterations.value} skipped: they would keep "
                                           f"what the iteration before kept)" if skipped else ""))
        return generator


def describe_iteration(record: dict, records: list[dict], test: bool = True) -> str:
    """Return one line on an iteration of `records`: neurons per layer, parameters, and its validation accuracy
    against the run's best (what the choice rests on), with the test accuracy as the report (unless `test` is
    False: while the choice is being made)."""
    neurons = " + ".join(map(str, record["hidden"]))
    dense = records[0]
    validation = ""
    if all("Val_Accuracy" in each for each in records):
        best = best_validation(records)
        validation = (f"validation accuracy {record['Val_Accuracy']:.2f}% (the run's best {best['Val_Accuracy']:.2f}% "
                      f"at iteration {best['iteration']}; dense {dense['Val_Accuracy']:.2f}%)")
    reported = (f"test accuracy {record['Test_Accuracy']:.2f}% (reported only: never used to choose)" if test else
                "test accuracy shown once the choice is written")
    return (f"iteration {record['iteration']}: {neurons} hidden neurons ({record['PercentageRetain']:.3g}% of the "
            f"dense model's), {record['parameters']:,} parameters ({record['parameters'] / dense['parameters']:.1%}); "
            f"{validation}{', ' if validation else ''}{reported}")


def mark_iteration(figure: Figure, record: dict, metric: str) -> Figure:
    """Return a figure from plot_accuracies/plot_losses with `record`'s iteration marked on it."""
    axes = figure.axes[0]
    x = record["PercentageRetain"]
    axes.axvline(x, color="tab:red", linestyle=":", linewidth=1)
    split = "Val" if f"Val_{metric}" in record else "Train"  # what chooses; the test line may not be drawn
    axes.plot([x], [record[f"{split}_{metric}"]], "o", markersize=12, markerfacecolor="none",
              markeredgecolor="tab:red", label=f"iteration {record['iteration']}")
    axes.legend()
    return figure


class IterationPicker(_Control):
    """A slider over the finished iterations; shows the chosen one's size and validation accuracy and marks it on the
    training and validation curves. It never shows the test set: `save` draws the test curves once the choice is
    made, so that validation chooses and the test set only reports.

    With `choice_file`, every move also writes the choice there (as 05 does for 06), so what the slider shows is
    always what is deployed."""

    def __init__(self, records: list[dict], value: int | None = None, choice_file: str | os.PathLike | None = None,
                 model_files: dict | None = None, tolerance: float | None = 1.0):
        if not records:
            raise NbpruneError("no finished iteration to choose from: run notebook 04_iterative_pruning first for "
                               "this session (or pass the session_dir where it ran).")
        self.records = {record["iteration"]: record for record in records}
        value = records[0]["iteration"] if value is None else value
        if value not in self.records:
            raise NbpruneError(f"iteration {value!r} has not finished: expected one of {list(self.records)}.")
        widgets = _ipywidgets()
        self.tolerance = tolerance
        self.choice_file, self.model_files = (Path(choice_file) if choice_file else None), dict(model_files or {})
        self.slider = widgets.SelectionSlider(options=list(self.records), value=value, description="iteration",
                                              continuous_update=False, layout=widgets.Layout(width="600px"))
        self.summary = widgets.HTML()
        self.plots = [widgets.Image(format="png", layout=widgets.Layout(width="48%")) for _ in range(2)]
        self.slider.observe(self.redraw, names="value")
        self.widget = widgets.VBox([self.slider, self.summary, widgets.HBox(self.plots)])
        self.redraw()

    def caption(self) -> str:
        """Return the chosen iteration's description, as the line above the plots."""
        return self.summary.value

    @property
    def value(self) -> int:
        """Return the iteration the slider is on."""
        return self.slider.value

    @property
    def record(self) -> dict:
        """Return the results of the iteration the slider is on."""
        return self.records[self.value]

    def figures(self, test: bool = False) -> tuple[Figure, Figure]:
        """Return the accuracy curves (with choose_iteration's band, zoomed to the choice, unless tolerance is None)
        and the loss curves, the chosen iteration marked on both; the test curves only with `test`."""
        records = list(self.records.values())
        accuracies = plot_accuracies(records, test=test)
        if self.tolerance is not None and all("Val_Accuracy" in record for record in records):
            draw_choice(accuracies, records, self.tolerance, shown=self.record, test=test)
        return (mark_iteration(accuracies, self.record, "Accuracy"),
                mark_iteration(plot_losses(records, test=test), self.record, "Loss"))

    def redraw(self, change=None) -> None:
        """Describe the chosen iteration, mark it on the training and validation curves, and record the choice."""
        self.summary.value = f"<b>{describe_iteration(self.record, list(self.records.values()), test=False)}</b>"
        for plot, figure in zip(self.plots, self.figures()):
            plot.value = _png(figure)
        if self.choice_file is not None:
            self.write_choice()

    def write_choice(self, **results) -> Path:
        """Write the chosen iteration (its shape, accuracies and model file, and any `results`) to the choice file."""
        record = self.record
        choice = {"iteration": self.value, "model_file": str(self.model_files.get(self.value, "")),
                  "hidden": list(record["hidden"]), "parameters": record["parameters"],
                  **{key: record[key] for key in ("Val_Accuracy", "Test_Accuracy") if key in record}, **results}
        return write_text_atomic(self.choice_file, json.dumps(choice, indent=2) + "\n")

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write the marked curves, test curves included (the choice is made), as chosen_accuracies.png and
        chosen_losses.png into `folder`; return the paths."""
        names = ("chosen_accuracies.png", "chosen_losses.png")
        return [save_figure(figure, Path(folder) / name) for figure, name in zip(self.figures(test=True), names)]

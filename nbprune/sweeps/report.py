"""A sweep's report: accuracy against parameters and against % retained in bands over seeds (lowest to highest), the
pick per parameter budget made on validation accuracy, and a Markdown summary beside the figures."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from pathlib import Path
from typing import Sequence

from ..errors import NbpruneError
from ..files import check_fits
from .engine import FORMAT, STATE_FILE, TABLE_FILE, failed_chains, read_state
from .work import COLUMNS

REPORT_FILE, PARAMETERS_FIGURE, RETAINED_FIGURE = "report.md", "accuracy_vs_parameters.png", "accuracy_vs_retained.png"
BUDGET_SHARES = (0.5, 0.2, 0.1, 0.05)  # default budgets: these shares of the dense model's parameters
NUMBERS = {"seed": int, "iteration": int, "inputs": int, "parameters": int, "retained": float, "val_acc": float,
           "test_acc": float, "seconds": float}
OPTIONAL = ("val_acc", "seconds")  # may be empty: no validation split, seconds not known (every model has its
# share retained: the figure against % retained is drawn from it)


def read_results(sweep_dir: str | os.PathLike) -> tuple[list[dict], list[str], dict]:
    """Return results.csv's rows (numbers as numbers), the varied settings' names and sweep.json's record, both
    files checked: a damaged one is refused in one line naming the line and the value."""
    folder = Path(sweep_dir)
    check_fits(folder, "sweep folder", below=f".{PARAMETERS_FIGURE}.XXXXXXXX.tmp")
    table, state_file = folder / TABLE_FILE, folder / STATE_FILE
    if not table.is_file() or not state_file.is_file():
        raise NbpruneError(f"{folder} holds no sweep results ({TABLE_FILE} and {STATE_FILE}): run `nbprune sweep "
                           f"--dir {folder}` first, or give the folder a sweep ran in.")
    state = read_state(state_file, formats=(1, FORMAT))
    header, rows = _read_table(table)
    return rows, header[1:header.index("seed")], state


def _read_table(path: Path) -> tuple[list[str], list[dict]]:
    """Return results.csv's header and rows, every value checked and numbers converted."""
    def damaged(what: str) -> NbpruneError:
        return NbpruneError(f"{path} is damaged ({what}): it is not the table a sweep writes; run the same `nbprune "
                            f"sweep` command again to write it anew from the chains' sessions.")

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise damaged("not UTF-8 text: a binary file or another encoding") from None
    except OSError as error:
        raise NbpruneError(f"{path} cannot be read ({error.strerror}): check the file.") from None
    if "\0" in text:
        raise damaged("it holds NUL bytes: a binary file")
    try:
        lines = [values for values in csv.reader(io.StringIO(text)) if values]
    except csv.Error as error:
        raise damaged(f"not CSV: {error}") from None
    header = lines[0] if lines else []
    required = ["chain", "seed", "iteration", *COLUMNS]
    if header[:1] != ["chain"] or any(name not in header for name in required) or len(set(header)) != len(header) \
            or header.index("seed") > header.index("iteration"):
        shown = ", ".join(header)[:100] or "empty"
        raise damaged(f"header {shown!r}, expected chain, the settings that vary, seed, iteration, "
                      f"{', '.join(COLUMNS)}")
    rows = []
    for number, values in enumerate(lines[1:], start=2):
        if len(values) != len(header):
            raise damaged(f"line {number} has {len(values)} fields, expected {len(header)}")
        row = dict(zip(header, values))
        for name, kind in NUMBERS.items():
            row[name] = _number(row[name], kind, name in OPTIONAL, lambda what: damaged(f"line {number}: {what}"),
                                name)
        rows.append(row)
    return header, rows


def _number(text: str, kind, optional: bool, damaged, name: str):
    """Return a table's text as the number its column holds ('' where the column may be empty)."""
    if optional and text in ("", "nan"):
        return ""
    try:
        value = kind(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0:
        raise damaged(f"{name} {text[:40]!r} is not a {'whole number' if kind is int else 'finite number'} >= 0")
    return value


def method_of(row: dict, varied: Sequence[str]) -> str:
    """Return the label of a row's combination of varied settings (the seed apart)."""
    return ", ".join(f"{name}={row[name]}" for name in varied) or "all chains"


def pick_per_budget(rows: list[dict], varied: Sequence[str], budgets: Sequence[int]) -> list[dict]:
    """Return, per budget and method, each seed's best-validation model within the budget, averaged over seeds;
    the method with the best mean validation accuracy is the budget's pick (the test accuracy only reports).
    Each row is looked at once per budget: the rows are grouped by method and seed first."""
    groups: dict[str, dict[int, list[dict]]] = {}
    for row in rows:
        seeds = groups.setdefault(method_of(row, varied), {})
        if row["val_acc"] != "":
            seeds.setdefault(row["seed"], []).append(row)
    picks = []
    for budget in budgets:
        entries = []
        for method, seeds in groups.items():
            chosen = []
            for seed in sorted(seeds):
                within = [row for row in seeds[seed] if row["parameters"] <= budget]
                if within:
                    chosen.append(max(within, key=lambda r: (r["val_acc"], -r["parameters"])))
            if chosen:
                entries.append({"budget": budget, "method": method, "seeds": len(chosen),
                                "val": statistics.fmean(row["val_acc"] for row in chosen),
                                "test": statistics.fmean(row["test_acc"] for row in chosen),
                                "test_sd": statistics.stdev(row["test_acc"] for row in chosen) if len(chosen) > 1
                                else 0.0,
                                "parameters": statistics.fmean(row["parameters"] for row in chosen), "pick": False})
        if entries:
            max(entries, key=lambda entry: (entry["val"], -entry["parameters"]))["pick"] = True
        picks += entries
    return picks


def default_budgets(rows: list[dict]) -> list[int]:
    """Return shares of the dense model's parameters (iteration 0) as budgets."""
    dense = max((row["parameters"] for row in rows if row["iteration"] == 0), default=0)
    return [round(dense * share) for share in BUDGET_SHARES] if dense else []


def plot(rows: list[dict], varied: Sequence[str], x: str, label: str):
    """Return a figure of test accuracy against `x`, one line per method (the mean over seeds) in a band from the
    lowest to the highest seed: with the few seeds a sweep has, a bootstrap '95% interval' would only be that range
    under a name it does not earn."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    frame = pd.DataFrame(rows)
    frame["method"] = [method_of(row, varied) for row in rows]
    frame[label] = frame.groupby(["method", "iteration"])[x].transform("mean")  # seeds of one level share one x
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    sns.lineplot(data=frame, x=label, y="test_acc", hue="method", errorbar=("pi", 100), marker="o", markersize=4,
                 ax=axes)
    axes.set(xscale="log", ylabel="test accuracy (%): mean over seeds, band lowest to highest",
             title=f"Test accuracy against {label} ({frame['seed'].nunique()} seed(s))")
    axes.grid(True, which="both", alpha=0.3)
    return figure


def sweep_report(sweep_dir: str | os.PathLike, budgets: Sequence[int] | None = None) -> Path:
    """Write report.md and the two figures into the sweep folder; return the report's path."""
    from ..files import save_figure, write_text_atomic

    folder = Path(sweep_dir)
    rows, varied, state = read_results(folder)
    if not rows:
        raise NbpruneError(f"{folder / TABLE_FILE} holds no finished model yet: let the sweep run (or rerun it).")
    budgets = sorted(budgets or default_budgets(rows), reverse=True)
    save_figure(plot(rows, varied, "parameters", "parameters"), folder / PARAMETERS_FIGURE)
    save_figure(plot(rows, varied, "retained", "% of hidden neurons retained"), folder / RETAINED_FIGURE)
    return write_text_atomic(folder / REPORT_FILE, markdown(rows, varied, state, budgets))


def markdown(rows: list[dict], varied: Sequence[str], state: dict, budgets: Sequence[int]) -> str:
    """Return the report's text: what ran, the picks per budget, the failures, the figures."""
    chains = state.get("chains", {})
    failed = failed_chains(state)
    seeds = ", ".join(map(str, sorted({row["seed"] for row in rows})))
    lines = ["# Sweep report", "",
             f"{len(chains)} chain(s), {len(rows)} model(s), seeds {seeds}; varied: {', '.join(varied) or 'nothing'}. "
             f"Spec: `{json.dumps(state.get('spec', {}), sort_keys=True)}`.",
             "", "## Pick per parameter budget", "",
             "For each method and seed, the model with the best validation accuracy within the budget; the pick is "
             "the method with the best mean validation accuracy. Test accuracy is reported, never chosen on.", "",
             "| budget | method | seeds | mean validation | mean test ± sd | mean parameters | pick |",
             "|---|---|---|---|---|---|---|"]
    picks = pick_per_budget(rows, varied, budgets)
    if not picks:
        lines.append(f"| {', '.join(f'<= {budget:,}' for budget in budgets) or 'none'} | no model within the "
                     f"budget(s): give larger ones with --budgets | | | | | |")
    for entry in picks:
        lines.append(f"| <= {entry['budget']:,} | {entry['method']} | {entry['seeds']} | {entry['val']:.2f} | "
                     f"{entry['test']:.2f} ± {entry['test_sd']:.2f} | {entry['parameters']:,.0f} | "
                     f"{'**pick**' if entry['pick'] else ''} |")
    if failed:
        lines += ["", "## Failed chains (rerun the sweep to retry them)", ""]
        lines += [f"- `{name}`: {error}" for name, error in failed.items()]
    lines += ["", f"![accuracy against parameters]({PARAMETERS_FIGURE})", "",
              f"![accuracy against % retained]({RETAINED_FIGURE})", ""]
    return "\n".join(lines)

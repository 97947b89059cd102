"""Deployment speed: the dense model against pruned ones, eager and as a TorchScript program, on this CPU.

Measures parameters, multiply-accumulates (sum of in x out over the linear layers), the median latency of one
image (batch 1) and the throughput at batch 1024, for the dense SimpleNN (256+64), iteration 8 (43+11, the one
the reference's author deployed) and the iteration 05_test chooses by default (the smallest model within 1 point of
dense test accuracy). All models are timed in one process, interleaved call by call in a shuffled order, so that
a busy neighbour slows all of them alike; the figures are medians (and best calls). The script first waits for
the CPU to be idle, and says how busy other processes kept it while the timing ran.

    python benchmarks/inference_speed.py                      # layer sizes from the default schedule
    python benchmarks/inference_speed.py --session-dir sessions/<date>/iterative_pruning   # trained weights

Writes benchmarks/results/inference_speed.md (and .json with the medians).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (RESULTS_DIR, OtherLoad, command_line, machine_info, machine_section,  # noqa: E402
                     markdown_table, wait_until_quiet)

from nbprune.data import InputSpec  # noqa: E402
from nbprune.datasets import MNIST  # noqa: E402
from nbprune.export import PAD_TO, TORCHSCRIPT_FILE, export_model  # noqa: E402
from nbprune.files import write_text_atomic  # noqa: E402
from nbprune.session import iteration_dir  # noqa: E402
from nbprune.model import SimpleNN, parameter_count  # noqa: E402
from nbprune.modelfile import load_pruned_model, save_model_file  # noqa: E402
from nbprune.report import choose_iteration, session_summary  # noqa: E402
from nbprune.retention import schedule  # noqa: E402
from nbprune.session import Session  # noqa: E402

DEPLOYED_ITERATION = 8
TARGET_SPEEDUP = 4.0
UNPADDED = "TorchScript unpadded"
BIG_BATCH = 1024
PRUNING_QUALITY = RESULTS_DIR / "pruning_quality.md"
DISTURBED = 0.3  # cores kept busy by other processes above which the medians are not to be trusted


@dataclass
class Candidate:
    """One model to time: its label, iteration, layer sizes, test accuracy when known, and its programs."""

    label: str
    iteration: int
    hidden: tuple[int, ...]
    model: nn.Module
    test_accuracy: float | None = None
    programs: dict[str, nn.Module] = field(default_factory=dict)


def macs(model: nn.Module) -> int:
    """Return the multiply-accumulates of one forward pass: sum of in_features x out_features."""
    return sum(layer.in_features * layer.out_features for layer in model.modules() if isinstance(layer, nn.Linear))


def _leading_float(text: str) -> float | None:
    match = re.match(r"\s*\**\s*(-?\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else None


def choice_from_pruning_quality(path: Path) -> tuple[int, str] | None:
    """Return (iteration, how it was read) from the first markdown table with an 'iteration' column, or None.

    With a test-accuracy column, applies 05_test's rule (smallest model within 1 point of iteration 0);
    otherwise takes the table's last iteration.
    """
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    for start, line in enumerate(lines):
        cells = [cell.strip().lower() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or "iteration" not in cells:
            continue
        column = cells.index("iteration")
        accuracy = next((i for i, cell in enumerate(cells) if "validation" in cell and "acc" in cell), None)
        rows = []
        for row in lines[start + 2:]:
            if not row.lstrip().startswith("|"):
                break
            values = [cell.strip() for cell in row.strip().strip("|").split("|")]
            iteration = _leading_float(values[column]) if column < len(values) else None
            if iteration is not None:
                rows.append((int(iteration), _leading_float(values[accuracy]) if accuracy is not None
                             and accuracy < len(values) else None))
        if not rows:
            continue
        if accuracy is not None and all(value is not None for _, value in rows):
            percentage = {step.iteration: step.percentage for step in schedule()}
            records = [{"iteration": it, "Val_Accuracy": acc, "parameters": percentage.get(it, 100.0)}
                       for it, acc in rows]
            return choose_iteration(records), (f"{path.name}: 05_test's rule (smallest model within 1 point of "
                                               f"the run's best validation accuracy) applied to its table")
        return rows[-1][0], f"{path.name}: the last iteration in its table"
    return None


def session_origin(session_dir: Path) -> str:
    """Return ' (criterion ..., seed ...)' from the session's last recorded run, or '' when it has none."""
    runs = Session.for_pruning_dir(session_dir).runs()
    if not runs:
        return ""
    config = runs[-1]["config"]
    return f" (criterion {config['criterion']}, seed {config['seed']})"


def build_candidates(session_dir: Path | None, choice: int | None) -> tuple[list[Candidate], list[str]]:
    """Return the dense, iteration-8 and default-choice models, and notes on where each came from."""
    sizes = {step.iteration: step.retained for step in schedule()}
    notes, accuracy = [], {}
    if session_dir is not None:
        summary = session_summary(session_dir)
        accuracy = {record["iteration"]: record["Test_Accuracy"] for record in summary}
        if choice is None:
            choice = choose_iteration(summary)
            notes.append(f"Default choice: iteration {choice}, by 05_test's rule "
                         f"(nbprune.report.choose_iteration) on {session_dir}.")
        notes.append(f"Weights: the trained best_model.pth files of {session_dir}{session_origin(session_dir)}.")
    else:
        notes.append("Weights: none loaded (no --session-dir); each model is a freshly initialised SimpleNN with "
                     "the layer sizes of the default schedule. Timing does not depend on the weight values.")
        if choice is None:
            found = choice_from_pruning_quality(PRUNING_QUALITY)
            if found is not None:
                choice, source = found
                notes.append(f"Default choice: iteration {choice}, from {source}.")
            else:
                choice = DEPLOYED_ITERATION
                notes.append(f"Default choice: ASSUMED to be iteration {DEPLOYED_ITERATION} (43+11): no session "
                             f"and no {PRUNING_QUALITY.relative_to(RESULTS_DIR.parent.parent)} to read it from. "
                             f"Pass --session-dir or --choice to time the real one.")
    if choice is not None and not any("Default choice" in note for note in notes):
        notes.append(f"Default choice: iteration {choice}, given with --choice.")
    if choice not in sizes:
        raise SystemExit(f"inference_speed: iteration {choice} is not in the default schedule: expected one of "
                         f"{sorted(sizes)}.")
    wanted = [("dense", 0), (f"iteration {DEPLOYED_ITERATION}", DEPLOYED_ITERATION)]
    if choice == DEPLOYED_ITERATION:
        wanted[1] = (f"iteration {DEPLOYED_ITERATION} = default choice", DEPLOYED_ITERATION)
    else:
        wanted.append((f"default choice (iteration {choice})", choice))
    candidates = []
    for label, iteration in wanted:
        if session_dir is not None:
            model = load_pruned_model(SimpleNN(), iteration_dir(session_dir, iteration) / "best_model.pth")
        else:
            torch.manual_seed(iteration)
            model = SimpleNN(hidden=sizes[iteration])
        candidates.append(Candidate(label, iteration, tuple(model.hidden), model.eval(), accuracy.get(iteration)))
    return candidates, notes


def torchscript(model: nn.Module) -> nn.Module:
    """Return the TorchScript program `nbprune export` writes for `model`, loaded back with torch.jit.load."""
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 marks torch.jit deprecated; it still runs
        if model.spec is None:  # a freshly initialised model: MNIST's published standardisation
            model.spec = InputSpec.published(MNIST)
        model_file = save_model_file(model, Path(folder) / "best_model.pth")
        out = export_model(model_file, Path(folder) / "export", onnx=False)
        return torch.jit.load(str(Path(out) / TORCHSCRIPT_FILE)).eval()


def torchscript_unpadded(model: nn.Module) -> nn.Module:
    """Return the same layers scripted without the export's padding: what the padding gains, side by side."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(nn.Sequential(nn.Flatten(), *model.sequence()).eval())


def time_one(program: nn.Module, inputs: torch.Tensor) -> float:
    started = time.perf_counter()
    program(inputs)
    return time.perf_counter() - started


def measure(candidates: list[Candidate], small_calls: int, big_calls: int, seed: int = 0) -> dict:
    """Return per (label, mode) the seconds of every batch-1 and batch-1024 call, models interleaved call by call.

    Each round calls every program once, in a freshly shuffled order, so a busy neighbour meets all of them alike.
    """
    inputs = {"small": torch.randn(1, 784), "big": torch.randn(BIG_BATCH, 784)}
    timings = {(c.label, mode): {"small": [], "big": []} for c in candidates for mode in c.programs}
    order = [(c, mode) for c in candidates for mode in c.programs]
    shuffle = random.Random(seed)
    with torch.inference_mode():
        for candidate, mode in order:  # warm-up: allocator, TorchScript's profiling executor, caches
            for size, calls in (("small", 50), ("big", 5)):
                for _ in range(calls):
                    candidate.programs[mode](inputs[size])
        for size, calls in (("small", small_calls), ("big", big_calls)):
            for _ in range(calls):
                shuffle.shuffle(order)
                for candidate, mode in order:
                    timings[candidate.label, mode][size].append(time_one(candidate.programs[mode], inputs[size]))
    return timings


def check_programs(candidates: list[Candidate]) -> None:
    """Raise unless every program gives the eager model's outputs at both batch sizes."""
    with torch.inference_mode():
        for candidate in candidates:
            for inputs in (torch.randn(1, 784), torch.randn(BIG_BATCH, 784)):
                expected = candidate.model(inputs)
                for mode, program in candidate.programs.items():
                    if not torch.allclose(program(inputs), expected, atol=1e-5):
                        raise SystemExit(f"inference_speed: the {mode} program of {candidate.label} gives other "
                                         f"outputs than the model at batch {len(inputs)}.")


def summarise(candidates: list[Candidate], timings: dict) -> list[dict]:
    """Return per model its size, and per mode the median/quartile latency and median/best throughput with ratios."""
    entries = []
    for candidate in candidates:
        entry = {"label": candidate.label, "iteration": candidate.iteration, "hidden": list(candidate.hidden),
                 "test_accuracy": candidate.test_accuracy, "parameters": parameter_count(candidate.model),
                 "macs": macs(candidate.model)}
        for mode in candidate.programs:
            small, big = timings[candidate.label, mode]["small"], timings[candidate.label, mode]["big"]
            q1, _, q3 = statistics.quantiles(small, n=4)
            entry[mode] = {"latency_us": 1e6 * statistics.median(small), "latency_iqr_us": [1e6 * q1, 1e6 * q3],
                           "throughput_per_s": BIG_BATCH / statistics.median(big),
                           "best_throughput_per_s": BIG_BATCH / min(big),
                           "small_calls": len(small), "big_calls": len(big)}
        entries.append(entry)
    dense = entries[0]
    for entry in entries:
        for mode in candidates[0].programs:
            entry[mode].update(
                latency_speedup=dense[mode]["latency_us"] / entry[mode]["latency_us"],
                throughput_vs_dense=entry[mode]["throughput_per_s"] / dense[mode]["throughput_per_s"],
                best_throughput_vs_dense=entry[mode]["best_throughput_per_s"] / dense[mode]["best_throughput_per_s"])
    return entries


def report(entries: list[dict], modes: list[str], notes: list[str], args, load: dict) -> tuple[str, dict]:
    """Return the markdown report and the JSON record."""
    info = machine_info()
    dense, deployed = entries[0], entries[1]
    sizes = [[e["label"], e["iteration"], "+".join(map(str, e["hidden"])),
              "–" if e["test_accuracy"] is None else f"{e['test_accuracy']:.2f}",
              f"{e['parameters']:,}", f"{e['macs']:,}", f"{dense['macs'] / e['macs']:.2f}x"] for e in entries]
    speeds = []
    for mode in modes:
        for e in entries:
            m = e[mode]
            speeds.append([e["label"], mode,
                           f"{m['latency_us']:.1f} ({m['latency_iqr_us'][0]:.1f}-{m['latency_iqr_us'][1]:.1f})",
                           f"{m['latency_speedup']:.2f}x", f"{m['throughput_per_s']:,.0f}",
                           f"**{m['throughput_vs_dense']:.2f}x**", f"{m['best_throughput_per_s']:,.0f}",
                           f"{m['best_throughput_vs_dense']:.2f}x"])
    shipped = [mode for mode in modes if mode != UNPADDED]  # the target is about what users run
    met = {mode: deployed[mode]["throughput_vs_dense"] >= TARGET_SPEEDUP for mode in shipped}
    verdict_lines = [f"- {mode}: iteration {DEPLOYED_ITERATION} runs **{deployed[mode]['throughput_vs_dense']:.2f}x** "
                     f"the dense throughput at batch {BIG_BATCH} (medians; best calls: "
                     f"{deployed[mode]['best_throughput_vs_dense']:.2f}x): **{'met' if met[mode] else 'NOT met'}**."
                     for mode in shipped]
    overall = ("met" if all(met.values()) else
               "met only for " + ", ".join(m for m in shipped if met[m]) if any(met.values()) else "NOT met")
    others = load["others_during"]
    disturbed = others is not None and others >= DISTURBED
    if others is None:
        load_line = "- Other processes' CPU use during the timing: not measured (no /proc/stat).\n"
    else:
        load_line = (f"- Other processes kept **{others:.2f}** of the {os.cpu_count()} cores busy on average during "
                     f"the timing" + ("" if load["waited_for_quiet"] is None else
                                      f" (it waited up to {args.wait_quiet:g} minutes for a quiet CPU first: "
                                      + ("found one" if load["waited_for_quiet"] else "found none") + ")")
                     + ".\n")
    caution = (f"\n**Caution:** other processes kept {others:.2f} cores busy while this ran. With torch's 2 threads "
               "on 2 shared cores a call then waits for a descheduled thread, so the medians above measure the "
               "neighbours more than the models; the best calls are closer to the models' own speed. Rerun on an "
               "idle machine for figures to quote.\n" if disturbed else "")
    record = {"models": entries, "notes": notes, "machine": info, "command": command_line(), "load": load,
              "target": {"speedup": TARGET_SPEEDUP, "batch": BIG_BATCH, "iteration": DEPLOYED_ITERATION, "met": met}}
    text = (
        "# Deployment speed: dense vs pruned SimpleNN\n\n"
        f"Generated by `benchmarks/inference_speed.py` on {info['date']}.\n\n"
        + "".join(f"- {note}\n" for note in notes)
        + "- Eager: the `SimpleNN` module. TorchScript: the program `nbprune export` writes "
          f"(`{TORCHSCRIPT_FILE}`, `torch.jit.script` of the layers, each hidden layer padded with zero neurons to a "
          f"multiple of {PAD_TO}), loaded back with `torch.jit.load`. {UNPADDED}: the same layers "
          "scripted without that padding, to show what it gains. All float32, under `torch.inference_mode()`.\n"
        f"- Threads: torch's default, `torch.get_num_threads() = {info['torch threads']}` (not changed).\n"
        f"- Method: all {len(entries) * len(modes)} programs in one process, warmed up, then called in rounds: "
        f"each round calls every program once in a freshly shuffled order; {args.small_calls} rounds at batch 1, "
        f"then {args.big_calls} rounds at batch {BIG_BATCH}, one `perf_counter` per call. Latency is the median "
        f"batch-1 call (interquartile range in brackets); throughput is {BIG_BATCH} / the median batch-{BIG_BATCH} "
        f"call, and best is {BIG_BATCH} / the fastest call. Ratios compare with the dense model in the same mode.\n"
        + load_line + "\n"
        "## Size\n\nMACs = multiply-accumulates of one image = sum of in x out over the linear layers.\n\n"
        + markdown_table(["model", "iteration", "hidden", "test accuracy, %", "parameters", "MACs",
                          "fewer MACs than dense"], sizes)
        + "\n## Speed\n\n"
        + markdown_table(["model", "mode", "batch-1 latency, µs: median (IQR)", "latency speed-up",
                          f"batch-{BIG_BATCH} images/s (median)", "throughput vs dense",
                          f"batch-{BIG_BATCH} images/s (best)", "best vs dense"], speeds)
        + f"\n## Target: at least {TARGET_SPEEDUP:g}x the dense throughput at batch {BIG_BATCH} for iteration "
          f"{DEPLOYED_ITERATION}\n\n"
        + "\n".join(verdict_lines) + f"\n\nVerdict: **{overall}**.\n" + caution + "\n"
        + "## Machine\n\n" + machine_section({k: v for k, v in info.items() if k != "date"})
        + "\nThe CPU is shared with other jobs, so absolute figures move from run to run; the call-by-call "
          "interleaving exposes every model to the same conditions, which keeps the ratios comparable.\n\n"
        f"## Command\n\n```\n{record['command']}\n```\n"
    )
    return text, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session-dir", type=Path,
                        help="an iterative_pruning folder with <i>/prune_w_retrain/best_model.pth (trained weights)")
    parser.add_argument("--choice", type=int, help="the iteration to time as the default choice (overrides)")
    parser.add_argument("--small-calls", type=int, default=5000, help="batch-1 calls per program (5000)")
    parser.add_argument("--big-calls", type=int, default=300, help=f"batch-{BIG_BATCH} calls per program (300)")
    parser.add_argument("--wait-quiet", type=float, default=15, metavar="MINUTES",
                        help="first wait up to this long for other processes to leave the CPU idle (15; 0: no wait)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write (benchmarks/results)")
    args = parser.parse_args(argv)
    if args.session_dir is not None and not args.session_dir.is_dir():
        parser.error(f"--session-dir {args.session_dir} is not a folder: expected an iterative_pruning folder.")

    candidates, notes = build_candidates(args.session_dir, args.choice)
    for candidate in candidates:
        candidate.programs = {"eager": candidate.model, "TorchScript": torchscript(candidate.model),
                              UNPADDED: torchscript_unpadded(candidate.model)}
    check_programs(candidates)
    quiet, before = wait_until_quiet(args.wait_quiet) if args.wait_quiet > 0 else (None, None)
    meter = OtherLoad().start()
    timings = measure(candidates, args.small_calls, args.big_calls)
    load = {"waited_for_quiet": quiet, "others_before": before, "others_during": meter.stop()}
    text, record = report(summarise(candidates, timings), list(candidates[0].programs), notes, args, load)
    write_text_atomic(args.results_dir / "inference_speed.md", text)
    write_text_atomic(args.results_dir / "inference_speed.json", json.dumps(record, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

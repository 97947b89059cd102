"""The stronger teacher of issue 20: how long `nbprune teacher`'s network takes to train and how accurate it is on
the real MNIST, then (with --probe) one small pruned student retrained twice from the same start, distilling from
the dense model and from the teacher. One seed and one shape: the probe proves nothing alone.

    python benchmarks/teacher.py --data-root ../shared/datasets --threads 1 --probe [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import RESULTS_DIR, OtherLoad, command_line, machine_info, machine_section, markdown_table  # noqa: E402
from nbprune import SimpleNN, load_data, parameter_count
from nbprune.config import TrainConfig, data_root
from nbprune.criteria import PruningContext
from nbprune.evaluation import loss_and_accuracy
from nbprune.files import write_text_atomic
from nbprune.prune import prune_nodes
from nbprune.teacher import load_teacher, save_teacher, train_teacher
from nbprune.training import train


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measured(function, *args, **kwargs):
    """Return (result, wall seconds, this process's CPU seconds, cores other processes kept busy meanwhile)."""
    meter, wall, cpu = OtherLoad().start(), time.perf_counter(), cpu_seconds()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu, meter.stop()


def probe(data, teacher_model, hidden: tuple[int, ...], epochs: int, seed: int, shift: int) -> dict:
    """Return the dense model's figures and a pruned student's, retrained from the same start by each teacher; with
    `shift`, also the dense model trained on images shifted by up to that many pixels."""
    settings = TrainConfig(epochs=epochs)
    torch.manual_seed(seed)
    dense, dense_seconds, _, _ = measured(train, SimpleNN(), data.train_loader, data.test_loader,
                                          val_loader=data.val_loader, config=settings, seed=seed, progress=False)
    start = prune_nodes(dense, hidden, "interval_adjoint", PruningContext.of(data.train_loader, seed))
    rows = {"dense model (784-256-64-10)": figures(dense, data) | {"seconds": round(dense_seconds, 1)}}
    for name, teacher in (("student, dense model teaches", dense), ("student, CNN teacher teaches", teacher_model)):
        data.train_loader.reseed(seed)
        student, seconds, _, _ = measured(train, copy.deepcopy(start), data.train_loader, data.test_loader,
                                          val_loader=data.val_loader, config=settings, teacher=teacher, seed=seed,
                                          progress=False)
        rows[name] = figures(student, data) | {"seconds": round(seconds, 1)}
    if shift:
        torch.manual_seed(seed)
        data.train_loader.reseed(seed)
        shifted, seconds, _, _ = measured(train, SimpleNN(), data.train_loader, data.test_loader,
                                          val_loader=data.val_loader, config=TrainConfig(epochs=epochs,
                                                                                         augment_shift=shift),
                                          seed=seed, progress=False)
        rows[f"dense model, augment_shift={shift}"] = figures(shifted, data) | {"seconds": round(seconds, 1)}
    return {"hidden": list(hidden), "parameters": parameter_count(start), "epochs": epochs, "rows": rows}


def figures(model, data) -> dict:
    return {"validation": round(loss_and_accuracy(model, data.val_loader)[1], 2),
            "test": round(loss_and_accuracy(model, data.test_loader)[1], 2)}


def verdict(teacher: dict) -> str:
    """Return whether the teacher met issue 20's target, on wall time and on the CPU time an idle core would take."""
    if teacher["validation"] < 99.2:
        return "not met (validation accuracy below 99.2%)"
    if teacher["wall_seconds"] <= 600:
        return "met"
    if teacher["cpu_seconds"] <= 600:
        return (f"met on CPU time ({teacher['cpu_seconds']:.0f} s of one core, what an idle machine takes), not on "
                f"wall time ({teacher['wall_seconds']:.0f} s while other processes kept {teacher['other_load']} of "
                f"the cores busy)")
    return "not met (more than 10 minutes of CPU time)"


def report(record: dict) -> str:
    teacher = record["teacher"]
    lines = ["# The stronger teacher (issue 20)", "",
             f"Command: `{record['command']}`", "",
             "A ConvTeacher (`nbprune teacher`: conv 3x3 x16, pool, conv 3x3 x32, pool, 1568-128-10; AdamW, one-cycle "
             "schedule, random shifts of up to 2 pixels) trained on the training split only; the epoch kept is "
             "chosen on the validation split, the test set is only reported.", "",
             markdown_table(["epochs", "epoch kept", "validation acc.", "test acc.", "wall time", "CPU time",
                             "other load (cores)"],
                            [[teacher["epochs"], teacher["best_epoch"], f"{teacher['validation']:.2f}%",
                              f"{teacher['test']:.2f}%", f"{teacher['wall_seconds']:.0f} s",
                              f"{teacher['cpu_seconds']:.0f} s", teacher["other_load"]]]),
             f"Target (issue 20): >= 99.2% validation accuracy within about 10 minutes on this 2-core machine: "
             f"{verdict(teacher)}.", ""]
    if record.get("probe"):
        probe_record = record["probe"]
        lines += ["## Probe: one pruned student, two teachers", "",
                  f"The dense SimpleNN trained with nbprune's default recipe ({probe_record['epochs']} epochs at "
                  f"most), "
                  f"pruned in one step by interval_adjoint to {'+'.join(map(str, probe_record['hidden']))} hidden "
                  f"neurons ({probe_record['parameters']:,} parameters), then retrained twice from that same start "
                  f"with the same seed and batches, distilling (weight 0.5, temperature 2) from each teacher. "
                  f"One seed, one shape: this proves nothing alone; the pareto benchmark with four seeds will tell."
                  + (" The last row trains the dense model again on randomly shifted images (augment_shift)."
                     if any("augment_shift" in name for name in probe_record["rows"]) else ""),
                  "", markdown_table(["model", "validation acc.", "test acc.", "seconds"],
                                     [[name, f"{row['validation']:.2f}%", f"{row['test']:.2f}%", row["seconds"]]
                                      for name, row in probe_record["rows"].items()])]
    lines += ["## Machine", "", machine_section(record["machine"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="folder holding MNIST/raw (default $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--epochs", type=int, default=8, help="teacher epochs (8, as `nbprune teacher`)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--val-size", type=int, default=None, help="validation images (default: 5,000)")
    parser.add_argument("--subset", type=int, default=None, help="training and test images (default: all)")
    parser.add_argument("--probe", action="store_true", help="also retrain one pruned student with each teacher")
    parser.add_argument("--probe-hidden", type=int, nargs="+", default=[24, 12], help="the student's hidden sizes")
    parser.add_argument("--probe-epochs", type=int, default=40, help="most epochs of the dense model and students")
    parser.add_argument("--probe-shift", type=int, default=0,
                        help="also train the dense model with augment_shift=N (default 0: not)")
    parser.add_argument("--teacher-file", type=Path, help="where to keep the teacher (default: a temporary file)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write (benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_data(data_root(args.data_root), val_size=args.val_size, seed=args.seed, subset=args.subset)
    trained, wall, cpu, other = measured(train_teacher, data, args.epochs, seed=args.seed, progress=False)
    with tempfile.TemporaryDirectory(prefix="nbprune-teacher-") as scratch:
        teacher_file = save_teacher(trained, data.spec, args.teacher_file or Path(scratch) / "teacher.pth")
        teacher = load_teacher(teacher_file, data.spec)  # what a run loads: the file, not the object in memory
        record = {"command": command_line(), "machine": machine_info(),
                  "teacher": {"epochs": args.epochs, "best_epoch": trained.best_epoch,
                              "validation": round(trained.val_accuracy, 2),
                              "test": round(loss_and_accuracy(teacher.model, data.test_loader)[1], 2),
                              "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                              "other_load": None if other is None else round(other, 2),
                              "training_images": trained.settings["training_images"]}}
        if args.probe:
            record["probe"] = probe(data, teacher.model, tuple(args.probe_hidden), args.probe_epochs, args.seed,
                                    args.probe_shift)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results_dir / "teacher.json", json.dumps(record, indent=1) + "\n")
    write_text_atomic(args.results_dir / "teacher.md", report(record))
    print(report(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())

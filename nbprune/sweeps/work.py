"""What a sweep's worker does: train a dense model once, prune one chain from it, and read a chain's models back
as table rows. Plain functions of a configuration and folders, so they run the same in a Ray worker or here."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..files import write_text_atomic
from ..session import Session
from .spec import Chain, value_text

COLUMNS = ("hidden", "inputs", "parameters", "retained", "val_acc", "test_acc", "model_file", "seconds")
SECONDS_FILE = "seconds.json"  # in a chain's or dense model's folder: each iteration's seconds, as it is published


def _run(config: RunConfig, session: Session, end_itr: int | None) -> dict[int, float]:
    """Prune along the configuration's schedule from where the session stopped, up to end_itr, on one torch thread
    unless the configuration says otherwise; record each iteration's seconds in the folder as it is published (so
    an interrupted chain keeps them); return each new iteration's seconds."""
    import torch

    from ..iterative import plan_run

    torch.set_num_threads(config.threads or 1)
    experiment, planned = plan_run(config, session, "auto", end_itr, progress=False,
                                   download=False)  # the driver made sure the files are in data_root

    def record_seconds(record: dict) -> None:
        seconds = read_seconds(session.root)
        seconds[str(record["iteration"])] = round(record["seconds"], 3)
        write_text_atomic(session.root / SECONDS_FILE, json.dumps(seconds, indent=1, sort_keys=True) + "\n")

    records = experiment.run(planned, on_iteration=record_seconds)
    return {record["iteration"]: record["seconds"] for record in records}


def read_seconds(folder: str | os.PathLike) -> dict[str, float]:
    """Return the seconds each iteration of a chain's (or dense model's) folder took, as recorded there ({} when
    none are, or the file is damaged: the seconds only inform)."""
    try:
        seconds = json.loads((Path(folder) / SECONDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(seconds, dict):
        return {}
    return {key: value for key, value in seconds.items()
            if isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool)
            and value == value and abs(value) != float("inf")}


def train_dense(config: RunConfig, folder: str) -> dict[int, float]:
    """Train the dense model (iteration 0) of `config` (a chain's dense_config) into the session `folder` unless it
    is there already."""
    return _run(config, Session(folder), end_itr=0)


def prune_chain(chain: Chain, folder: str, dense_folder: str, end_itr: int | None, *dense_done: Any
                ) -> dict[int, float]:
    """Prune one chain in the session `folder`, starting from the dense model in `dense_folder`; return the
    seconds of each iteration run now. `dense_done`: the dense task's result, so Ray runs this after it."""
    session = Session(folder)
    if not session.is_complete(0):
        _copy_dense(Session(dense_folder), session)
    return _run(chain.config, session, end_itr)


def _copy_dense(dense: Session, session: Session) -> None:
    """Publish the dense model's iteration 0 as the chain's own, in one rename, holding the chain's lock."""
    with session.lock():
        session.clean_leftovers()
        partial = session.partial_dir(0)
        if partial.exists():
            shutil.rmtree(partial)
        shutil.copytree(dense.iteration_dir(0), partial)
        session.publish(partial, 0)


def chain_steps(chain: Chain, end_itr: int | None) -> list[int]:
    """Return the iterations a chain runs: its schedule up to end_itr."""
    from ..retention import base_steps

    return [step.iteration for step in base_steps(chain.config)
            if end_itr is None or step.iteration <= end_itr]


def is_finished(chain: Chain, folder: Path, end_itr: int | None) -> bool:
    """Return whether every iteration the chain runs is complete in its session folder."""
    session = Session(folder)
    return all(session.is_complete(iteration) for iteration in chain_steps(chain, end_itr))


def chain_rows(chain: Chain, folder: Path, sweep_dir: Path, seconds: dict[str, float]) -> list[dict]:
    """Return one table row per complete model of the chain: varied settings, seed, iteration, size, accuracy,
    the model file and its seconds (empty when unknown)."""
    rows = []
    for record in Session(folder).summary():
        iteration = record["iteration"]
        model_file = Session(folder).model_file(iteration)
        rows.append({"chain": chain.name, **{name: value_text(value) for name, value in chain.varied.items()},
                     "seed": chain.seed, "iteration": iteration, "hidden": value_text(record["hidden"]),
                     "inputs": record["inputs"], "parameters": record["parameters"],
                     "retained": record["PercentageRetain"], "val_acc": record.get("Val_Accuracy", ""),
                     "test_acc": record["Test_Accuracy"],
                     "model_file": os.path.relpath(model_file, sweep_dir),
                     "seconds": round(seconds[str(iteration)], 3) if str(iteration) in seconds else ""})
    return rows

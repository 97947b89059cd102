"""Running a sweep on Ray: every unfinished chain as a task, the dense models first, failures recorded per chain,
the table rewritten as chains finish. A rerun skips finished chains and continues the others from their sessions.

    <sweep>/
    ├── sweep.json            the spec and each chain's status, error and seconds
    ├── results.csv           one row per model
    ├── dense/<name>/         one session per (data, architecture, training, seed): iteration 0, shared
    └── chains/<name>/        one session per chain: iteration 0 copied from its dense model, then pruned
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from ..errors import NbpruneError
from ..io import write_text_atomic
from ..session import Session
from .spec import Chain, SweepError, SweepSpec, expand, read_spec, spec_from_dict, with_paths_resolved
from .work import COLUMNS, chain_rows, is_finished, prune_chain, train_dense

log = logging.getLogger(__name__)

STATE_FILE, TABLE_FILE, CHAINS, DENSE = "sweep.json", "results.csv", "chains", "dense"
FORMAT = 1
INSTALL_RAY = "pip install 'nbprune[sweep]' (or pip install 'ray>=2.9')"


class SweepFolder:
    """The folders and files of one sweep."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.state_file, self.table_file = self.root / STATE_FILE, self.root / TABLE_FILE

    def chain_dir(self, chain: Chain) -> Path:
        return self.root / CHAINS / chain.name

    def dense_dir(self, chain: Chain) -> Path:
        return self.root / DENSE / chain.dense

    def load_state(self, spec: SweepSpec | None) -> dict:
        """Return the saved state, or a new one; refuse a folder made by another spec, naming what differs
        (spec None: read what is there)."""
        if self.root.exists() and not self.root.is_dir():
            raise SweepError(f"sweep folder {self.root} is a file: choose a folder (--dir).")
        if not self.state_file.is_file():
            if self.root.is_dir() and any(self.root.iterdir()):
                raise SweepError(f"sweep folder {self.root} holds files but no {STATE_FILE}: it is not a sweep's "
                                 f"folder; choose an empty or new folder (--dir).")
            return {"format": FORMAT, "spec": spec.to_dict() if spec else {}, "chains": {}, "dense": {}}
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise SweepError(f"{self.state_file} is not readable JSON ({error}): it was damaged; move the sweep "
                             f"folder away to start again.") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise SweepError(f"{self.state_file} is not a sweep record of format {FORMAT}: choose another --dir.")
        differences = spec.differences(state["spec"]) if spec is not None else []
        if differences:
            raise SweepError(f"sweep folder {self.root} was made by another spec ({'; '.join(differences)}): run it "
                             f"with its own spec to continue, or choose another --dir for the new sweep.")
        return state

    def save_state(self, state: dict) -> None:
        write_text_atomic(self.state_file, json.dumps(state, indent=1) + "\n")

    def write_table(self, rows: list[dict], varied: list[str]) -> Path:
        """Write results.csv: one row per model, the varied settings and the seed first."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["chain", *varied, "seed", "iteration", *COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(self.table_file, buffer.getvalue())


def build_spec(spec: SweepSpec | Mapping | str | os.PathLike | None = None, *, grid: Mapping | None = None,
               seeds=None, fixed: Mapping | None = None, end_itr: int | None = None) -> SweepSpec:
    """Return the spec of a file (or mapping, or SweepSpec) with grid and fixed settings added, seeds and end_itr
    replaced where given."""
    if spec is None:
        values: dict[str, Any] = {}
    elif isinstance(spec, SweepSpec):
        values = spec.to_dict()
    elif isinstance(spec, Mapping):
        values = dict(spec)
    else:
        values = read_spec(spec).to_dict()
    values["grid"] = {**values.get("grid", {}), **(grid or {})}
    values["set"] = {**values.get("set", {}), **(fixed or {})}
    if seeds is not None:
        values["seeds"] = list(seeds)
    if end_itr is not None:
        values["end_itr"] = end_itr
    return spec_from_dict(values)


def import_ray():
    """Return the ray module, or say in one line how to install it."""
    try:
        import ray
    except ImportError:
        raise NbpruneError(f"nbprune sweep runs its chains on Ray, which is not installed here: {INSTALL_RAY}.") \
            from None
    return ray


def sweep(spec: SweepSpec | Mapping | str | os.PathLike | None = None, dir: str | os.PathLike = "sweep", *,
          grid: Mapping | None = None, seeds=None, fixed: Mapping | None = None, end_itr: int | None = None,
          address: str | None = None, workers: int | None = None, progress: bool = True) -> Path:
    """Run every chain of the sweep that is not finished yet, on Ray; return the path of results.csv.

    address: a Ray cluster (HOST:PORT), else $RAY_ADDRESS, else a local Ray with `workers` CPUs (default: all)."""
    spec = build_spec(spec, grid=grid, seeds=seeds, fixed=fixed, end_itr=end_itr)
    chains = with_paths_resolved(expand(spec))
    folder = SweepFolder(dir)
    state = folder.load_state(spec)
    Session.for_pruning_dir(folder.root).check_writable(folder.root)
    _check_data(chains)
    ray = import_ray()
    with Session.for_pruning_dir(folder.root).lock():
        folder.save_state(state)
        todo = [chain for chain in chains if not is_finished(chain, folder.chain_dir(chain), spec.end_itr)]
        for chain in chains:
            if chain not in todo:
                state["chains"].setdefault(chain.name, {"seconds": {}})["status"] = "finished"
        rows = {chain.name: _rows(folder, chain, state) for chain in chains}
        try:
            if todo:
                _run_on_ray(ray, folder, chains, todo, spec.end_itr, state, rows, address, workers, progress)
        finally:
            folder.save_state(state)
            folder.write_table([row for chain in chains for row in rows[chain.name]], spec.varied())
    failed = failed_chains(state)
    if failed:
        log.warning("%d chain(s) failed (errors in %s); run the sweep again to retry them", len(failed),
                    folder.state_file)
    return folder.table_file


def failed_chains(state: dict) -> dict[str, str]:
    """Return each failed chain's error, by chain name."""
    return {name: record.get("error") for name, record in state["chains"].items() if record.get("status") == "failed"}


def _check_data(chains: list[Chain]) -> None:
    """Make sure every dataset is in its data_root (downloading it once, here) before any worker reads it."""
    from ..data import read_raw

    for root, dataset in dict.fromkeys((chain.config.data.data_root, chain.config.data.dataset) for chain in chains):
        read_raw(root, dataset, download=True)


def _rows(folder: SweepFolder, chain: Chain, state: dict) -> list[dict]:
    seconds = {**state["dense"].get(chain.dense, {}), **state["chains"].get(chain.name, {}).get("seconds", {})}
    path = folder.chain_dir(chain)
    return chain_rows(chain, path, folder.root, seconds) if path.is_dir() else []


def _resources(chain: Chain) -> dict:
    """Return what one chain asks Ray for: its threads as CPUs, one GPU when it runs on CUDA."""
    return {"num_cpus": chain.config.threads or 1, "num_gpus": 1 if chain.config.device.startswith("cuda") else 0,
            "max_retries": 0}


def _start_ray(ray, address: str | None, workers: int | None) -> bool:
    """Connect to the cluster at `address` (or $RAY_ADDRESS), else start a local Ray; return whether we started
    the connection (and so end it)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            log.info("connecting to the Ray cluster at %s", address)
            ray.init(address=address, **options)
        else:
            log.info("starting a local Ray with %s CPUs", workers or os.cpu_count())
            ray.init(address="local", num_cpus=workers or os.cpu_count(), object_store_memory=256 * 1024 ** 2,
                     **options)
    except Exception as error:  # Ray raises plain Exception and ConnectionError for these
        where = f"connect to the Ray cluster at {address}" if address else "start a local Ray on this machine"
        fix = "check the address (`ray status` on the head node)" if address else \
            ("on a busy machine Ray's agents can miss their fixed 15 s to start: try again when it is quieter; "
             "otherwise Ray's logs under /tmp/ray/session_latest/logs say why")
        raise NbpruneError(f"could not {where} ({' '.join(str(error).split())[:200]}): {fix}. The sweep's "
                           f"finished chains are kept; run the same command again to continue.") from None
    return True


def _run_on_ray(ray, folder: SweepFolder, chains: list[Chain], todo: list[Chain], end_itr: int | None, state: dict,
                rows: dict, address: str | None, workers: int | None, progress: bool) -> None:
    """Run the chains in `todo` as Ray tasks, each after its dense model; record each as it ends."""
    started_here = _start_ray(ray, address, workers)
    try:
        dense_task, chain_task = ray.remote(train_dense), ray.remote(prune_chain)
        dense = {}
        for chain in todo:
            if chain.dense not in dense and not Session(folder.dense_dir(chain)).is_complete(0):
                dense[chain.dense] = dense_task.options(**_resources(chain)).remote(
                    chain.config, str(folder.dense_dir(chain)))
        tasks = {chain_task.options(**_resources(chain)).remote(
            chain, str(folder.chain_dir(chain)), str(folder.dense_dir(chain)), end_itr,
            *([dense[chain.dense]] if chain.dense in dense else [])): chain for chain in todo}
        for chain in todo:
            state["chains"].setdefault(chain.name, {"seconds": {}})["status"] = "running"
        _collect(ray, folder, tasks, dense, state, rows, len(chains), progress)
    finally:
        for record in state["chains"].values():
            if record.get("status") == "running":
                record["status"] = "unfinished"
        if started_here:
            ray.shutdown()


def _collect(ray, folder: SweepFolder, tasks: dict, dense: dict, state: dict, rows: dict, total: int,
             progress: bool) -> None:
    """Wait for the chains one by one: a line each, the overall bar, the state and table saved every time."""
    pending = list(tasks)
    bar = tqdm(total=total, initial=total - len(pending), desc="sweep chains", unit="chain", disable=not progress)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            chain = tasks[done[0]]
            record = state["chains"][chain.name]
            try:
                record["seconds"].update({str(k): v for k, v in ray.get(done[0]).items()})
                if chain.dense in dense:
                    state["dense"][chain.dense] = {str(k): v for k, v in ray.get(dense[chain.dense]).items()}
                record.update(status="finished", error=None)
            except ray.exceptions.RayError as error:
                record.update(status="failed", error=_error_text(error))
            rows[chain.name] = _rows(folder, chain, state)
            folder.save_state(state)
            bar.update()
            line = _line(chain, record, rows[chain.name])
            if progress:
                tqdm.write(line)
            else:
                log.info(line)
    except KeyboardInterrupt:
        for task in pending:
            ray.cancel(task, force=True)  # the sessions publish whole iterations only: each stays resumable
        raise
    finally:
        bar.close()


def _line(chain: Chain, record: dict, rows: list[dict]) -> str:
    if record["status"] == "failed":
        return f"chain {chain.name}: FAILED: {record['error']}"
    best = max(rows, key=lambda row: row["val_acc"] if row["val_acc"] != "" else -1, default=None)
    seconds = sum(record["seconds"].values())
    summary = f", best validation {best['val_acc']:.2f}% at {best['parameters']:,} parameters" if best else ""
    return f"chain {chain.name}: finished, {len(rows)} models in {seconds:.1f} s{summary}"


def _error_text(error: Exception) -> str:
    """Return one line saying what went wrong in a task: the chain's own exception when Ray passes it on."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {' '.join(str(cause).split())}"[:500]
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]

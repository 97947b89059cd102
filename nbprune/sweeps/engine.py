"""Running a sweep on Ray: every unfinished chain as a task, the dense models first, failures recorded per chain,
the table rewritten as chains finish. A rerun skips finished chains and continues the others from their sessions.

    <sweep>/
    ├── sweep.json            the spec and each chain's status, error and seconds
    ├── results.csv           one row per model
    ├── dense/<name>/         one session per dense model (iteration 0), shared by the chains that start from it
    └── chains/<name>/        one session per chain: iteration 0 copied from its dense model, then pruned

A folder's name is the settings that vary (readable, cut short) and a hash of every setting that decides its models;
its settings.json records those settings, and a folder whose record is not what its name stands for is refused.
Everything `nbprune prune` checks is checked for every chain before the first write, and what Ray could never
schedule (more CPUs or GPUs than a node has) before the first chain is submitted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from tqdm.auto import tqdm

from ..errors import NbpruneError
from ..files import check_fits, resolved, write_text_atomic
from ..session import Session, folder_lock
from .spec import SETTINGS_FILE, Chain, SweepError, SweepSpec, expand, read_spec, spec_from_dict
from .work import COLUMNS, chain_rows, is_finished, prune_chain, read_seconds, train_dense

log = logging.getLogger(__name__)

STATE_FILE, TABLE_FILE, CHAINS, DENSE = "sweep.json", "results.csv", "chains", "dense"
FORMAT = 2  # format 1: folder names without the hash of their settings
STATUSES = ("finished", "failed", "running", "unfinished")
INSTALL_RAY = "pip install 'nbprune[sweep]' (or pip install 'ray>=2.9')"
# The longest path a chain writes below its folder (an iteration moved aside, its temporary result file).
DEEPEST = "iterative_pruning/earlier_runs/before_run_1000_1000/1000/prune_w_retrain.partial/" \
          ".validation_results.txt.XXXXXXXX.tmp"
CONNECT_ATTEMPTS = "3"  # Ray's attempts to reach a cluster's GCS (its default, 20, waits up to 15 minutes)
PROBE_SECONDS = 10  # how long the address may take to accept a TCP connection
CHECK_BAR_DELAY = 1.0  # seconds of checks before their bar shows (a few chains on small data: no bar at all)
AUTHENTICATION = ("InvalidAuthToken", "Unauthenticated", "AuthenticationError", "auth_token")
# Set by the command line: the line it ends with when interrupted while Ray starts (None: raise KeyboardInterrupt).
INTERRUPTED_LINE: str | None = None


class ChainsFailedWarning(UserWarning):
    """Some chains of a sweep failed; their errors are in sweep.json and a rerun retries them."""


class SweepFolder:
    """The folders and files of one sweep."""

    def __init__(self, root: str | os.PathLike):
        self.root = resolved(root)
        self.state_file, self.table_file = self.root / STATE_FILE, self.root / TABLE_FILE

    def chain_dir(self, chain: Chain) -> Path:
        return self.root / CHAINS / chain.name

    def dense_dir(self, chain: Chain) -> Path:
        return self.root / DENSE / chain.dense

    def check_paths(self, chains: list[Chain]) -> None:
        """Refuse a folder whose deepest file would be longer than the file system takes."""
        longest = max([chain.name for chain in chains] + [chain.dense for chain in chains], key=len, default="x")
        check_fits(self.root, "sweep folder (--dir)", below=f"{CHAINS}/{longest}/{DEEPEST}")

    def load_state(self, spec: SweepSpec | None) -> dict:
        """Return the saved state, or a new one; refuse a folder made by another spec, naming what differs
        (spec None: read what is there)."""
        if self.root.exists() and not self.root.is_dir():
            raise SweepError(f"sweep folder {self.root} is a file: choose a folder (--dir).")
        if self.root.is_symlink() and not self.root.exists():  # resolved() leaves a link that leads back to itself
            raise SweepError(f"sweep folder {self.root} is a symbolic link that leads back to itself: choose a "
                             f"folder (--dir).")
        if self.state_file.exists() and not self.state_file.is_file():  # a folder (or a pipe) in its place
            raise SweepError(f"{self.state_file} is not a file (a folder or a pipe by that name): it is not a sweep's "
                             f"state; move it away to continue, or choose another --dir.")
        if not self.state_file.is_file():
            if self.root.is_dir() and any(self.root.iterdir()):
                raise SweepError(f"sweep folder {self.root} holds files but no {STATE_FILE}: it is not a sweep's "
                                 f"folder; choose an empty or new folder (--dir).")
            return {"format": FORMAT, "spec": spec.to_dict() if spec else {}, "chains": {}, "dense": {}}
        state = read_state(self.state_file)
        differences = spec.differences(state["spec"]) if spec is not None else []
        if differences:
            raise SweepError(f"sweep folder {self.root} was made by another spec ({'; '.join(differences)}): run it "
                             f"with its own spec to continue, or choose another --dir for the new sweep.")
        return state

    def check_settings(self, chains: list[Chain]) -> None:
        """Refuse a chain's or dense model's folder that exists but records other settings than its name stands
        for (or none while it holds a session): its models were not made for these settings."""
        folders = {self.chain_dir(chain): chain.settings for chain in chains}
        folders.update({self.dense_dir(chain): chain.dense_settings for chain in chains})
        for folder, settings in folders.items():
            if not folder.exists():
                continue
            try:
                recorded = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
            except FileNotFoundError:
                if not Session(folder).pruning.exists():
                    continue  # made but not started (killed before its first write): this sweep's to fill
                recorded = None
            except (OSError, ValueError):
                recorded = "unreadable"
            if recorded != settings:
                raise SweepError(f"{folder} holds models made under other settings than its name stands for "
                                 f"({_settings_differences(recorded, settings)}): it is not this sweep's. Move it "
                                 f"away (or choose another --dir) and run the sweep again.")

    def record_settings(self, chains: list[Chain]) -> None:
        """Write settings.json into every chain's and dense model's folder that has none yet."""
        folders = {self.chain_dir(chain): chain.settings for chain in chains}
        folders.update({self.dense_dir(chain): chain.dense_settings for chain in chains})
        for folder, settings in folders.items():
            if not (folder / SETTINGS_FILE).is_file():
                write_text_atomic(folder / SETTINGS_FILE, json.dumps(settings, indent=1, sort_keys=True) + "\n")

    def save_state(self, state: dict) -> None:
        write_text_atomic(self.state_file, json.dumps(state, indent=1) + "\n")

    def write_table(self, rows: list[dict], varied: list[str]) -> Path:
        """Write results.csv: one row per model, the varied settings and the seed first."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ["chain", *varied, "seed", "iteration", *COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(self.table_file, buffer.getvalue())


def _settings_differences(recorded: Any, settings: Mapping[str, Any]) -> str:
    if not isinstance(recorded, dict):
        return f"its {SETTINGS_FILE} is {'missing' if recorded is None else 'not readable JSON'}"
    names = sorted(set(recorded) | set(settings))
    differ = [f"{name}: recorded {recorded.get(name)!r}, this sweep's {settings.get(name)!r}" for name in names
              if recorded.get(name) != settings.get(name)]
    return "; ".join(differ[:3]) + ("; ..." if len(differ) > 3 else "")


def read_state(path: Path, formats: tuple[int, ...] = (FORMAT,)) -> dict:
    """Return a sweep.json's record, every part checked; refuse a damaged one in one line."""
    def damaged(what: str) -> SweepError:
        return SweepError(f"{path} is damaged ({what}): it is not the record a sweep writes; restore it, or move the "
                          f"sweep folder away to start again.")

    try:
        state = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise damaged("not UTF-8 text: a binary file or another encoding") from None
    except OSError as error:
        raise SweepError(f"{path} cannot be read ({error.strerror}): check the file.") from None
    except (ValueError, RecursionError) as error:
        raise damaged(f"not readable JSON: {' '.join(str(error).split())[:120]}") from None
    if not isinstance(state, dict):
        raise damaged(f"a JSON {type(state).__name__}, expected an object")
    if state.get("format") == 1 and 1 not in formats:
        raise SweepError(f"{path} was written by an older nbprune (sweep format 1), whose folder names did not "
                         f"identify their settings exactly: run the sweep again in a new --dir (or move this folder "
                         f"away).")
    if state.get("format") not in formats:
        raise damaged(f"format {state.get('format')!r}, expected {FORMAT}")
    if not isinstance(state.get("spec"), dict):
        raise damaged(f"spec {_short(state.get('spec'))}, expected an object")
    for part in ("chains", "dense"):
        records = state.get(part)
        if not isinstance(records, dict) or not all(isinstance(record, dict) for record in records.values()):
            raise damaged(f"{part} {_short(records)}, expected an object of objects")
    for name, record in state["chains"].items():
        if record.get("status", "unfinished") not in STATUSES or not _seconds(record.get("seconds", {})) or \
                not isinstance(record.get("error"), (str, type(None))):
            raise damaged(f"chain {name}: {_short(record)}, expected a status of {', '.join(STATUSES)}, finite "
                          f"seconds and an error text")
        record.setdefault("seconds", {})  # left out, as the check allows: none yet (the sweep adds to them)
    for name, seconds in state["dense"].items():
        if not _seconds(seconds):
            raise damaged(f"dense model {name}: {_short(seconds)}, expected finite seconds per iteration")
    return state


def _no_constant(word: str):
    raise ValueError(f"{word} is not a number JSON allows")


def _seconds(values: Any) -> bool:
    return isinstance(values, dict) and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        for value in values.values())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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

    address: a Ray cluster (HOST:PORT), else $RAY_ADDRESS, else a local Ray with `workers` CPUs (default: all).
    Everything is checked before the first write: the spec, the folder, and what `nbprune prune` checks for every
    chain (settings, retain.txt, data, teacher file, a resume's session)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise NbpruneError(f"workers={workers!r} is not allowed: expected a whole number from 1 (--workers).")
    spec = build_spec(spec, grid=grid, seeds=seeds, fixed=fixed, end_itr=end_itr)
    chains = expand(spec)
    folder = SweepFolder(dir)
    folder.check_paths(chains)
    state = folder.load_state(spec)
    folder.check_settings(chains)
    Session.for_pruning_dir(folder.root).check_writable(folder.root, "sweep folder", "--dir")
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray = import_ray()
    local = address is None and not ray.is_initialized()
    check_chains(chains, folder, spec.end_itr, local, workers, progress)
    Session.for_pruning_dir(folder.root).check_free("sweep folder")
    todo = [chain for chain in chains if not is_finished(chain, folder.chain_dir(chain), spec.end_itr)]
    with _ray(ray, address, workers, todo), folder_lock(folder.root, "sweep folder"):
        folder.record_settings(todo)
        finished = {chain.name for chain in chains} - {chain.name for chain in todo}
        for name in finished:
            state["chains"].setdefault(name, {"seconds": {}})["status"] = "finished"
        folder.save_state(state)
        rows = {chain.name: _rows(folder, chain, state) for chain in chains}
        try:
            if todo:
                _run_on_ray(ray, folder, chains, todo, spec.end_itr, state, rows, progress)
        finally:
            folder.save_state(state)
            folder.write_table([row for chain in chains for row in rows[chain.name]], spec.varied())
    failed = failed_chains(state)
    if failed:
        warnings.warn(f"{len(failed)} chain(s) failed (errors in {folder.state_file}); run the sweep again to retry "
                      f"them", ChainsFailedWarning, stacklevel=2)
    return folder.table_file


def failed_chains(state: dict) -> dict[str, str]:
    """Return each failed chain's error, by chain name."""
    return {name: record.get("error") for name, record in state["chains"].items() if record.get("status") == "failed"}


# --- the checks before the first write --------------------------------------------------------------------------
def check_chains(chains: list[Chain], folder: SweepFolder, end_itr: int | None, local: bool,
                 workers: int | None, progress: bool = False) -> None:
    """Check every chain as `nbprune prune` checks a run before its first write (settings, device, retain.txt, data
    and its split, teacher file, the session a resume continues), without training and writing nothing but the
    data a missing dataset downloads; on a local Ray, also that each chain's threads fit the CPUs it has. With
    `progress`, a bar counts the chains checked once they take a while (10,000 took 130 s on a loaded machine)."""
    from ..iterative import plan_run

    cpus = workers or os.cpu_count() or 1
    groups: dict[tuple, list[Chain]] = {}
    for chain in chains:  # the data is read once per (dataset, folder, split, seed, batch size)
        data = chain.config.data
        groups.setdefault((data.dataset, data.data_root, data.subset, data.val_size, data.batch_size,
                           chain.config.seed, chain.config.device if local else "cpu"), []).append(chain)
    with tqdm(total=len(chains), desc="checking chains", unit="chain", disable=not progress, leave=False,
              delay=CHECK_BAR_DELAY) as bar:
        for group in groups.values():
            loaders = None
            for chain in group:
                threads = chain.config.threads or 1
                if local and threads > cpus:
                    raise SweepError(f"chain {chain.name}: threads={threads} asks Ray for {threads} CPUs per chain, "
                                     f"but the local Ray has {cpus} ("
                                     f"{'--workers' if workers else 'the cores of this machine'}): Ray would wait for "
                                     f"them forever. Set threads to at most {cpus}"
                                     f"{' or raise --workers' if workers else ''}.")
                config = chain.config if local else chain.config.replace(device="cpu")  # the nodes': see _ray
                try:
                    experiment, _ = plan_run(config, Session(folder.chain_dir(chain)), "auto", end_itr,
                                             progress=False, download=True, data=loaders)
                except NbpruneError as error:
                    raise SweepError(f"chain {chain.name}: {' '.join(str(error).split())}") from None
                loaders = loaders or _loaders_of(experiment)
                bar.update()


def _loaders_of(experiment) -> Any:
    """Return the data a planned experiment holds, to plan the next chain of the same data with."""
    from ..data import DataSplits

    return DataSplits(train_loader=experiment.train_loader, val_loader=experiment.val_loader,
                      test_loader=experiment.test_loader, spec=experiment.train_loader.spec)


def _rows(folder: SweepFolder, chain: Chain, state: dict) -> list[dict]:
    seconds = {**state["dense"].get(chain.dense, {}), **read_seconds(folder.dense_dir(chain)),
               **state["chains"].get(chain.name, {}).get("seconds", {}), **read_seconds(folder.chain_dir(chain))}
    path = folder.chain_dir(chain)
    return chain_rows(chain, path, folder.root, seconds) if path.is_dir() else []


def _resources(chain: Chain) -> dict:
    """Return what one chain asks Ray for: its threads as CPUs, one GPU when it runs on CUDA."""
    return {"num_cpus": chain.config.threads or 1, "num_gpus": 1 if chain.config.device.startswith("cuda") else 0,
            "max_retries": 0}


# --- Ray: started or reached, checked, ended ---------------------------------------------------------------------
@contextlib.contextmanager
def _ray(ray, address: str | None, workers: int | None, todo: list[Chain]) -> Iterator[None]:
    """Start a local Ray (or reach the cluster at `address`) when there are chains to run, refuse chains no node can
    ever run, and end what was started here; SIGINT and SIGTERM are KeyboardInterrupts meanwhile."""
    if not todo:
        yield
        return
    handlers, started = _current_handlers(), False
    try:
        started = _start_ray(ray, address, workers)
        _check_resources(ray, todo, f"the Ray cluster at {address}" if address else "the Ray this sweep runs on")
        yield
    finally:
        if started:
            _quietly(signal.SIG_IGN)  # a second Ctrl-C does not break the shutdown (see _no_failure_signal_handler)
            ray.shutdown()
        _restore_handlers(handlers)


def _start_ray(ray, address: str | None, workers: int | None) -> bool:
    """Connect to the cluster at `address`, else start a local Ray; return whether we started the connection (and
    so end it). A connection is bounded: an address where nothing answers is refused at once, Ray's attempts are
    few, and a refusal for want of the cluster's token says so."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        _probe(address)
    with _starting(bool(address)) as said:
        try:
            with _signals_held(), _no_failure_signal_handler():
                if address:
                    log.info("connecting to the Ray cluster at %s", address)
                    ray.init(address=address, **options)
                else:
                    log.info("starting a local Ray with %s CPUs", workers or os.cpu_count())
                    ray.init(address="local", num_cpus=workers or os.cpu_count(),
                             object_store_memory=256 * 1024 ** 2, **options)
        except Exception as error:  # Ray raises plain Exception and ConnectionError for these
            raise NbpruneError(_start_failure(error, said(), address)) from None
    return True


def _start_failure(error: Exception, said: str, address: str | None) -> str:
    """Return the one line saying why Ray could not start or connect, and the fix."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    kept = "The sweep's finished chains are kept; run the same command again to continue."
    if address and any(word in f"{text} {said}" for word in AUTHENTICATION):
        return (f"could not connect to the Ray cluster at {address}: it uses token authentication (Ray said "
                f"InvalidAuthToken or no token) and this machine has no token for it, or another one. Set "
                f"RAY_AUTH_MODE=token and the cluster's token here, as on every node (RAY_AUTH_TOKEN, "
                f"RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token copied from the head node; see docs/sweep.md). {kept}")
    where = f"connect to the Ray cluster at {address}" if address else "start a local Ray on this machine"
    fix = "check the address (`ray status` on the head node) and that this machine can reach every node" \
        if address else ("on a busy machine Ray's agents can miss their fixed 15 s to start: try again when it is "
                         "quieter; otherwise Ray's logs under /tmp/ray/session_latest/logs say why")
    return f"could not {where} ({text[:200]}): {fix}. {kept}"


def _probe(address: str) -> None:
    """Refuse an address that is not HOST:PORT or where nothing accepts a connection, before Ray tries it (Ray
    retries an unreachable address for minutes)."""
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NbpruneError(f"--address {address!r} is not allowed: expected HOST:PORT, the address `ray start "
                           f"--head` prints (e.g. 10.0.0.5:6379).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NbpruneError(f"could not connect to the Ray cluster at {address}: nothing answers there ({reason}). "
                           f"Check the address (`ray status` on the head node; the head listens on port 6379 unless "
                           f"`ray start --head --port` says otherwise) and that the head node runs. The sweep's "
                           f"finished chains are kept; run the same command again to continue.") from None


@contextlib.contextmanager
def _starting(connecting: bool) -> Iterator[Callable[[], str]]:
    """While Ray starts: its native output goes to a file (yields a function returning it), an interrupt ends the
    command at once with one line (the command line) or is a KeyboardInterrupt (a library call), and a connection
    makes few attempts. Ray itself installs signal handlers meanwhile, and an exception raised inside its start can
    crash the interpreter at exit; os._exit ends the command before that, and nothing of the sweep is written yet
    (a local Ray's processes are ended by its reaper)."""
    stream = tempfile.TemporaryFile()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(stream.fileno(), 2)
    environment = {"RAY_gcs_server_port_wait_time_s": CONNECT_ATTEMPTS} if connecting else {}
    before = {name: os.environ.get(name) for name in environment}
    os.environ.update({name: value for name, value in environment.items() if before[name] is None})

    def stop(*_) -> None:
        if INTERRUPTED_LINE is None:
            raise KeyboardInterrupt
        os.write(saved, (INTERRUPTED_LINE + "\n").encode())
        os._exit(130)

    def said() -> str:
        stream.seek(0)
        return stream.read().decode("utf-8", "replace")

    _quietly(stop)
    try:
        yield said
    except (KeyboardInterrupt, SystemExit):  # Ray's own SIGTERM handler calls sys.exit
        stop()
        raise KeyboardInterrupt from None
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        stream.close()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
        _interrupts_as_keyboard_interrupt()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while Ray starts, then let them through to the handler set before: during
    ray.init, Ray's core worker installs a native SIGTERM handler, and a signal it caught half-way through the start
    could hang the command (seen once in a loaded test run). The threads Ray starts meanwhile inherit the hold, so
    the signal waits for the main thread, which takes it once ray.init has returned and the handlers are ours again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = _current_handlers()
    signal.pthread_sigmask(signal.SIG_BLOCK, set(handlers))
    try:
        yield
    finally:
        _restore_handlers(handlers)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(handlers))


@contextlib.contextmanager
def _no_failure_signal_handler() -> Iterator[None]:
    """Start this driver's Ray core worker without its native failure signal handler (Abseil's; Ray's workers keep
    theirs): on SIGTERM it dumps a stack trace and aborts, and ray.shutdown, which ends the core worker first, sets
    SIGTERM back to the default natively, so a SIGTERM while Ray's processes were stopped (seconds) killed the
    command with no line (exit 143) however the sweep had set SIGTERM aside for its shutdown."""
    from ray._private import ray_constants

    before = getattr(ray_constants, "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", False)
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True  # read when ray.init builds the core worker
    try:
        yield
    finally:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = before


def _check_resources(ray, chains: list[Chain], where: str) -> None:
    """Refuse a chain that asks for more CPUs (or a GPU) than any node has: Ray would wait for one forever."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive", True)]
    for chain in {(_resources(chain)["num_cpus"], _resources(chain)["num_gpus"]): chain for chain in chains}.values():
        cpus, gpus = _resources(chain)["num_cpus"], _resources(chain)["num_gpus"]
        if not any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
            most_cpus = max((node.get("CPU", 0) for node in nodes), default=0)
            most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
            raise SweepError(f"chain {chain.name} asks Ray for {cpus} CPU(s){' and a GPU' if gpus else ''} on one "
                             f"node, but no node of {where} has that (the largest: {most_cpus:g} CPUs, {most_gpus:g} "
                             f"GPUs), so Ray would wait for one forever: lower threads"
                             f"{' or set device=cpu' if gpus else ''}, or add a node that has them.")


def _current_handlers() -> dict | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(handlers: dict | None) -> None:
    if handlers is not None:
        for number, handler in handlers.items():
            signal.signal(number, handler if handler is not None else signal.default_int_handler)


def _quietly(handler) -> None:
    """Handle SIGINT and SIGTERM with `handler` (from the main thread only: Python allows no other)."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, handler)


def _interrupts_as_keyboard_interrupt() -> None:
    """Make SIGINT and SIGTERM KeyboardInterrupts again: ray.init installed a SIGTERM handler of its own and its
    core worker a native one that dumps a stack trace and aborts; installing Python's handler replaces both."""
    _quietly(signal.default_int_handler)


def _run_on_ray(ray, folder: SweepFolder, chains: list[Chain], todo: list[Chain], end_itr: int | None, state: dict,
                rows: dict, progress: bool) -> None:
    """Run the chains in `todo` as Ray tasks, each after its dense model; record each as it ends."""
    try:
        dense_task, chain_task = ray.remote(train_dense), ray.remote(prune_chain)
        dense = {}
        for chain in todo:
            if chain.dense not in dense and not Session(folder.dense_dir(chain)).is_complete(0):
                dense[chain.dense] = dense_task.options(**_resources(chain)).remote(
                    chain.dense_config, str(folder.dense_dir(chain)))
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
    finally:
        # Interrupted, the tasks still running end with Ray's shutdown (a local Ray's processes end; a cluster ends
        # the tasks of a driver that is gone), and each chain stays resumable: sessions publish whole iterations
        # only. Not ray.cancel(force=True): a task's reply racing its cancellation fails a check in Ray's core
        # worker (task_manager.cc: "Tried to complete task that was not pending") and the driver dies without a line.
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

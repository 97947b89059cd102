"""A session folder: where every step's files live, which iterations are complete, the run record, and the lock
that keeps two runs apart. The one place that knows the layout:

    <session>/
    ├── data/  model/  retain/retain.txt  test/chosen.json  deploy/  notebooks/  compare/comparison.csv
    └── iterative_pruning/
        ├── run.json                              every run's configuration, appended
        ├── retain.txt                            the neurons each iteration kept, as run
        ├── <i>/prune_w_retrain/{best_model.pth, train_results.txt, validation_results.txt}
        ├── prune_w_retrain_results/{validations.txt, accuracies.png, losses.png}
        └── earlier_runs/before_run_<n>/          what a run that started at iteration k found from k on
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .config import project_root
from .errors import SessionError
from .io import read_table, write_text_atomic

DATA, MODEL, RETAIN, PRUNING, TEST, DEPLOY, NOTEBOOKS = ("data", "model", "retain", "iterative_pruning", "test",
                                                        "deploy", "notebooks")
COMPARE = "compare"  # 07_compare's table and figure of the criteria compared
STAGE, RESULTS = "prune_w_retrain", "prune_w_retrain_results"
MODEL_FILE, TRAIN_FILE, VALIDATION_FILE = "best_model.pth", "train_results.txt", "validation_results.txt"
ITERATION_FILES = (MODEL_FILE, TRAIN_FILE, VALIDATION_FILE)
RETAIN_FILE, RUN_RECORD, LOCK_FILE = "retain.txt", "run.json", ".nbprune.lock"
RESULT_FILES = ("validations.txt", "accuracies.png", "losses.png")
REFERENCE_COLUMNS = ("Train_Loss", "Test_Loss", "Train_Accuracy", "Test_Accuracy", "PercentageRetain")
RESULT_COLUMNS = REFERENCE_COLUMNS  # the reference workflow's header; nbprune adds the columns below after it
ADDED_COLUMNS = ("Parameters", "Val_Loss", "Val_Accuracy")
PARTIAL, STALE = ".partial", ".stale"
EARLIER_RUNS = "earlier_runs"
# The tokens of the session locks held by this process or the processes that started it (the workbook's kernels).
LOCK_TOKENS = "NBPRUNE_LOCK_TOKENS"
DEFAULT_NAME = "default"
# Which notebook (and command) makes each part, for the messages that say what is missing.
MADE_BY = {DATA: "01_data", MODEL: "02_model", RETAIN: "03_retention (or `nbprune retain`)",
           PRUNING: "04_iterative_pruning (or `nbprune prune`)", TEST: "05_test", DEPLOY: "06_deploy",
           COMPARE: "07_compare"}


class Session:
    """The folders and files of one session; nothing is created until a step writes."""

    def __init__(self, root: str | os.PathLike, pruning: str | os.PathLike | None = None):
        self.root = Path(root)
        self.pruning = Path(pruning) if pruning is not None else self.root / PRUNING

    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> "Session":
        """Return the session at `path`: a session folder, or its pruning folder (iterative_pruning, or any folder
        that holds iteration folders <i>/prune_w_retrain or a run.json: the reference workflow's my_dir, which
        `IterativePruning.run(model, data, my_dir)` fills); None: the default."""
        if path is None:
            return cls.default()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SessionError(f"session folder {path} is a file: choose a folder (--session-dir / session_dir).")
        if path.name == PRUNING or (not (path / PRUNING).is_dir() and is_pruning_folder(path)):
            return cls.for_pruning_dir(path)
        return cls(path)

    @classmethod
    def for_pruning_dir(cls, pruning: str | os.PathLike) -> "Session":
        """Return the session whose iteration folders live in `pruning` (the reference workflow's `my_dir`)."""
        pruning = Path(pruning)
        return cls(pruning.parent, pruning)

    @classmethod
    def default(cls) -> "Session":
        """Return <project>/sessions/default: the same folder today, tomorrow and from every door."""
        return cls(project_root() / "sessions" / DEFAULT_NAME)

    def __repr__(self) -> str:
        return f"Session({str(self.root)!r})"

    # --- parts ----------------------------------------------------------------------------------------------
    def part(self, name: str) -> Path:
        """Return the folder of one part: data, model, retain, test, deploy or notebooks."""
        return self.pruning if name == PRUNING else self.root / name

    @property
    def retain_file(self) -> Path:
        """Return 03's schedule, retain/retain.txt."""
        return self.part(RETAIN) / RETAIN_FILE

    @property
    def dense_model_file(self) -> Path:
        """Return the model 02 trained, model/best_model.pth."""
        return self.part(MODEL) / MODEL_FILE

    @property
    def chosen_file(self) -> Path:
        """Return 05's choice, test/chosen.json."""
        return self.part(TEST) / "chosen.json"

    @property
    def results(self) -> Path:
        """Return prune_w_retrain_results/, where validations.txt and the curves go."""
        return self.pruning / RESULTS

    @property
    def run_retain_file(self) -> Path:
        """Return the pruning run's own retain.txt: what each iteration actually kept."""
        return self.pruning / RETAIN_FILE

    def iteration_dir(self, iteration: int) -> Path:
        """Return <pruning>/<iteration>/prune_w_retrain."""
        return self.pruning / str(iteration) / STAGE

    def model_file(self, iteration: int) -> Path:
        return self.iteration_dir(iteration) / MODEL_FILE

    def is_complete(self, iteration: int) -> bool:
        """Return whether an iteration's folder holds its model and both result files."""
        folder = self.iteration_dir(iteration)
        return all((folder / name).is_file() for name in ITERATION_FILES)

    def iterations(self) -> list[int]:
        """Return, in order, the iterations that are complete."""
        if not self.pruning.is_dir():
            return []
        found = [int(folder.name) for folder in self.pruning.iterdir()
                 if re.fullmatch(r"[0-9]{1,4}", folder.name) and folder.is_dir()]
        return sorted(iteration for iteration in found if self.is_complete(iteration))

    def require(self, path: Path, part: str) -> Path:
        """Return `path` if it exists, else raise a SessionError naming the step that makes it and this folder."""
        if path.exists():
            return path
        raise SessionError(f"{path.relative_to(self.root) if path.is_relative_to(self.root) else path} is missing "
                           f"in the session folder {self.root.resolve()}: run notebook {MADE_BY[part]} first for "
                           f"this session, or point session_dir at the session that has it.")

    # --- the summary ----------------------------------------------------------------------------------------
    def summary(self) -> list[dict]:
        """Return one record per complete iteration: its results row, hidden sizes, inputs kept, parameters."""
        from .modelfile import read_model_file

        records = []
        iterations = self.iterations()
        self._check_one_run(iterations)
        for iteration in iterations:
            header, rows = read_table(self.iteration_dir(iteration) / VALIDATION_FILE)
            record = {"iteration": iteration, **dict(zip(header, rows[0]))}
            state, _ = read_model_file(self.model_file(iteration))
            weights = [value for key, value in state.items() if key.endswith("weight")]
            record["hidden"] = tuple(int(w.shape[0]) for w in weights[:-1])
            record["inputs"] = int(weights[0].shape[1])
            record["parameters"] = sum(int(value.numel()) for key, value in state.items()
                                       if key.endswith(("weight", "bias")))
            records.append(record)
        return records

    def finished(self) -> list[dict]:
        """Return summary(), or raise SessionError naming the step to run when no iteration is complete here."""
        records = self.summary()
        if not records:
            raise SessionError(f"no finished pruning iteration in the session folder {self.root.resolve()} "
                               f"(looked in {self.pruning}): run notebook {MADE_BY[PRUNING]} first for this "
                               f"session, or point session_dir at the session where it ran.")
        return records

    # --- the run record -------------------------------------------------------------------------------------
    def runs(self) -> list[dict]:
        """Return every run recorded in run.json, oldest first (a session from before the list form: its one run)."""
        path = self.pruning / RUN_RECORD
        if not path.is_file():
            return []
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise SessionError(f"{path} is not readable JSON ({error}): it was damaged; move it away to start "
                               f"a new record.") from None
        if isinstance(record, dict) and isinstance(record.get("runs"), list):
            return record["runs"]
        return [record]

    def record_run(self, run: dict) -> int:
        """Append one run's record to run.json (never overwriting what earlier runs recorded); return its number."""
        runs = self.runs()
        number = self.next_run_number(runs)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        runs.append(dict(run, run=number, started=started))
        write_text_atomic(self.pruning / RUN_RECORD, json.dumps({"runs": runs}, indent=2) + "\n")
        return number

    @staticmethod
    def next_run_number(runs: list[dict]) -> int:
        """Return the number the next recorded run gets: one more than the last (runs count from 1)."""
        return max((_run_number(run, position) for position, run in enumerate(runs)), default=0) + 1

    def run_of(self, iteration: int, runs: list[dict]) -> dict | None:
        """Return the record of the run that made `iteration`: the last one whose iterations, from the first it
        wrote, include it (a run that starts at k sets every later iteration aside first); None if unrecorded."""
        found = None
        for run in runs:
            first = _first_iteration(run)
            if first is not None and iteration >= first and iteration in _scheduled(run):
                found = run
        return found

    def _check_one_run(self, iterations: list[int]) -> None:
        """Raise SessionError when the complete iterations come from runs that do not continue each other."""
        runs = self.runs()
        makers = {iteration: self.run_of(iteration, runs) for iteration in iterations}
        for before, after in zip(iterations, iterations[1:]):
            older, newer = makers[before], makers[after]
            if older is None or newer is None or older is newer or _first_iteration(newer) == after:
                continue  # unrecorded, one run, or a run that resumed from `before`
            earlier, later = sorted((older, newer), key=lambda run: _run_number(run, runs.index(run)))
            stale = [iteration for iteration in iterations if makers[iteration] is earlier]
            fresh = [iteration for iteration in iterations if makers[iteration] is later]
            raise SessionError(
                f"the pruning folder {self.pruning} mixes two runs that do not continue each other: {_span(fresh)} "
                f"from run {_run_number(later, runs.index(later))}, {_span(stale)} from the earlier run "
                f"{_run_number(earlier, runs.index(earlier))} (run.json). Their results are never joined: move "
                f"{_span(stale)} out of {self.pruning}, or run from scratch again (which moves an earlier run aside "
                f"into {EARLIER_RUNS}/).")

    def set_aside(self, first: int, run_number: int) -> Path | None:
        """Move the iterations from `first` on, the run's retain.txt and its results into
        earlier_runs/before_run_<run_number>/, so that a run starting at `first` never joins what an earlier run
        left there; return that folder (None when there was nothing to move)."""
        roots = self._iteration_roots() if self.pruning.is_dir() else []
        later = sorted((folder for folder in roots if int(folder.name) >= first and (folder / STAGE).exists()),
                       key=lambda folder: int(folder.name))  # an empty <k>/ of an interrupted run stays
        if not later:
            return None
        target = self.pruning / EARLIER_RUNS / f"before_run_{run_number}"
        suffix = 1
        while target.exists():  # run.json was moved away and the numbers start again
            suffix += 1
            target = target.with_name(f"before_run_{run_number}_{suffix}")
        target.mkdir(parents=True)
        for path in [*later, self.results, self.run_retain_file]:
            if path.exists():
                os.replace(path, target / path.name)
        return target

    # --- writing safely -------------------------------------------------------------------------------------
    def check_writable(self, folder: Path | None = None, what: str = "session folder",
                       option: str = "session_dir=... or --session-dir") -> None:
        """Raise SessionError unless `folder` (default: the pruning folder) can be created and written; the message
        calls it `what` and names the `option` that chooses it."""
        folder = folder or self.pruning
        blocker = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise SessionError(f"{what} {folder} cannot be created: {blocker} is a file. Choose a folder you can "
                               f"write to ({option}).")
        if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
            raise SessionError(f"{what} {folder} cannot be written ({blocker} is read-only): choose a folder you can "
                               f"write to ({option}).")

    @property
    def lock_folder(self) -> Path:
        """Return the folder whose .nbprune.lock every door takes: the session folder (or, for a pruning folder
        not named iterative_pruning, as the reference workflow's my_dir may be, that folder itself)."""
        return self.root if self.pruning == self.root / PRUNING else self.pruning

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the session exclusively; another process is refused, naming the holder's PID. Processes the
        holder starts (the workbook's kernels) share its lock."""
        with folder_lock(self.lock_folder, "session folder"):
            yield

    def check_free(self, what: str = "session folder") -> None:
        """Raise SessionError if another process holds the session's lock (`what` names the folder); create
        nothing."""
        path = self.lock_folder / LOCK_FILE
        try:
            handle = os.open(path, os.O_RDWR)  # Windows locks only what a handle may write
        except OSError:  # no lock file (or a read-only one, which nobody can hold): free
            return
        try:
            if not _try_lock(handle):
                _refuse_unless_shared(handle, self.lock_folder, what)
        finally:
            os.close(handle)

    def clean_leftovers(self) -> None:
        """Undo what an interrupted run left: put back a moved-aside iteration, remove its partial folders and
        nbprune's own temporary files, by name, inside the folders nbprune owns."""
        if not self.pruning.is_dir():
            return
        for folder in self._iteration_roots():
            stale, partial, final = folder / (STAGE + STALE), folder / (STAGE + PARTIAL), folder / STAGE
            if stale.is_dir() and not final.exists():
                os.replace(stale, final)
            for leftover in (stale, partial):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
            _remove_temporaries(final, ITERATION_FILES)
        _remove_temporaries(self.pruning, (RUN_RECORD, RETAIN_FILE))
        _remove_temporaries(self.results, RESULT_FILES)

    def _iteration_roots(self) -> list[Path]:
        return [folder for folder in self.pruning.iterdir()
                if re.fullmatch(r"[0-9]{1,4}", folder.name) and folder.is_dir()]

    def publish(self, partial: Path, iteration: int) -> Path:
        """Move a finished iteration folder into place in one rename, replacing an older one."""
        final = self.iteration_dir(iteration)
        stale = final.with_name(STAGE + STALE)
        if final.exists():
            os.replace(final, stale)
        os.replace(partial, final)
        if stale.exists():
            shutil.rmtree(stale)
        return final

    def partial_dir(self, iteration: int) -> Path:
        """Return the folder an iteration is built in before it is published."""
        return self.iteration_dir(iteration).with_name(STAGE + PARTIAL)


def is_pruning_folder(path: Path) -> bool:
    """Return whether `path` holds what a pruning run writes: a run.json, or iteration folders
    <i>/prune_w_retrain (finished, partial or moved aside)."""
    if not path.is_dir():
        return False
    if (path / RUN_RECORD).is_file():
        return True
    return any(re.fullmatch(r"[0-9]{1,4}", folder.name) and any(
        (folder / name).is_dir() for name in (STAGE, STAGE + PARTIAL, STAGE + STALE)) for folder in path.iterdir())


def _run_number(run: dict, position: int) -> int:
    """Return a recorded run's number (records from before numbering: their place in the list, from 1)."""
    number = run.get("run")
    return number if isinstance(number, int) and not isinstance(number, bool) else position + 1


def _first_iteration(run: dict) -> int | None:
    """Return the first iteration a recorded run wrote (None: it wrote none); older records: its begin_itr, and
    'auto' as a continuation of the iterations before it."""
    if "first_iteration" in run:
        first = run["first_iteration"]
        return first if isinstance(first, int) and not isinstance(first, bool) else None
    begin = run.get("begin_itr")
    return begin if isinstance(begin, int) and not isinstance(begin, bool) else 0


def _scheduled(run: dict) -> set[int]:
    """Return the iterations of a recorded run's schedule."""
    schedule = run.get("schedule")
    if not isinstance(schedule, list):
        return set()
    return {row[0] for row in schedule if isinstance(row, list) and row and isinstance(row[0], int)}


def _span(iterations: list[int]) -> str:
    """Return 'iteration 3', 'iterations 1, 2' or 'iterations 2-9'."""
    if len(iterations) == 1:
        return f"iteration {iterations[0]}"
    return "iterations " + (", ".join(map(str, iterations)) if len(iterations) < 4 else
                            f"{iterations[0]}-{iterations[-1]}")


def _remove_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Remove the temporary files nbprune's atomic writes of `names` leave when killed (.NAME.XXXXXXXX.tmp)."""
    if not folder.is_dir():
        return
    for name in names:
        for leftover in folder.glob(f".{name}.*.tmp"):  # the names are nbprune's own: no glob characters
            if re.fullmatch(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp", leftover.name) and leftover.is_file():
                leftover.unlink()


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold an exclusive OS lock on `folder`/.nbprune.lock for the block; it dies with the process (no stale lock).

    The file says the holder's PID and a random token; the token is handed to the processes the holder starts
    (through $NBPRUNE_LOCK_TOKENS), which may then enter while it holds the lock. Anyone else is refused."""
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise SessionError(f"{what} {folder} cannot be written ({error.strerror}): choose a folder you can write "
                           f"to.") from None
    try:
        if not _try_lock(handle):
            _refuse_unless_shared(handle, folder, what)
            yield  # the process that started this one holds the lock for it
            return
        token = secrets.token_hex(16)
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()} {token}\n".encode(), 0)
        with _sharing(token):
            yield
    finally:
        os.close(handle)  # closing releases the lock


def _refuse_unless_shared(handle: int, folder: Path, what: str) -> None:
    """Raise SessionError naming the holder's PID unless the holder handed this process its token."""
    words = os.pread(handle, 200, 0).decode("ascii", "replace").split()
    holder, token = (words[0] if words else "unknown"), (words[1] if len(words) > 1 else "")
    if token and token in os.environ.get(LOCK_TOKENS, "").split(","):
        return
    raise SessionError(f"{what} {folder} is in use by another nbprune run (PID {holder}): wait for it to "
                       f"finish, or choose another {what}.")


@contextmanager
def _sharing(token: str) -> Iterator[None]:
    """Hand `token` to the processes started inside the block (they inherit the environment)."""
    before = os.environ.get(LOCK_TOKENS)
    os.environ[LOCK_TOKENS] = ",".join(filter(None, [token, before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOCK_TOKENS, None)
        else:
            os.environ[LOCK_TOKENS] = before


def _try_lock(handle: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False

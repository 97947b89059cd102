"""A session folder: where every step's files live, which iterations are complete, and how a finished iteration is
published in one rename (the run record is nbprune.runs', the lock nbprune.locks'). The one place that knows the
layout:

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

import os
import re
import shutil
from pathlib import Path

from .config import project_root
from .errors import SessionError
from .files import read_table
from .locks import check_free, folder_lock
from .runs import EARLIER_RUNS, RUN_RECORD, RunHistory

DATA, MODEL, RETAIN, PRUNING, TEST, DEPLOY, NOTEBOOKS = ("data", "model", "retain", "iterative_pruning", "test",
                                                        "deploy", "notebooks")
COMPARE = "compare"  # 07_compare's table and figure of the criteria compared
STAGE, RESULTS = "prune_w_retrain", "prune_w_retrain_results"
MODEL_FILE, TRAIN_FILE, VALIDATION_FILE = "best_model.pth", "train_results.txt", "validation_results.txt"
ITERATION_FILES = (MODEL_FILE, TRAIN_FILE, VALIDATION_FILE)
RETAIN_FILE = "retain.txt"
RESULT_FILES = ("validations.txt", "accuracies.png", "losses.png")
REFERENCE_COLUMNS = ("Train_Loss", "Test_Loss", "Train_Accuracy", "Test_Accuracy", "PercentageRetain")
ADDED_COLUMNS = ("Parameters", "Val_Loss", "Val_Accuracy")
PARTIAL, STALE = ".partial", ".stale"
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
        from .modelfile import read_model_file, state_shape

        records = []
        iterations = self.iterations()
        self.history.check_one_run(iterations, self.pruning)
        for iteration in iterations:
            header, rows = read_table(self.iteration_dir(iteration) / VALIDATION_FILE)
            record = {"iteration": iteration, **dict(zip(header, rows[0]))}
            shape = state_shape(read_model_file(self.model_file(iteration))[0])
            record.update(hidden=shape.hidden, inputs=shape.inputs, parameters=shape.parameters)
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
    @property
    def history(self) -> RunHistory:
        """Return the pruning folder's run.json: every run's configuration, appended."""
        return RunHistory(self.pruning / RUN_RECORD)

    def runs(self) -> list[dict]:
        """Return every run recorded in run.json, oldest first."""
        return self.history.runs()

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

    def lock(self):
        """Return a context that holds the session exclusively; another process is refused, naming the holder's
        PID. Processes the holder starts (the workbook's kernels) share its lock."""
        return folder_lock(self.lock_folder, "session folder")

    def check_free(self, what: str = "session folder") -> None:
        """Raise SessionError if another process holds the session's lock (`what` names the folder); create
        nothing."""
        check_free(self.lock_folder, what)

    def clean_leftovers(self) -> bool:
        """Undo what an interrupted run left: put back a moved-aside iteration, remove its partial folders and
        nbprune's own temporary files, by name, inside the folders nbprune owns; return whether an iteration was
        put back (it is complete again)."""
        if not self.pruning.is_dir():
            return False
        restored = False
        for folder in self._iteration_roots():
            stale, partial, final = folder / (STAGE + STALE), folder / (STAGE + PARTIAL), folder / STAGE
            if stale.is_dir() and not final.exists():
                os.replace(stale, final)
                restored = True
            for leftover in (stale, partial):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
            _remove_temporaries(final, ITERATION_FILES)
        _remove_temporaries(self.pruning, (RUN_RECORD, RETAIN_FILE))
        _remove_temporaries(self.results, RESULT_FILES)
        return restored

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


def iteration_dir(pruning_dir: str | os.PathLike, iteration: int) -> Path:
    """Return `<pruning_dir>/<iteration>/prune_w_retrain` (pruning_dir: the reference workflow's my_dir)."""
    return Session.for_pruning_dir(pruning_dir).iteration_dir(iteration)


def is_complete(pruning_dir: str | os.PathLike, iteration: int) -> bool:
    """Return whether an iteration's folder in `pruning_dir` holds its model and both result files."""
    return Session.for_pruning_dir(pruning_dir).is_complete(iteration)


def _remove_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Remove the temporary files nbprune's atomic writes of `names` leave when killed (.NAME.XXXXXXXX.tmp)."""
    if not folder.is_dir():
        return
    for name in names:
        for leftover in folder.glob(f".{name}.*.tmp"):  # the names are nbprune's own: no glob characters
            if re.fullmatch(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp", leftover.name) and leftover.is_file():
                leftover.unlink()

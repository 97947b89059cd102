"""The workbook: the nine notebooks' parameters, their setup, the figures they show, and running them with papermill.

Each notebook's parameters cell is generated from nbprune.config (`parameters_source`); a test checks the committed
cells agree, so a new setting reaches the workbook by adding its name to NOTEBOOK_PARAMETERS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from ..config import CONTROLS, RUN_SETTINGS, SETTINGS, Controls, RunConfig, data_root, parse_settings, project_root
from ..datasets import is_data_file
from ..errors import ConfigError, NbpruneError, SessionError
from .lab import NOTEBOOKS
from ..progress import headless_kernels
from ..session import NOTEBOOKS as EXECUTED, Session

log = logging.getLogger(__name__)

_DATA = ("dataset", "data_root", "subset", "val_size", "seed")
_TRAINING = ("batch_size", "recipe", "lr", "epochs", "patience", "lr_patience", "lr_drops", "cycle_epochs",
             "dense_cycle_epochs", "cycle_batch_size", "max_lr", "weight_decay", "min_delta", "distill",
             "distill_weight", "temperature")
# The settings each notebook's parameters cell declares, in order. Everything else comes from the session:
# 03 reads the architecture from the model 02 trained, 04 the schedule 03 saved, 05 and 06 the model files' records.
NOTEBOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "00_intervals": ("session_dir", *_DATA, "threads"),
    "01_data": ("session_dir", *_DATA),
    "02_model": ("session_dir", *_DATA, "device", "threads", "hidden", "activation", "demo_epochs", "batch_size",
                 "lr"),
    "03_retention": ("session_dir", "q", "iterations"),
    "04_iterative_pruning": ("session_dir", *_DATA, "device", "threads", "begin_itr", "end_itr", *_TRAINING,
                             "criterion", "adjoint_seeds", "input_boxes", "box_radius", "box_count", "prune_inputs",
                             "input_q", "bias_compensation", "allocation", "budget", "normalise", "min_last_hidden",
                             "teacher", "augment_shift"),
    "05_test": ("session_dir", "data_root", "subset", "val_size", "seed", "device", "chosen_itr"),
    "06_deploy": ("session_dir", "data_root", "subset", "val_size", "seed", "chosen_itr"),
    "07_compare": ("session_dir", "data_root", "device", "threads", "compare_levels", "compare_seeds",
                   "compare_epochs"),
    # 08 prunes a network declared by name in a session of its own (<session>/conv); architecture and aggregation
    # (how a channel's positions make one score) reach it alone: 02 to 07 teach the MLP (SimpleNN), whose shape
    # hidden and activation say, and whose neurons have one position each
    "08_conv": ("session_dir", *_DATA, "device", "threads", "architecture", "q", "begin_itr", "end_itr",
                "batch_size", "lr", "epochs", "patience", "distill", "criterion", "aggregation", "allocation",
                "budget"),
}
NOT_IN_WORKBOOK = {"retain": "03_retention makes the schedule (set q and iterations instead)"}
PARAMETERS = {name: SETTINGS[name] for names in NOTEBOOK_PARAMETERS.values() for name in names}
NOTEBOOK_DEFAULTS = {"threads": 1}  # one thread: fastest for a network this small, and on a shared machine
# A notebook's own defaults, where its parameters cell differs from the configuration's. 08: LeNet-5 on 4,000
# training images, three epochs per iteration, halving channels and neurons at each of three cuts: about a minute
# on one CPU thread, so that the quick profile stays quick (the full profile's epochs and patience reach it too)
OWN_DEFAULTS = {"08_conv": {"architecture": "lenet5", "subset": 4000, "q": 0.5, "end_itr": 3, "epochs": 3,
                            "patience": 1}}
CONV_NOTEBOOK = "08_conv"

PROFILES = {
    # make run in about 3 minutes. 07: after a one-step cut to 5% of the neurons, one epoch of retraining left the
    # best criterion 1.2 points and interval_adjoint 2 points behind scratch on the same budget (two seeds); two epochs
    # let them catch up
    "quick": {"epochs": 3, "patience": 1, "compare_epochs": 2},
    "full": {"epochs": 300, "patience": 10},
}


# --- parameters cells ---------------------------------------------------------------------------------------------
def _literal(value: Any) -> str:
    if isinstance(value, tuple):
        return repr(list(value))
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parameters_source(notebook: str) -> str:
    """Return the text of a notebook's parameters cell: each setting with its default and its meaning."""
    lines = []
    for name in NOTEBOOK_PARAMETERS[notebook]:
        lines.append((f"{name} = {_literal(notebook_default(notebook, name))}", SETTINGS[name].help))
    width = max(len(code) for code, _ in lines)
    return "\n".join(f"{code:<{width}}  # {comment}" for code, comment in lines)


def notebook_default(notebook: str, name: str) -> Any:
    """Return the value a notebook's parameters cell gives setting `name`: the notebook's own default, the
    workbook's, or the configuration's."""
    return OWN_DEFAULTS.get(notebook, {}).get(name, NOTEBOOK_DEFAULTS.get(name, SETTINGS[name].default))


def write_parameters_cells(notebooks_dir: str | os.PathLike | None = None) -> list[Path]:
    """Rewrite every notebook's parameters cell from the declarations (for developers adding a setting)."""
    import nbformat
    folder = notebooks_path(notebooks_dir)
    changed = []
    for name in NOTEBOOKS:
        path = folder / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        cell = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
        if cell.source != parameters_source(name):
            cell.source = parameters_source(name)
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


# --- a notebook's first code cell ----------------------------------------------------------------------------------
@dataclass
class NotebookSetup:
    """What a notebook works with: the run configuration, the controls and the session, from its parameters."""

    config: RunConfig
    controls: Controls
    session: Session

    def __iter__(self):
        return iter((self.config, self.controls, self.session))


def setup(notebook: str, namespace: Mapping[str, Any]) -> NotebookSetup:
    """Return the configuration built from a notebook's parameters (read from `namespace`, its globals) and its
    session, refusing a session another process holds; set torch's threads; say which session folder is used."""
    values = {name: namespace[name] for name in NOTEBOOK_PARAMETERS[notebook] if name in namespace}
    config = RunConfig.from_flat({name: value for name, value in values.items() if name in RUN_SETTINGS})
    controls = Controls(**{name: value for name, value in values.items() if name in CONTROLS})
    session = Session.open(controls.session_dir)
    session.check_free()  # run by hand while a headless run holds the session: refused at the first cell
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    how = "the default: pass session_dir=... for another" if controls.session_dir is None else "session_dir"
    print(f"session folder: {session.root.resolve()} ({how})")
    return NotebookSetup(config, controls, session)


def trained_model(session: Session, config: RunConfig | None = None):
    """Return the model 02_model trained in this session (its file says its architecture and data); with the
    notebook's `config`, check that its dataset is the one the model was trained on."""
    from ..model import SimpleNN
    from ..session import MODEL

    model = SimpleNN.from_file(session.require(session.dense_model_file, MODEL))
    if config is not None and model.spec is not None and model.spec.dataset != config.data.dataset:
        raise ConfigError(f"02_model trained this session's model on {model.spec.dataset}, but this notebook's "
                          f"dataset is {config.data.dataset}: set dataset = {model.spec.dataset!r}, or rerun 02_model "
                          f"with dataset = {config.data.dataset!r}.")
    return model


# --- batch runs -----------------------------------------------------------------------------------------------
def parse_parameters(pairs: list[list[str]] | Mapping[str, str]) -> dict:
    """Return `-p NAME VALUE` pairs as typed, checked values; names the workbook does not take are refused."""
    items = pairs.items() if isinstance(pairs, Mapping) else [tuple(pair) for pair in pairs]
    for name, _ in items:
        if name in NOT_IN_WORKBOOK:
            raise ConfigError(f"parameter {name!r} is not a workbook parameter: {NOT_IN_WORKBOOK[name]}.")
        if name not in PARAMETERS:
            raise ConfigError(f"unknown notebook parameter {name!r}: expected one of {', '.join(PARAMETERS)}.")
    return parse_settings(list(items))


def notebooks_path(notebooks_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder holding the nine workbook notebooks: the argument, the checkout's, or ./notebooks."""
    candidates = [Path(notebooks_dir)] if notebooks_dir is not None else [
        Path(__file__).resolve().parents[2] / "notebooks", project_root() / "notebooks"]
    for folder in candidates:
        if all((folder / f"{name}.ipynb").is_file() for name in NOTEBOOKS):
            return folder
    raise NbpruneError(f"the workbook notebooks ({', '.join(n + '.ipynb' for n in NOTEBOOKS)}) are not in "
                       f"{' or '.join(str(c) for c in candidates)}: run from a checkout of nbprune, or pass "
                       f"notebooks_dir=... pointing at its notebooks/ folder.")


def _kernel_config(socket_dir: str):
    """Return papermill's kernel settings: this interpreter's python3 kernel, over local sockets (no TCP ports)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from traitlets.config import Config

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        raise NbpruneError(f"no python3 Jupyter kernel for {sys.executable}: install one with "
                           f"`{sys.executable} -m pip install ipykernel` (or `pip install 'nbprune[notebooks]'`).") \
            from None
    if os.name == "nt":  # no Unix sockets: the kernel's default TCP transport
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "kernel")}})


def run_workbook(session_dir: str | os.PathLike | None = None, profile: str = "quick",
                 parameters: dict | None = None, notebooks_dir: str | os.PathLike | None = None) -> Path:
    """Run the nine notebooks in order into one session folder; return the folder of executed copies.

    Everything `nbprune prune` checks is checked before anything is written; the session folder is held for the
    whole run (its kernels share the lock), and it may never hold the notebooks it runs.
    """
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        raise NbpruneError("the workbook needs papermill: pip install 'nbprune[notebooks]'.") from None
    values, session, source = checked_run(session_dir, profile, parameters, notebooks_dir)
    executed = session.part(EXECUTED)
    with session.lock(), headless_kernels(), _interrupts_kept() as check:  # finished bars, static pictures
        executed.mkdir(parents=True, exist_ok=True)
        for name in NOTEBOOKS:
            check()
            notebook, copy = source / f"{name}.ipynb", executed / f"{name}.ipynb"
            log.info("running %s", name)
            declared = {k: _jsonable(v) for k, v in values.items() if k in NOTEBOOK_PARAMETERS[name]}
            with tempfile.TemporaryDirectory(prefix="nbprune-kernel-") as sockets:
                kernel_log = Path(sockets) / "kernel.log"
                try:
                    papermill.execute_notebook(str(notebook), str(copy), kernel_name="python3", parameters=declared,
                                               progress_bar={"desc": name}, config=_kernel_config(sockets),
                                               kernel_manager_class=_kernel_manager_class(kernel_log))
                except PapermillExecutionError as error:
                    reason = (str(error.evalue).strip().splitlines() or [""])[0]
                    raise NbpruneError(f"notebook {name} failed in cell [{error.exec_count}]: {error.ename}: "
                                       f"{reason} (executed copy: {copy})") from None
                except RuntimeError as error:  # nbclient's DeadKernelError and "kernel died before replying"
                    said = [line for line in _read(kernel_log).splitlines() if line.strip()]
                    raise NbpruneError(f"the kernel running notebook {name} died ({' '.join(str(error).split())}"
                                       f"{'; it said: ' + said[-1] if said else ''}).") from None
        check()
    return executed


@contextlib.contextmanager
def _interrupts_kept() -> Iterator[Callable[[], None]]:
    """Yield a check that raises KeyboardInterrupt once a SIGINT (or a SIGTERM the command line turned into one) has
    come. Python raises it wherever the signal lands, and one landing in a destructor (papermill's, as a notebook
    ends, or in a weak reference's callback during garbage collection) is dropped: the workbook would go on to its
    end. The check, before each notebook and after the last, ends the run there; until then, Python's "Exception
    ignored" report of such a dropped interrupt (a traceback on the terminal) is kept quiet."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    came: list[int] = []

    def interrupted(number, frame):
        came.append(number)
        raise KeyboardInterrupt

    numbers = [signal.SIGINT, *([signal.SIGTERM] if signal.getsignal(signal.SIGTERM) is signal.default_int_handler
                                else [])]
    before = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        signal.signal(number, interrupted)

    def check() -> None:
        if came:
            raise KeyboardInterrupt

    reported = sys.unraisablehook

    def unraisable(unraisable_error) -> None:
        if not (came and unraisable_error.exc_type is KeyboardInterrupt):  # ours: the check raises it again
            reported(unraisable_error)
    sys.unraisablehook = unraisable
    try:
        yield check
    finally:
        sys.unraisablehook = reported
        for number, handler in before.items():
            signal.signal(number, handler if handler is not None else signal.default_int_handler)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def checked_run(session_dir: str | os.PathLike | None, profile: str, parameters: dict | None,
                notebooks_dir: str | os.PathLike | None = None) -> tuple[dict, Session, Path]:
    """Return a workbook run's parameter values, its session and the folder of its notebooks, after refusing,
    writing nothing, what `nbprune prune` refuses (same checks) and a session that holds the notebooks."""
    from ..iterative import plan_run

    if profile not in PROFILES:
        raise NbpruneError(f"profile {profile!r} is not known: expected one of {', '.join(PROFILES)}.")
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {', '.join(unknown)}: expected any of "
                          f"{', '.join(PARAMETERS)}.")
    values = {**PROFILES[profile], **parameters}
    config = RunConfig.from_flat({k: v for k, v in values.items() if k in RUN_SETTINGS and k != "architecture"})
    controls = Controls(**{k: v for k, v in values.items() if k in CONTROLS})
    if controls.chosen_itr is not None and isinstance(controls.end_itr, int) and controls.chosen_itr > controls.end_itr:
        raise ConfigError(f"chosen_itr={controls.chosen_itr} comes after end_itr={controls.end_itr}: 05_test can only "
                          f"choose an iteration 04 runs. Choose chosen_itr <= {controls.end_itr}, or raise end_itr.")
    session = Session.open(session_dir if session_dir is not None else parameters.get("session_dir"))
    session.check_writable(session.root)
    source = notebooks_path(notebooks_dir)
    check_apart(session, source)
    session.check_free()
    _, planned = plan_run(config, session, controls.begin_itr, controls.end_itr, progress=False)
    run = [step.iteration for step in planned.steps if controls.end_itr is None or step.iteration <= controls.end_itr]
    if controls.chosen_itr is not None and controls.chosen_itr not in run:  # 05's choice: refused now, not in 05
        shown = ", ".join(map(str, run[:12])) + (", ..." if len(run) > 12 else "")
        raise ConfigError(f"chosen_itr={controls.chosen_itr} is not an iteration 04 runs: expected one of {shown}; "
                          f"choose one of them, or leave chosen_itr out (05 then chooses on validation).")
    if controls.compare_levels is not None:  # 07's levels are iterations of this schedule: refused now, not in 07
        from .compare import chosen_steps
        chosen_steps(planned.steps, controls.compare_levels)
    check_conv_run(values, session)
    values.update(session_dir=str(session.root.resolve()), data_root=str(data_root(values.get("data_root"))))
    if config.train.teacher is not None:  # the kernels run in the executed notebooks' folder, not here
        values.update(teacher=str(Path(config.train.teacher).resolve()))
    if is_data_file(config.data.dataset):  # likewise a data file of the user's own
        values.update(dataset=str(Path(config.data.dataset).resolve()))
    return values, session, source


def check_conv_run(values: Mapping[str, Any], session: Session) -> None:
    """Refuse, writing nothing, what 08_conv's run would refuse: its values are its own defaults and the given
    ones; its run lives in the session's conv/ folder (nbprune.course.conv)."""
    from ..iterative import plan_run
    from .conv import conv_session, has_images, require_architecture

    given = {name: notebook_default(CONV_NOTEBOOK, name) for name in NOTEBOOK_PARAMETERS[CONV_NOTEBOOK]}
    given.update({name: value for name, value in values.items() if name in given})
    require_architecture(given["architecture"])
    config = RunConfig.from_flat({name: value for name, value in given.items() if name in RUN_SETTINGS})
    if not has_images(config.data.dataset):  # rows of the user's own: 08 says so and skips its run
        return
    controls = Controls(**{name: value for name, value in given.items() if name in CONTROLS})
    plan_run(config, conv_session(session), controls.begin_itr, controls.end_itr, progress=False)


def check_apart(session: Session, source: Path) -> None:
    """Raise SessionError if the session folder is, or holds, the folder of the notebooks the workbook runs, or
    if an executed copy would land on one of them."""
    root, notebooks = session.root.resolve(), source.resolve()
    if root == notebooks or root in notebooks.parents:
        raise SessionError(f"session folder {root} holds the workbook's own notebooks ({notebooks}): their executed "
                           f"copies would replace them. Choose a session folder outside it, e.g. --session-dir "
                           f"{root / 'sessions' / 'mine'} (or leave it out for <project>/sessions/default).")
    for name in NOTEBOOKS:
        copy, original = session.part(EXECUTED) / f"{name}.ipynb", notebooks / f"{name}.ipynb"
        if copy.exists() and copy.resolve() == original.resolve():
            raise SessionError(f"{copy} is the workbook's own notebook {original} (a link): its executed copy would "
                               f"replace it. Remove the link, or choose another session folder.")


def _kernel_manager_class(kernel_log: Path):
    """Return a kernel manager whose kernel writes its own output (log lines, a traceback when the run is stopped
    while it starts) into `kernel_log`, not the terminal, and which shuts a kernel down without interrupting it
    first (jupyter_client's interrupt makes ipykernel log an ERROR line after a successful notebook)."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernel(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **options):
            with open(kernel_log, "ab") as stream:  # the kernel keeps its own copy of the handle
                return await super()._async_launch_kernel(kernel_cmd, **{**options, "stdout": stream,
                                                                          "stderr": stream})

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return QuietKernel


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def main(argv: list[str] | None = None) -> int:
    """`python -m nbprune.course.workbook sync` rewrites the notebooks' parameters cells from nbprune.config."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["sync"]:
        for path in write_parameters_cells():
            print(f"rewrote the parameters cell of {path}")
        return 0
    print("usage: python -m nbprune.course.workbook sync", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())


"""Reliability under interruption and concurrency: SIGKILL at random moments then resume, a kill between the two
renames of publishing, Ctrl-C at any moment, a full disk, two runs on one session, cleanup of nbprune's own files,
and a recorded run repeated to identical files. The runs use conftest's tiny IDX dataset (no real MNIST needed)."""


from __future__ import annotations

import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import nbprune
from conftest import (ENV, HANG, HIDDEN, Q, SEED, STEPS, leftovers,
                      nbprune_cli, prune_argv, session_held_elsewhere, tree_bytes, wait_for, write_stand_ins)
from nbprune import evaluate, load_data, load_pruned_model, RunConfig, Session, SimpleNN
from nbprune.cli import main
from nbprune.files import read_table
from nbprune.session import is_complete, iteration_dir
from nbprune.session import RESULTS as RESULTS_DIR


# --- crash safety ---------------------------------------------------------------------------------------------

# The driver is `nbprune prune` with a line on stdout at the moments worth killing: the start of a training epoch,
# an evaluation, a torch.save into a temporary file, an os.replace (atomic writes and publishing an iteration).
# In step mode it waits for a line on stdin after each, so the test can kill it exactly there.
DRIVER = r'''
import os, sys
import torch
import nbprune.evaluation as evaluate_module
import nbprune.iterative as iterative_module
import nbprune.report as report_module
import nbprune.training as train_module
from nbprune.cli import main

STEP = os.environ["CRASH_STEP"] == "1"


def announce(event):
    print(event, flush=True)
    if STEP:
        sys.stdin.readline()


def hook(owner, name, event):
    original = getattr(owner, name)

    def hooked(*args, **kwargs):
        announce(event)
        return original(*args, **kwargs)
    setattr(owner, name, hooked)


hook(iterative_module.IterativePruning, "prune", "iteration")
hook(report_module, "concatenate", "concat")
hook(train_module.Trainer, "epoch", "train")
hook(train_module.FlatMLPTrainer, "epoch", "train")
hook(train_module, "loss_and_accuracy", "eval")
hook(evaluate_module, "loss_and_accuracy", "eval")
hook(torch, "save", "save")
hook(os, "replace", "replace")
announce("ready")
sys.exit(main(sys.argv[1:]))
'''
# How often each event surely happens within one iteration of the small configuration (3 epochs, patience 3),
# and within the final concatenation (validations.txt and two plots).
SURE_COUNT = {"train": 3, "eval": 8, "save": 2, "replace": 8}
CONCAT_REPLACES = 3


@dataclass
class Attempt:
    stage: int | str
    phase: str
    occurrence: int = 1
    delay: float = 0.0
    killed: bool = False


def first_incomplete(session_dir: Path) -> int:
    return next((k for k, step in enumerate(STEPS) if not is_complete(session_dir, step.iteration)), len(STEPS))


def crash_once(driver: Path, argv: list[str], attempt: Attempt, session_dir: Path, cwd: Path) -> None:
    """Run the driver and SIGKILL it at the attempt's moment; mark whether it died there or finished first."""
    stage, start = attempt.stage, first_incomplete(session_dir)
    if stage == "concat" or start == len(STEPS):
        stage, attempt.phase = "concat", "replace"
        attempt.occurrence = min(attempt.occurrence, CONCAT_REPLACES)
    elif attempt.phase != "timed" and stage < start:
        stage = start  # an earlier kill landed later than planned: aim at the iteration that runs first now
    attempt.stage = stage
    timed = attempt.phase == "timed"
    with open(cwd / "driver.stderr", "a") as stderr:
        process = subprocess.Popen([sys.executable, str(driver), *argv], cwd=cwd, text=True,
                                   env=dict(ENV, CRASH_STEP="0" if timed else "1"),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    watchdog = threading.Timer(HANG, process.kill)
    watchdog.start()
    try:
        current, seen, reached = None, 0, False
        iterations = iter(range(start, len(STEPS)))
        while not reached and (line := process.stdout.readline()):
            event = line.strip()
            if event == "iteration":
                current = next(iterations, None)
            elif event == "concat":
                current = "concat"
            if timed and event == "train":  # a moment by the clock, on purpose: it may land or not, both pass
                time.sleep(attempt.delay)
                reached = True
            elif event == attempt.phase and current == stage:
                seen += 1
                reached = seen == attempt.occurrence
            if not (timed or reached):
                try:
                    process.stdin.write("\n")
                    process.stdin.flush()
                except BrokenPipeError:
                    break
        attempt.killed = reached and process.poll() is None
        process.kill()
        returncode = process.wait()
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
    assert attempt.killed or returncode == 0, (cwd / "driver.stderr").read_text()[-3000:]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_completes_the_same_session(tiny_root, reference, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    session_dir = tmp_path / "iterative_pruning"
    argv = prune_argv(session_dir, tiny_root, "--begin-itr", "auto")
    rng = random.Random(6)
    phases = ["train", "eval", "save", "replace"] + rng.choices(list(SURE_COUNT), k=1)
    rng.shuffle(phases)
    stages = sorted(rng.choices(range(len(STEPS)), k=len(phases)))
    plan = [Attempt(stage, phase, rng.randint(1, SURE_COUNT[phase])) for stage, phase in zip(stages, phases)]
    plan.insert(rng.randrange(len(plan)), Attempt(0, "timed", delay=rng.uniform(0.0, 0.05)))
    plan.append(Attempt("concat", "replace", rng.randint(1, CONCAT_REPLACES)))

    for attempt in plan:
        crash_once(driver, argv, attempt, session_dir, tmp_path)
        for step in STEPS:  # whatever the moment, a published iteration folder is always complete
            folder = iteration_dir(session_dir, step.iteration)
            assert not folder.exists() or is_complete(session_dir, step.iteration), (attempt, sorted(folder.iterdir()))

    killed = [attempt for attempt in plan if attempt.killed]
    assert len(killed) >= 5, plan
    assert {"train", "eval", "save", "replace"} <= {attempt.phase for attempt in killed}, plan
    assert any(attempt.stage == "concat" for attempt in killed), plan

    done = nbprune_cli(*argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(is_complete(session_dir, step.iteration) for step in STEPS)
    assert leftovers(session_dir) == []
    assert sorted(p.name for p in session_dir.iterdir()) == sorted(
        [str(step.iteration) for step in STEPS] + [RESULTS_DIR, "run.json", "retain.txt"])
    assert (session_dir.parent / ".nbprune.lock").is_file()  # the session folder's one lock
    header, rows = read_table(session_dir / RESULTS_DIR / "validations.txt")
    assert [row[4] for row in rows] == pytest.approx([step.percentage for step in STEPS], rel=1e-5)

    data = load_data(tiny_root, seed=SEED, download=False)
    for step, row in zip(STEPS, rows):
        folder = iteration_dir(session_dir, step.iteration)
        model = load_pruned_model(SimpleNN(hidden=HIDDEN), folder / "best_model.pth")
        assert model.hidden == step.retained
        _, saved = read_table(folder / "validation_results.txt")
        assert saved[0] == row
        results = evaluate(model, data.train_loader, data.test_loader)
        assert [results[name] for name in header[:4]] == pytest.approx(saved[0][:4], rel=1e-5, abs=1e-6)
    # Killed at all those moments and resumed each time, the session holds what one uninterrupted run writes.
    assert (session_dir / RESULTS_DIR / "validations.txt").read_bytes() == \
        (reference / RESULTS_DIR / "validations.txt").read_bytes()


@pytest.mark.slow
def test_a_kill_between_the_two_renames_of_publishing_keeps_the_old_iteration(tiny_root, reference, tmp_path,
                                                                            monkeypatch):
    session_dir = tmp_path / "iterative_pruning"
    shutil.copytree(reference, session_dir)
    final = iteration_dir(session_dir, STEPS[-1].iteration)
    before = tree_bytes(final)
    shutil.copytree(final, final.with_name("prune_w_retrain.partial"))  # the new result, not yet in place
    os.replace(final, final.with_name("prune_w_retrain.stale"))  # the old one, moved aside: then SIGKILL
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    assert main(prune_argv(session_dir, tiny_root, "--begin-itr", "auto")) == 0
    assert tree_bytes(final) == before
    assert leftovers(session_dir) == []

# --- reproducibility ------------------------------------------------------------------------------------------

def argv_from_record(run: dict, session_dir: Path) -> list[str]:
    """Rebuild `nbprune prune` arguments from one run that a session recorded in run.json."""
    argv = ["prune", "--session-dir", str(session_dir), "--begin-itr", "0", "--no-progress"]
    if run["end_itr"] is not None:
        argv += ["--end-itr", str(run["end_itr"])]
    for name, value in run["config"].items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif value is not None:
            argv += [flag, *map(str, value if isinstance(value, list) else [value])]
    return argv


@pytest.mark.slow
def test_a_session_records_what_it_ran_with_and_repeating_it_gives_identical_files(reference, tmp_path):
    runs = Session.for_pruning_dir(reference).runs()
    assert len(runs) == 1
    run = runs[0]
    assert run["environment"]["python"] == platform.python_version()
    assert run["environment"]["torch"] == torch.__version__
    assert run["environment"]["nbprune"] == nbprune.__version__
    config = run["config"]
    assert (config["hidden"], config["q"], config["epochs"], config["seed"], config["lr"]) == (list(HIDDEN), Q, 3,
                                                                                                SEED, 1e-3)
    assert set(config) == set(RunConfig().to_dict())  # every setting, defaults included
    assert [tuple(step[1]) for step in run["schedule"]] == [step.retained for step in STEPS]
    assert run["input"]["dataset"] == "MNIST" and 0 < run["input"]["mean"] < 1
    assert run["samples"] == {"train": 550, "validation": 50, "test": 200}  # the tiny set: 600 = 550 + 1 in 12

    repeat = tmp_path / "iterative_pruning"
    done = nbprune_cli(*argv_from_record(run, repeat), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (repeat / RESULTS_DIR / "validations.txt").read_bytes() == \
        (reference / RESULTS_DIR / "validations.txt").read_bytes()
    for step in STEPS:
        for name in ("train_results.txt", "validation_results.txt", "best_model.pth"):
            assert (iteration_dir(repeat, step.iteration) / name).read_bytes() == \
                (iteration_dir(reference, step.iteration) / name).read_bytes(), (step.iteration, name)

# --- two runs, one session ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_run_on_a_locked_session_is_refused_naming_the_first_ones_pid(reference, tiny_root, tmp_path):
    session = tmp_path / "iterative_pruning"
    shutil.copytree(reference, session)
    with session_held_elsewhere(session, env=ENV) as holder:
        before = tree_bytes(session)
        for argv in (prune_argv(session, tiny_root, "--begin-itr", "auto"), ["concat", str(session)]):
            done = nbprune_cli(*argv, cwd=tmp_path)
            assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
            assert f"is in use by another nbprune run (PID {holder.pid})" in done.stderr
            assert "Traceback" not in done.stderr
        assert tree_bytes(session) == before
        holder.kill()  # SIGKILL: the lock dies with the process, nothing stale is left
        holder.wait()
        done = nbprune_cli(*prune_argv(session, tiny_root, "--begin-itr", "auto"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_run_started_while_another_trains_is_refused_and_the_first_finishes_alone(tiny_root, tmp_path):
    """The second run starts while the first one is inside its training (held there by the step driver)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    session = tmp_path / "iterative_pruning"
    first = subprocess.Popen([sys.executable, str(driver), *prune_argv(session, tiny_root, "--seed", "0")],
                             cwd=tmp_path, env=dict(ENV, CRASH_STEP="1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        while (line := first.stdout.readline().strip()) != "train":
            assert line, first.stderr.read()
            first.stdin.write("\n")
            first.stdin.flush()
        second = nbprune_cli(*prune_argv(session, tiny_root, "--seed", "1"), cwd=tmp_path)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"is in use by another nbprune run (PID {first.pid})" in second.stderr
        first.stdin.close()  # step mode ends: the driver reads EOF and runs on
        assert first.wait(timeout=HANG) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
        first.stderr.close()
    recorded = Session.for_pruning_dir(session).runs()
    assert [run["config"]["seed"] for run in recorded] == [0]  # run.json describes the run that ran
    assert leftovers(session) == [] and all(is_complete(session, step.iteration) for step in STEPS)

# --- cleanup stays in nbprune's own files -----------------------------------------------------------------------------
@pytest.mark.slow
def test_cleanup_touches_only_nbprunes_own_temporary_files_by_name(reference, tiny_root, tmp_path):
    project = tmp_path / "myproject"
    (project / "src").mkdir(parents=True)
    (project / ".git").mkdir()
    theirs = [project / "src" / ".report.docx.tmp", project / ".git" / ".COMMIT_EDITMSG.tmp",
              project / ".notes.tmp"]
    for path in theirs:
        path.write_text("the user's")
    shutil.copytree(reference, project / "iterative_pruning")
    folder = iteration_dir(project / "iterative_pruning", 1)
    ours = [folder / ".best_model.pth.a1b2c3d4.tmp", project / "iterative_pruning" / ".run.json.zz99yy88.tmp"]
    foreign_inside = folder / ".my_notes.tmp"
    for path in [*ours, foreign_inside]:
        path.write_text("left over")
    done = nbprune_cli(*prune_argv(project, tiny_root, "--begin-itr", "auto"), cwd=project)
    assert done.returncode == 0, done.stderr
    assert all(path.read_text() == "the user's" for path in theirs)
    assert foreign_inside.read_text() == "left over"
    assert not any(path.exists() for path in ours)

# --- a full disk in the middle of a run ------------------------------------------------------------------------------
def test_a_full_disk_during_prune_stops_in_one_line_and_the_run_resumes(tiny_root, tmp_path, capsys, monkeypatch):
    import errno

    import nbprune.files as io_module
    import nbprune.modelfile as modelfile_module
    session = tmp_path / "iterative_pruning"
    original, calls = modelfile_module.write_bytes_atomic, {"models": 0}

    def fills_up(path, data):
        if Path(path).name == "best_model.pth":
            calls["models"] += 1
            if calls["models"] == 6:  # during iteration 1 or 2
                raise io_module.cannot_write(Path(path), OSError(errno.ENOSPC, "No space left on device"))
        return original(path, data)
    monkeypatch.setattr(modelfile_module, "write_bytes_atomic", fills_up)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    assert main(prune_argv(session, tiny_root)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err, err
    complete = [step.iteration for step in STEPS if is_complete(session, step.iteration)]
    assert complete and len(complete) < len(STEPS)
    monkeypatch.setattr(modelfile_module, "write_bytes_atomic", original)
    assert main(prune_argv(session, tiny_root, "--begin-itr", "auto")) == 0
    assert leftovers(session) == [] and all(is_complete(session, step.iteration) for step in STEPS)

# --- Ctrl-C ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("moment", ["ready", "iteration", "train", "eval", "save", "replace", "concat"])
def test_ctrl_c_at_any_moment_ends_in_one_line_without_a_traceback(moment, tiny_root, tmp_path):
    """SIGINT when the command says it has reached a moment: started (before main), training, evaluating,
    writing a file, publishing, concatenating. It waits on stdin right after saying so, so the signal lands there
    however loaded the machine is (the interpreter's own start-up, before any of nbprune runs, is not nbprune's)."""
    driver = tmp_path / "cli.py"  # the name nbprune.cli takes for the command: its start-up handler is set
    driver.write_text(DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), *prune_argv(tmp_path / "s", tiny_root)], cwd=tmp_path,
                               env=dict(ENV, CRASH_STEP="1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        while (event := process.stdout.readline().strip()) != moment:
            assert event, process.stderr.read()
            process.stdin.write("\n")
            process.stdin.flush()
        process.send_signal(signal.SIGINT)
        err = process.stderr.read()
        assert process.wait(timeout=HANG) == 130, err
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    hint = "" if moment == "ready" else " Run the same command with --begin-itr auto to continue."
    assert lines == [f"nbprune: interrupted.{hint}"], err


# The workbook command on stand-in notebooks, saying "ready" before main and "notebook" as each one starts.
WORKBOOK_DRIVER = r'''
import sys
import papermill
import nbprune.course.workbook as workbook
from nbprune.cli import main

stand_ins, found, execute = sys.argv[1], workbook.notebooks_path, papermill.execute_notebook
workbook.notebooks_path = lambda notebooks_dir=None: found(stand_ins)


def announced(*args, **kwargs):
    print("notebook", flush=True)
    return execute(*args, **kwargs)


papermill.execute_notebook = announced
print("ready", flush=True)
sys.exit(main(sys.argv[2:]))
'''
INSIDE_A_CELL = """
import pathlib, time
pathlib.Path(session_dir, 'inside').write_text('')
while True:
    time.sleep(0.02)
"""
# What else a workbook run may print on stderr: papermill's progress bars and its notes on parameters a stand-in
# notebook does not declare.
WORKBOOK_CHATTER = ("cell/s", "s/cell", "?cell", "Passed unknown parameter")


def test_an_interrupt_dropped_in_a_destructor_still_ends_the_workbook_quietly(tiny_root, tmp_path, monkeypatch):
    """A Ctrl-C that landed in papermill's NotebookExecutionManager.__del__ as a notebook ended was printed as
    "Exception ignored" and dropped, and the workbook ran on to its end (exit 0). Once it ended the run, CI still saw
    the dropped interrupt's traceback on the terminal (one landing in a weak reference's callback): Python's report of
    it is kept quiet, and what else a destructor drops is still reported."""
    import papermill

    from nbprune.course.workbook import run_workbook
    stand_ins = write_stand_ins(tmp_path / "notebooks")
    ran, reported = [], []

    class Dropping:
        def __init__(self, error=None):
            self.error = error

        def __del__(self):
            if self.error is not None:
                raise self.error
            os.kill(os.getpid(), signal.SIGINT)  # its KeyboardInterrupt is raised here, in a destructor: dropped
            time.sleep(0.05)

    def execute(notebook, copy, **_):
        ran.append(Path(notebook).stem)
        Dropping(ValueError("not ours"))  # another fault a destructor drops: reported as before
        Dropping()  # collected at once, as papermill's manager is as its notebook ends

    def report(unraisable):
        reported.append(unraisable.exc_type)
    monkeypatch.setattr(sys, "unraisablehook", report)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    with pytest.raises(KeyboardInterrupt):
        run_workbook(tmp_path / "session", parameters={"data_root": str(tiny_root)}, notebooks_dir=stand_ins)
    assert ran == ["00_intervals"]  # ended before the next notebook
    assert reported == [ValueError]  # the dropped interrupt was not printed; the other fault was
    assert sys.unraisablehook is report
    assert signal.getsignal(signal.SIGINT) is not None and signal.getsignal(signal.SIGINT).__name__ != "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["ready", "first notebook starts", "third notebook starts", "inside a cell"])
def test_ctrl_c_during_a_workbook_ends_in_one_line_without_a_traceback(moment, tiny_root, tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) at moments the run says it has reached."""
    driver = tmp_path / "cli.py"
    driver.write_text(WORKBOOK_DRIVER)
    from nbprune.course.workbook import NOTEBOOKS
    stand_ins = write_stand_ins(tmp_path / "notebooks", {NOTEBOOKS[1]: INSIDE_A_CELL} if moment == "inside a cell"
                                else {})
    session = tmp_path / "session"
    process = subprocess.Popen([sys.executable, str(driver), str(stand_ins), "workbook", "--session-dir", str(session),
                                "-p", "data_root", str(tiny_root)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if moment == "inside a cell":
            wait_for((session / "inside").exists, process, "the cell ran")
        else:
            wanted = {"ready": ("ready", 1), "first notebook starts": ("notebook", 1),
                      "third notebook starts": ("notebook", 3)}[moment]
            seen = 0
            while seen < wanted[1]:
                line = process.stdout.readline()
                assert line, process.stderr.read()
                seen += line.strip() == wanted[0]
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=HANG)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "ERROR" not in err, err
    said = [line for line in err.splitlines() if line.strip() and not any(text in line for text in WORKBOOK_CHATTER)]
    hint = " Run the same command with -p begin_itr auto to continue."
    assert said in ([f"nbprune: interrupted.{hint}"], *([["nbprune: interrupted."]] if moment == "ready" else [])), err


def test_workbook_passes_a_relative_teacher_path_to_its_kernels_as_an_absolute_one(reference, tiny_root, tmp_path,
                                                                                   monkeypatch):
    from nbprune.course.workbook import checked_run
    shutil.copy(iteration_dir(reference, 0) / "best_model.pth", tmp_path / "teacher.pth")
    monkeypatch.chdir(tmp_path)  # the kernels run in the executed notebooks' folder: a relative path would miss
    values, _, _ = checked_run(tmp_path / "session", "quick", {"data_root": str(tiny_root), "teacher": "teacher.pth"})
    assert values["teacher"] == str(tmp_path / "teacher.pth")

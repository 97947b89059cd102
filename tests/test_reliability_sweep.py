"""Reliability, round four: the sweep's doors guarded like the command line. Folder names that are exact, what
Ray could never run refused before it starts, every chain checked as `nbprune prune` checks a run before the
first write, damaged sweep files and paths too long refused in one line, and (slow) signals while Ray starts and
while chains run, and the cluster recipe of docs/sweep.md with real `ray start` nodes.

The catalogue runs the command line in-process on the tiny IDX dataset; Ray is never started there (ray.init
fails the case if a refusal comes too late).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import session_held_elsewhere
from nbprune import load_data
from nbprune.cli import main
from nbprune.session import Session
from nbprune.sweeps import SweepError, SweepFolder, build_spec, expand, spec_from_dict
from nbprune.sweeps.spec import MAX_CHAINS, SETTINGS_FILE, readable_name
from conftest import ENV, HANG, tree_bytes

ray = pytest.importorskip("ray", reason="the sweep's doors need ray: pip install 'ray>=2.9'")

SMALL = ["--grid", "criterion=magnitude,random", "--seeds", "0", "1", "--end-itr", "2", "--set", "epochs=1",
         "--set", "patience=1", "--set", "val_size=100", "--no-progress"]
SMALL_SPEC = {"grid": {"criterion": ["magnitude", "random"]}, "seeds": [0, 1], "end_itr": 2,
              "fixed": {"epochs": "1", "patience": "1", "val_size": "100"}}
INTERRUPTED = "nbprune: interrupted. Run the same command again to continue the unfinished chains."


def readable(name: str) -> str:
    return name.rpartition("--")[0]


# --- the catalogue ---------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What a case may touch: a temporary folder, the tiny data, the command line."""

    tmp: Path
    data_root: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch

    @property
    def folder(self) -> Path:
        return self.tmp / "sweep"

    def cli(self, *argv: str) -> str:
        """Run the command line in-process; return its one error line after checking exit code 2."""
        self.monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
        self.capsys.readouterr()
        code = main(list(argv))
        err = self.capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("nbprune: error: "), err
        assert "unexpected" not in lines[0] and "Traceback" not in err, err
        return lines[0]

    def sweep(self, *argv: str, folder: Path | None = None) -> str:
        return self.cli("sweep", "--dir", str(folder or self.folder), *SMALL, "--set",
                        f"data_root={self.data_root}", *argv)

    def report(self, folder: Path | None = None) -> str:
        return self.cli("sweep", "report", str(folder or self.folder))

    def prepared(self) -> SweepFolder:
        """Return the sweep folder of SMALL, as a sweep that stopped before its first chain leaves it."""
        spec = build_spec(grid=SMALL_SPEC["grid"], seeds=SMALL_SPEC["seeds"], end_itr=SMALL_SPEC["end_itr"],
                          fixed={**SMALL_SPEC["fixed"], "data_root": str(self.data_root)})
        folder = SweepFolder(self.folder)
        folder.save_state(folder.load_state(spec))
        folder.write_table([], spec.varied())
        return folder

    def chains(self) -> list:
        folder = SweepFolder(self.folder)
        return expand(spec_from_dict(folder.load_state(None)["spec"]))


def _teacher(ctx: Context, weight: float | None = None) -> Path:
    """Write a ConvTeacher file for the tiny data's split of val_size 100 (built, not trained)."""
    from nbprune.teacher import ConvTeacher, TrainedTeacher, save_teacher
    torch.manual_seed(0)
    model = ConvTeacher((4, 8), 16)
    if weight is not None:
        with torch.no_grad():
            model.conv1.weight.view(-1)[0] = weight
    path = ctx.tmp / "teacher.pth"
    spec = load_data(ctx.data_root, val_size=100, download=False).spec
    save_teacher(TrainedTeacher(model.eval(), 1, 0.0, 0.0, {}), spec, path)
    return path


def _retain(ctx: Context, text: str) -> None:
    (ctx.tmp / "retain.txt").write_text(text)


def _damaged_state(change: Callable[[dict], object] | bytes) -> Callable[[Context], None]:
    """Set-up: damage sweep.json of a prepared folder (bytes, or a new record made from the good one)."""
    def setup(ctx: Context) -> None:
        folder = ctx.prepared()
        if isinstance(change, bytes):
            folder.state_file.write_bytes(change)
        else:
            folder.state_file.write_text(json.dumps(change(json.loads(folder.state_file.read_text()))))
    return setup


def _state_a_folder(ctx: Context) -> None:
    """Set-up: a folder where a prepared sweep folder's sweep.json was."""
    folder = ctx.prepared()
    folder.state_file.unlink()
    folder.state_file.mkdir()


ROW = ["criterion=magnitude__seed=0--0123456789abcdef", "magnitude", "0", "0", "256+64", "784", "218058", "100.0",
       "90.5", "90.1", "chains/x/iterative_pruning/0/prune_w_retrain/best_model.pth", "3.1"]


def _damaged_table(content: bytes | Callable[[list[str]], list[list[str]]]) -> Callable[[Context], None]:
    """Set-up: write a prepared folder's results.csv (bytes, or rows made from the header and a good row)."""
    def setup(ctx: Context) -> None:
        folder = ctx.prepared()
        if isinstance(content, bytes):
            folder.table_file.write_bytes(content)
        else:
            header = folder.table_file.read_text().strip().split(",")
            with folder.table_file.open("w", newline="") as handle:
                csv.writer(handle, lineterminator="\n").writerows(content(header))
    return setup


def _with_value(column: str, value: str) -> Callable[[list[str]], list[list[str]]]:
    def rows(header: list[str]) -> list[list[str]]:
        row = list(ROW)
        row[header.index(column)] = value
        return [header, ROW, row]
    return rows


def _other_settings_recorded(kind: str) -> Callable[[Context], None]:
    """Set-up: give a prepared sweep a chain (or dense) folder holding a session whose settings.json is not its
    name's (or none)."""
    def setup(ctx: Context) -> None:
        ctx.prepared()
        chain = ctx.chains()[0]
        folder = SweepFolder(ctx.folder).chain_dir(chain) if kind == "chain" else \
            SweepFolder(ctx.folder).dense_dir(chain)
        Session(folder).pruning.mkdir(parents=True)
        if kind != "dense_without_record":
            settings = dict(chain.settings if kind == "chain" else chain.dense_settings, batch_size=32)
            (folder / SETTINGS_FILE).write_text(json.dumps(settings))
    return setup


def _in_use(ctx: Context) -> str:
    with session_held_elsewhere(ctx.folder, env=ENV) as holder:
        message = ctx.sweep()
    assert f"PID {holder.pid}" in message
    return message


def _file(ctx: Context) -> None:
    (ctx.tmp / "a_file").write_text("mine")


def _too_deep(ctx: Context) -> str:
    message = ctx.sweep(folder=Path("/tmp") / DEEP)
    assert not (Path("/tmp") / DEEP.split("/")[0]).exists()
    return message


def _loop(ctx: Context, name: str) -> Path:
    """Return a symbolic link in the case's folder that leads back to itself."""
    path = ctx.tmp / name
    path.symlink_to(path)
    return path


def _fifo(setting: str, name: str) -> Callable[[Context], str]:
    """Give a setting a FIFO: the sweep must refuse it as prune does, never open it to read (a reader waits forever
    for a writer; one is given to whatever opens it, so that the case ends, and noted)."""
    def provoke(ctx: Context) -> str:
        path = ctx.tmp / name  # made by the case's set-up
        opened, done = [], threading.Event()

        def writer() -> None:
            while not done.wait(0.01):
                with contextlib.suppress(OSError):  # ENXIO: nothing has it open to read
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                    opened.append(path)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            message = ctx.sweep("--set", f"{setting}={path}")
        finally:
            done.set()
            thread.join()
        assert not opened, f"the sweep opened {path} to read: without a writer it waits forever"
        return message
    return provoke


@dataclass
class Case:
    provoke: Callable[[Context], str]
    says: list[str]
    setup: Callable[[Context], object] | None = None
    absent: tuple[str, ...] = ()


def _no_cuda(ctx: Context) -> str:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: device cuda is allowed")
    return ctx.sweep("--set", "device=cuda")


LONG_NAME = "d" * 300
DEEP = "/".join(["e" * 250] * 16)  # 4,015 bytes, every name allowed: the sweep's own files would not fit below it

CATALOGUE = {
    # what Ray could never run, or never reach, refused before it starts
    "threads_more_than_the_workers": Case(lambda ctx: ctx.sweep("--set", "threads=4", "--workers", "2"),
                                          ["threads=4 asks Ray for 4 CPUs per chain, but the local Ray has 2 "
                                           "(--workers)", "would wait for them forever", "at most 2"]),
    "threads_more_than_the_cores": Case(lambda ctx: ctx.sweep("--set", f"threads={(os.cpu_count() or 1) + 1}"),
                                        ["the cores of this machine", f"at most {os.cpu_count()}"]),
    "device_cuda_without_cuda": Case(_no_cuda, ["device='cuda' was asked for but CUDA is not available here"]),
    "address_where_nothing_answers": Case(lambda ctx: ctx.sweep("--address", "127.0.0.1:1"),
                                          ["could not connect to the Ray cluster at 127.0.0.1:1: nothing answers "
                                           "there (Connection refused)", "ray status"]),
    "address_not_host_port": Case(lambda ctx: ctx.sweep("--address", "banana"),
                                  ["--address 'banana' is not allowed: expected HOST:PORT"]),
    "two_million_chains": Case(lambda ctx: ctx.sweep("--grid", "q=" + ",".join(f"{k / 1001:.6f}" for k in
                                                                                range(1, 501)),
                                                     "--grid", "lr=" + ",".join(f"{k}e-5" for k in range(1, 1001))),
                               ["asks for 2,000,000 chains (1 case(s) x 1,000,000 grid combination(s) x 2 seed(s))",
                                f"more than the {MAX_CHAINS:,} one sweep runs", "split it into several sweeps"]),
    "set_end_itr": Case(lambda ctx: ctx.sweep("--set", "end_itr=3"),
                        ["end_itr is not a setting of the chains", "or as --end-itr 8"],
                        absent=("decided by the sweep itself",)),
    "a_bad_value_in_a_grid": Case(lambda ctx: ctx.sweep("--grid", "augment_shift=1,9"),
                                  ["augment_shift='9' is not allowed"]),
    # what `nbprune prune` checks, for every chain, before the first write
    "retain_missing": Case(lambda ctx: ctx.sweep("--set", f"retain={ctx.tmp / 'missing.txt'}"),
                           ["retain file", "missing.txt does not exist"]),
    "retain_malformed": Case(lambda ctx: ctx.sweep("--set", f"retain={ctx.tmp / 'retain.txt'}"),
                             ["the header 'Iteration fc1 fc2' is not retain.txt's"],
                             setup=lambda ctx: _retain(ctx, "Iteration fc1 fc2\n0 256 64\n")),
    "retain_counts_grow": Case(lambda ctx: ctx.sweep("--set", f"retain={ctx.tmp / 'retain.txt'}"),
                               ["line 4: counts grow from [100, 20] to [200, 20]"],
                               setup=lambda ctx: _retain(ctx, "Iteration h1NodesRetained h2NodesRetained "
                                                              "perNodesRetained\n0 256 64 100\n1 100 20 37.5\n"
                                                              "2 200 20 68.75\n")),
    "teacher_missing": Case(lambda ctx: ctx.sweep("--set", f"teacher={ctx.tmp / 'teacher.pth'}"),
                            ["teacher: model file", "teacher.pth does not exist"]),
    "teacher_whose_outputs_overflow": Case(lambda ctx: ctx.sweep("--set", f"teacher={ctx.tmp / 'teacher.pth'}"),
                                           ["weights so large (up to 3e+38)", "Train the teacher again"],
                                           setup=lambda ctx: _teacher(ctx, 3e38)),
    "teacher_a_fifo": Case(_fifo("teacher", "teacher.pth"), ["teacher.pth is not a regular file (a pipe, socket "
                                                            "or device)"],  # hashed first, it hung the sweep
                           setup=lambda ctx: os.mkfifo(ctx.tmp / "teacher.pth")),
    "dataset_a_fifo": Case(_fifo("dataset", "mine.npz"), ["data file", "mine.npz is not a regular file"],
                           setup=lambda ctx: os.mkfifo(ctx.tmp / "mine.npz")),
    "teacher_a_symlink_loop": Case(lambda ctx: ctx.sweep("--set", f"teacher={ctx.tmp / 'teacher.pth'}"),
                                   ["a symbolic link that leads back to itself"],  # resolved first: RuntimeError
                                   setup=lambda ctx: _loop(ctx, "teacher.pth")),
    "data_root_a_symlink_loop": Case(lambda ctx: ctx.sweep("--set", f"data_root={ctx.tmp / 'data'}"),
                                     ["data folder", "a symbolic link that leads back to itself"],
                                     setup=lambda ctx: _loop(ctx, "data")),
    "validation_larger_than_the_data": Case(lambda ctx: ctx.sweep("--set", "val_size=70000"),
                                            ["val_size=70000 is not allowed: expected 0 < val_size < 600"]),
    # the folder
    "dir_name_of_300_bytes": Case(lambda ctx: ctx.sweep(folder=ctx.tmp / LONG_NAME),
                                  ["sweep folder (--dir)", "is too long", "255 per name"]),
    "dir_of_4020_bytes": Case(_too_deep, ["sweep folder (--dir)", "is too long",
                                          "with room for what nbprune writes inside it"]),
    "dir_a_symlink_loop": Case(lambda ctx: ctx.sweep(), ["sweep folder", "is a symbolic link that leads back to "
                                                         "itself", "(--dir)"], setup=lambda ctx: _loop(ctx, "sweep")),
    "dir_is_a_file": Case(lambda ctx: ctx.sweep(folder=ctx.tmp / "a_file"),
                          ["a_file is a file: choose a folder (--dir)"], setup=_file),
    "dir_below_a_file": Case(lambda ctx: ctx.sweep(folder=ctx.tmp / "a_file" / "sweep"),
                             ["sweep folder", "cannot be created", "a_file is a file", "write to (--dir)"],
                             setup=_file, absent=("session-dir", "session_dir")),
    "dir_in_use": Case(_in_use, ["sweep folder", "is in use by another nbprune run", "choose another sweep folder"],
                       setup=Context.prepared),
    "chain_folder_of_other_settings": Case(lambda ctx: ctx.sweep(),
                                           ["holds models made under other settings than its name stands for",
                                            "batch_size: recorded 32, this sweep's 64", "Move it away"],
                                           setup=_other_settings_recorded("chain")),
    "dense_folder_of_other_settings": Case(lambda ctx: ctx.sweep(), ["batch_size: recorded 32"],
                                           setup=_other_settings_recorded("dense")),
    "dense_folder_without_its_record": Case(lambda ctx: ctx.sweep(), ["its settings.json is missing"],
                                            setup=_other_settings_recorded("dense_without_record")),
    # a damaged sweep.json, when the sweep runs again
    **{f"state_{name}": Case(lambda ctx: ctx.sweep(), [says], setup=_damaged_state(change))
       for name, change, says in (
           ("truncated", b'{"format": 2, "spec": {"seeds": [0, 1], "end_', "sweep.json is damaged (not readable JSON"),
           ("a_list", lambda state: [state], "sweep.json is damaged (a JSON list, expected an object)"),
           ("abc", b"abc", "sweep.json is damaged (not readable JSON"),
           ("empty", b"", "sweep.json is damaged (not readable JSON"),
           ("binary", bytes(range(256)), "sweep.json is damaged (not UTF-8 text"),
           ("latin1", '{"format": 2, "spec": "\xe9t\xe9"}'.encode("latin-1"), "sweep.json is damaged (not UTF-8"),
           ("nan_seconds", b'{"format": 2, "spec": {}, "chains": {"c": {"seconds": {"1": NaN}}}, "dense": {}}',
            "NaN is not a number JSON allows"),
           ("seconds_1e999", b'{"format": 2, "spec": {}, "chains": {"c": {"seconds": {"1": 1e999}}}, "dense": {}}',
            "sweep.json is damaged (chain c:"),
           ("chains_a_list", lambda state: {**state, "chains": []}, "chains [], expected an object of objects"),
           ("spec_missing", lambda state: {key: value for key, value in state.items() if key != "spec"},
            "spec None, expected an object"),
           ("status_unknown", lambda state: {**state, "chains": {"c": {"status": "done"}}}, "expected a status of"),
           ("dense_text", lambda state: {**state, "dense": {"d": "fast"}}, "dense {'d': 'fast'}"),
           ("format_7", lambda state: {**state, "format": 7}, "format 7, expected 2"),
           ("format_1", lambda state: {**state, "format": 1}, "written by an older nbprune (sweep format 1)"))},
    "state_a_folder": Case(lambda ctx: ctx.sweep(), ["sweep.json is not a file (a folder or a pipe by that name)"],
                           setup=_state_a_folder),
    # and when the report reads it, or a damaged results.csv
    "report_state_a_list": Case(lambda ctx: ctx.report(), ["a JSON list, expected an object"],
                                setup=_damaged_state(lambda state: [state])),
    "report_state_binary": Case(lambda ctx: ctx.report(), ["not UTF-8 text"], setup=_damaged_state(bytes(range(256)))),
    "report_table_truncated": Case(lambda ctx: ctx.report(),
                                   ["results.csv is damaged (line 2 has 5 fields, expected 12)",
                                    "run the same `nbprune sweep` command again"],
                                   setup=_damaged_table(lambda header: [header, ROW[:5]])),
    "report_table_wrong_columns": Case(lambda ctx: ctx.report(), ["results.csv is damaged (header 'chain, method, "
                                                                  "score'"],
                                       setup=_damaged_table(lambda header: [["chain", "method", "score"], ROW[:3]])),
    "report_table_empty": Case(lambda ctx: ctx.report(), ["header 'empty'"], setup=_damaged_table(b"")),
    "report_table_abc": Case(lambda ctx: ctx.report(), ["line 3: val_acc 'abc' is not a finite number >= 0"],
                             setup=_damaged_table(_with_value("val_acc", "abc"))),
    "report_table_1e999": Case(lambda ctx: ctx.report(), ["line 3: test_acc '1e999' is not a finite number >= 0"],
                               setup=_damaged_table(_with_value("test_acc", "1e999"))),
    **{f"report_table_retained_{name}": Case(lambda ctx: ctx.report(),
                                            [f"line 3: retained {value!r} is not a finite number >= 0"],
                                            setup=_damaged_table(_with_value("retained", value)))
       for name, value in (("empty", ""), ("nan", "nan"))},  # every row has its share: the figure is drawn from it
    "report_table_seed_fraction": Case(lambda ctx: ctx.report(), ["line 3: seed '0.5' is not a whole number >= 0"],
                                       setup=_damaged_table(_with_value("seed", "0.5"))),
    "report_table_binary": Case(lambda ctx: ctx.report(), ["not UTF-8 text"],
                                setup=_damaged_table(bytes(range(256)) * 4)),
    "report_table_nul": Case(lambda ctx: ctx.report(), ["NUL bytes"], setup=_damaged_table(b"chain,seed\x00\n")),
    "report_table_latin1": Case(lambda ctx: ctx.report(), ["not UTF-8 text"],
                                setup=_damaged_table("chain,crit\xe8re\n".encode("latin-1"))),
    "report_dir_name_of_300_bytes": Case(lambda ctx: ctx.report(ctx.tmp / LONG_NAME),
                                         ["sweep folder", "is too long", "255 per name"]),
}


def without_locks(files: dict[str, bytes | None]) -> dict[str, bytes | None]:
    return {path: content for path, content in files.items() if not path.endswith(".nbprune.lock")}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_a_bad_sweep_gives_one_clear_line_before_ray_starts_and_damages_nothing(name, tiny_root, tmp_path, capsys,
                                                                               monkeypatch):
    case = CATALOGUE[name]
    ctx = Context(tmp_path, tiny_root, capsys, monkeypatch)
    if case.setup is not None:
        case.setup(ctx)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started before the sweep refused")
    monkeypatch.setattr(ray, "init", no_ray)
    before, data_before = without_locks(tree_bytes(tmp_path)), tree_bytes(tiny_root)
    message = case.provoke(ctx)
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for fragment in case.absent:
        assert fragment not in message, f"{fragment!r} in {message!r}"
    assert without_locks(tree_bytes(tmp_path)) == before
    assert tree_bytes(tiny_root) == data_before


# --- exact folder names ----------------------------------------------------------------------------------------
LONG_ROOT = "/tmp/" + "long_data_root_" * 8


def test_chains_that_differ_past_the_readable_part_of_their_names_get_their_own_folders():
    """The issue's case: two cases differing only in criterion and batch_size, with a long value before them."""
    spec = spec_from_dict({"cases": [{"data_root": LONG_ROOT, "criterion": "magnitude", "batch_size": 32},
                                     {"data_root": LONG_ROOT, "criterion": "random", "batch_size": 256}]})
    first, second = expand(spec)
    assert readable(first.name) == readable(second.name)  # cut: the same readable part...
    assert first.name != second.name and first.dense != second.dense  # ...but not the same folders
    assert first.dense_settings["batch_size"] == 32 and second.dense_settings["batch_size"] == 256
    assert first.dense_config.data.batch_size == 32 and second.dense_config.data.batch_size == 256


def test_data_roots_that_differ_in_one_unsafe_character_share_nothing():
    first, second = expand(spec_from_dict({"grid": {"data_root": ["roots/x y", "roots/x_y"]}}))
    assert readable(first.dense) == readable(second.dense) and first.dense != second.dense
    assert first.dense_settings["data_root"].endswith("roots/x y")
    assert second.dense_settings["data_root"].endswith("roots/x_y")


def test_only_chains_of_the_very_same_settings_are_refused_as_one_chain_asked_twice():
    with pytest.raises(SweepError, match=r"chains 1 and 2 of the sweep have the same settings \(q=0.8__seed=0\)"):
        expand(spec_from_dict({"cases": [{"q": 0.8}, {"q": "0.80"}]}))
    assert len(expand(spec_from_dict({"cases": [{"q": 0.8}, {"q": 0.8000001}]}))) == 2


def test_a_folder_name_is_a_hash_of_every_setting_and_the_files_contents(tmp_path):
    retain = tmp_path / "retain.txt"
    retain.write_text("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n0 256 64 100\n1 100 20 37.5\n")
    chain, = expand(spec_from_dict({"set": {"retain": str(retain)}}))
    settings = dict(chain.settings)
    assert settings.pop("retain_sha256") == hashlib.sha256(retain.read_bytes()).hexdigest()
    assert settings == chain.config.to_dict()
    digest = hashlib.sha256(json.dumps(chain.settings, sort_keys=True).encode()).hexdigest()[:16]
    assert chain.name == f"{readable_name({'seed': 0})}--{digest}"
    retain.write_text(retain.read_text().replace("100 20", "90 20"))
    assert expand(spec_from_dict({"set": {"retain": str(retain)}}))[0].name != chain.name  # another schedule


def test_every_folder_records_its_settings_and_a_recorded_one_is_checked(tmp_path):
    chains = expand(build_spec(grid={"criterion": ["magnitude", "random"]}))
    folder = SweepFolder(tmp_path / "sweep")
    folder.record_settings(chains)
    for chain in chains:
        assert json.loads((folder.chain_dir(chain) / SETTINGS_FILE).read_text()) == chain.settings
        assert json.loads((folder.dense_dir(chain) / SETTINGS_FILE).read_text()) == chain.dense_settings
    folder.check_settings(chains)  # what it wrote is what the names stand for
    assert len({folder.dense_dir(chain) for chain in chains}) == 1  # pruning settings share the dense model


def line_events(function: Callable[[], object], filename: str) -> int:
    """Return how many lines of `filename` run while `function` runs: a count of the work, not a time."""
    count = 0

    def trace(frame, event, argument):
        nonlocal count
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            count += 1
        return trace
    sys.settrace(trace)
    try:
        function()
    finally:
        sys.settrace(None)
    return count


def test_expansion_does_work_linear_in_the_chains():
    import nbprune.sweeps.spec as spec_module

    def work(chains: int) -> int:
        spec = spec_from_dict({"grid": {"lr": [f"{k}e-6" for k in range(1, chains + 1)]}})
        return line_events(lambda: expand(spec), spec_module.__file__)
    assert work(600) <= 2.05 * work(300)  # the duplicate check was quadratic: 8,000 chains took 4 s, 16,000 13 s


def test_a_spec_of_more_chains_than_a_sweep_runs_is_refused_before_any_is_built(monkeypatch):
    import nbprune.sweeps.spec as spec_module
    built = []
    monkeypatch.setattr(spec_module, "_config", lambda settings, number: built.append(number))
    values = [f"{k}e-6" for k in range(1, 101)]
    with pytest.raises(SweepError, match=r"asks for 10,100 chains \(1 case\(s\) x 10,100 grid .* more than the 10,000"):
        expand(spec_from_dict({"grid": {"lr": values, "weight_decay": [*values, "0.5"]}}))
    assert built == []


def test_the_report_looks_at_each_row_once_per_budget():
    from nbprune.sweeps import report as report_module

    def rows(seeds: int) -> list[dict]:
        return [{"criterion": criterion, "seed": seed, "iteration": iteration, "parameters": 1000 * (9 - iteration),
                 "val_acc": 90.0 + seed % 7 - iteration, "test_acc": 89.0} for criterion in ("a", "b")
                for seed in range(seeds) for iteration in range(8)]

    def work(seeds: int) -> int:
        table = rows(seeds)
        return line_events(lambda: report_module.pick_per_budget(table, ["criterion"], [5000, 2000]),
                           report_module.__file__)
    assert work(400) <= 2.1 * work(200)  # seeds x rows: a 53 MB table took more than 150 s


# --- the chains' own work, without Ray -----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_retain_file_whose_first_row_prunes_gives_the_chain_the_dense_model_prune_trains(tiny_root, tmp_path,
                                                                                          capsys):
    """The sweep copied a 16+8 dense model where `nbprune prune` trains 12+6, and rewrote retain.txt's row 0."""
    from nbprune.sweeps.work import prune_chain, train_dense
    retain = tmp_path / "retain.txt"
    retain.write_text("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n0 12 6 75\n1 8 4 50\n")
    settings = {"hidden": "16,8", "retain": str(retain), "epochs": "1", "patience": "1", "val_size": "100",
                "data_root": str(tiny_root)}
    chain, = expand(build_spec(fixed=settings, end_itr=1))
    assert chain.dense_config == chain.config  # iteration 0 prunes: it is the chain's own
    folder = SweepFolder(tmp_path / "sweep")
    train_dense(chain.dense_config, str(folder.dense_dir(chain)))
    prune_chain(chain, str(folder.chain_dir(chain)), str(folder.dense_dir(chain)), 1)
    argv = ["prune", "--session-dir", str(tmp_path / "prune"), "--threads", "1", "--end-itr", "1", "--no-progress",
            *(word for name, value in settings.items() for word in (f"--{name.replace('_', '-')}", value))]
    assert main(argv) == 0
    capsys.readouterr()
    swept, pruned = Session(folder.chain_dir(chain)), Session(tmp_path / "prune")
    assert [record["hidden"] for record in swept.summary()] == [(12, 6), (8, 4)]
    for iteration in (0, 1):
        assert swept.model_file(iteration).read_bytes() == pruned.model_file(iteration).read_bytes()
    assert swept.run_retain_file.read_text() == pruned.run_retain_file.read_text()


def test_an_iteration_finished_before_an_interruption_keeps_its_seconds(tiny_root, tmp_path, monkeypatch):
    from nbprune.iterative import IterativePruning
    from nbprune.sweeps.engine import _rows
    from nbprune.sweeps.work import prune_chain, train_dense
    chain, = expand(build_spec(fixed={"hidden": "16,8", "epochs": "1", "patience": "1", "val_size": "100",
                                      "data_root": str(tiny_root)}, end_itr=3))
    folder = SweepFolder(tmp_path / "sweep")
    train_dense(chain.dense_config, str(folder.dense_dir(chain)))
    calls, original = [], IterativePruning.prune

    def interrupted_at_iteration_2(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # iteration 1 is published, iteration 2 is being pruned: Ctrl-C, the task is cancelled
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)
    monkeypatch.setattr(IterativePruning, "prune", interrupted_at_iteration_2)
    with pytest.raises(KeyboardInterrupt):
        prune_chain(chain, str(folder.chain_dir(chain)), str(folder.dense_dir(chain)), 3)
    state = {"format": 2, "spec": {}, "chains": {chain.name: {"seconds": {}}}, "dense": {}}  # no task result came back
    rows = _rows(folder, chain, state)
    assert [row["iteration"] for row in rows] == [0, 1]
    assert all(isinstance(row["seconds"], float) and row["seconds"] > 0 for row in rows), rows


class OneFinishedTask:
    """What the sweep's collection asks of Ray, for tasks that have each finished in 0.5 s per iteration."""

    class exceptions:
        RayError = RuntimeError

    @staticmethod
    def wait(pending: list, num_returns: int) -> tuple[list, list]:
        return pending[:num_returns], pending[num_returns:]

    @staticmethod
    def get(task: str) -> dict[int, float]:
        return {1: 0.5}


@pytest.mark.parametrize("record", [{"status": "failed", "error": "SessionError: in use"}, {}])
def test_a_chain_record_that_leaves_out_its_seconds_is_read_as_one_with_none(record, tmp_path):
    """sweep.json's check lets a chain's record leave out its seconds (and its status): the rerun ran the chain and
    then ended in 'unexpected KeyError: seconds' when the chain's seconds came back."""
    from nbprune.sweeps.engine import _collect, read_state
    chain, = expand(build_spec(fixed={"hidden": "16,8"}))
    folder = SweepFolder(tmp_path / "sweep")
    folder.root.mkdir()
    folder.state_file.write_text(json.dumps({"format": 2, "spec": {}, "chains": {chain.name: record}, "dense": {}}))
    state = read_state(folder.state_file)
    _collect(OneFinishedTask, folder, {"task": chain}, {}, state, {}, 1, progress=False)
    assert state["chains"][chain.name]["seconds"] == {"1": 0.5}
    assert state["chains"][chain.name]["status"] == "finished"
    assert read_state(folder.state_file)["chains"][chain.name]["status"] == "finished"


# --- signals while Ray starts (slow: each starts a local Ray) ------------------------------------------------------
STARTING_DRIVER = r'''
import sys
import ray
import ray._private.node as node_module
from nbprune.cli import main

initialise, build_node = ray.init, node_module.Node.__init__


def announced_init(*args, **kwargs):
    print("ray.init", flush=True)  # stdout: Ray's start has stderr captured
    return initialise(*args, **kwargs)


def announced_node(self, *args, **kwargs):
    build_node(self, *args, **kwargs)
    print("node started", flush=True)  # the GCS and raylet run: ray.init is half-way


ray.init, node_module.Node.__init__ = announced_init, announced_node
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture
def quick_ray_env(tmp_path_factory) -> dict:
    """The subprocesses' environment: one thread each; Ray's processes skip rfc3987_syntax (seconds of CPU each)."""
    shim = tmp_path_factory.mktemp("ray_shim")
    (shim / "rfc3987_syntax.py").write_text("raise ImportError('not loaded in this test: slow to import')\n")
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(shim), ENV["PYTHONPATH"]]))
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("number, moment", [(signal.SIGINT, "ray.init"), (signal.SIGINT, "node started"),
                                            (signal.SIGTERM, "node started")])
def test_a_signal_while_ray_starts_ends_in_one_line_and_writes_nothing(number, moment, quick_ray_env, tiny_root,
                                                                       tmp_path):
    """SIGINT while Ray started gave 'interrupted.' and then a segmentation fault (exit 139) in 2 of 7 tries: the
    exception went through ray.init's half-built state into the interpreter's exit."""
    driver = tmp_path / "driver.py"
    driver.write_text(STARTING_DRIVER)
    folder = tmp_path / "sweep"
    process = subprocess.Popen([sys.executable, str(driver), "sweep", "--dir", str(folder), *SMALL, "--set",
                                f"data_root={tiny_root}", "--workers", "2"], env=quick_ray_env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while (line := process.stdout.readline()) and line.strip() != moment:
            pass
        assert line.strip() == moment, process.communicate(timeout=HANG)
        process.send_signal(number)
        out, error = process.communicate(timeout=HANG)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, error
    assert error.strip() == INTERRUPTED, error  # one line: no segmentation fault, stack dump or traceback
    assert not folder.exists()  # Ray starts before the first write: the rerun starts afresh


STOPPING_DRIVER = r'''
import sys
import ray._private.node as node_module
from nbprune.cli import main

stop_processes = node_module.Node.kill_all_processes


def announced(self, *args, **kwargs):
    print("stopping Ray's processes", flush=True)  # ray.shutdown has ended the driver's core worker
    sys.stdin.readline()  # the test signals now, then lets the shutdown go on
    return stop_processes(self, *args, **kwargs)


node_module.Node.kill_all_processes = announced
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_sigterm_while_ray_shuts_down_is_set_aside_as_the_shutdown_asks(quick_ray_env, tiny_root, tmp_path):
    """ray.shutdown ends the driver's core worker first, whose native failure handler then set SIGTERM back to the
    default: a SIGTERM while Ray's processes were stopped killed the finished sweep with no line (exit 143)."""
    driver = tmp_path / "driver.py"
    driver.write_text(STOPPING_DRIVER)
    folder = tmp_path / "sweep"
    process = subprocess.Popen([sys.executable, str(driver), "sweep", "--dir", str(folder), *SMALL, "--set",
                                f"data_root={tiny_root}", "--workers", "2"], env=quick_ray_env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while (line := process.stdout.readline()) and line.strip() != "stopping Ray's processes":
            pass
        assert line.strip() == "stopping Ray's processes", process.communicate(timeout=HANG)
        process.send_signal(signal.SIGTERM)
        out, error = process.communicate("go on\n", timeout=HANG)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and error == "", (process.returncode, error)
    assert out.startswith(f"results in {folder.resolve() / 'results.csv'}"), out
    with (folder / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 12  # 4 chains of iterations 0-2: the sweep was finished


# --- the command's own lines -------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, said", [
    (["sweep", "--dir", "d"], INTERRUPTED),
    (["sweep", "report", "d"], "nbprune: interrupted."),  # a report has no chains to continue: it is written anew
    (["sweep", "--no-progress", "report", "d"], "nbprune: interrupted."),
    (["sweep", "--dir", "report"], INTERRUPTED)])  # a sweep folder named report: a sweep, not its report
def test_ctrl_c_in_a_sweep_or_its_report_says_what_to_do(argv, said, monkeypatch, capsys):
    import nbprune.sweeps.command as command
    import nbprune.sweeps.report as report_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(report_module, "sweep_report", interrupted)
    monkeypatch.setattr("nbprune.sweeps.engine.sweep", interrupted)
    assert command.RESUME in INTERRUPTED
    assert main(argv) == 130
    assert capsys.readouterr().err == said + "\n"


def test_the_checks_before_ray_starts_count_the_chains_on_a_bar(tiny_root, tmp_path, monkeypatch, capsys):
    """10,000 chains (the most a sweep runs) took over a minute of checks before Ray started, with nothing said."""
    from nbprune.sweeps import engine

    def stop(*args, **kwargs):
        raise RuntimeError("not started in this test")
    monkeypatch.setattr(ray, "init", stop)
    monkeypatch.setattr(engine, "CHECK_BAR_DELAY", 0)  # shown after a second: three chains are checked faster
    assert main(["sweep", "--dir", str(tmp_path / "sweep"), "--grid", "lr=1e-4,2e-4,3e-4", "--set", "val_size=100",
                 "--set", f"data_root={tiny_root}"]) == 2
    said = capsys.readouterr().err
    assert "checking chains:" in said and "0/3 [" in said, said  # drawn at least as it starts
    assert said.splitlines()[-1].startswith("nbprune: error: could not start a local Ray"), said


def test_failed_chains_are_said_in_the_commands_one_error_line_only(tmp_path, monkeypatch, capsys):
    """The library warns (ChainsFailedWarning); the command line says it in its error line, with nothing before."""
    from nbprune.sweeps import engine

    def failed_sweep(spec, dir, **options):
        folder = SweepFolder(dir)
        folder.save_state({"format": 2, "spec": {}, "dense": {},
                           "chains": {"c--0123456789abcdef": {"status": "failed", "error": "TrainingError: NaN"}}})
        warnings.warn("1 chain(s) failed (errors in sweep.json); run the sweep again to retry them",
                      engine.ChainsFailedWarning)
        return folder.table_file
    monkeypatch.setattr(engine, "sweep", failed_sweep)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    assert main(["sweep", "--dir", str(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nbprune: error: 1 chain(s) failed (c--0123456789abcdef; their errors are in "
        f"{tmp_path / 'sweep' / 'sweep.json'}): run the same command again to retry them."]
    with pytest.warns(engine.ChainsFailedWarning):  # the library's own note, for a Python caller
        failed_sweep(None, tmp_path / "again")

"""nbprune sweep: the spec and its refusals, the chains and their shared dense models, Ray on one machine and on a
two-node cluster, a killed chain and its rerun, the report."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import torch

from conftest import wait_for
from nbprune import SimpleNN
from nbprune.modelfile import read_record, save_model_file
from nbprune.cli import main
from nbprune.errors import NbpruneError
from nbprune.locks import LOCK_FILE
from nbprune.session import Session
from nbprune.sweeps import SweepError, SweepFolder, build_spec, expand, read_spec, spec_from_dict, sweep
from nbprune.sweeps.engine import ChainsFailedWarning
from nbprune.sweeps.report import pick_per_budget
from nbprune.sweeps.spec import grid_values

SPEC = """\
seeds = [0, 1]
end_itr = 3

[set]
epochs = 2
subset = 500

[grid]
criterion = ["interval_adjoint", "magnitude"]

[[cases]]
prune_inputs = false
[[cases]]
prune_inputs = true
allocation = "global"
"""
SMALL = ["--grid", "criterion=magnitude,random", "--seeds", "0", "1", "--end-itr", "2", "--set", "epochs=1",
         "--set", "patience=1", "--set", "val_size=100"]
HANG = 900  # seconds a subprocess may take before the test calls it hung: an end to a hang, never a measure
ENV_SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def ray_or_skip():
    return pytest.importorskip("ray", reason="the sweep tests that run chains need ray: pip install 'ray>=2.9'")


def table(folder: Path) -> list[dict]:
    with (folder / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def runs(chain: Path) -> list[dict]:
    return Session(chain).runs()


def readable(name: str) -> str:
    """Return the readable part of a chain's or dense model's folder name (before '--' and the settings' hash)."""
    part, _, digest = name.rpartition("--")
    assert len(digest) == 16 and int(digest, 16) >= 0, name
    return part


def folder_of(parent: Path, name: str) -> Path:
    """Return the one folder in `parent` whose readable name is `name`."""
    found = [folder for folder in parent.iterdir() if readable(folder.name) == name]
    assert len(found) == 1, (name, sorted(os.listdir(parent)))
    return found[0]


def chain_folder(spec: Path, sweep_dir: Path, name: str) -> Path:
    """Return the folder of a sweep's chain (it need not exist yet) by its readable name."""
    return next(SweepFolder(sweep_dir).chain_dir(chain) for chain in expand(read_spec(spec))
                if readable(chain.name) == name)


# --- the spec -----------------------------------------------------------------------------------------------------
def test_a_toml_spec_expands_into_chains_that_share_their_dense_models(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SPEC)
    chains = expand(read_spec(path))
    assert len(chains) == 2 * 2 * 2  # cases x criteria x seeds
    assert readable(chains[0].name) == "prune_inputs=False__allocation=layer__criterion=interval_adjoint__seed=0"
    assert readable(chains[-1].name) == "prune_inputs=True__allocation=global__criterion=magnitude__seed=1"
    assert len({chain.dense for chain in chains}) == 2  # pruning settings do not change the dense model
    assert {readable(chain.dense) for chain in chains} == {"seed=0", "seed=1"}
    assert all(chain.config.train.epochs == 2 and chain.config.data.subset == 500 for chain in chains)
    assert all(chain.config.threads == 1 for chain in chains)  # one CPU per chain unless threads is set
    assert chains[0].varied == {"prune_inputs": False, "allocation": "layer", "criterion": "interval_adjoint"}


def test_a_varied_training_setting_gets_its_own_dense_model():
    chains = expand(build_spec(grid={"epochs": [1, 2], "criterion": ["magnitude", "random"]}))
    assert sorted({readable(chain.dense) for chain in chains}) == ["epochs=1__seed=0", "epochs=2__seed=0"]
    assert len({chain.dense for chain in chains}) == 2


def test_each_chain_asks_ray_for_its_threads_and_a_gpu_when_it_runs_on_cuda():
    from nbprune.sweeps.engine import _resources
    chains = expand(build_spec(grid={"device": ["cpu", "cuda"]}, fixed={"threads": 2}))
    assert [(_resources(chain)["num_cpus"], _resources(chain)["num_gpus"]) for chain in chains] == [(2, 0), (2, 1)]
    assert _resources(expand(build_spec())[0])["num_cpus"] == 1 and _resources(chains[0])["max_retries"] == 0


def test_command_line_values_are_parsed_as_the_settings_declare():
    assert grid_values("hidden", "256,64;128,32") == ["256,64", "128,32"]
    assert grid_values("q", "0.8,0.9") == ["0.8", "0.9"]
    spec = build_spec(grid={"hidden": grid_values("hidden", "256+64;32"), "q": ["0.8", "0.9"]},
                      fixed={"distill": "false"})
    assert spec.grid == {"hidden": ([256, 64], [32]), "q": (0.8, 0.9)} and spec.fixed == {"distill": False}
    with pytest.raises(SweepError, match="separate hidden's values with ';'"):
        grid_values("hidden", "256+64,128+32")


@pytest.mark.parametrize("values, message", [
    ({"grid": {"criterion": ["magnitude", "nonsense"]}}, "criterion='nonsense' is not allowed"),
    ({"set": {"q": 2}}, "q=2 is not allowed: expected a number above 0 below 1"),
    ({"set": {"lr": "fast"}}, "lr='fast' is not allowed"),
    ({"set": {"colour": "red"}}, "unknown setting 'colour'"),
    ({"set": {"seed": 3}}, "list the seeds as seeds = "),
    ({"set": {"end_itr": 3}}, "end_itr is not a setting of the chains: give it at the top of the spec "
                              "(end_itr = 8, before any [table]) or as --end-itr 8"),
    ({"set": {"begin_itr": 3}}, "unknown setting 'begin_itr' (it is decided by the sweep itself)"),
    ({"grid": {"q": 0.5}}, "expected a non-empty list of values"),
    ({"grid": {"q": [0.5]}, "set": {"q": 0.7}}, "q given in more than one of set, grid and cases"),
    ({"seeds": [0, 0]}, "expected distinct whole numbers"),
    ({"end_itr": -1}, "end_itr=-1 is not allowed"),
    ({"cases": {"q": 0.5}}, "expected a list of tables"),
    ({"epochs": 3}, "unknown key"),
    ({"grid": {"budget": ["neurons", "parameters"]}}, "budget='parameters' needs allocation='global'"),
])
def test_bad_specs_are_refused_before_any_write(tmp_path, values, message):
    folder = tmp_path / "sweep"
    with pytest.raises(SweepError, match=re.escape(message)):
        sweep(values, folder)
    assert not folder.exists()


def test_an_unreadable_spec_file_is_refused_naming_it(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text("seeds = [0,\n")
    assert main(["sweep", str(path), "--dir", str(tmp_path / "sweep")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("nbprune: error: sweep spec") and "broken.toml is not readable TOML" in error
    assert error.count("\n") == 1 and not (tmp_path / "sweep").exists()


def test_a_folder_given_as_the_spec_is_refused_as_a_folder(tmp_path, capsys):
    assert main(["sweep", str(tmp_path), "--dir", str(tmp_path / "sweep")]) == 2
    error = capsys.readouterr().err
    assert f"sweep spec {tmp_path} is a folder: give the path of a TOML file" in error and "--dir" in error
    assert error.count("\n") == 1 and not (tmp_path / "sweep").exists()


def test_the_command_line_refuses_a_bad_grid_and_a_missing_dir_in_one_line(tmp_path, capsys):
    assert main(["sweep", "--dir", str(tmp_path / "sweep"), "--grid", "q=0.5,2"]) == 2
    assert "q='2' is not allowed" in capsys.readouterr().err and not (tmp_path / "sweep").exists()
    assert main(["sweep", "--grid", "q=0.5,0.6"]) == 2
    assert "needs --dir DIR" in capsys.readouterr().err
    assert main(["sweep", "--dir", str(tmp_path / "sweep"), "--set", "epochs"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_without_ray_the_sweep_says_how_to_install_it(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    folder = tmp_path / "sweep"
    assert main(["sweep", "--dir", str(folder), *SMALL, "--set", f"data_root={tiny_root}"]) == 2
    error = capsys.readouterr().err
    assert error == ("nbprune: error: nbprune sweep runs its chains on Ray, which is not installed here: "
                     "pip install 'nbprune[sweep]' (or pip install 'ray>=2.9').\n")
    assert not folder.exists()


def test_a_sweep_folder_of_another_spec_is_refused_naming_what_differs(tmp_path):
    spec = build_spec(grid={"criterion": ["magnitude", "random"]}, seeds=[0, 1], end_itr=2)
    folder = SweepFolder(tmp_path / "sweep")
    folder.save_state(folder.load_state(spec))
    before = folder.state_file.read_bytes()
    changed = build_spec(grid={"criterion": ["magnitude", "taylor"]}, seeds=[0, 1], end_itr=3)
    with pytest.raises(SweepError) as refusal:
        sweep(changed, tmp_path / "sweep")
    message = str(refusal.value)
    assert "grid: saved {'criterion': ['magnitude', 'random']}, asked {'criterion': ['magnitude', 'taylor']}" in message
    assert "end_itr: saved 2, asked 3" in message and "seeds" not in message
    assert folder.state_file.read_bytes() == before


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="holds files but no sweep.json"):
        sweep(spec_from_dict({}), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_the_pick_per_budget_is_made_on_validation_not_test():
    rows = [{"criterion": criterion, "seed": seed, "iteration": 1, "parameters": 900, "val_acc": val,
             "test_acc": test} for criterion, val, test in (("a", 90.0, 99.0), ("b", 95.0, 80.0)) for seed in (0, 1)]
    rows += [{"criterion": "a", "seed": 0, "iteration": 0, "parameters": 5000, "val_acc": 99.9, "test_acc": 99.9}]
    picks = pick_per_budget(rows, ["criterion"], [1000])
    assert [(entry["method"], entry["pick"]) for entry in picks] == [("criterion=a", False), ("criterion=b", True)]
    assert picks[1]["test"] == 80.0 and picks[1]["seeds"] == 2  # the 5,000-parameter model is over the budget


def test_the_report_draws_both_figures_and_lists_picks_and_failures(tmp_path):
    from nbprune.sweeps.report import sweep_report
    folder = SweepFolder(tmp_path)
    rows = [{"chain": f"criterion={criterion}__seed={seed}", "criterion": criterion, "seed": seed,
             "iteration": iteration, "hidden": "8+4" if iteration else "16+8", "inputs": 784,
             "parameters": 2000 if iteration else 12_000, "retained": 50.0 if iteration else 100.0,
             "val_acc": 90.0 + seed + (criterion == "taylor"), "test_acc": 89.0 + seed, "model_file": "m.pth",
             "seconds": 1.0} for criterion in ("magnitude", "taylor") for seed in (0, 1) for iteration in (0, 1)]
    folder.write_table(rows, ["criterion"])
    folder.save_state({"format": 1, "spec": {}, "dense": {},
                       "chains": {"criterion=random__seed=0": {"status": "failed", "error": "TrainingError: NaN"}}})
    report = sweep_report(tmp_path, budgets=[5000]).read_text()
    assert "| <= 5,000 | criterion=taylor | 2 | 91.50 | 89.50 ± 0.71 | 2,000 | **pick** |" in report
    assert "- `criterion=random__seed=0`: TrainingError: NaN" in report
    assert (tmp_path / "accuracy_vs_parameters.png").is_file() and (tmp_path / "accuracy_vs_retained.png").is_file()
    with pytest.raises(NbpruneError, match="holds no sweep results"):
        sweep_report(tmp_path / "elsewhere")


def test_the_report_figure_bands_span_the_seeds_and_say_so():
    from nbprune.sweeps.report import plot
    rows = [{"criterion": "taylor", "seed": seed, "iteration": 1, "parameters": 2000, "test_acc": accuracy}
            for seed, accuracy in enumerate((88.0, 90.0, 95.0))]
    rows += [{**row, "iteration": 0, "parameters": 12_000, "test_acc": row["test_acc"] + 1} for row in rows]
    axes = plot(rows, ["criterion"], "parameters", "parameters").axes[0]
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    assert (band.min(), band.max()) == (88.0, 96.0)  # the lowest and the highest seed, not a bootstrap interval
    assert "lowest to highest" in axes.get_ylabel() and "CI" not in axes.get_ylabel()


# --- on Ray -------------------------------------------------------------------------------------------------------
@pytest.fixture
def quick_ray_start(tmp_path_factory, monkeypatch):
    """Let Ray start on a busy machine: its raylet gives its agents a fixed 15 s to start (ray-project/ray#65983),
    and every Ray process imports jsonschema, which builds rfc3987_syntax's grammar at import when that optional
    package is installed (the notebooks' Jupyter brings it): seconds of CPU per process. Ray's processes started in
    this test find a module that declines to load instead (jsonschema goes on without it)."""
    ray_or_skip()
    shim = tmp_path_factory.mktemp("ray_shim")
    (shim / "rfc3987_syntax.py").write_text("raise ImportError('not loaded in this test: slow to import')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def free_ports(count: int) -> list[int]:
    """Return ports nothing listens on now, on 127.0.0.1 (held together while chosen, so all differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


@contextlib.contextmanager
def ray_start_node(args: list[str], env: dict, log: Path):
    """Run `ray start --block ARGS` as a process group of our own until `Ray runtime started.` (an event, not a
    time); on leaving, SIGTERM it (it stops the Ray processes it started), then end whatever is left of its group.
    Nothing else is touched: other Ray clusters on this machine (another engineer's, another test's) stay."""
    ray = Path(sys.executable).with_name("ray")
    with open(log, "wb") as output:
        node = subprocess.Popen([str(ray), "start", "--block", "--disable-usage-stats", *args], env=env, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: b"Ray runtime started." in log.read_bytes(), node, f"ray start {' '.join(args)}")
        yield node
    finally:
        node.terminate()
        try:
            node.wait(timeout=HANG)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.pid, signal.SIGKILL)  # the group it started in: ours alone


def node_ports() -> list[str]:
    """Return a node's own ports, chosen free, so that its agents never meet another cluster's."""
    listen, grpc, runtime_env, metrics = free_ports(4)
    return ["--dashboard-agent-listen-port", str(listen), "--dashboard-agent-grpc-port", str(grpc),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics)]


@pytest.fixture
def ray_start_cluster(quick_ray_start, tmp_path):
    """docs/sweep.md's recipe on 127.0.0.1: token authentication on every node, `ray start --head` and a second
    node with `ray start --address`, one CPU each, neither seeing $NBPRUNE_DATA_ROOT. Yields (address, the
    environment every node and the driver share)."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key not in ("NBPRUNE_DATA_ROOT", "RAY_AUTH_TOKEN")}
    env.update(ENV_SINGLE_THREAD, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    env.pop("NBPRUNE_DATA_ROOT", None)
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's sockets need a short path
    port, = free_ports(1)
    address = f"127.0.0.1:{port}"
    try:
        with ray_start_node(["--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard=false",
                             "--temp-dir", temp, *node_ports()],
                            env, tmp_path / "head.log") as head, \
                ray_start_node(["--address", address, "--num-cpus", "1", "--temp-dir", temp, *node_ports()], env,
                               tmp_path / "worker.log"):
            status = [str(Path(sys.executable).with_name("ray")), "status", "--address", address]
            wait_for(lambda: subprocess.run(status, env=env, capture_output=True, text=True).stdout.count(
                " node_") == 2, head, "both nodes in `ray status`")
            yield address, env
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def sweep_cli(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbprune.cli", "sweep", *argv], env=env, capture_output=True,
                          text=True, timeout=HANG)


@pytest.mark.slow
def test_the_documented_cluster_recipe_gives_the_rows_and_models_of_a_local_sweep(ray_start_cluster, tiny_root,
                                                                                  tmp_path):
    address, env = ray_start_cluster
    driver = dict(env, NBPRUNE_DATA_ROOT=str(tiny_root))  # the driver's only: workers get data_root from it
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"

    without_token = {key: value for key, value in driver.items() if not key.startswith("RAY_AUTH")}
    refused = sweep_cli("--dir", str(on_cluster), *SMALL, "--address", address, "--no-progress",  # no checks' bar
                        env=without_token)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"nbprune: error: could not connect to the Ray cluster at {address}: it uses "
                                     f"token authentication")
    assert "RAY_AUTH_MODE=token" in refused.stderr and "docs/sweep.md" in refused.stderr
    too_big = sweep_cli("--dir", str(on_cluster), *SMALL, "--set", "threads=2", "--address", address, "--no-progress",
                        env=driver)
    assert too_big.returncode == 2 and too_big.stderr.count("\n") == 1, too_big.stderr
    assert f"no node of the Ray cluster at {address} has that (the largest: 1 CPUs, 0 GPUs)" in too_big.stderr
    assert not on_cluster.exists()  # both refused before the first write

    done = sweep_cli("--dir", str(on_cluster), *SMALL, "--address", address, env=driver)
    assert done.returncode == 0 and "nbprune: " not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sweep_cli("--dir", str(local), *SMALL, "--workers", "2", env=driver).returncode == 0

    rows = table(on_cluster)
    assert [(row["criterion"], row["seed"], row["iteration"]) for row in rows] == [
        (criterion, seed, iteration) for criterion in ("magnitude", "random") for seed in "01" for iteration in "012"]
    assert [{**row, "seconds": None} for row in rows] == [{**row, "seconds": None} for row in table(local)]
    assert all(float(row["seconds"]) > 0 for row in rows)
    for row in rows:
        assert (on_cluster / row["model_file"]).read_bytes() == (local / row["model_file"]).read_bytes()
    assert sorted(readable(name) for name in os.listdir(on_cluster / "dense")) == ["seed=0", "seed=1"]  # shared
    dense = Session(folder_of(on_cluster / "dense", "seed=0")).model_file(0).read_bytes()
    assert all(Session(chain).model_file(0).read_bytes() == dense
               for chain in (on_cluster / "chains").glob("*seed=0--*"))
    chain = folder_of(on_cluster / "chains", "criterion=magnitude__seed=0")
    assert runs(chain)[0]["config"]["data_root"] == str(tiny_root.resolve())  # reached the nodes by data_root
    assert json.loads((chain / "settings.json").read_text())["criterion"] == "magnitude"
    lines = [line for line in done.stdout.splitlines() if line.startswith("chain ")]
    assert len(lines) == 4 and all(": finished, 3 models in " in line for line in lines)  # one per chain

    again = sweep_cli("--dir", str(on_cluster), *SMALL, "--address", address, env=driver)
    assert again.returncode == 0 and len(runs(chain)) == 1  # finished: nothing runs again
    changed = sweep_cli("--dir", str(on_cluster), *SMALL, "--set", "epochs=2", env=driver)
    assert changed.returncode == 2 and "set: saved" in changed.stderr

    assert main(["sweep", "report", str(on_cluster), "--budgets", "200000", "150000"]) == 0
    report = (on_cluster / "report.md").read_text()
    assert "| <= 200,000 | criterion=magnitude | 2 |" in report and "| <= 150,000 | criterion=random | 2 |" in report
    assert (on_cluster / "accuracy_vs_parameters.png").stat().st_size > 10_000
    assert (on_cluster / "accuracy_vs_retained.png").stat().st_size > 10_000


def lock_file(chain: Path) -> Path:
    """Return the lock file a chain's session holds while it runs."""
    return Session(chain).lock_folder / LOCK_FILE


def held(path: Path) -> bool:
    """Return whether another process holds the OS lock on `path`."""
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(handle)


@contextlib.contextmanager
def holding(path: Path):
    """Hold the OS lock on `path` as another nbprune run would (this process's PID in the file)."""
    handle = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()} not-shared\n".encode(), 0)
        yield
    finally:
        os.close(handle)


def stop_between_iterations(chain: Path, driver: subprocess.Popen) -> int:
    """Stop (SIGSTOP) the worker running `chain` once iteration 1 is published and iteration 2 is not; return its
    PID. Checked after the stop, so the chain is frozen exactly there."""
    session = Session(chain)
    while True:
        assert driver.poll() is None, f"the sweep ended before {chain.name} could be stopped: {driver.stderr.read()}"
        path = lock_file(chain)
        if session.is_complete(1) and not session.is_complete(2) and path.is_file():
            words = path.read_text().split()
            if words:
                pid = int(words[0])
                os.kill(pid, signal.SIGSTOP)
                if held(path) and session.is_complete(1) and not session.is_complete(2):
                    return pid
                os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_chain_is_recorded_failed_and_the_rerun_finishes_only_what_is_missing(quick_ray_start, tiny_root,
                                                                                       tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'seeds = [0]\nend_itr = 2\n[set]\ndata_root = "{tiny_root}"\nval_size = 100\npatience = 60\n'
                    f'lr_patience = 100\nlr_drops = 100\n[[cases]]\ncriterion = "magnitude"\nepochs = 1\n'
                    f'[[cases]]\ncriterion = "random"\nepochs = 60\n')
    folder = tmp_path / "sweep"
    quick, victim = chain_folder(spec, folder, "criterion=magnitude__epochs=1__seed=0"), \
        chain_folder(spec, folder, "criterion=random__epochs=60__seed=0")
    driver = subprocess.Popen([sys.executable, "-m", "nbprune.cli", "sweep", str(spec), "--dir", str(folder),
                               "--workers", "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        os.kill(stop_between_iterations(victim, driver), signal.SIGKILL)
        out, error = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 2, error
    assert f"nbprune: error: 1 chain(s) failed ({victim.name};" in error
    assert [line for line in error.splitlines() if line.strip()][-1].startswith("nbprune: error: ")
    state = json.loads((folder / "sweep.json").read_text())
    assert state["chains"][quick.name]["status"] == "finished"
    assert state["chains"][victim.name]["status"] == "failed" and state["chains"][victim.name]["error"]
    assert [row["iteration"] for row in table(folder) if row["chain"] == victim.name] == ["0", "1"]
    first_model = Session(victim).model_file(1).read_bytes()

    sweep(spec, folder, workers=2, progress=False)
    assert len(runs(quick)) == 1  # finished: not run again
    assert [run["begin_itr"] for run in runs(victim)] == ["auto", "auto"] and len(runs(victim)) == 2
    assert Session(victim).model_file(1).read_bytes() == first_model  # iteration 1 was kept, only 2 was run
    assert [(row["chain"], row["iteration"]) for row in table(folder)] == [
        (quick.name, "0"), (quick.name, "1"), (quick.name, "2"), (victim.name, "0"), (victim.name, "1"),
        (victim.name, "2")]
    assert json.loads((folder / "sweep.json").read_text())["chains"][victim.name]["status"] == "finished"


@pytest.mark.slow
def test_sigterm_leaves_every_chain_resumable_and_a_chain_locked_by_another_run_fails_alone(quick_ray_start,
                                                                                             tiny_root, tmp_path):
    """SIGTERM while chains run (Ctrl-C takes the same way): ray.init had replaced its handler, and Ray's native
    one dumped a stack and aborted (exit 134) without a line of nbprune's."""
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'seeds = [0, 1]\nend_itr = 2\n[set]\ndata_root = "{tiny_root}"\nval_size = 100\nepochs = 60\n'
                    f'patience = 60\nlr_patience = 100\nlr_drops = 100\n[grid]\ncriterion = ["random"]\n')
    folder = tmp_path / "sweep"
    watched = chain_folder(spec, folder, "criterion=random__seed=0")
    driver = subprocess.Popen([sys.executable, "-m", "nbprune.cli", "sweep", str(spec), "--dir", str(folder),
                               "--workers", "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    worker = None
    try:
        worker = stop_between_iterations(watched, driver)  # frozen mid-chain while SIGTERM reaches the driver
        driver.send_signal(signal.SIGTERM)
        out, error = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):  # Ray ends it with the sweep; never leave it stopped
                os.kill(worker, signal.SIGKILL)
    assert driver.returncode == 130, error
    assert error.strip() == "nbprune: interrupted. Run the same command again to continue the unfinished chains."
    state = json.loads((folder / "sweep.json").read_text())
    assert state["chains"][watched.name]["status"] == "unfinished"
    assert Session(watched).is_complete(1) and not Session(watched).is_complete(2)

    with holding(lock_file(watched)), pytest.warns(ChainsFailedWarning, match=r"1 chain\(s\) failed"):
        sweep(spec, folder, workers=2, progress=False)  # another run has the session: each chain takes its lock
    record = json.loads((folder / "sweep.json").read_text())["chains"][watched.name]
    assert record["status"] == "failed" and record["error"].startswith("SessionError: session folder")
    assert f"in use by another nbprune run (PID {os.getpid()})" in record["error"]
    assert not Session(watched).is_complete(2)

    sweep(spec, folder, workers=2, progress=False)
    assert [row["iteration"] for row in table(folder)] == ["0", "1", "2"] * 2
    assert all(record["status"] == "finished" for record in json.loads((folder / "sweep.json").read_text())
               ["chains"].values())
    assert len(runs(watched)) == 2  # continued from iteration 2, not started again


def test_paths_reach_the_workers_resolved(tmp_path, monkeypatch):
    from nbprune.sweeps.spec import with_paths_resolved
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBPRUNE_DATA_ROOT", "data")
    (tmp_path / "retain.txt").write_text("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n"
                                         "0 256 64 100\n1 200 50 78.125\n")
    (tmp_path / "teacher.pth").write_bytes(b"a teacher")
    chain, = expand(build_spec(fixed={"retain": "retain.txt", "teacher": "teacher.pth"}))
    assert chain.config.data.data_root == str(tmp_path / "data")  # a worker's environment and folder play no part
    assert chain.config.schedule.retain == str(tmp_path / "retain.txt")
    assert chain.config.train.teacher == str(tmp_path / "teacher.pth")
    assert with_paths_resolved([chain]) == [chain]


@pytest.mark.slow
def test_a_sweep_prunes_a_named_architectures_channels_like_nbprune_prune(quick_ray_start, tiny_root, tmp_path):
    from nbprune.networkfile import network_from_file
    spec = build_spec(grid={"criterion": ["magnitude", "interval_adjoint"]}, seeds=[0], end_itr=1,
                      fixed={"architecture": "lenet5_small", "data_root": str(tiny_root), "epochs": 1, "patience": 1,
                             "q": 0.5, "threads": 1})
    folder = tmp_path / "sweep"
    sweep(spec, folder, workers=2, progress=False)
    rows = table(folder)
    assert [(row["criterion"], row["iteration"], row["hidden"]) for row in rows] == [
        ("magnitude", "0", "6+16+120+84"), ("magnitude", "1", "3+8+60+42"),
        ("interval_adjoint", "0", "6+16+120+84"), ("interval_adjoint", "1", "3+8+60+42")]
    assert rows[0]["model_file"] != rows[2]["model_file"]  # each chain's own copy of the one dense model
    assert (folder / rows[0]["model_file"]).read_bytes() == (folder / rows[2]["model_file"]).read_bytes()
    alone = tmp_path / "alone"  # the same chain by nbprune prune: the same model file
    assert main(["prune", "--architecture", "lenet5_small", "--criterion", "interval_adjoint", "--session-dir",
                 str(alone), "--data-root", str(tiny_root), "--epochs", "1", "--patience", "1", "--q", "0.5",
                 "--end-itr", "1", "--seed", "0", "--threads", "1", "--no-progress"]) == 0
    swept = folder / rows[3]["model_file"]
    assert Session.for_pruning_dir(alone / "iterative_pruning").model_file(1).read_bytes() == swept.read_bytes()
    network, record = network_from_file(swept)
    assert record.iteration == 1 and record.criterion == "interval_adjoint" and record.spec.dataset == "MNIST"


# --- the benchmarks run their chains as sweeps --------------------------------------------------------------------
def benchmark(name: str):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    return __import__(name)


@pytest.mark.slow
def test_pareto_runs_its_chains_as_one_sweep_and_scratch_beside_it(quick_ray_start, tiny_root, tmp_path):
    pareto = benchmark("pareto")
    work, results = tmp_path / "work", tmp_path / "results"
    arguments = ["--data-root", str(tiny_root), "--seeds", "0", "--epochs", "1", "--min-parameters", "60000",
                 "--workers", "2", "--work-dir", str(work), "--results-dir", str(results)]
    assert pareto.main([*arguments, "--methods", "reference", "best", "scratch"]) == 0
    state = json.loads((results / "pareto.json").read_text())
    fields = {"method", "seed", "iteration", "hidden", "inputs", "parameters", "val_acc", "test_acc", "model_file"}
    assert all(set(row) == fields for row in state["rows"])
    assert {row["method"] for row in state["rows"]} == {"reference", "best", "scratch"}
    swept, = work.glob("sweep-*")  # both chains in one sweep: one dense model, its table the benchmark's rows
    chains = [row for row in state["rows"] if row["method"] != "scratch"]
    assert all(Path(row["model_file"]).is_relative_to(swept) for row in chains)
    assert sorted(row["val_acc"] for row in chains) == sorted(
        row["val_acc"] for row in pareto.state_from_sweep(pareto.parse_args(arguments[:-4] + arguments[-2:]),
                                                          swept)["rows"])
    dense = {row["method"]: row["model_file"] for row in chains if row["iteration"] == 0}
    assert Path(dense["best"]).read_bytes() == Path(dense["reference"]).read_bytes()  # trained once, shared
    best = [row for row in chains if row["method"] == "best"]
    assert best[-1]["inputs"] < 784 and best[-1]["parameters"] < best[0]["parameters"]
    scratch = {row["iteration"]: row for row in state["rows"] if row["method"] == "scratch"}
    assert scratch and all(scratch[row["iteration"]]["inputs"] == row["inputs"] for row in best
                           if row["iteration"] in scratch)
    assert "## Targets" in (results / "pareto.md").read_text() and (results / "pareto.png").is_file()

    rows = state["rows"]
    assert pareto.main([*arguments, "--methods", "reference", "best", "scratch"]) == 0  # nothing left to do
    assert json.loads((results / "pareto.json").read_text())["rows"] == rows
    assert len(list(work.glob("sweep-*"))) == 1
    assert pareto.main([*arguments, "--methods", "best_lr_patience3"]) == 0  # another spec: a sweep of its own
    state = json.loads((results / "pareto.json").read_text())
    assert {row["method"] for row in state["rows"]} == {"reference", "best", "scratch", "best_lr_patience3"}
    assert len(list(work.glob("sweep-*"))) == 2
    assert len(state["sitting_minutes"]) == 2 and len(state["attempt_minutes"]) == 1
    text = (results / "pareto.md").read_text()
    assert "## Attempts at the missed targets" in text and "`best_lr_patience3`: lr_patience = 3" in text
    with pytest.raises(SystemExit, match="add best to --methods"):
        pareto.main([*arguments, "--seeds", "1", "--methods", "scratch"])

    teacher = Path(dense["best"])  # a SimpleNN teaches too
    taught = ["--name", "study", "--teacher", str(teacher)]
    assert pareto.main([*arguments, *taught, "--methods", "best_teacher", "scratch_teacher"]) == 0
    study = json.loads((results / "study.json").read_text())
    assert study["teacher"]["file"] == str(teacher.resolve()) and len(study["teacher"]["sha256"]) == 64
    pruned = [row for row in study["rows"] if row["iteration"] > 0]
    assert {row["method"] for row in pruned} == {"best_teacher", "scratch_teacher"}
    assert all(read_record(row["model_file"]).teacher["sha256"] == study["teacher"]["sha256"] for row in pruned)
    assert "## The teacher (issue 20)" in (results / "study.md").read_text()
    other = tmp_path / "other.pth"
    model = SimpleNN.from_file(teacher)  # the same network with other weights: another teacher
    with torch.no_grad():
        model.fc3.bias.add_(1.0)
    save_model_file(model, other, iteration=0)
    with pytest.raises(SystemExit, match="another --results-dir or --name"):
        pareto.main([*arguments, "--name", "study", "--teacher", str(other), "--methods", "best_teacher"])


@pytest.mark.slow
def test_compare_criteria_runs_its_chains_as_one_sweep_and_scratch_beside_it(quick_ray_start, tiny_root, tmp_path):
    compare_criteria = benchmark("compare_criteria")
    work, results = tmp_path / "work", tmp_path / "results"
    arguments = ["--data-root", str(tiny_root), "--val-size", "100", "--epochs", "1", "--patience", "1",
                 "--seeds", "0", "--methods", "magnitude", "random", "scratch", "--end-itr", "2",
                 "--work-dir", str(work), "--results-dir", str(results)]
    assert compare_criteria.main(arguments) == 0
    state = json.loads((results / "compare_criteria.json").read_text())
    assert {method: sorted(state["results"][method]["0"]) for method in ("magnitude", "random", "scratch")} == \
        {"magnitude": ["0", "1", "2"], "random": ["0", "1", "2"], "scratch": ["0", "1", "2"]}
    dense = state["dense"]["0"]["Test_Accuracy"]  # one dense model for every method
    assert {state["results"][method]["0"]["0"]["Test_Accuracy"] for method in state["results"]} == {dense}
    swept, = work.glob("sweep-*")
    finished = json.loads((swept / "sweep.json").read_text())["chains"].values()
    assert [record["status"] for record in finished] == ["finished", "finished"]
    assert "All runs finished" in (results / "compare_criteria.md").read_text()
    assert (results / "compare_criteria.png").is_file()

    again = tmp_path / "again"  # the same command again: nothing is trained, every record read back the same
    assert compare_criteria.main([*arguments[:-2], "--results-dir", str(again)]) == 0
    records = json.loads((again / "compare_criteria.json").read_text())["results"]
    assert {method: {level: record["Val_Accuracy"] for level, record in records[method]["0"].items()}
            for method in ("magnitude", "random")} == \
        {method: {level: record["Val_Accuracy"] for level, record in state["results"][method]["0"].items()}
         for method in ("magnitude", "random")}
    with pytest.raises(SystemExit):
        compare_criteria.main([*arguments[:4], "--epochs", "2", *arguments[6:]])  # other settings, same JSON
    with pytest.raises(SystemExit):
        compare_criteria.main(["--methods", "scratch", "--results-dir", str(tmp_path / "alone")])
    assert not (tmp_path / "alone").exists()


class RayThatCannotStart:
    """Stands in for the ray module where ray.init fails, as it does when the raylet's agents miss their start (or,
    saying so on its native stderr as Ray's C++ client does, when the cluster wants a token)."""

    native = ""

    @classmethod
    def is_initialized(cls):
        return False

    @classmethod
    def init(cls, **options):
        cls.attempts = os.environ.get("RAY_gcs_server_port_wait_time_s")  # Ray's attempts to reach the GCS
        os.write(2, cls.native.encode())
        raise ConnectionError("Failed to connect to Ray cluster") if cls.native else \
            Exception("Timed out waiting for the agent to start")


@pytest.fixture
def signal_handlers():
    """Put SIGINT's and SIGTERM's handlers back after a test that starts Ray in-process (_start_ray makes both
    KeyboardInterrupts)."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.parametrize("address, native, fix", [
    (None, "", "fixed 15 s to start"), ("10.0.0.9:6379", "", "check the address"),
    ("10.0.0.9:6379", "[W gcs_client.cc:210] Unauthenticated: RPC error: InvalidAuthToken: Authentication token is "
                      "missing or incorrect\n" * 3,
     "it uses token authentication (Ray said InvalidAuthToken or no token) and this machine has no token for it, "
     "or another one")])
def test_ray_that_cannot_start_or_connect_is_said_in_one_message_with_the_fix(address, native, fix, monkeypatch,
                                                                              capfd, signal_handlers):
    from nbprune.sweeps import engine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(engine, "_probe", lambda address: None)  # something answers there
    monkeypatch.setattr(RayThatCannotStart, "native", native)
    with pytest.raises(NbpruneError) as refused:
        engine._start_ray(RayThatCannotStart, address, workers=1)
    said = str(refused.value)
    assert said.startswith("could not") and fix in said and "run the same command again to continue" in said
    assert "Timed out waiting for the agent" in said or native
    assert "InvalidAuthToken" not in capfd.readouterr().err  # Ray's native lines are kept off the terminal
    assert RayThatCannotStart.attempts == ("3" if address else None)  # a few, not Ray's 20 of up to 40 s each
    assert "RAY_gcs_server_port_wait_time_s" not in os.environ  # for the start only


def test_chains_no_node_can_run_are_refused_naming_the_largest_node():
    from nbprune.sweeps.engine import _check_resources

    class Cluster:
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": True, "Resources": {"CPU": 1.0, "GPU": 1.0}},
                    {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    _check_resources(Cluster, expand(build_spec(fixed={"threads": 2})), "the cluster")
    _check_resources(Cluster, expand(build_spec(fixed={"device": "cuda"})), "the cluster")
    with pytest.raises(SweepError, match=r"asks Ray for 3 CPU\(s\) on one node, but no node of the cluster has that "
                                         r"\(the largest: 2 CPUs, 1 GPUs\)"):
        _check_resources(Cluster, expand(build_spec(fixed={"threads": 3})), "the cluster")
    with pytest.raises(SweepError, match=r"2 CPU\(s\) and a GPU .* or set device=cpu"):
        _check_resources(Cluster, expand(build_spec(fixed={"threads": 2, "device": "cuda"})), "the cluster")

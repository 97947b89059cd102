"""Reliability against bad input everywhere: a catalogue of wrong values, files and folders through every door
(command line, API, workbook), each refused in one clear line with nothing damaged."""


from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import nbprune
from conftest import (HIDDEN, REPO, SCHEDULE, make_tiny_mnist, prune_argv, tree_bytes, write_idx, write_damaged_model)
from nbprune import load_data, load_pruned_model, NbpruneError, SimpleNN
from nbprune.errors import InputError
from nbprune.cli import main
from nbprune.data import InputSpec
from nbprune.datasets import MNIST
from nbprune.session import is_complete, iteration_dir
from nbprune.modelfile import save_model_file


# --- bad input, everywhere ------------------------------------------------------------------------------------

@dataclass
class Context:
    """What a catalogue case may touch: a copy of a finished session, the data, and the command line."""

    tmp: Path
    session: Path
    data_root: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *argv: str) -> str:
        """Run the command line in-process; return its one error line after checking exit code 2."""
        self.monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
        self.capsys.readouterr()
        code = main(list(argv))
        _, err = self.capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, err
        assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("nbprune: error: "), err
        return lines[0]

    def prune(self, *extra: str, session: Path | None = None, data_root: Path | None = None) -> str:
        return self.cli(*prune_argv(session or self.session, data_root or self.data_root, *extra))

    def retain_file(self, *rows: str) -> str:
        path = self.tmp / "retain.txt"
        path.write_text("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n" + "\n".join(rows) + "\n")
        return str(path)

    def data_copy(self) -> Path:
        root = self.tmp / "data"
        shutil.copytree(self.data_root, root)
        return root

    def raw(self, root: Path, name: str) -> Path:
        return root / "MNIST" / "raw" / name


def _missing_data(ctx: Context) -> str:
    import torchvision

    def offline(self):
        raise OSError("no network (test)")
    ctx.monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    root = ctx.data_copy()
    ctx.raw(root, "t10k-labels-idx1-ubyte").unlink()
    return ctx.prune(data_root=root)


def _empty_data_folder(ctx: Context) -> str:
    """No data at all and no network: nothing may be created in the data folder (no MNIST/raw/)."""
    import torchvision

    def offline(self):
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)  # as torchvision does before it downloads
        raise OSError("no network (test)")
    ctx.monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    root = ctx.tmp / "empty_data"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    message = ctx.prune(data_root=root)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    return message


def _corrupt_data(kind: str) -> Callable[[Context], str]:
    def case(ctx: Context) -> str:
        root = ctx.data_copy()
        if kind == "truncated":
            path = ctx.raw(root, "train-images-idx3-ubyte")
            path.write_bytes(path.read_bytes()[:5000])
        elif kind == "not_idx":
            ctx.raw(root, "t10k-images-idx3-ubyte").write_bytes(b"<html>404 Not Found</html>" * 100)
        elif kind == "fifo":
            ctx.raw(root, "t10k-images-idx3-ubyte").unlink()
            os.mkfifo(ctx.raw(root, "t10k-images-idx3-ubyte"))
        elif kind == "directory":
            ctx.raw(root, "train-labels-idx1-ubyte").unlink()
            ctx.raw(root, "train-labels-idx1-ubyte").mkdir()
        elif kind == "not_28x28":
            write_idx(ctx.raw(root, "train-images-idx3-ubyte"),
                      np.random.default_rng(0).integers(0, 255, (600, 20, 20), dtype=np.uint8))
        elif kind == "no_variance":
            write_idx(ctx.raw(root, "train-images-idx3-ubyte"), np.full((600, 28, 28), 9, dtype=np.uint8))
        else:  # labels out of range, with a valid header and size
            path = ctx.raw(root, "train-labels-idx1-ubyte")
            data = bytearray(path.read_bytes())
            data[8:20] = bytes([200] * 12)
            path.write_bytes(bytes(data))
        return ctx.prune(data_root=root)
    return case


def _remove_iteration_2(ctx: Context) -> None:
    shutil.rmtree(ctx.session / "2")


def _iteration_2_of_another_architecture(ctx: Context) -> None:
    torch.save(SimpleNN(hidden=(4, 4, 4)).state_dict(), iteration_dir(ctx.session, 2) / "best_model.pth")


def _truncate_the_dense_model(ctx: Context) -> None:
    path = iteration_dir(ctx.session, 0) / "best_model.pth"
    path.write_bytes(path.read_bytes()[:3000])


def _other_architecture_evaluate(ctx: Context) -> str:
    path = ctx.tmp / "other.pth"
    torch.save(SimpleNN(hidden=(8,), in_features=100).state_dict(), path)
    return ctx.cli("evaluate", str(path), "--data-root", str(ctx.data_root))


def _model_file_cli(kind: str, command: str = "evaluate",
                    write: Callable[[str, Path], None] | None = None) -> Callable[[Context], str]:
    """Write a bad model file (damaged by default) and hand it to `nbprune evaluate` or `nbprune export`."""
    def case(ctx: Context) -> str:
        path = ctx.tmp / f"{kind}.pth"
        (write or write_damaged_model)(kind, path)
        if command == "export":
            message = ctx.cli("export", str(path), str(ctx.tmp / "exported"))
            assert not (ctx.tmp / "exported").exists()
            return message
        return ctx.cli("evaluate", str(path), "--data-root", str(ctx.data_root))
    return case


def _unwritable_session(ctx: Context) -> str:
    blocker = ctx.tmp / "a_file"
    blocker.write_text("not a folder")
    return ctx.prune(session=blocker / "iterative_pruning")


def _nan_training(ctx: Context) -> str:
    """The weights become NaN during iteration 1's training: the run stops there and keeps the last good model."""
    from nbprune.fast_mlp import FlatMLPTrainer
    session = ctx.tmp / "diverging" / "iterative_pruning"
    original = FlatMLPTrainer._adamw_step

    def diverge(self):
        original(self)
        if self.linears[0].out_features < HIDDEN[0]:  # a pruned model: iteration 1 and after
            self.flat.data.fill_(float("nan"))
    ctx.monkeypatch.setattr(FlatMLPTrainer, "_adamw_step", diverge)
    message = ctx.prune(session=session)
    assert is_complete(session, 1) and not iteration_dir(session, 2).exists()  # stopped where it diverged
    model_file = iteration_dir(session, 1) / "best_model.pth"
    assert str(model_file) in message
    model = SimpleNN.from_file(model_file)  # loads, so every weight is finite
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return message


def _deploy(bad_input: Callable[[], object]) -> Callable[[Context], str]:
    def case(ctx: Context) -> str:
        model = load_pruned_model(SimpleNN(), iteration_dir(ctx.session, 3) / "best_model.pth")
        with pytest.raises(InputError) as error:
            model(bad_input())
        assert isinstance(error.value, NbpruneError) and "\n" not in str(error.value)
        return str(error.value)
    return case


def _bad_learning_rate(ctx: Context) -> str:
    data = load_data(ctx.data_root, download=False)
    with pytest.raises(NbpruneError) as error:
        nbprune.train(SimpleNN(hidden=HIDDEN), data.train_loader, data.test_loader, lr=-0.1, progress=False,
                      val_loader=data.val_loader)
    return str(error.value)


def _crafted(kind: str, path: Path) -> None:
    """Write a model file whose tensors are not real dense weights (or whose record lies)."""
    with warnings.catch_warnings():  # nested and quantized tensors warn that they are prototypes
        warnings.simplefilter("ignore")
        _craft(kind, path)


def _craft(kind: str, path: Path) -> None:
    state = SimpleNN(hidden=HIDDEN).state_dict()
    if kind == "complex_nan":
        state = {k: v.to(torch.complex64) for k, v in state.items()}
        state["fc2.weight"][0, 0] = float("nan")
    elif kind == "integer":
        state["fc2.weight"] = state["fc2.weight"].to(torch.int32)
    elif kind == "meta":
        state["fc2.weight"] = state["fc2.weight"].to("meta")
    elif kind == "sparse":
        state["fc2.weight"] = state["fc2.weight"].to_sparse()
    elif kind == "nested":
        state["fc2.weight"] = torch.nested.nested_tensor([torch.zeros(3), torch.zeros(2)])
    elif kind == "quantized":
        state["fc2.weight"] = torch.quantize_per_tensor(state["fc2.weight"], 0.1, 0, torch.qint8)
    elif kind == "zero_d":
        state["fc1.weight"] = torch.tensor(1.0)
    elif kind == "no_hidden_neurons":
        state.update({"fc1.weight": torch.zeros(0, 784), "fc1.bias": torch.zeros(0),
                      "fc2.weight": torch.zeros(HIDDEN[1], 0)})
    elif kind == "torchscript":
        torch.jit.script(torch.nn.Sequential(torch.nn.Linear(784, 10))).save(str(path))
        return
    else:  # a record that lies: NaN/inf/zero standardisation or an unknown activation
        model = SimpleNN(hidden=HIDDEN)
        model.spec = InputSpec("MNIST", MNIST.classes, 0.1307, 0.3081, 784)
        save_model_file(model, path)
        saved = torch.load(path, weights_only=True)
        record = saved._metadata[""]["nbprune"]
        field, value = {"record_nan_mean": ("mean", float("nan")), "record_inf_std": ("std", float("inf")),
                        "record_zero_std": ("std", 0.0), "record_activation": ("activation", "tanh")}[kind]
        (record if field == "activation" else record["input"])[field] = value
        torch.save(saved, path)
        return
    torch.save(state, path)


def _retain_bytes(data: bytes) -> Callable[[Context], str]:
    def case(ctx: Context) -> str:
        path = ctx.tmp / "retain.txt"
        path.write_bytes(data)
        return ctx.prune("--retain", str(path))
    return case


def _damage_validation_results(content: bytes) -> Callable[[Context], None]:
    def setup(ctx: Context) -> None:
        (iteration_dir(ctx.session, 2) / "validation_results.txt").write_bytes(content)
    return setup


def _read_only(ctx: Context) -> None:
    """Make every write of this process fail as on a read-only file system (root ignores permission bits)."""
    import errno
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    original_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse()
        return original_open(path, flags, *args, **kwargs)
    for owner, name in ((tempfile, "mkstemp"), (tempfile, "mkdtemp"), (os, "mkdir"), (os, "makedirs")):
        ctx.monkeypatch.setattr(owner, name, refuse)
    ctx.monkeypatch.setattr(os, "open", guarded_open)


def _file_in_the_way(command: str) -> Callable[[Context], str]:
    def case(ctx: Context) -> str:
        blocker = ctx.tmp / "a_file"
        blocker.write_text("mine")
        model = str(iteration_dir(ctx.session, 3) / "best_model.pth")
        argv = {"export": ["export", model, str(blocker / "sub")], "retain": ["retain", "--dir", str(blocker)],
                "workbook": ["workbook", "--session-dir", str(blocker)]}[command]
        message = ctx.cli(*argv)
        assert blocker.read_text() == "mine"
        return message
    return case


def _workbook(*parameters: str, session: str | None = None) -> Callable[[Context], str]:
    """Run `nbprune workbook -p ...` on a new session folder (data: the tiny set): refused, it writes nothing."""
    def case(ctx: Context) -> str:
        folder = Path(session) if session is not None else ctx.tmp / "workbook"
        pairs = [*parameters, *([] if "data_root" in parameters else ["data_root", str(ctx.data_root)])]
        message = ctx.cli("workbook", "--session-dir", str(folder),
                          *(word for index in range(0, len(pairs), 2) for word in ("-p", *pairs[index:index + 2])))
        assert session is not None or not folder.exists()
        return message
    return case


def _no_notebook_runs(case: Callable[[Context], str]) -> Callable[[Context], str]:
    """Fail at once, not after minutes, if the workbook starts its notebooks instead of refusing."""
    def guarded(ctx: Context) -> str:
        import papermill

        def never(*args, **kwargs):
            raise AssertionError("the workbook ran a notebook before refusing")
        ctx.monkeypatch.setattr(papermill, "execute_notebook", never)
        return case(ctx)
    return guarded


def _no_cuda(ctx: Context) -> str:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: device cuda is allowed")
    return _workbook("device", "cuda")(ctx)


def _workbook_without_data(ctx: Context) -> str:
    import torchvision

    def offline(self):
        raise OSError("no network (test)")
    ctx.monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    missing = ctx.tmp / "nonexistent"
    message = _workbook("data_root", str(missing))(ctx)
    assert not missing.exists()
    return message


def _workbook_in_the_checkout(ctx: Context) -> str:
    """The issue's case: the checkout as the session folder; its notebooks and its tree stay as they were."""
    before, lock = tree_bytes(REPO / "notebooks"), (REPO / ".nbprune.lock").exists()
    message = _workbook("data_root", str(ctx.tmp / "nonexistent"), "subset", "1000", session=str(REPO))(ctx)
    assert tree_bytes(REPO / "notebooks") == before and (REPO / ".nbprune.lock").exists() == lock
    return message


def _runs_that_do_not_continue_each_other(ctx: Context) -> None:
    """A session from before runs were set aside: a 2-iteration run from scratch recorded over a 4-iteration one."""
    import json
    record = json.loads((ctx.session / "run.json").read_text())
    first = {key: value for key, value in record["runs"][0].items() if key not in ("run", "first_iteration")}
    record["runs"] = [first, dict(first, schedule=first["schedule"][:2])]
    (ctx.session / "run.json").write_text(json.dumps(record))


def _teacher(ctx: Context, layer: str | None = None) -> Path:
    """Write a ConvTeacher file for the tiny data (built, not trained); with `layer`, one of its weights 3e38."""
    from nbprune.teacher import ConvTeacher, TrainedTeacher, save_teacher
    torch.manual_seed(0)
    model = ConvTeacher((4, 8), 16)
    if layer is not None:
        with torch.no_grad():
            getattr(model, layer).weight.view(-1)[0] = 3e38
    path = ctx.tmp / "teacher.pth"
    save_teacher(TrainedTeacher(model.eval(), 1, 0.0, 0.0, {}), load_data(ctx.data_root, download=False).spec, path)
    return path


def _teacher_that_is(kind: str) -> Callable[[Context], str]:
    """Give --teacher a FIFO or a symbolic link that leads back to itself."""
    def case(ctx: Context) -> str:
        path = ctx.tmp / "teacher.pth"
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(ctx.tmp / "loop.pth")
            (ctx.tmp / "loop.pth").symlink_to(path)
        message = ctx.prune("--teacher", str(path))
        assert "does not exist" not in message
        return message
    return case


def _retain_txt_is_a_folder(ctx: Context) -> str:
    (ctx.tmp / "r" / "retain.txt").mkdir(parents=True)
    message = ctx.cli("retain", "--dir", str(ctx.tmp / "r"))
    assert "make room" not in message and (ctx.tmp / "r" / "retain.txt").is_dir()
    return message


def _teacher_out(name: str, in_a_file: bool = False) -> Callable[[Context], str]:
    """`nbprune teacher OUT`: refused before any training (a test of training would take minutes, not this)."""
    def case(ctx: Context) -> str:
        import nbprune.teacher as teacher_module

        def never(*args, **kwargs):
            raise AssertionError("the teacher was trained before OUT_FILE was checked")
        ctx.monkeypatch.setattr(teacher_module, "train_teacher", never)
        folder = ctx.tmp / "a_file" if in_a_file else ctx.tmp
        if in_a_file:
            folder.write_text("mine")
        message = ctx.cli("teacher", str(folder / name), "--data-root", str(ctx.data_root), "--no-progress")
        assert not in_a_file or folder.read_text() == "mine"
        return message
    return case


def _export_out(length: int) -> Callable[[Context], str]:
    def case(ctx: Context) -> str:
        out = ctx.tmp / ("e" * length)
        message = ctx.cli("export", str(iteration_dir(ctx.session, 3) / "best_model.pth"), str(out))
        assert not [path for path in ctx.tmp.iterdir() if path.name.startswith(".e")]  # no building folder left
        return message
    return case


LONG_PATH = "/tmp/" + "a" * 5000


@dataclass
class Case:
    provoke: Callable[[Context], str]
    says: list[str]
    setup: Callable[[Context], None] | None = None


def _bad_option(*argv: str) -> Callable[[Context], str]:
    return lambda ctx: ctx.prune(*argv)


CRAFTED_SAYS = {
    "complex_nan": "holds torch.complex64 values in fc1.weight", "integer": "holds torch.int32 values in fc2.weight",
    "meta": "holds a meta tensor", "sparse": "holds a sparse_coo tensor", "nested": "holds a nested tensor",
    "quantized": "holds a quantized tensor", "zero_d": "expected non-empty matrices",
    "no_hidden_neurons": "expected non-empty matrices", "torchscript": "is a TorchScript program",
    "record_nan_mean": "damaged nbprune record (mean nan", "record_inf_std": "damaged nbprune record (std inf",
    "record_zero_std": "damaged nbprune record (std 0.0, expected numbers > 0)",
    "record_activation": "damaged nbprune record (activation 'tanh'",
}


# Each case: how to provoke it, and the fragments its one message must hold (what was wrong, what was expected,
# how to fix it). Command-line cases also check exit code 2, one line on stderr and no traceback; every case
# checks that the session it was given (after its set-up) and the data are byte for byte what they were.
CATALOGUE = {
    "begin_itr_negative": Case(lambda ctx: ctx.prune("--begin-itr=-1"),
                               ["begin_itr='-1' is not allowed", "expected a whole number from 0 to 1000 or 'auto'"]),
    "begin_itr_past_the_schedule": Case(lambda ctx: ctx.prune("--begin-itr", "9"),
                                        ["begin_itr=9", f"expected one of {SCHEDULE}", "'auto'"]),
    "begin_itr_not_a_number": Case(lambda ctx: ctx.prune("--begin-itr", "two"),
                                   ["begin_itr='two' is not allowed", "'auto'"]),
    "begin_itr_previous_missing": Case(lambda ctx: ctx.prune("--begin-itr", "3"),
                                       ["begin_itr=3 needs iteration 2's model",
                                        "2/prune_w_retrain/best_model.pth is missing", "run that iteration first"],
                                       setup=_remove_iteration_2),
    "end_itr_before_begin_itr": Case(lambda ctx: ctx.prune("--begin-itr", "2", "--end-itr", "1"),
                                     ["end_itr=1 comes before begin_itr=2", "expected end_itr >= begin_itr"]),
    "retain_not_integers": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file("0 16 8 100", "1 10.5 5 60")),
                                ["line 3", "10.5", "not a whole number", "must be integers"]),
    "retain_counts_grow": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file("0 16 8 100", "1 10 5 60",
                                                                                  "2 12 5 70")),
                               ["line 4", "counts grow from [10, 5] to [12, 5]", "may never grow"]),
    "retain_more_neurons_than_the_model": Case(
        lambda ctx: ctx.prune("--retain", ctx.retain_file("0 32 8 100")),
        ["keeps [32, 8] neurons but the model has only [16, 8]", "lower the counts or use a bigger model"]),
    "retain_iteration_1e23": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file(
        "0 16 8 100", "100000000000000000000000 8 4 50")),
                                  ["line 3", "too long to be an iteration"]),
    "retain_percentage_nan": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file("0 16 8 nan")),
                                  ["line 2", "percentage 'nan' is not allowed", "at most 100"]),
    "retain_percentage_negative": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file("0 16 8 -80")),
                                       ["percentage '-80' is not allowed"]),
    "retain_percentage_inf": Case(lambda ctx: ctx.prune("--retain", ctx.retain_file("0 16 8 inf")),
                                  ["percentage 'inf' is not allowed"]),
    "retain_latin1": Case(_retain_bytes("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n0 16 8 100 "
                                        "\xe9t\xe9\n".encode("latin-1")),
                          ["is not a plain-text retain.txt", "save it as plain text"]),
    "retain_utf16": Case(_retain_bytes("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n0 16 8 100\n"
                                       .encode("utf-16")), ["UTF-16", "is not a plain-text retain.txt"]),
    "retain_binary": Case(_retain_bytes(bytes(range(256)) * 4), ["binary file", "nbprune retain"]),
    "model_of_another_architecture_on_resume": Case(
        lambda ctx: ctx.prune("--begin-itr", "3"),
        ["another architecture", "fc4.weight", "Build the model the file was saved"],
        setup=_iteration_2_of_another_architecture),
    "resume_that_forgot_hidden": Case(
        lambda ctx: ctx.cli("prune", "--session-dir", str(ctx.session), "--data-root", str(ctx.data_root),
                            "--begin-itr", "2", "--epochs", "1", "--no-progress"),
        ["asks iteration 2 to keep 164+41 neurons", "iteration 1's model has only 10+5",
         "resume with the settings of the run", "run.json"]),
    "resume_that_forgot_subset": Case(lambda ctx: ctx.prune("--begin-itr", "2", "--subset", "400"),
                                      ["iteration 1's model was trained on MNIST standardised with mean",
                                       "but this run's training data is MNIST standardised with mean",
                                       "resume with the data settings of the run", "run.json"]),
    "resume_on_another_split": Case(lambda ctx: ctx.prune("--begin-itr", "2", "--val-size", "100"),
                                    ["iteration 1's model was trained on MNIST standardised with mean",
                                     "resume with the data settings of the run", "val_size"]),
    "resume_on_a_split_of_another_seed": Case(lambda ctx: ctx.prune("--begin-itr", "2", "--seed", "1"),
                                              ["iteration 1's model was trained on MNIST standardised with mean",
                                               "resume with the data settings of the run", "seed"]),
    "resume_on_another_dataset": Case(lambda ctx: ctx.prune(
        "--begin-itr", "2", "--dataset", "FashionMNIST",
        data_root=make_tiny_mnist(ctx.tmp / "fashion", name="FashionMNIST")),
        ["iteration 1's model was trained on MNIST", "this run's training data is FashionMNIST"]),
    "resume_with_a_truncated_teacher": Case(lambda ctx: ctx.prune("--begin-itr", "2"),
                                            ["0/prune_w_retrain/best_model.pth is not a readable model file",
                                             "copy it again"], setup=_truncate_the_dense_model),
    "model_of_another_architecture_evaluated": Case(
        _other_architecture_evaluate, ["takes 100 inputs", "MNIST has 784", "evaluate it on the data it was trained"]),
    "model_file_truncated": Case(_model_file_cli("truncated"), ["truncated.pth is not a readable model file",
                                                                 "copy it again"]),
    "model_file_not_a_model": Case(_model_file_cli("text"), ["text.pth is not a readable model file",
                                                             "Expected a best_model.pth"]),
    "model_file_with_nan": Case(_model_file_cli("nan"), ["holds NaN or Inf values in fc2.weight",
                                                         "Use an earlier iteration's best_model.pth"]),
    "model_file_with_nan_exported": Case(_model_file_cli("nan", "export"), ["holds NaN or Inf values in fc2.weight"]),
    **{f"crafted_{kind}_{command}": Case(_model_file_cli(kind, command, _crafted), [says])
       for kind, says in CRAFTED_SAYS.items() for command in ("evaluate", "export")},
    "deploy_wrong_shape": Case(_deploy(lambda: torch.zeros(784)), ["shape [batch, 784]", "got [784]",
                                                                    "x.unsqueeze(0)"]),
    "deploy_wrong_features": Case(_deploy(lambda: torch.zeros(2, 100)), ["shape [batch, 784]", "got [2, 100]"]),
    "deploy_integer_pixels": Case(_deploy(lambda: torch.zeros(2, 28, 28, dtype=torch.uint8)),
                                  ["floating-point input", "torch.uint8", "x.float()"]),
    "deploy_float64": Case(_deploy(lambda: torch.zeros(2, 784, dtype=torch.float64)),
                           ["torch.float32", "torch.float64", "x.to(torch.float32)"]),
    "deploy_not_a_tensor": Case(_deploy(lambda: [[0.0] * 784]), ["expects a torch.Tensor, got list",
                                                                  "torch.as_tensor"]),
    "deploy_empty_batch": Case(_deploy(lambda: torch.zeros(0, 784)), ["empty batch [0, 784]"]),
    "deploy_sparse": Case(_deploy(lambda: torch.zeros(2, 784).to_sparse()), ["dense tensor", "x.to_dense()"]),
    "deploy_meta": Case(_deploy(lambda: torch.zeros(2, 784, device="meta")), ["meta device"]),
    "deploy_inf": Case(_deploy(lambda: torch.tensor([[0.0] * 783 + [float("inf")]] * 2)),
                       ["NaN or Inf values in 2 input row"]),
    "deploy_nan": Case(_deploy(lambda: torch.full((3, 784), float("nan"))), ["NaN or Inf values in 3 input row"]),
    "data_missing_files": Case(_missing_data, ["MNIST was not found: set NBPRUNE_DATA_ROOT",
                                               "missing t10k-labels-idx1-ubyte", "no network (test)"]),
    "data_folder_empty_and_offline": Case(_empty_data_folder, ["MNIST was not found", "no network (test)"]),
    "data_truncated_file": Case(_corrupt_data("truncated"), ["train-images-idx3-ubyte is truncated or corrupt",
                                                             "download it again"]),
    "data_not_idx": Case(_corrupt_data("not_idx"), ["t10k-images-idx3-ubyte is not an IDX file",
                                                    "download it again"]),
    "data_fifo": Case(_corrupt_data("fifo"), ["t10k-images-idx3-ubyte is not a regular file"]),
    "data_directory": Case(_corrupt_data("directory"), ["train-labels-idx1-ubyte is a folder"]),
    "data_not_28x28": Case(_corrupt_data("not_28x28"), ["train-images-idx3-ubyte holds images of shape [20, 20], "
                                                        "expected [28, 28]", "download again"]),
    "data_without_variance": Case(_corrupt_data("no_variance"), ["standard deviation 0", "every image is the same"]),
    "data_labels_out_of_range": Case(_corrupt_data("labels"), ["train-labels-idx1-ubyte is corrupt",
                                                               "labels range from 0 to 200", "expected 0 to 9"]),
    "session_folder_not_writable": Case(_unwritable_session, ["a_file is a file", "Choose a folder you can write"]),
    "learning_rate_not_positive": Case(_bad_learning_rate, ["lr=-0.1 is not allowed", "expected a number above 0"]),
    "loss_becomes_nan": Case(_nan_training, ["iteration 1", "the loss became nan", "Kept the last good model",
                                             "lower learning rate", "--begin-itr 1"]),
    **{f"option_lr_{text}": Case(_bad_option("--lr", text), [f"lr='{text}' is not allowed",
                                                              "expected a number above 0 to 10"])
       for text in ("-1", "0", "nan", "inf")},
    **{f"option_device_{text or 'empty'}": Case(_bad_option("--device", text),
                                                [f"device='{text}' is not allowed", "cpu, cuda, cuda:N or auto"])
       for text in ("banana", "", "mps", "meta")},
    "option_seed_beyond_64_bits": Case(_bad_option("--seed", str(2 ** 70)),
                                       ["seed='1180591620717411303424' is not allowed", "from 0 to 4294967295"]),
    "option_seed_1e14": Case(_bad_option("--seed", "100000000000000"), ["seed='100000000000000' is not allowed"]),
    "option_hidden_huge": Case(_bad_option("--hidden", "1000000000000", "64"),
                               ["hidden='1000000000000 64' is not allowed", "from 1 to 16384"]),
    "option_hidden_400_digits": Case(_bad_option("--hidden", "9" * 400), ["hidden='9999", "is not allowed"]),
    "option_threads_100000": Case(_bad_option("--threads", "100000"), ["threads='100000' is not allowed",
                                                                       "from 1 to 256"]),
    "option_threads_100000000": Case(_bad_option("--threads", "100000000"), ["threads='100000000' is not allowed"]),
    "option_unknown_criterion": Case(_bad_option("--criterion", "oracle"),
                                     ["criterion='oracle' is not allowed", "expected one of interval_adjoint"]),
    "retain_hidden_1e400": Case(lambda ctx: ctx.cli("retain", "--hidden", "1e400", "--dir", str(ctx.tmp / "r")),
                                ["hidden='1e400' is not allowed"]),
    "retain_iterations_1e12": Case(lambda ctx: ctx.cli("retain", "--iterations", "1000000000000", "--dir",
                                                       str(ctx.tmp / "r")),
                                   ["iterations='1000000000000' is not allowed", "from 1 to 1000"]),
    **{f"argparse_{name}": Case(lambda ctx, argv=argv: ctx.cli(*argv), [says])
       for name, argv, says in (("no_command", [], "the following arguments are required: COMMAND"),
                                ("unknown_option", ["prune", "--bogus"], "unrecognized arguments: --bogus"),
                                ("missing_value", ["prune", "--epochs"], "expected one argument"),
                                ("missing_file", ["evaluate"], "required: model_file"),
                                ("bad_choice", ["evaluate", "x.pth", "--activation", "tanh"], "invalid choice"))},
    "concat_garbage_validation_results": Case(lambda ctx: ctx.cli("concat", str(ctx.session)),
                                              ["2/prune_w_retrain/validation_results.txt line 2",
                                               "is not a row of 8 finite numbers"],
                                              setup=_damage_validation_results(
                                                  b"Train_Loss Test_Loss Train_Accuracy Test_Accuracy "
                                                  b"PercentageRetain Parameters Val_Loss Val_Accuracy\ngarbage\n")),
    "concat_empty_validation_results": Case(lambda ctx: ctx.cli("concat", str(ctx.session)),
                                            ["validation_results.txt holds no table", "run that step again"],
                                            setup=_damage_validation_results(b"")),
    "run_json_damaged": Case(lambda ctx: ctx.prune("--begin-itr", "auto"), ["run.json is not readable JSON",
                                                                             "move it away"],
                             setup=lambda ctx: (ctx.session / "run.json").write_text("{ not json")),
    "concat_read_only": Case(lambda ctx: (_read_only(ctx), ctx.cli("concat", str(ctx.session)))[1],
                             ["cannot be written (Read-only file system)"]),
    "export_read_only": Case(lambda ctx: (_read_only(ctx), ctx.cli(
        "export", str(iteration_dir(ctx.session, 3) / "best_model.pth"), str(ctx.tmp / "out")))[1],
        ["could not write the export", "Read-only file system"]),
    "prune_read_only": Case(lambda ctx: (_read_only(ctx), ctx.prune("--begin-itr", "auto"))[1],
                            ["cannot be written (Read-only file system)"]),
    "retain_read_only": Case(lambda ctx: (_read_only(ctx), ctx.cli("retain", "--dir", str(ctx.tmp / "r")))[1],
                             ["cannot be written (Read-only file system)"]),
    "export_into_a_file": Case(_file_in_the_way("export"), ["a_file exists and is not a folder"]),
    "retain_dir_is_a_file": Case(_file_in_the_way("retain"), ["--dir", "a_file is a file"]),
    "workbook_session_is_a_file": Case(_file_in_the_way("workbook"), ["a_file is a file", "choose a folder"]),
    "workbook_in_the_checkout": Case(_workbook_in_the_checkout, [f"session folder {REPO} holds the workbook's own "
                                                                 f"notebooks", "Choose a session folder outside it"]),
    "workbook_device_cuda_without_cuda": Case(_no_cuda, ["device='cuda' was asked for but CUDA is not available"]),
    "workbook_begin_itr_3_on_an_empty_session": Case(_workbook("begin_itr", "3"),
                                                     ["begin_itr=3 needs iteration 2's model", "is missing",
                                                      "begin_itr='auto'"]),
    "workbook_data_root_missing": Case(_workbook_without_data, ["MNIST was not found", "nonexistent/MNIST/raw",
                                                                "no network (test)"]),
    "workbook_validation_larger_than_the_data": Case(_workbook("val_size", "100000"), ["val_size"]),
    "workbook_compare_levels_outside_the_schedule": Case(_workbook("compare_levels", "[99]"),
                                                         ["compare_levels=[99] is not allowed",
                                                          "iterations of the session's schedule"]),
    "workbook_session_path_of_5000_characters": Case(_workbook(session=LONG_PATH),
                                                     ["session_dir='/tmp/aaaa", "expected a folder or file path "
                                                      "(at most 4095 bytes, 255 per name)"]),
    "workbook_data_root_of_5000_characters": Case(_workbook("data_root", LONG_PATH),
                                                  ["data_root='/tmp/aaaa", "at most 4095 bytes, 255 per name"]),
    "prune_session_path_of_5000_characters": Case(lambda ctx: ctx.prune(session=Path(LONG_PATH)),
                                                  ["session_dir='/tmp/aaaa", "at most 4095 bytes"]),
    # round four: teacher files checked like model files, in every door; names too long; write errors' fixes
    **{f"teacher_with_a_weight_of_3e38_in_{layer}": Case(
        lambda ctx, layer=layer: ctx.prune("--teacher", str(_teacher(ctx, layer))),
        ["weights so large (up to 3e+38)", "outputs overflow to Inf or NaN", "Train the teacher again"])
       for layer in ("conv1", "conv2", "fc1", "fc2")},
    "teacher_with_a_weight_of_3e38_in_the_workbook": Case(
        lambda ctx: _workbook("teacher", str(_teacher(ctx, "conv1")))(ctx), ["weights so large (up to 3e+38)"]),
    "teacher_a_fifo": Case(_teacher_that_is("fifo"), ["teacher.pth is not a regular file (a pipe, socket or "
                                                       "device)", "expected a file `nbprune teacher` wrote"]),
    "teacher_a_symlink_loop": Case(_teacher_that_is("loop"), ["a symbolic link that leads back to itself",
                                                              "expected a file `nbprune teacher` wrote"]),
    "workbook_chosen_itr_not_in_the_schedule": Case(_no_notebook_runs(_workbook("chosen_itr", "99")),
                                                    ["chosen_itr=99 is not an iteration 04 runs",
                                                     "expected one of 0, 1, 2,", "leave chosen_itr out"]),
    "workbook_chosen_itr_skipped_by_the_schedule": Case(  # 10+5 at q 0.7: iterations 0-4, then 6 (5 keeps 2+1)
        _no_notebook_runs(_workbook("hidden", "10,5", "q", "0.7", "iterations", "7", "chosen_itr", "5")),
        ["chosen_itr=5 is not an iteration 04 runs", "expected one of 0, 1, 2, 3, 4, 6;"]),
    "teacher_out_in_a_file": Case(_teacher_out("t.pth", in_a_file=True), ["a_file is a file, not a folder"]),
    "teacher_out_name_of_300_bytes": Case(_teacher_out("t" * 296 + ".pth"),
                                          ["OUT_FILE", "is too long", "255 per name"]),
    "teacher_out_name_of_250_bytes": Case(_teacher_out("t" * 246 + ".pth"),  # its temporary file's would be 264
                                          ["OUT_FILE", "is too long", "with room for what nbprune writes beside it"]),
    "export_out_name_of_300_bytes": Case(_export_out(300), ["OUT_DIR", "is too long", "its longest name 300 bytes",
                                                            "255 per name"]),
    "export_out_name_of_245_bytes": Case(_export_out(245), ["OUT_DIR", "is too long", "beside it"]),
    "retain_txt_is_a_folder": Case(_retain_txt_is_a_folder, ["retain.txt (Is a directory)",
                                                             "a folder of that name is in the way"]),
    "concat_runs_that_do_not_continue_each_other": Case(
        lambda ctx: ctx.cli("concat", str(ctx.session)),
        ["mixes two runs that do not continue each other: iterations 0, 1 from run 2, iterations 2, 3 from the "
         "earlier run 1", "move iterations 2, 3 out of"], setup=_runs_that_do_not_continue_each_other),
}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_bad_input_gives_one_clear_message_and_damages_nothing(name, reference, tiny_root, tmp_path, capsys,
                                                               monkeypatch):
    case = CATALOGUE[name]
    session = tmp_path / "iterative_pruning"
    shutil.copytree(reference, session)
    ctx = Context(tmp_path, session, tiny_root, capsys, monkeypatch)
    if case.setup is not None:
        case.setup(ctx)
    before, data_before = tree_bytes(session), tree_bytes(tiny_root)
    message = case.provoke(ctx)
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    monkeypatch.undo()  # a read-only case must not keep tree_bytes() from reading
    assert tree_bytes(session) == before
    assert tree_bytes(tiny_root) == data_before

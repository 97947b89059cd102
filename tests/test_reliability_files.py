"""Reliability, round three: crafted files (model files, records, .npy headers, notebooks), the exported folder,
a user's own tensors, symbolic-link loops and a killed export. Each case ends in one clear message, never a
traceback, and leaves nothing half-built behind.

The command-line cases use the tiny IDX dataset from conftest.py and models that are built, not trained.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import small_model
from nbprune import load_arrays, load_data, load_pruned_model, SimpleNN
from nbprune.errors import DataError, ModelFileError
from nbprune.cli import main
from nbprune.data import InputSpec
from nbprune.datasets import MNIST
from nbprune.export import export_model
from nbprune.model import KeepInputs
from nbprune.modelfile import save_model_file
from test_export import run_predict_here
from conftest import ENV, prune_argv

HIDDEN = (20, 7)
SPEC = InputSpec("MNIST", MNIST.classes, 0.1307, 0.3081, 784)


def one_error_line(capsys, *argv: str) -> str:
    """Run the command line in-process; return its one error line after checking exit code 2 and no traceback."""
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nbprune: error: "), err
    assert "unexpected" not in lines[0] and "Traceback" not in err, err
    return lines[0]


def mnist_model() -> SimpleNN:
    """Return a small network for MNIST's inputs that says which data it belongs to."""
    model = small_model(HIDDEN, MNIST.features, len(MNIST.classes)).train()
    model.spec = SPEC
    return model


def rewrite(source: Path, target: Path, change) -> Path:
    """Save a copy of a model file with `change(state, record)` applied to its tensors and nbprune record."""
    state = torch.load(source, weights_only=True)
    change(state, state._metadata[""]["nbprune"])
    torch.save(state, target)
    return target


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_model_file(mnist_model(), tmp_path_factory.mktemp("model") / "best_model.pth")


@pytest.fixture(scope="module")
def exported(model_file, tmp_path_factory) -> Path:
    return export_model(model_file, tmp_path_factory.mktemp("export") / "standalone", onnx=False)


@pytest.fixture()
def good_png(tmp_path) -> Path:
    path = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 40, dtype=np.uint8)).save(path)
    return path


def predict_error(folder: Path, *inputs: Path) -> str:
    """Run the exported predict.py; return its one error line after checking exit code 2."""
    code, out, err = run_predict_here(folder, *inputs)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("predict.py: error: ") and out == "", (code, err)
    return lines[0]


# --- 5. the exported predict.py: crafted .npy headers and a tampered best_model.pth -----------------------------

def npy_bytes(header: str, body: bytes) -> bytes:
    """Return a version-1 .npy file with this header text (padded as NumPy pads it) and body."""
    text = header + " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + body


CRAFTED_HEADERS = {
    "descr_list": ("{'descr': ['<f4'], 'fortran_order': False, 'shape': (1, 28, 28)}", 784 * 4, "holds ['<f4'] values"),
    "descr_dict": ("{'descr': {'a': 1}, 'fortran_order': False, 'shape': (1, 28, 28)}", 784 * 4, "holds {'a': 1}"),
    "shape_bool": ("{'descr': '|u1', 'fortran_order': False, 'shape': (True, 28, 28)}", 784, "shape (True, 28, 28)"),
    "fortran_text": ("{'descr': '|u1', 'fortran_order': 'no', 'shape': (1, 28, 28)}", 784, "fortran_order no"),
    "header_a_list": ("['descr', '|u1']", 784, "damaged .npy header"),
}


@pytest.mark.parametrize("name", list(CRAFTED_HEADERS))
def test_predict_refuses_a_crafted_npy_header_in_one_line(name, exported, tmp_path):
    header, size, says = CRAFTED_HEADERS[name]
    path = tmp_path / f"{name}.npy"
    path.write_bytes(npy_bytes(header, bytes(size)))
    assert says in predict_error(exported, path)


def _extra_tensor(state, record):
    state["fc9.weight"] = torch.zeros(3, 3)


def _no_fc3_bias(state, record):
    del state["fc3.bias"]


def _bias_of_the_wrong_size(state, record):
    state["fc2.bias"] = torch.zeros(HIDDEN[1] + 1)


def _fc1_for_100_inputs(state, record):
    state["fc1.weight"] = torch.zeros(HIDDEN[0], 100)


def _layers_that_do_not_chain(state, record):
    state["fc2.weight"] = torch.zeros(HIDDEN[1], HIDDEN[0] - 1)


def _weights_of_3e38(state, record):
    state["fc1.weight"].fill_(3e38)


def _index_out_of_range(state, record):
    state["keep_inputs.index"] = torch.arange(HIDDEN[0]) + 780
    state["fc1.weight"] = torch.zeros(HIDDEN[0], HIDDEN[0])


TAMPERED = {
    "extra_tensor": (_extra_tensor, "extra: fc9.weight"),
    "missing_fc3_bias": (_no_fc3_bias, "missing: fc3.bias"),
    "bias_of_the_wrong_size": (_bias_of_the_wrong_size, "fc2.bias [8], expected [neurons, 20] and [neurons]"),
    "fc1_for_100_inputs": (_fc1_for_100_inputs, "fc1.weight has shape [20, 100]"),
    "layers_that_do_not_chain": (_layers_that_do_not_chain, "fc2.weight has shape [7, 19]"),
    "weights_of_3e38": (_weights_of_3e38, "overflow to Inf or NaN"),
    "index_out_of_range": (_index_out_of_range, "keep_inputs.index must list inputs from 0 to 783"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_predict_refuses_a_tampered_model_file_in_one_line(name, exported, good_png, tmp_path):
    change, says = TAMPERED[name]
    folder = shutil.copytree(exported, tmp_path / "standalone")
    rewrite(exported / "best_model.pth", folder / "best_model.pth", change)
    message = predict_error(folder, good_png)
    assert says in message and "export" in message, message


def test_a_model_file_whose_metadata_is_not_a_record_loads_as_a_plain_state_dict(exported, good_png, tmp_path):
    folder = shutil.copytree(exported, tmp_path / "standalone")
    state = torch.load(exported / "best_model.pth", weights_only=True)
    state._metadata = {"": "not a record"}
    torch.save(state, folder / "best_model.pth")
    code, out, err = run_predict_here(folder, good_png)
    assert code == 0 and err == "" and out.startswith(f"{good_png}: "), err


@pytest.mark.slow
def test_a_tampered_model_file_is_refused_in_a_fresh_interpreter_too(exported, good_png, tmp_path):
    folder = shutil.copytree(exported, tmp_path / "standalone")
    rewrite(exported / "best_model.pth", folder / "best_model.pth", _weights_of_3e38)
    done = subprocess.run([sys.executable, "-I", "-B", str(folder / "predict.py"), str(good_png)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "overflow to Inf or NaN" in done.stderr and "Traceback" not in done.stderr


# --- 6. a record that declares huge layers is checked before anything is built ----------------------------------

@pytest.fixture()
def no_big_layers(monkeypatch):
    """Fail at once (before allocating) if anything builds a linear layer larger than the test's models."""
    original = torch.nn.Linear.__init__

    def guarded(self, in_features, out_features, *args, **kwargs):
        assert in_features * out_features <= 784 * 256, f"built a {in_features}x{out_features} layer"
        original(self, in_features, out_features, *args, **kwargs)
    monkeypatch.setattr(torch.nn.Linear, "__init__", guarded)


@pytest.mark.parametrize("hidden", [[10 ** 12], [30000, 30000]])
def test_a_record_declaring_huge_layers_is_refused_before_anything_is_built(hidden, model_file, tmp_path, capsys,
                                                                            no_big_layers):
    lying = rewrite(model_file, tmp_path / "lying.pth", lambda state, record: record.update(hidden=hidden))
    describes = f"its record describes a 784-{'-'.join(map(str, hidden))}-10 relu network"
    with pytest.raises(ModelFileError, match=describes):
        SimpleNN.from_file(lying)
    with pytest.raises(ModelFileError, match=describes):
        export_model(lying, tmp_path / "out", onnx=False)
    assert describes in one_error_line(capsys, "export", str(lying), str(tmp_path / "out"))
    assert describes in one_error_line(capsys, "evaluate", str(lying), "--data-root", str(tmp_path / "no_data"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lying.pth"]


def test_an_input_pruned_file_is_built_for_its_kept_inputs_only(tmp_path, no_big_layers):
    model = mnist_model()
    model.fc1 = torch.nn.Linear(50, HIDDEN[0])
    model.keep_inputs = KeepInputs(torch.arange(0, 100, 2))
    path = rewrite(save_model_file(model, tmp_path / "kept.pth"), tmp_path / "wide.pth",
                   lambda state, record: record.update(in_features=10 ** 12, input=None))
    loaded = SimpleNN.from_file(path)
    assert loaded.in_features == 10 ** 12 and loaded.inputs_kept == 50 and loaded.hidden == HIDDEN


# --- 7. finite weights whose outputs overflow ---------------------------------------------------------------------

@pytest.mark.parametrize("layer, value", [("fc1.weight", 3e38), ("fc2.bias", 3e38), ("fc3.weight", 1e37)])
def test_weights_whose_outputs_overflow_are_refused_by_every_loader(layer, value, model_file, tmp_path, capsys):
    huge = rewrite(model_file, tmp_path / "huge.pth", lambda state, record: state[layer].fill_(value))
    for load in (SimpleNN.from_file, lambda path: load_pruned_model(SimpleNN(hidden=HIDDEN), path),
                 lambda path: export_model(path, tmp_path / "out", onnx=False)):
        with pytest.raises(ModelFileError, match="overflow to Inf or NaN for inputs within 10 standard deviations"):
            load(huge)
    message = one_error_line(capsys, "export", str(huge), str(tmp_path / "out"))
    assert "overflow to Inf or NaN" in message and "Use an earlier iteration's best_model.pth" in message
    assert not (tmp_path / "out").exists()


def test_large_but_safe_weights_still_load_and_give_finite_outputs(model_file, tmp_path):
    large = rewrite(model_file, tmp_path / "large.pth", lambda state, record: state["fc1.weight"].mul_(1e6))
    model = SimpleNN.from_file(large)
    assert torch.isfinite(model(torch.full((2, 784), -10.0))).all()
    assert torch.isfinite(model(torch.full((2, 784), 10.0))).all()


# --- 8. a killed export leaves nothing behind ---------------------------------------------------------------------

# `nbprune export`, stopped half-way through building its folder (after best_model.pth, model.py and loader.py)
# until the test writes a line or signals it: the test acts at a moment it has observed, never after a delay.
EXPORT_DRIVER = r'''
import sys

import nbprune.export as export
from nbprune.cli import main

original = export._torchscript_bytes


def announce_then_wait(network):
    print("building", flush=True)
    sys.stdin.readline()
    return original(network)


export._torchscript_bytes = announce_then_wait
sys.exit(main(sys.argv[1:]))
'''


def start_export(model_file: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    """Start `nbprune export` in a fresh interpreter and return it once it is building its folder."""
    driver = tmp_path / "export_driver.py"
    driver.write_text(EXPORT_DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), "export", str(model_file), str(out), "--no-onnx"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=ENV)
    assert process.stdout.readline() == "building\n", process.communicate(timeout=900)
    return process


def building_folders(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.endswith(".export"))


@pytest.mark.slow
def test_sigterm_during_an_export_ends_in_one_line_and_leaves_no_half_built_folder(model_file, tmp_path):
    parent = tmp_path / "exports"
    process = start_export(model_file, parent / "out", tmp_path)
    assert len(building_folders(parent)) == 1  # the half-built folder the signal must not leave behind
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=900)
    assert process.returncode == 130 and err == "nbprune: interrupted.\n" and out == "", err
    assert list(parent.iterdir()) == []


@pytest.mark.slow
def test_the_next_export_removes_what_a_killed_one_left_and_nothing_else(model_file, tmp_path):
    parent = tmp_path / "exports"
    live = start_export(model_file, parent / "live", tmp_path)  # an export still building
    (building,) = building_folders(parent)
    killed = start_export(model_file, parent / "killed", tmp_path)
    killed.kill()  # SIGKILL runs no cleanup: its half-built folder stays, unlocked
    killed.communicate(timeout=900)
    (leftover,) = set(building_folders(parent)) - {building}
    mine = parent / ".mine.abcd1234.export"  # named like one, but holding a file no export writes
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")

    export_model(model_file, parent / "next", onnx=False)
    assert leftover not in building_folders(parent)
    assert building_folders(parent) == sorted([building, mine.name])  # the live one and the user's stay
    assert (mine / "notes.txt").read_text() == "mine"
    out, err = live.communicate("\n", timeout=900)
    assert live.returncode == 0 and err == "", err
    assert building_folders(parent) == [mine.name]
    assert sorted(path.name for path in parent.iterdir() if not path.name.startswith(".")) == ["live", "next"]
    assert (parent / "live" / "model_torchscript.pt").is_file() and (parent / "live" / "export.json").is_file()


def test_an_out_dir_named_like_a_building_folder_is_refused(model_file, tmp_path, capsys):
    message = one_error_line(capsys, "export", str(model_file), str(tmp_path / ".out.abcd1234.export"))
    assert "is named like the hidden folder an export is built in" in message
    assert list(tmp_path.iterdir()) == []


# --- 11. a user's own tensors that are not numbers ----------------------------------------------------------------

FEATURES, LABELS = torch.randn(24, 5), torch.arange(24) % 3


@pytest.mark.parametrize("train, test, says", [
    (([["a"] * 5] * 24, LABELS), (FEATURES, LABELS), "train features are not numbers (list"),
    ((np.array([["a"] * 5] * 24), LABELS), (FEATURES, LABELS), "train features are not numbers (ndarray"),
    ((np.array([object()] * 24, dtype=object), LABELS), (FEATURES, LABELS), "train features are not numbers"),
    (([[1.0, 2.0]] * 23 + [[1.0]], LABELS), (FEATURES, LABELS), "train features are not numbers"),
    ((FEATURES, ["cat"] * 24), (FEATURES, LABELS), "train labels are not numbers (list"),
    ((FEATURES, LABELS), (FEATURES, np.array(["cat"] * 24)), "test labels are not numbers (ndarray"),
])
def test_own_tensors_that_are_not_numbers_get_a_data_error(train, test, says):
    with pytest.raises(DataError) as error:
        load_arrays(train=train, test=test)
    assert says in str(error.value) and "\n" not in str(error.value)


# --- 12. a data folder that is a symbolic-link loop; a --retain that is not a file --------------------------------

def test_a_data_root_that_is_a_symlink_loop_gets_a_clear_message(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(DataError, match="a symbolic link that leads back to itself"):
        load_data(tmp_path / "a", download=False)
    message = one_error_line(capsys, *prune_argv(tmp_path / "session", tmp_path / "a"))
    assert f"data folder {tmp_path / 'a'} cannot be opened" in message and "NBPRUNE_DATA_ROOT" in message


def test_a_loop_below_the_data_root_is_named_without_a_crash(tmp_path, capsys):
    (tmp_path / "MNIST").symlink_to(tmp_path / "MNIST")
    message = one_error_line(capsys, *prune_argv(tmp_path / "session", tmp_path))
    assert "MNIST was not found" in message and str(tmp_path / "MNIST" / "raw") in message


@pytest.mark.parametrize("retain, says", [("folder", "is a folder, not the retain.txt file in it"),
                                          ("/dev/null", "is not a regular file (a device, pipe or socket)")])
def test_a_retain_that_is_a_folder_or_a_device_says_so(retain, says, tiny_root, tmp_path, capsys):
    path = tmp_path / "retain" if retain == "folder" else Path(retain)
    if retain == "folder":
        path.mkdir()
    message = one_error_line(capsys, *prune_argv(tmp_path / "session", tiny_root, "--retain", str(path)))
    assert f"retain file {path} {says}" in message and "does not exist" not in message


# --- 13. Jupyter saves malformed workbook notebooks with a clear answer -------------------------------------------

@pytest.fixture()
def contents_manager(tmp_path):
    """Jupyter's own file manager on a checkout-shaped folder, with nbprune's pre-save hook installed as Lab does."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    from nbprune.course.lab import _load_jupyter_server_extension
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "nbprune").mkdir()
    (tmp_path / "nbprune" / "workbook.py").write_text("")
    manager = FileContentsManager(root_dir=str(tmp_path))
    _load_jupyter_server_extension(types.SimpleNamespace(contents_manager=manager, log=logging.getLogger("test")))
    return manager


EXECUTED = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {"tags": ["parameters"]}, "id": "a1",
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": "ran\n"}],
                       "execution_count": 3}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)"}},
            "nbformat": 4, "nbformat_minor": 5}


@pytest.mark.parametrize("name, change, says", [
    ("cells_null", lambda nb: nb.update(cells=None), "its cells are null, expected a list"),
    ("cells_a_dict", lambda nb: nb.update(cells={}), "its cells are dict, expected a list"),
    ("a_cell_that_is_a_string", lambda nb: nb["cells"].append("print(1)"), "cell 2 is a str, expected an object"),
])
def test_a_malformed_workbook_notebook_is_refused_with_a_clear_message(name, change, says, contents_manager):
    from tornado.web import HTTPError
    notebook = copy.deepcopy(EXECUTED)
    change(notebook)
    with pytest.raises(HTTPError) as error:
        contents_manager.save({"type": "notebook", "format": "json", "content": notebook}, "notebooks/01_data.ipynb")
    assert error.value.status_code == 400
    message = error.value.log_message % error.value.args
    assert says in message and "was not saved" in message and "Reload Notebook from Disk" in message
    assert not (Path(contents_manager.root_dir) / "notebooks" / "01_data.ipynb").exists()


@pytest.mark.parametrize("name, change", [("notebook_metadata_null", lambda nb: nb.update(metadata=None)),
                                          ("cell_metadata_null", lambda nb: nb["cells"][0].update(metadata=None)),
                                          ("tags_not_a_list", lambda nb: nb["cells"][0]["metadata"].update(tags=7))])
def test_a_workbook_notebook_with_null_metadata_is_saved_stripped(name, change, contents_manager):
    import nbformat
    notebook = copy.deepcopy(EXECUTED)
    change(notebook)
    contents_manager.save({"type": "notebook", "format": "json", "content": notebook}, "notebooks/01_data.ipynb")
    saved = nbformat.read(Path(contents_manager.root_dir) / "notebooks" / "01_data.ipynb", as_version=4)
    assert saved.cells[0].outputs == [] and saved.cells[0].execution_count is None
    assert saved.cells[0].metadata == ({} if name != "notebook_metadata_null" else {"tags": ["parameters"]})
    assert saved.metadata.kernelspec.display_name == "Python 3"


# --- 14. evaluating a model trained on a user's own tensors -------------------------------------------------------

def test_evaluate_on_a_model_of_own_tensors_says_how_to_evaluate_it_in_python(tmp_path, capsys):
    train_features, train_labels, test_features, test_labels = FEATURES, LABELS, FEATURES[:12] + 1, LABELS[:12]
    data = load_arrays(train=(train_features, train_labels), test=(test_features, test_labels), val_size=4)
    model = SimpleNN(hidden=(4,), in_features=5, num_classes=3)
    model.spec = data.spec
    path = save_model_file(model, tmp_path / "own.pth")
    message = one_error_line(capsys, "evaluate", str(path))
    assert "was trained on your own tensors" in message and "dataset=" not in message
    line = message.split("e.g. ", 1)[1]
    exec(line, {"train_features": train_features, "train_labels": train_labels, "test_features": test_features,
                "test_labels": test_labels})  # the advice is one line of Python that works
    printed = capsys.readouterr().out
    assert "'Test_Accuracy'" in printed and "'Train_Loss'" in printed



# --- 14. A refused write says the fix for its reason (round four) --------------------------------------------------

@pytest.mark.parametrize("number, fix", [(errno.ENOSPC, "make room on the disk"),
                                         (errno.EROFS, "choose a folder you can write to"),
                                         (errno.EACCES, "choose a folder you can write to"),
                                         (errno.EISDIR, "a folder of that name is in the way"),
                                         (errno.ENOTDIR, "a file is in the way"),
                                         (errno.ENAMETOOLONG, "choose a shorter name")])
def test_a_refused_write_says_the_fix_for_its_reason(number, fix, tmp_path, monkeypatch):
    from nbprune.errors import StorageError
    from nbprune.files import write_text_atomic

    def refused(source, target):
        raise OSError(number, os.strerror(number))
    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(StorageError) as caught:
        write_text_atomic(tmp_path / "validations.txt", "x")
    said = str(caught.value)
    assert said.startswith(f"could not write {tmp_path / 'validations.txt'} ({os.strerror(number)}): {fix}")
    assert ("make room" in said) == (number == errno.ENOSPC)  # every write error said it, "Is a directory" too
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone

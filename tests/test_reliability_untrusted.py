"""Reliability against model files from others: pickles that would run code are refused by every loader without
running, every torch.load of the package is weights_only, and files that are not sound models get a clear error."""


from __future__ import annotations

import ast
import importlib
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import (HIDDEN, REPO, STEPS, nbprune_cli, write_damaged_model)
from nbprune import load_data, load_pruned_model, SimpleNN
from nbprune.errors import ModelFileError
from nbprune.cli import main
from nbprune.iterative import IterativePruning
from nbprune.session import iteration_dir
from nbprune.modelfile import read_model_file
from nbprune.report import concatenate, session_summary


# --- model files from others ----------------------------------------------------------------------------------

class CodePayload:
    """A pickle that creates a folder when unpickled: proof that code in a model file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def write_payload(path: Path, marker: Path, form: str) -> Path:
    state = SimpleNN(hidden=HIDDEN).state_dict()
    if form == "inside_state_dict":
        torch.save({**state, "fc1.weight": CodePayload(marker)}, path)
    elif form == "top_level":
        torch.save(CodePayload(marker), path)
    else:  # a plain pickle, as someone might send with pickle.dump
        with open(path, "wb") as stream:
            pickle.dump(CodePayload(marker), stream, protocol=int(form.removeprefix("pickle_protocol_")))
    return path


def load_via_session(path: Path, tmp_path: Path, tiny_root: Path, reference: Path, loader: str):
    """Put `path` where a session keeps iteration 2's model, then read the session with `loader`."""
    session_dir = tmp_path / "iterative_pruning"
    shutil.copytree(reference, session_dir)
    shutil.copy(path, iteration_dir(session_dir, 2) / "best_model.pth")
    if loader == "session_summary":
        return session_summary(session_dir)
    if loader == "concatenate":
        return concatenate(session_dir)
    train_loader, val_loader, test_loader = load_data(tiny_root, download=False)
    experiment = IterativePruning(train_loader, test_loader, val_loader=val_loader, progress=False, num_epochs=1)
    return experiment.run(SimpleNN(hidden=HIDDEN), STEPS, session_dir, begin_itr=3)


LOADERS: dict[str, Callable] = {
    "read_model_file": lambda path, *context: read_model_file(path),
    "load_pruned_model": lambda path, *context: load_pruned_model(SimpleNN(hidden=HIDDEN), path),
    "SimpleNN.from_file": lambda path, *context: SimpleNN.from_file(path),
    "session_summary": lambda path, *context: load_via_session(path, *context, "session_summary"),
    "concatenate": lambda path, *context: load_via_session(path, *context, "concatenate"),
    "resume_run": lambda path, *context: load_via_session(path, *context, "resume_run"),
    "export_model": lambda path, tmp_path, *context: importlib.import_module("nbprune.export").export_model(
        path, tmp_path / "exported", onnx=False),
    "cli_evaluate": lambda path, tmp_path, tiny_root, reference: main(["evaluate", str(path), "--data-root",
                                                                        str(tiny_root)]),
}


@pytest.mark.parametrize("form", ["inside_state_dict", "top_level", "pickle_protocol_2", "pickle_protocol_4",
                                  "pickle_protocol_5"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_every_loader_refuses_a_pickle_that_would_run_code(form, loader, tiny_root, reference, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    marker = tmp_path / "payload_ran"
    path = write_payload(tmp_path / "best_model.pth", marker, form)
    if loader == "cli_evaluate":
        assert LOADERS[loader](path, tmp_path, tiny_root, reference) == 2
        message = capsys.readouterr().err
        assert message.startswith("nbprune: error: refused to load") and "Traceback" not in message
    else:
        with pytest.raises(ModelFileError, match="refused to load") as error:
            LOADERS[loader](path, tmp_path, tiny_root, reference)
        assert "nothing in it ran" in str(error.value)
        assert "mkdir" in str(error.value), "the message names what the file asked to call"
    assert not marker.exists(), "the payload ran"


@pytest.mark.slow
def test_the_command_line_refuses_a_code_payload_without_a_traceback(tmp_path, tiny_root):
    marker = tmp_path / "payload_ran"
    path = write_payload(tmp_path / "sent_to_me.pth", marker, "inside_state_dict")
    done = nbprune_cli("evaluate", str(path), "--data-root", str(tiny_root), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("nbprune: error: refused to load") and "Traceback" not in done.stderr
    assert "posix.mkdir" in done.stderr and "torch.save(model.state_dict(), path)" in done.stderr
    assert not marker.exists(), "the payload ran"


def test_every_torch_load_in_the_package_is_weights_only():
    for source in sorted((REPO / "nbprune").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            assert name not in {"pickle.load", "pickle.loads", "torch.jit.load"}, f"{source.name}: {name}"
            if name == "torch.load":
                keywords = {k.arg: k.value for k in node.keywords}
                assert isinstance(keywords.get("weights_only"), ast.Constant) and \
                    keywords["weights_only"].value is True, f"{source.name}:{node.lineno} torch.load without " \
                                                            f"weights_only=True"


@pytest.mark.parametrize("kind, says", [
    ("text", "is not a readable model file"), ("empty", "is not a readable model file"),
    ("truncated", "is not a readable model file"), ("random_bytes", "is not a readable model file"),
    ("tensor", "does not hold a model"), ("nan", "holds NaN or Inf values in fc2.weight"),
    ("inf", "holds NaN or Inf values in fc2.weight")])
def test_a_file_that_is_not_a_sound_model_gets_a_clear_error(kind, says, tmp_path):
    path = tmp_path / "best_model.pth"
    write_damaged_model(kind, path)
    with pytest.raises(ModelFileError, match=says) as error:
        load_pruned_model(SimpleNN(hidden=HIDDEN), path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)

"""Export of network files (LeNet-5, any sequential network of nbprune.layers' kinds): the TorchScript program, the
ONNX file and the standalone folder (model.py rebuilding the recorded layer list, run where only torch imports) give
the library's logits and test accuracy; a damaged layer list is refused in one line with nothing written."""

import importlib.util
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nbprune import NbpruneError, load_data
from nbprune.cli import main
from nbprune.data import InputSpec
from nbprune.datasets import MNIST
from nbprune.evaluation import loss_and_accuracy
from nbprune.export import (ONNX_FILE, TORCHSCRIPT_FILE, _onnx_available, example_inputs, export_model,
                            run_standalone, standalone_predictions)
from nbprune.modelfile import read_model_file, write_model_state
from nbprune.networkfile import MAX_VALUES, network_from_file, save_network_file
from nbprune.files import read_table
from nbprune.session import VALIDATION_FILE, Session

# Runs `python -I -B script.py ARGS` with nbprune made unimportable first: only torch (and the folder) remain.
WITHOUT_NBPRUNE = ("import runpy, sys; sys.modules['nbprune'] = None; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')")
# Computes the logits of inputs saved with torch.save with the folder's model.py alone, and saves them.
STANDALONE_LOGITS = """import sys
sys.path.insert(0, sys.argv[1])
import torch
from model import load_network
model = load_network(sys.argv[1] + "/best_model.pth")
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2], weights_only=True)), sys.argv[3])
"""
SPEC = InputSpec("MNIST", MNIST.classes, 0.2, 0.4, MNIST.features)


def standalone_logits(folder: Path, inputs: torch.Tensor, scratch: Path) -> torch.Tensor:
    """Return what the folder's model.py computes for `inputs` in a fresh interpreter that cannot import nbprune."""
    script, given, logits = scratch / "logits.py", scratch / "inputs.pt", scratch / "logits.pt"
    script.write_text(STANDALONE_LOGITS)
    torch.save(inputs, given)
    command = [sys.executable, "-I", "-B", "-c", WITHOUT_NBPRUNE, str(script), str(folder), str(given), str(logits)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    assert result.returncode == 0, result.stderr
    return torch.load(logits, weights_only=True)


def onnx_logits(file: Path, inputs: torch.Tensor) -> torch.Tensor:
    """Return the ONNX file's logits: with onnxruntime when installed, else onnx's reference evaluator."""
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime
        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"input": inputs.numpy()})[0])
    from onnx import load
    from onnx.reference import ReferenceEvaluator
    return torch.from_numpy(ReferenceEvaluator(load(str(file))).run(None, {"input": inputs.numpy()})[0])


def torchscript_logits(file: Path, inputs: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated since torch 2.9
        program = torch.jit.load(str(file))
    with torch.no_grad():
        return program(inputs)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * (logits.argmax(dim=1) == targets).sum().item() / len(targets)


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    """An untrained pruned-width LeNet-5 (small) with average pooling and a sigmoid, saved as a network file."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Unflatten(1, (1, *MNIST.image_shape)), nn.Conv2d(1, 3, 5, padding=2), nn.Sigmoid(),
                            nn.AvgPool2d(2), nn.Conv2d(3, 5, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Identity(), nn.Linear(5 * 3 * 3, 7), nn.ReLU(),
                            nn.Linear(7, len(MNIST.classes)))
    path = tmp_path_factory.mktemp("network") / "best_model.pth"
    return save_network_file(network, path, architecture="custom", spec=SPEC, iteration=1, criterion="magnitude")


@pytest.fixture(scope="module")
def exported(network_file, tmp_path_factory) -> Path:
    return export_model(network_file, tmp_path_factory.mktemp("export") / "standalone", onnx=False)


def test_the_folder_holds_an_mlps_files_and_imports_nothing_of_nbprune(exported):
    assert {path.name for path in exported.iterdir()} == {"best_model.pth", "model.py", "loader.py", "predict.py",
                                                         TORCHSCRIPT_FILE, "README.md", "export.json"}
    for name in ("model.py", "loader.py", "predict.py"):
        assert not re.search(r"^\s*(from|import) nbprune", (exported / name).read_text(), flags=re.M)
    readme = (exported / "README.md").read_text()
    assert "(custom, 620 parameters)" in readme and "iteration 1, criterion magnitude" in readme
    assert "Unflatten -> Conv2d -> Sigmoid -> AvgPool2d" in readme and "3 + 5 + 7 channels and neurons" in readme


def library_logits(network_file: Path, inputs: torch.Tensor) -> torch.Tensor:
    library, _ = network_from_file(network_file)
    with torch.no_grad():
        return library(inputs)


def test_the_torchscript_program_gives_the_librarys_logits_for_rows_and_images(network_file, exported):
    inputs = torch.randn(6, SPEC.features)
    expected = library_logits(network_file, inputs)
    torch.testing.assert_close(torchscript_logits(exported / TORCHSCRIPT_FILE, inputs), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(torchscript_logits(exported / TORCHSCRIPT_FILE, inputs.reshape(6, *MNIST.image_shape)),
                               expected, rtol=0, atol=1e-5)


@pytest.mark.slow  # a fresh interpreter importing torch
def test_the_standalone_model_py_alone_gives_the_librarys_logits(network_file, exported, tmp_path):
    inputs = torch.randn(6, SPEC.features)
    torch.testing.assert_close(standalone_logits(exported, inputs, tmp_path), library_logits(network_file, inputs),
                               rtol=0, atol=1e-5)


def test_the_standalone_network_refuses_bad_input_in_one_line(exported):
    module = standalone_model(exported)
    model = module.load_network(exported / "best_model.pth")
    for bad, says in ((torch.zeros(2, 5), rf"expects input of shape \[batch, {SPEC.features}\]"),
                      (torch.zeros(2, SPEC.features, dtype=torch.int64), "floating-point"),
                      (torch.full((1, SPEC.features), float("nan")), "NaN")):
        with pytest.raises(module.InputError, match=says):
            model(bad)


def standalone_model(folder: Path):
    """Return the folder's model.py as a module (it imports only torch)."""
    spec = importlib.util.spec_from_file_location("standalone_network_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def damage(network_file: Path, target: Path, layers) -> Path:
    state, record = read_model_file(network_file)
    return write_model_state(state, target, {**record, "layers": layers})


@pytest.mark.parametrize("edit", ["unknown kind", "wrong width", "extra option", "zero stride", "not a list"])
def test_a_damaged_layer_list_is_refused_in_one_line_with_nothing_written(edit, network_file, tmp_path, exported):
    _, record = read_model_file(network_file)
    layers = [dict(values) for values in record["layers"]]
    if edit == "unknown kind":
        layers[1]["kind"] = "Conv3d"
    elif edit == "wrong width":
        layers[1]["out_channels"] = 4
    elif edit == "extra option":
        layers[2]["inplace"] = 1
    elif edit == "zero stride":
        layers[4]["stride"] = [0, 0]
    else:
        layers = {"kind": "Linear"}
    damaged = damage(network_file, tmp_path / "damaged" / "best_model.pth", layers)
    with pytest.raises(NbpruneError, match="damaged network record") as refused:
        export_model(damaged, tmp_path / "out", onnx=False)
    assert "\n" not in str(refused.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["damaged"]
    with pytest.raises(ValueError, match="export the model again") as refused:  # model.py refuses it too
        standalone_model(exported).load_network(damaged)
    assert "\n" not in str(refused.value)


@pytest.mark.slow
def test_onnx_gives_the_librarys_logits(network_file, tmp_path):
    if not _onnx_available():
        pytest.skip("the onnx extra (onnx, onnxscript) is not installed: pip install 'nbprune[onnx]'")
    out = export_model(network_file, tmp_path / "out", onnx=True)
    inputs = torch.randn(5, SPEC.features)
    torch.testing.assert_close(onnx_logits(out / ONNX_FILE, inputs), library_logits(network_file, inputs), rtol=0,
                               atol=1e-5)
    assert f"`{ONNX_FILE}` is the same network as ONNX" in (out / "README.md").read_text()


@pytest.mark.slow
def test_a_pruned_lenet_runs_exported_with_the_librarys_logits_and_test_accuracy(tiny_root, tmp_path):
    """A tiny `nbprune prune --architecture lenet5_small` run, exported by the CLI: TorchScript, ONNX and the
    standalone folder (model.py, and predict.py on the test images) agree with the library on the test set."""
    session_dir = tmp_path / "iterative_pruning"
    assert main(["prune", "--architecture", "lenet5_small", "--session-dir", str(session_dir), "--data-root",
                 str(tiny_root), "--epochs", "1", "--patience", "1", "--q", "0.5", "--end-itr", "1", "--seed", "0",
                 "--threads", "1", "--no-progress"]) == 0
    model_file = Session.for_pruning_dir(session_dir).model_file(1)
    out = tmp_path / "export"
    assert main(["export", str(model_file), str(out)]) == 0
    library, record = network_from_file(model_file)
    data = load_data(tiny_root, download=False, standardisation=(record.spec.mean, record.spec.std))  # as evaluate
    test = data.test_loader.dataset
    inputs, targets = test.data, test.targets
    with torch.no_grad():
        expected = library(inputs)
    _, library_accuracy = loss_and_accuracy(library, data.test_loader)
    header, rows = read_table(Session.for_pruning_dir(session_dir).iteration_dir(1) / VALIDATION_FILE)
    assert library_accuracy == pytest.approx(rows[0][header.index("Test_Accuracy")], abs=1e-9)  # what the run said
    assert accuracy(expected, targets) == library_accuracy

    found = {"TorchScript": torchscript_logits(out / TORCHSCRIPT_FILE, inputs),
             "model.py": standalone_logits(out, inputs, tmp_path)}
    if _onnx_available():
        found["ONNX"] = onnx_logits(out / ONNX_FILE, inputs)
    for name, logits in found.items():
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5, msg=lambda text: f"{name}: {text}")
        assert round(accuracy(logits, targets), 2) == round(library_accuracy, 2), name

    _, images = example_inputs(data, inputs, tmp_path)
    assert np.load(images).shape == (len(targets), *MNIST.image_shape)
    predicted = [label for _, label, _ in standalone_predictions(run_standalone(out, images))]
    classes = data.spec.classes
    assert predicted == [classes[index] for index in expected.argmax(dim=1).tolist()]
    assert round(100.0 * sum(label == classes[target] for label, target in zip(predicted, targets.tolist()))
                 / len(targets), 2) == round(library_accuracy, 2)


def test_a_network_of_rows_of_features_exports_with_the_csv_reader(tmp_path):
    """A network without images (a first linear layer, per-feature standardisation) reads .csv rows as an MLP's
    export does, and its model.py gives the library's logits."""
    torch.manual_seed(1)
    network = nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 3))
    spec = InputSpec(str(tmp_path / "mine.csv"), ("a", "b", "c"), (1.0, 2.0, 3.0, 4.0, 5.0), (1.0, 2.0, 0.5, 1.0, 4.0),
                     5, None)
    model_file = save_network_file(network, tmp_path / "model" / "best_model.pth", spec=spec)
    out = export_model(model_file, tmp_path / "out", onnx=False)
    assert "rows of 5 features" in (out / "README.md").read_text()
    raw = torch.tensor([[1.5, 0.0, 3.0, 4.5, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    (tmp_path / "rows.csv").write_text("x1,x2,x3,x4,x5\n" + "".join(",".join(map(repr, row)) + "\n"
                                                                   for row in raw.tolist()))
    loader_spec = importlib.util.spec_from_file_location("standalone_network_loader", out / "loader.py")
    loader = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(loader)
    model = standalone_model(out).load_network(out / "best_model.pth")
    with torch.no_grad():
        found = model(loader.standardise(loader.read_inputs(tmp_path / "rows.csv")))
    torch.testing.assert_close(found, library_logits(model_file, spec.standardise(raw)), rtol=0, atol=1e-5)


def test_the_standalone_loader_refuses_layers_that_would_fill_the_memory_before_running_them(exported, tmp_path):
    """A tiny file whose layer list reads 10^8 values per input (then pools them down to 100) is refused from its
    shapes alone, computed on the meta device."""
    layers = [{"kind": "Unflatten", "shape": [1, 10_000, 10_000]},
              {"kind": "AvgPool2d", "kernel_size": [1000, 1000], "stride": [1000, 1000]}, {"kind": "Flatten"},
              {"kind": "Linear", "in_features": 100, "out_features": 3, "bias": True}]
    hostile = write_model_state({"3.weight": torch.zeros(3, 100), "3.bias": torch.zeros(3)},
                                tmp_path / "best_model.pth", {"format": 1, "layers": layers})
    with pytest.raises(ValueError, match="100,000,000 values per input, more than"):
        standalone_model(exported).load_network(hostile)
    with pytest.raises(NbpruneError, match="100,000,000 values per input, more than 67,108,864"):
        network_from_file(hostile)  # the library refuses it as the standalone loader does, before any pass
    assert standalone_model(exported).MAX_VALUES == MAX_VALUES

"""Export: the standalone folder runs in a fresh interpreter that cannot import nbprune, and predicts as the library."""

import importlib.util
import json
import os
import re
import stat
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tree_bytes
from nbprune import load_pruned_model, NbpruneError, SimpleNN
from nbprune.errors import ModelFileError
from nbprune.cli import main
from nbprune.data import InputSpec
from nbprune.datasets import MNIST
from nbprune.export import (ONNX_FILE, PAD_TO, TORCHSCRIPT_FILE, export_model, padded_layers,
                            standalone_predictions)
from nbprune.files import UMASK
from nbprune.modelfile import save_model_file
from nbprune.prune import shrink

# Runs a script like `python -I -B script.py ARGS`, but with nbprune made unimportable first.
WITHOUT_NBPRUNE = ("import runpy, sys; sys.modules['nbprune'] = None; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')")


SPEC = InputSpec("MNIST", MNIST.classes, 0.2, 0.4, 784)


def pruned_model(seed: int = 0) -> SimpleNN:
    torch.manual_seed(seed)
    model = shrink(SimpleNN(), [torch.arange(0, 60, 3), torch.arange(7)])  # 20 + 7 hidden neurons
    model.spec = SPEC
    return model


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A session tree holding one pruned model whose record says its standardisation, and a run.json that lies."""
    root = tmp_path_factory.mktemp("session") / "iterative_pruning"
    model_file = root / "3" / "prune_w_retrain" / "best_model.pth"
    save_model_file(pruned_model(), model_file, iteration=3, criterion="magnitude")
    (root / "run.json").write_text(json.dumps({"config": {"mean": 0.9, "std": 9.0, "activation": "sigmoid"}}))
    return model_file


@pytest.fixture(scope="module")
def exported(session, tmp_path_factory):
    return export_model(session, tmp_path_factory.mktemp("export") / "standalone", onnx=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Twelve 28x28 grey-level images, as .npy and as PNGs in three colour types."""
    folder = tmp_path_factory.mktemp("digits")
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    np.save(folder / "digits.npy", pixels)
    Image.fromarray(pixels[0]).save(folder / "grey.png")
    Image.fromarray(pixels[1]).convert("RGB").save(folder / "rgb.png")
    Image.fromarray(pixels[2]).convert("RGBA").save(folder / "rgba.png")
    return folder, torch.from_numpy(pixels)


def library_predictions(model_file, pixels: torch.Tensor, mean: float, std: float) -> list[int]:
    """Predict as nbprune does: standardise pixels / 255 as load_data does, then the three steps."""
    model = load_pruned_model(SimpleNN(), model_file)
    inputs = pixels.reshape(len(pixels), -1).float().div_(255).sub_(mean).div_(std)
    return model(inputs).argmax(dim=1).tolist()


def printed_predictions(stdout: str) -> list[int]:
    return [int(match) for match in re.findall(r": (\d) \(\d+\.\d%\)$", stdout, flags=re.M)]


def test_what_predict_py_printed_is_read_back_as_rows():
    printed = "image.png: 7 (99.1%)\nC:/my data: v2/images.npy[0]: T-shirt/top (55.0%)\n"
    assert standalone_predictions(printed) == [("image.png", "7", 99.1), ("C:/my data: v2/images.npy[0]", "T-shirt/top",
                                                                           55.0)]
    with pytest.raises(NbpruneError, match=r"'usage: python predict.py IMAGE' is not a line predict.py prints"):
        standalone_predictions("image.png: 7 (99.1%)\nusage: python predict.py IMAGE\n")


def standalone_module(folder: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"standalone_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_folder_holds_the_reference_workflows_deployment_files(exported):
    names = {path.name for path in exported.iterdir()}
    assert names == {"best_model.pth", "model.py", "loader.py", "predict.py", TORCHSCRIPT_FILE, "README.md",
                     "export.json"}
    for name in ("model.py", "loader.py", "predict.py"):
        assert not re.search(r"^\s*(from|import) nbprune", (exported / name).read_text(), flags=re.M)


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_exported_files_get_the_mode_a_plain_open_would_give(exported):
    for path in exported.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~UMASK, f"{path.name} is {oct(path.stat().st_mode)}"


def test_everything_comes_from_the_model_files_record_never_the_sessions_run_json(exported):
    loader, model = (exported / "loader.py").read_text(), (exported / "model.py").read_text()
    assert re.search(r"^MEAN = 0\.2  ", loader, flags=re.M) and re.search(r"^STD = 0\.4  ", loader, flags=re.M)
    assert re.search(r"^HIDDEN = \(20, 7\)  ", model, flags=re.M)
    assert re.search(r'^ACTIVATION = "relu"  ', model, flags=re.M)
    readme = (exported / "README.md").read_text()
    assert "iteration 3, criterion magnitude" in readme and "0: 0, 1: 1" in readme


def test_a_plain_state_dict_gets_mnists_published_standardisation_with_a_warning(tmp_path):
    model_file = tmp_path / "best_model.pth"
    save_model_file(pruned_model().state_dict(), model_file)
    with pytest.warns(UserWarning, match="plain state_dict without nbprune's record"):
        out = export_model(model_file, tmp_path / "out", onnx=False)
    loader = (out / "loader.py").read_text()
    mean, std = MNIST.standardisation
    assert f"MEAN = {mean!r}  " in loader and f"STD = {std!r}  " in loader


@pytest.mark.slow
def test_fresh_interpreter_without_nbprune_predicts_as_the_library(exported, session, digits):
    folder, pixels = digits
    inputs = [folder / "digits.npy", folder / "grey.png", folder / "rgb.png", folder / "rgba.png"]
    command = [sys.executable, "-I", "-B", "-c", WITHOUT_NBPRUNE, str(exported / "predict.py"), *map(str, inputs)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stderr
    expected = library_predictions(session, pixels, 0.2, 0.4)
    assert printed_predictions(result.stdout) == expected + expected[:3]
    rows = standalone_predictions(result.stdout)
    assert [int(label) for _, label, _ in rows] == expected + expected[:3] and all(0 < p <= 100 for *_, p in rows)
    assert [name for name, *_ in rows][-4:] == [str(inputs[0]) + "[11]", *map(str, inputs[1:])]
    assert not (exported / "__pycache__").exists()


@pytest.mark.slow
def test_predict_runs_from_any_folder_under_isolated_mode(exported, digits, tmp_path):
    folder, _ = digits
    result = subprocess.run([sys.executable, "-I", "-B", str(exported / "predict.py"), str(folder / "grey.png")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    assert len(printed_predictions(result.stdout)) == 1
    usage = subprocess.run([sys.executable, "-I", "-B", str(exported / "predict.py")], capture_output=True,
                           text=True, cwd=tmp_path, timeout=900)
    assert usage.returncode != 0 and "usage: python predict.py" in usage.stderr


def test_three_steps_of_the_exported_files_match_the_library(exported, session, digits):
    folder, pixels = digits
    model_py, loader = standalone_module(exported, "model"), standalone_module(exported, "loader")
    model = model_py.SimpleNN()
    loader.load_pruned_model(model, exported / "best_model.pth")
    library = load_pruned_model(SimpleNN(), session)
    inputs = loader.standardise(loader.read_pixels(folder / "digits.npy"))
    assert torch.equal(inputs, pixels.reshape(12, -1).float().div(255).sub(0.2).div(0.4))
    assert torch.equal(model(inputs), library(inputs))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_png_reader_matches_pillow(exported, tmp_path, mode):
    loader = standalone_module(exported, "loader")
    gradient = (np.add.outer(np.arange(28), 3 * np.arange(28)) * 2 % 256).astype(np.uint8)
    image = Image.fromarray(gradient)
    if mode == "I;16":
        image = Image.fromarray(gradient.astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
    image.save(tmp_path / "image.png")
    assert torch.equal(loader.read_png(tmp_path / "image.png"), torch.from_numpy(gradient).float())


def png_with_every_filter(pixels: np.ndarray, channels: int) -> bytes:
    """Return PNG bytes whose rows cycle through the five filters (None, Sub, Up, Average, Paeth)."""
    def paeth(a, b, c):
        guess = a + b - c
        return min((abs(guess - a), 0, a), (abs(guess - b), 1, b), (abs(guess - c), 2, c))[2]

    rows, above = [], [0] * pixels[0].size
    for y, row in enumerate(pixels.reshape(len(pixels), -1).tolist()):
        kind = y % 5
        left = [row[i - channels] if i >= channels else 0 for i in range(len(row))]
        up_left = [above[i - channels] if i >= channels else 0 for i in range(len(row))]
        predictors = [[0] * len(row), left, above, [(a + b) // 2 for a, b in zip(left, above)],
                      list(map(paeth, left, above, up_left))]
        rows.append(bytes([kind, *((x - p) % 256 for x, p in zip(row, predictors[kind]))]))
        above = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_reader_undoes_all_five_row_filters(exported, tmp_path, channels):
    loader = standalone_module(exported, "loader")
    grey = np.random.default_rng(2).integers(0, 256, size=(28, 28), dtype=np.uint8)
    pixels = np.repeat(grey[..., None], channels, axis=2)
    (tmp_path / "filters.png").write_bytes(png_with_every_filter(pixels, channels))
    assert torch.equal(loader.read_png(tmp_path / "filters.png"), torch.from_numpy(grey).float())
    assert np.array_equal(np.asarray(Image.open(tmp_path / "filters.png").convert("L")), grey)


def test_npy_reader_handles_floats_and_flat_rows(exported, tmp_path):
    loader = standalone_module(exported, "loader")
    pixels = np.random.default_rng(1).random((3, 784), dtype=np.float32)
    np.save(tmp_path / "flat.npy", pixels)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(pixels.reshape(3, 28, 28) * 255).astype(np.float64))
    assert torch.equal(loader.read_pixels(tmp_path / "flat.npy"), torch.from_numpy(pixels).reshape(3, 28, 28))
    assert torch.allclose(loader.read_pixels(tmp_path / "fortran.npy"),
                          torch.from_numpy(pixels).reshape(3, 28, 28), atol=1e-6)


def test_torchscript_file_computes_the_same_logits(exported, session):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in recent torch
        scripted = torch.jit.load(str(exported / TORCHSCRIPT_FILE))
    inputs = torch.randn(5, 28, 28)
    assert torch.allclose(scripted(inputs), load_pruned_model(SimpleNN(), session)(inputs), atol=1e-6)
    assert [p.shape[0] for name, p in scripted.named_parameters() if name.endswith("bias")] == [32, 16, 10]  # 20+7


def test_the_programs_pad_hidden_layers_with_zero_neurons_that_change_nothing():
    torch.manual_seed(3)
    model = shrink(SimpleNN((40, 30, 20), activation="sigmoid"), [torch.arange(37), torch.arange(11), torch.arange(5)],
                   kept_inputs=torch.arange(0, 784, 2)).eval()  # sigmoid(0) = 0.5: the zero outgoing weights matter
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    network = torch.nn.Sequential(torch.nn.Flatten(), *padded_layers(model.sequence())).eval()
    widths = [layer.out_features for layer in network if isinstance(layer, torch.nn.Linear)]
    assert widths == [48, 16, 16, 10] and PAD_TO == 16
    inputs = torch.randn(64, 28, 28)
    assert torch.allclose(network(inputs), model(inputs), atol=1e-6)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # a copy was padded
    square = SimpleNN((32, 16))
    assert [layer.weight.shape for layer in padded_layers(square.sequence()) if isinstance(layer, torch.nn.Linear)] \
        == [layer.weight.shape for layer in square.sequence() if isinstance(layer, torch.nn.Linear)]


@pytest.mark.slow
def test_onnx_file_computes_the_same_logits(session, tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    out = export_model(session, tmp_path / "out")
    inputs = torch.randn(5, 784)
    (logits,) = ReferenceEvaluator(onnx.load(str(out / ONNX_FILE))).run(None, {"input": inputs.numpy()})
    assert np.allclose(logits, load_pruned_model(SimpleNN(), session)(inputs).detach().numpy(), atol=1e-5)


def test_cli_exports_and_rejects_bad_model_files(session, tmp_path, capsys):
    assert main(["export", str(session), str(tmp_path / "out"), "--no-onnx"]) == 0
    assert (tmp_path / "out" / "predict.py").is_file()
    assert main(["export", str(tmp_path / "missing.pth"), str(tmp_path / "out2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ModelFileError):
        (tmp_path / "junk.pth").write_bytes(b"not a model")
        export_model(tmp_path / "junk.pth", tmp_path / "out3")
    assert main(["export", str(session), str(tmp_path / "out4"), "--activation", "sigmoid"]) == 2
    assert "records activation 'relu', but --activation sigmoid was given" in capsys.readouterr().err


def test_a_folder_with_other_files_is_never_overwritten(session, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "predict.py").write_text("# my own script")
    (target / "model.onnx").write_text("my own onnx")
    with pytest.raises(NbpruneError, match="is not empty.*--force"):
        export_model(session, target, onnx=False)
    with pytest.raises(NbpruneError, match="did not write \\(model.onnx, predict.py\\)"):
        export_model(session, target, onnx=False, force=True)
    assert tree_bytes(target) == {"model.onnx": b"my own onnx", "predict.py": b"# my own script"}


def test_force_replaces_an_earlier_export_and_nothing_else(session, tmp_path):
    target = export_model(session, tmp_path / "out", onnx=False)
    (target / "model.py").write_text("# edited")
    with pytest.raises(NbpruneError, match="is not empty"):
        export_model(session, target, onnx=False)
    export_model(session, target, onnx=False, force=True)
    assert "class SimpleNN" in (target / "model.py").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no building folder left


def test_an_export_never_writes_into_a_sessions_iteration_folder(session, tmp_path):
    other = tmp_path / "other.pth"
    save_model_file(pruned_model(1), other)
    before = tree_bytes(session.parent)
    for force in (False, True):
        with pytest.raises(NbpruneError, match="iteration folder: an export never writes there"):
            export_model(other, session.parent, onnx=False, force=force)
    assert tree_bytes(session.parent) == before


def test_a_full_disk_leaves_no_half_folder(session, tmp_path, monkeypatch):
    import errno

    import nbprune.export as export_module

    def full(path, data):
        if Path(path).name == "predict.py":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, data)
    original = export_module.write_bytes_atomic
    monkeypatch.setattr(export_module, "write_text_atomic", lambda path, text: full(path, text.encode()))
    with pytest.raises(NbpruneError, match="No space left on device.*nothing was left behind"):
        export_model(session, tmp_path / "out", onnx=False)
    assert list(tmp_path.iterdir()) == []


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims a huge image, with a tiny compressed body: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write every bad input the exported predict.py must refuse; return name -> (file, what its message says)."""
    good = folder / "good.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(good)
    cases = {
        "truncated_png": ("truncated.png", good.read_bytes()[:40], "truncated PNG"),
        "png_signature_only": ("signature.png", b"\x89PNG\r\n\x1a\n", "truncated PNG"),
        "png_bomb": ("bomb.png", _png_claiming(4000, 4000), "4000x4000 pixels: images larger than 1024x1024"),
        "text_as_png": ("notes.png", b"just some text\n", "is not a PNG file"),
        "text_file": ("notes.txt", b"just some text\n", "expected a .png image or a .npy array"),
    }
    arrays = {
        "empty_npy": (np.zeros((0, 28, 28), dtype=np.uint8), "empty array"),
        "shape_5": (np.zeros(5, dtype=np.uint8), "shape [5]: expected one of [28, 28]"),
        "shape_3_28_28_1": (np.zeros((3, 28, 28, 1), dtype=np.uint8), "shape [3, 28, 28, 1]"),
        "nan": (np.full((2, 28, 28), np.nan, dtype=np.float32), "NaN or Inf values"),
        "inf": (np.full((2, 28, 28), np.inf, dtype=np.float64), "NaN or Inf values"),
        "slightly_above_one": (np.full((1, 28, 28), 1.0001, dtype=np.float32), "which is ambiguous"),
        "negative": (np.full((1, 28, 28), -3, dtype=np.int16), "from -3 to -3"),
        "above_255": (np.full((1, 784), 300, dtype=np.int32), "expected grey levels 0..255"),
    }
    files = {}
    for name, (file_name, data, says) in cases.items():
        (folder / file_name).write_bytes(data)
        files[name] = (folder / file_name, says)
    for name, (array, says) in arrays.items():
        np.save(folder / f"{name}.npy", array)
        files[name] = (folder / f"{name}.npy", says)
    truncated = folder / "truncated.npy"
    truncated.write_bytes((folder / "nan.npy").read_bytes()[:200])
    files["truncated_npy"] = (truncated, "truncated or damaged")
    return files


BAD_INPUTS = ["truncated_png", "png_signature_only", "png_bomb", "text_as_png", "text_file", "empty_npy", "shape_5",
              "shape_3_28_28_1", "nan", "inf", "slightly_above_one", "negative", "above_255", "truncated_npy"]


def run_predict_here(folder: Path, *inputs: Path) -> tuple[int, str, str]:
    """Run the exported predict.py as its own __main__ in this process; return (exit code, stdout, stderr)."""
    import contextlib
    import io
    import runpy
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    sys.argv = [str(folder / "predict.py"), *map(str, inputs)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(folder / "predict.py"), run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv
        for name in ("model", "loader"):  # the folder's modules, not to be found by the next test
            sys.modules.pop(name, None)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_predict_refuses_every_bad_input_in_one_line(name, exported, tmp_path):
    path, says = _bad_inputs(tmp_path)[name]
    code, out, err = run_predict_here(exported, path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("predict.py: error: "), err
    assert says in lines[0] and out == ""


@pytest.mark.slow
def test_predict_refuses_a_bad_input_in_a_fresh_interpreter_too(exported, tmp_path):
    path, says = _bad_inputs(tmp_path)["png_bomb"]
    done = subprocess.run([sys.executable, "-I", "-B", str(exported / "predict.py"), str(path)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("bad, says", [
    (lambda: torch.zeros(0, 784), "empty batch"), (lambda: torch.zeros(2, 784).to_sparse(), "dense tensor"),
    (lambda: torch.zeros(2, 784, device="meta"), "meta device"), (lambda: torch.full((2, 784), float("nan")), "NaN"),
    (lambda: torch.zeros(2, 784, dtype=torch.int64), "floating-point input"), (lambda: [0.0] * 784, "torch.Tensor"),
    (lambda: torch.tensor([[-1e3] * 783 + [float("-inf")]] * 2), "NaN or Inf")])  # what a ReLU would hide
def test_the_deployed_model_refuses_bad_input_with_its_input_error(exported, bad, says):
    model_py, loader = standalone_module(exported, "model"), standalone_module(exported, "loader")
    model = model_py.SimpleNN()
    loader.load_pruned_model(model, exported / "best_model.pth")
    with pytest.raises(model_py.InputError, match=says):
        model(bad())
    assert issubclass(model_py.InputError, ValueError) and issubclass(model_py.InputError, TypeError)


def test_a_png_of_another_size_is_resized_to_28x28_and_a_npy_of_another_shape_is_refused(exported, tmp_path):
    loader = standalone_module(exported, "loader")
    Image.fromarray(np.full((56, 56), 255, dtype=np.uint8)).save(tmp_path / "big.png")
    pixels = loader.read_inputs(tmp_path / "big.png")
    assert tuple(pixels.shape) == (1, 28, 28) and torch.allclose(pixels, torch.ones(1, 28, 28))
    np.save(tmp_path / "big.npy", np.zeros((56, 56), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        loader.read_inputs(tmp_path / "big.npy")


@pytest.mark.slow
def test_predict_without_inputs_shows_its_usage_and_a_closed_pipe_ends_it_quietly(exported, tmp_path):
    done = subprocess.run([sys.executable, "-I", "-B", str(exported / "predict.py")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 2 and done.stderr.startswith("usage: python predict.py") and done.stdout == ""
    np.save(tmp_path / "many.npy", np.zeros((5000, 28, 28), dtype=np.uint8))  # 200 kB of lines: more than a pipe holds
    process = subprocess.Popen([sys.executable, "-I", "-B", str(exported / "predict.py"), str(tmp_path / "many.npy")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()  # read one line, then go away, as `| head -1` does
    process.stdout.close()
    _, err = process.communicate(timeout=900)
    assert err == b"" and process.returncode == 1


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_the_exported_loader_refuses_a_pickle_that_would_run_code(exported, tmp_path):
    loader, model_py = standalone_module(exported, "loader"), standalone_module(exported, "model")
    marker = tmp_path / "payload_ran"
    torch.save({**torch.load(exported / "best_model.pth", weights_only=True), "fc1.weight": _Payload(marker)},
               tmp_path / "sent_to_me.pth")
    with pytest.raises(ValueError, match="sent_to_me.pth"):
        loader.load_pruned_model(model_py.SimpleNN(), tmp_path / "sent_to_me.pth")
    assert not marker.exists(), "the payload ran"


def test_the_padded_widths_06_prints_are_the_torchscript_programs(exported):
    from nbprune.export import padded_hidden
    model = SimpleNN.from_file(exported / "best_model.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated; the file is what C++ reads
        program = torch.jit.load(str(exported / TORCHSCRIPT_FILE))  # the test's own export, read back
    widths = [weight.shape[0] for name, weight in program.named_parameters() if name.endswith("weight")][:-1]
    assert padded_hidden(model) == widths == [-(-width // PAD_TO) * PAD_TO for width in model.hidden]
    assert any(width % PAD_TO for width in model.hidden)  # the session's model has a layer to pad

"""Export: a standalone folder that runs a pruned model with torch alone, plus TorchScript (and ONNX) files.

Everything the folder needs comes from the model file's own record (network, activation, standardisation,
dataset and class names), never from a session's other files. An MLP's folder gets standalone/model.py with its
widths filled in; a network of layers' folder (LeNet-5, nbprune.networkfile) gets standalone/network.py as model.py,
which rebuilds the layer list the file records. The folder is built beside its target and renamed
into place, so a failure (a full disk) leaves nothing behind, and a folder with other files is never overwritten.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .config import or_default
from .data import DataSplits, InputSpec
from .datasets import DATASETS, is_data_file
from .errors import ModelFileError, NbpruneError, StorageError
from .files import UMASK, atomic_path, check_fits, write_bytes_atomic, write_fix, write_text_atomic
from .locks import hold
from .model import SimpleNN
from .modelfile import ModelRecord, load_pruned_model, read_model_file, state_shape
from .layers import hidden_units
from .networkfile import network_from_file, read_network_record
from .runs import RUN_RECORD
from .session import ITERATION_FILES, STAGE

TORCHSCRIPT_FILE, ONNX_FILE, MANIFEST_FILE = "model_torchscript.pt", "model.onnx", "export.json"
# The TorchScript and ONNX programs widen each hidden layer to a multiple of this with zero neurons: the same
# function, faster, because CPU matrix kernels work in blocks of columns (benchmarks/inference_speed.py measures it).
PAD_TO = 16
STANDALONE = Path(__file__).resolve().parent / "standalone"  # the folder's files, with placeholder constants
BUILDING = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.export")  # the hidden folder an export is built in, beside OUT_DIR
EXPORT_FILES = ("best_model.pth", "model.py", "loader.py", "predict.py", "README.md", TORCHSCRIPT_FILE, ONNX_FILE,
                MANIFEST_FILE)
README = '''# A pruned {dataset} classifier ({neurons} hidden neurons, {parameters:,} parameters)

Exported by `nbprune export` from {source} ({provenance}). Needs only torch. Classify {what}:

    python predict.py {example}

It prints one line per input: the class name and the model's probability for it. The classes are:
{classes}.

Or in Python, in the reference workflow's three steps:

    from model import SimpleNN
    from loader import load_pruned_model, read_inputs, standardise
    model = SimpleNN()
    load_pruned_model(model, "best_model.pth")
    model(standardise(read_inputs("{first_example}"))).argmax(dim=1)

The model takes standardised inputs, {standardisation}, of shape [batch, {features}]{image_note}; `standardise` in
loader.py does this. `{torchscript}` computes the same logits as TorchScript (`torch.jit.load`), with the same
input; there each hidden layer is padded with zero neurons to a multiple of {pad_to}, which CPUs multiply faster.{onnx}
'''
NETWORK_README = '''# A pruned {dataset} classifier ({architecture}, {parameters:,} parameters)

Exported by `nbprune export` from {source} ({provenance}). Its layers, {units} channels and neurons:

    {layers}

Needs only torch. Classify {what}:

    python predict.py {example}

It prints one line per input: the class name and the model's probability for it. The classes are:
{classes}.

Or in Python:

    from model import load_network
    from loader import read_inputs, standardise
    model = load_network("best_model.pth")
    model(standardise(read_inputs("{first_example}"))).argmax(dim=1)

`load_network` rebuilds the network from the layer list the model file records, then loads its weights. The model
takes standardised inputs, {standardisation}, of shape [batch, {features}]{image_note}; `standardise` in loader.py
does this. `{torchscript}` computes the same logits as TorchScript (`torch.jit.load`), with the same input.{onnx}
'''
# A network's folder: model.py is standalone/network.py; loader.py and predict.py are the MLP's, loading with it
NETWORK_LOADER = {
    '"""Load a pruned model file into SimpleNN, and turn PNG or .npy inputs into its input.':
        '"""Turn PNG or .npy inputs into the network\'s input (model.load_network loads the network).'}
NETWORK_PREDICT = {
    "from loader import CLASSES, IMAGE_SHAPE, load_pruned_model, read_inputs, standardise":
        "from loader import CLASSES, IMAGE_SHAPE, read_inputs, standardise",
    "from model import InputError, SimpleNN": "from model import InputError, load_network",
    '    model = SimpleNN()\n    load_pruned_model(model, HERE / "best_model.pth")\n':
        '    model = load_network(HERE / "best_model.pth")\n'}


def model_for_file(model_file: str | os.PathLike, activation: str | None = None, dataset: str | None = None
                   ) -> tuple[nn.Module, InputSpec | None]:
    """Return the network a model file holds (a SimpleNN, or the nn.Sequential of a network file) and what its
    inputs are (None if unknown).

    A file nbprune wrote carries a record: it alone decides, and flags that contradict it are refused. For a plain
    state_dict the caller's flags decide (activation, default relu; dataset, default MNIST, with its published
    standardisation).
    """
    model_file = Path(model_file)
    state, raw = read_model_file(model_file)
    if isinstance(raw, dict) and "layers" in raw:  # a network of layers (nbprune.networkfile)
        if activation is not None:
            raise NbpruneError(f"{model_file} records its layers, activations included: leave --activation out.")
        network, record = network_from_file(model_file)
        return network, record.spec
    name = or_default(dataset, "dataset")
    if raw is None and name not in DATASETS:
        raise NbpruneError(f"{model_file} is a plain state_dict without nbprune's record, and --dataset {name} is not "
                           f"a declared dataset ({', '.join(DATASETS)}): nbprune cannot tell its inputs' "
                           f"standardisation. Export a best_model.pth nbprune wrote.")
    if raw is not None:
        record = ModelRecord.from_dict(raw, model_file)
        recorded_dataset = record.spec.dataset if record.spec else None
        moved = dataset is not None and recorded_dataset is not None and is_data_file(dataset) and \
            is_data_file(recorded_dataset)  # a data file may have moved: --dataset says where it is now
        for flag, given, recorded in (("--activation", activation, record.activation),
                                      ("--dataset", None if moved else dataset, recorded_dataset)):
            if given is not None and recorded is not None and given != recorded:
                raise NbpruneError(f"{model_file} records {flag.lstrip('-')} {recorded!r}, but {flag} {given} was "
                                   f"given: leave {flag} out, the file says what it is.")
        return SimpleNN.from_file(model_file), record.spec
    try:
        shape = state_shape(state)
    except ModelFileError as error:
        raise ModelFileError(f"{model_file}: {error} A layer without neurons cannot be deployed.") from None
    hidden = shape.hidden
    if not hidden:
        raise ModelFileError(f"{model_file} holds a network without hidden layers: nothing nbprune made.")
    declared = DATASETS[name]
    inputs = declared.features if "keep_inputs.index" in state else shape.inputs
    model = load_pruned_model(SimpleNN(hidden, inputs, shape.classes, activation), model_file)
    warnings.warn(f"{model_file} is a plain state_dict without nbprune's record: assuming a {model.activation} "
                  f"network for {name} with its published standardisation (use --activation/--dataset if not).")
    if model.in_features != declared.features or model.num_classes != len(declared.classes):
        return model, None
    return model, InputSpec.published(declared)


def _standalone(name: str, **constants: str) -> str:
    """Return the text of standalone/<name> with each `NAME = value` line given the new value."""
    text = (STANDALONE / name).read_text()
    for constant, value in constants.items():
        text, found = re.subn(rf"^{re.escape(constant)} = [^#\n]*?(?=  #|$)", lambda _: f"{constant} = {value}",
                              text, count=1, flags=re.M)
        if not found:
            raise RuntimeError(f"standalone/{name} lacks the line `{constant} = ...` that export fills in")
    return text


def _replaced(text: str, replacements: dict[str, str]) -> str:
    """Return `text` with each key replaced by its value (each found exactly once)."""
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise RuntimeError(f"a standalone file lacks the text {old!r} that export replaces")
        text = text.replace(old, new)
    return text


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def padded_layers(layers: list[nn.Module], multiple: int = PAD_TO) -> list[nn.Module]:
    """Return copies of `layers` ([keep_inputs,] fc1, act, ..., fcN) that compute the same function, each hidden
    layer widened to a multiple of `multiple` by neurons whose weights, bias and outgoing weights are all zero (so
    whatever the activation makes of them, they add nothing to the next layer)."""
    layers = [copy.deepcopy(layer) for layer in layers]
    linears = [index for index, layer in enumerate(layers) if isinstance(layer, nn.Linear)]
    for this, following in zip(linears, linears[1:]):
        layer, after = layers[this], layers[following]
        width = layer.out_features
        wide = -(-width // multiple) * multiple
        if wide == width:
            continue
        grown = nn.Linear(layer.in_features, wide, dtype=layer.weight.dtype, device=layer.weight.device)
        fed = nn.Linear(wide, after.out_features, dtype=after.weight.dtype, device=after.weight.device)
        with torch.no_grad():
            for parameter in (*grown.parameters(), fed.weight):
                parameter.zero_()
            grown.weight[:width], grown.bias[:width] = layer.weight, layer.bias
            fed.weight[:, :width], fed.bias[:] = after.weight, after.bias
        layers[this], layers[following] = grown, fed
    return layers


def _program(model: nn.Module) -> nn.Sequential:
    """Return what the TorchScript and ONNX files hold: flat rows (or images) in, logits out. An MLP's hidden layers
    are padded with zero neurons (padded_layers); a network of layers is kept as it is."""
    layers = padded_layers(model.sequence()) if isinstance(model, SimpleNN) else [copy.deepcopy(layer)
                                                                                  for layer in model]
    return nn.Sequential(nn.Flatten(), *layers).eval()


def _torchscript_bytes(network: nn.Module) -> bytes:
    buffer = io.BytesIO()  # saved from memory: a full disk then fails in Python, not in a C++ abort
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated since torch 2.9, yet what C++ and mobile read
        torch.jit.save(torch.jit.script(network), buffer)
    return buffer.getvalue()


def _write_onnx(network: nn.Module, path: Path, features: int) -> None:
    example = torch.zeros(2, features)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, external_data=False)


def _check_target(out: Path, force: bool) -> list[Path]:
    """Refuse a target that is not ours to write; return the files of an earlier export that --force replaces."""
    resolved = out.resolve()
    if STAGE in resolved.parts or any(part.startswith(STAGE + ".") for part in resolved.parts) or \
            (out / RUN_RECORD).exists() or any((out / name).exists() for name in ITERATION_FILES[1:]):
        raise NbpruneError(f"{out} is (inside) a session's iteration folder: an export never writes there, so that "
                           f"the session's model stays what the run made. Choose another OUT_DIR.")
    if BUILDING.fullmatch(out.name):
        raise NbpruneError(f"{out.name} is named like the hidden folder an export is built in (.NAME.XXXXXXXX.export), "
                           f"which a later export may remove: choose another OUT_DIR.")
    blocker = next((folder for folder in (out, *out.parents) if folder.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise NbpruneError(f"{blocker} exists and is not a folder: choose another OUT_DIR.")
    if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
        raise NbpruneError(f"{blocker} cannot be written (read-only): choose an OUT_DIR you can write to.")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    present = sorted(out.iterdir())
    if not force:
        raise NbpruneError(f"{out} is not empty ({', '.join(p.name for p in present[:4])}"
                           f"{', ...' if len(present) > 4 else ''}): choose an empty or new OUT_DIR, or pass --force "
                           f"to replace an earlier export there.")
    ours = set(EXPORT_FILES) if (out / MANIFEST_FILE).is_file() else set()
    foreign = [p.name for p in present if p.name not in ours]
    if foreign:
        raise NbpruneError(f"{out} holds files an nbprune export did not write ({', '.join(foreign[:4])}): --force "
                           f"replaces only an earlier export. Move them away or choose another OUT_DIR.")
    return present


def export_model(model_file: str | os.PathLike, out_dir: str | os.PathLike, onnx: bool | None = None,
                 force: bool = False, activation: str | None = None, dataset: str | None = None) -> Path:
    """Write best_model.pth, model.py, loader.py, predict.py, README.md and TorchScript (and ONNX); return the folder.

    onnx=None writes model.onnx when the onnx extra is installed; True insists on it; False leaves it out.
    force=True replaces an earlier export in `out_dir`; anything else there is refused.
    """
    model_file, out = Path(model_file), Path(out_dir)
    check_fits(out, "OUT_DIR", spare=len("..XXXXXXXX.export"))  # the folder is built beside it under a longer name
    model, spec = model_for_file(model_file, activation, dataset)
    if onnx and not _onnx_available():
        raise NbpruneError("ONNX export needs the onnx and onnxscript packages: pip install 'nbprune[onnx]', "
                           "or export without --onnx.")
    if spec is None:
        raise NbpruneError(f"{model_file} does not say what its inputs are (dataset and standardisation): it was "
                           f"trained on loaders that do not describe their data. Export a model trained on "
                           f"nbprune.load_data's loaders.")
    replaced = _check_target(out, force)
    network = _program(model)
    with _building_folder(out) as building:
        try:
            _write_folder(building, model_file, model, spec, network, onnx)
            for path in replaced:
                path.unlink()
            if out.is_dir():
                out.rmdir()
            os.replace(building, out)
        except StorageError as error:  # its message names the file, the reason and the fix
            raise NbpruneError(f"could not write the export to {out}: {error} Nothing was left behind.") from None
        except OSError as error:
            raise NbpruneError(f"could not write the export to {out} ({error.strerror or type(error).__name__}): "
                               f"{write_fix(error)}; nothing was left behind.") from None
    return out


@contextlib.contextmanager
def _building_folder(out: Path) -> Iterator[Path]:
    """Yield a new hidden folder beside `out` (.OUT.XXXXXXXX.export) to build the export in, locked while this
    process lives; remove it afterwards unless it was renamed into place. What exports that were killed left
    beside `out` is removed first (a SIGKILL runs no cleanup; their locks died with them)."""
    building, held = None, None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        guard = hold(out.parent, wait=True)  # no other export makes or clears a building folder meanwhile
        try:
            _remove_abandoned_builds(out.parent)
            building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
            held = hold(building, wait=False)
        finally:
            if guard is not None:
                os.close(guard)
        yield building
    except OSError as error:
        raise NbpruneError(f"could not write the export to {out} ({error.strerror or type(error).__name__}): "
                           f"{write_fix(error)}; nothing was left behind.") from None
    finally:
        if building is not None and building.exists():
            shutil.rmtree(building, ignore_errors=True)
        if held is not None:
            os.close(held)


def _remove_abandoned_builds(parent: Path) -> None:
    """Remove the building folders of killed exports in `parent`: by name, holding only an export's files, and
    locked by no live process."""
    for folder in parent.iterdir():
        if not BUILDING.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        if not all(_is_export_file(path) for path in folder.iterdir()):
            continue
        handle = hold(folder, wait=False)
        if handle is not None:
            try:
                shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(handle)


def _is_export_file(path: Path) -> bool:
    """Return whether `path` is a file an export writes, or the temporary file of one of its atomic writes."""
    name = re.fullmatch(r"\.(.+)\.[A-Za-z0-9_]{8}\.tmp", path.name)
    return path.is_file() and not path.is_symlink() and (name.group(1) if name else path.name) in EXPORT_FILES


def _write_folder(folder: Path, model_file: Path, model: nn.Module, spec: InputSpec, network: nn.Module,
                  onnx: bool | None) -> list[str]:
    """Write every file of the export into `folder`; return their names."""
    os.chmod(folder, 0o777 & ~UMASK)  # mkdtemp makes 0700 folders; give the export the mode mkdir would
    write_bytes_atomic(folder / "best_model.pth", model_file.read_bytes())
    loader = _standalone("loader.py", MEAN=repr(spec.mean), STD=repr(spec.std), CLASSES=repr(tuple(spec.classes)),
                         IMAGE_SHAPE=repr(spec.image_shape))
    if isinstance(model, SimpleNN):
        write_text_atomic(folder / "model.py", _standalone(
            "model.py", HIDDEN=repr(model.hidden), ACTIVATION=json.dumps(model.activation),
            IN_FEATURES=repr(model.in_features), NUM_CLASSES=repr(model.num_classes)))
        write_text_atomic(folder / "loader.py", loader)
        write_text_atomic(folder / "predict.py", _standalone("predict.py"))
    else:
        write_text_atomic(folder / "model.py", _standalone("network.py"))
        write_text_atomic(folder / "loader.py", _replaced(loader, NETWORK_LOADER))
        write_text_atomic(folder / "predict.py", _replaced(_standalone("predict.py"), NETWORK_PREDICT))
    write_bytes_atomic(folder / TORCHSCRIPT_FILE, _torchscript_bytes(network))
    files = ["best_model.pth", "model.py", "loader.py", "predict.py", TORCHSCRIPT_FILE]
    if onnx or (onnx is None and _onnx_available()):
        try:
            _write_onnx(network, folder / ONNX_FILE, model.in_features if isinstance(model, SimpleNN) else
                        spec.features)
            files.append(ONNX_FILE)
        except OSError:
            raise
        except Exception as error:  # the ONNX exporter changes often; the rest of the folder is still good
            if onnx:
                raise NbpruneError(f"ONNX export failed ({type(error).__name__}: {error}).") from error
            warnings.warn(f"skipped {ONNX_FILE}: the ONNX export failed ({type(error).__name__}: {error})")
    readme = _readme if isinstance(model, SimpleNN) else _network_readme
    write_text_atomic(folder / "README.md", readme(model_file, model, spec, ONNX_FILE in files))
    files.append("README.md")
    manifest = {"exported_by": "nbprune export", "source": str(model_file), "files": files + [MANIFEST_FILE]}
    write_text_atomic(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    return files


def _readme(model_file: Path, model: SimpleNN, spec: InputSpec, wrote_onnx: bool) -> str:
    _, raw = read_model_file(model_file)
    record = ModelRecord.from_dict(raw, model_file) if raw is not None else None
    provenance = ", ".join(part for part in (
        f"iteration {record.iteration}" if record and record.iteration is not None else "",
        f"criterion {record.criterion}" if record and record.criterion else "",
        f"nbprune {record.nbprune}" if record and record.nbprune else "") if part) or "no record"
    what, example, first, standardisation, image_note = _inputs_text(spec)
    kept = f" (it reads {model.inputs_kept} of them)" if model.keep_inputs is not None else ""
    return README.format(
        dataset=Path(spec.dataset).name if is_data_file(spec.dataset) else spec.dataset,
        neurons=" + ".join(map(str, model.hidden)),
        parameters=sum(p.numel() for p in model.parameters()), source=model_file.name, provenance=provenance,
        what=what, example=example, first_example=first,
        classes=", ".join(f"{index}: {name}" for index, name in enumerate(spec.classes)),
        standardisation=standardisation, features=f"{model.in_features}{kept}", image_note=image_note,
        torchscript=TORCHSCRIPT_FILE, pad_to=PAD_TO,
        onnx=f" `{ONNX_FILE}` is the same padded network as ONNX (input `input` of shape [batch, {model.in_features}], "
             f"output `logits`)." if wrote_onnx else "")


def _network_readme(model_file: Path, network: nn.Sequential, spec: InputSpec, wrote_onnx: bool) -> str:
    _, record = read_network_record(model_file)
    provenance = ", ".join(part for part in (
        f"iteration {record.iteration}" if record.iteration is not None else "",
        f"criterion {record.criterion}" if record.criterion else "",
        f"nbprune {record.nbprune}" if record.nbprune else "") if part) or "no record"
    what, example, first, standardisation, image_note = _inputs_text(spec)
    return NETWORK_README.format(
        dataset=Path(spec.dataset).name if is_data_file(spec.dataset) else spec.dataset,
        architecture=record.architecture or "sequential network", units=" + ".join(map(str, hidden_units(network))),
        parameters=sum(p.numel() for p in network.parameters()), source=model_file.name, provenance=provenance,
        layers=" -> ".join(values["kind"] for values in record.layers), what=what, example=example,
        first_example=first, classes=", ".join(f"{index}: {name}" for index, name in enumerate(spec.classes)),
        standardisation=standardisation, features=spec.features, image_note=image_note,
        torchscript=TORCHSCRIPT_FILE,
        onnx=f" `{ONNX_FILE}` is the same network as ONNX (input `input` of shape [batch, {spec.features}], output "
             f"`logits`)." if wrote_onnx else "")


def _inputs_text(spec: InputSpec) -> tuple[str, str, str, str, str]:
    """Return how a README describes the inputs: what to classify, the example arguments, the first example, the
    standardisation and the image shape the model also takes."""
    images = spec.image_shape is not None
    if images:
        what = (f"{spec.dataset} images ({spec.image_shape[0]}x{spec.image_shape[1]} grey PNG or .npy arrays of "
                f"grey levels 0..255 or fractions 0..1, light {'digit' if spec.dataset == 'MNIST' else 'object'} on "
                f"black, like {spec.dataset})")
        example, first = "image.png images.npy", "image.png"
        standardisation = f"`(pixels / 255 - {spec.mean:.4f}) / {spec.std:.4f}`"
        image_note = f" or [batch, {spec.image_shape[0]}, {spec.image_shape[1]}]"
    else:
        what = (f"rows of {spec.features} features (.npy arrays of shape [rows, {spec.features}], or .csv files of "
                f"rows, a header line allowed)")
        example, first = "rows.npy rows.csv", "rows.npy"
        standardisation = "each feature minus its training mean, divided by its training standard deviation"
        image_note = ""
    return what, example, first, standardisation, image_note


def example_inputs(data: DataSplits, inputs: torch.Tensor, folder: str | os.PathLike) -> list[Path]:
    """Write standardised `inputs` into `folder` as an application would hand them to predict.py, and return the
    files: the first input alone, then all of them (images: image.png and images.npy of grey levels 0..255; rows of
    features: row.csv and rows.npy). predict.py prints one line for the first file, then one per row of the second."""
    import numpy as np

    folder = Path(folder)
    raw = data.raw(inputs).cpu().numpy()
    if data.images:
        import PIL.Image

        first, rest = folder / "image.png", folder / "images.npy"
        with atomic_path(first) as temporary:
            PIL.Image.fromarray(raw[0]).save(temporary, format="PNG")
    else:
        first, rest = folder / "row.csv", folder / "rows.npy"
        write_text_atomic(first, ",".join(repr(float(value)) for value in raw[0]) + "\n")
    buffer = io.BytesIO()
    np.save(buffer, raw)
    write_bytes_atomic(rest, buffer.getvalue())
    return [first, rest]


PREDICTION = re.compile(r"(.+): (.+) \((\d+(?:\.\d+)?)%\)")  # predict.py's line: NAME: CLASS (PROBABILITY%)


def standalone_predictions(printed: str) -> list[tuple[str, str, float]]:
    """Return what predict.py printed as (input, class, probability in %) rows, one per image (a class name holding
    ": " would be read as part of the input's name)."""
    rows = []
    for line in printed.splitlines():
        match = PREDICTION.fullmatch(line)
        if match is None:
            raise NbpruneError(f"{line!r} is not a line predict.py prints: expected 'NAME: CLASS (PROBABILITY%)', "
                               f"e.g. 'image.png: 7 (99.1%)'; pass the text run_standalone returned.")
        name, label, probability = match.groups()
        rows.append((name, label, float(probability)))
    return rows


def run_standalone(folder: str | os.PathLike, *inputs: str | os.PathLike) -> str:
    """Run the folder's predict.py in a fresh interpreter that cannot import nbprune; return what it printed."""
    folder = Path(folder).resolve()
    without_nbprune = ("import runpy, sys; sys.modules['nbprune'] = None; sys.argv = sys.argv[1:]; "
                       "runpy.run_path(sys.argv[0], run_name='__main__')")
    command = [sys.executable, "-I", "-B", "-c", without_nbprune, str(folder / "predict.py"), *map(str, inputs)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder.parent)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise NbpruneError(f"the standalone folder {folder} failed (exit {result.returncode}): {last_line}")
    return result.stdout



def padded_hidden(model: SimpleNN) -> list[int]:
    """Return the hidden layers' widths in the TorchScript (and ONNX) program export_model writes for `model`: each
    padded with zero neurons to a multiple of PAD_TO."""
    return [layer.out_features for layer in padded_layers(model.sequence()) if isinstance(layer, nn.Linear)][:-1]

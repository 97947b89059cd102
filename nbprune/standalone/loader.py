"""Load a pruned model file into SimpleNN, and turn PNG or .npy inputs into its input. Needs only torch.

Every bad input raises ValueError with one line that says what was expected (the model's InputError is one too).
"""

import ast
import math
import struct
import zlib
from pathlib import Path

import torch
from torch import nn

MEAN = 0.1307  # the training inputs' mean (pixels / 255, or one per feature): standardise subtracts it
STD = 0.3081  # ... and divides by their standard deviation
CLASSES = tuple(str(digit) for digit in range(10))  # the class names, in the order of the model's outputs
IMAGE_SHAPE = (28, 28)  # the shape of one image; None when the inputs are rows of features

MAX_SIDE = 1024  # PNG images larger than this (per side) are refused before they are decoded
MAX_BYTES = 256 * 1024 * 1024  # input files larger than this are refused before they are read
NPY_TYPES = {"|u1": torch.uint8, "|i1": torch.int8, "<i2": torch.int16, "<i4": torch.int32, "<i8": torch.int64,
             "<u2": torch.uint16, "<f2": torch.float16, "<f4": torch.float32, "<f8": torch.float64}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RECORD_KEY = "nbprune"
INDEX_KEY = "keep_inputs.index"
PROBE_RADIUS = 10.0  # a model must give finite logits for every input within 10 standard deviations of the mean


def load_pruned_model(model, file):
    """Reshape the model's linear layers to the file's shapes, load its weights, and return the model in eval mode."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file, or one that would run code (refused: nothing in it ran)
        raise ValueError(f"{file} is not a readable model file ({type(error).__name__}); nothing in it ran: "
                         f"export the model again") from None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{file} does not hold a model's state_dict")
    for key, value in state.items():
        _check_tensor(file, key, value)
    metadata = getattr(state, "_metadata", None)
    record = metadata[""].get(RECORD_KEY) if isinstance(metadata, dict) and isinstance(metadata.get(""), dict) else None
    state = dict(state)  # the tensors alone: load_state_dict trips over damaged metadata
    if isinstance(record, dict) and record.get("activation") not in (None, model.activation):
        raise ValueError(f"{file} holds a {record['activation']} network, the model is {model.activation}: build it "
                         f"with SimpleNN(activation={record['activation']!r})")
    index = state.get(INDEX_KEY)
    names = [name for name, layer in model.named_children() if isinstance(layer, nn.Linear)]
    _check_layers(file, state, names, model.in_features if index is None else len(index),
                  getattr(model, names[-1]).out_features)
    if index is not None:
        if int(index.min()) < 0 or int(index.max()) >= model.in_features:
            raise ValueError(f"{file}: {INDEX_KEY} must list inputs from 0 to {model.in_features - 1}: the file was "
                             f"damaged or edited; export the model again")
        model.keep(index)
    for name in names:
        weight = state[name + ".weight"]
        if weight.shape != getattr(model, name).weight.shape:
            setattr(model, name, nn.Linear(weight.shape[1], weight.shape[0]))
    model.load_state_dict(state)
    _refuse_overflow(file, [getattr(model, name) for name in names], model.activation)
    return model.eval()


def _check_tensor(file, key, value):
    """Refuse anything but a dense tensor of finite floating-point weights (or the int64 kept-input index)."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_nested \
            or value.is_quantized or value.is_meta:
        raise ValueError(f"{file} holds something other than a dense tensor in {key}")
    if key == INDEX_KEY:
        if value.dtype != torch.int64 or value.dim() != 1 or len(value) == 0:
            raise ValueError(f"{file}: {key} must be a non-empty 1-D int64 index")
    elif value.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"{file} holds {value.dtype} values in {key}: expected floating-point weights")
    elif not torch.isfinite(value).all():
        raise ValueError(f"{file} holds NaN or Inf values in {key}: export a model from an earlier iteration")


def _check_layers(file, state, names, inputs, classes):
    """Refuse a file whose tensors are not the layers fc1 ... fcN of an MLP from `inputs` to `classes` values."""
    expected = {f"{name}.{part}" for name in names for part in ("weight", "bias")} | \
        ({INDEX_KEY} if INDEX_KEY in state else set())
    extra, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if extra or missing:
        raise ValueError(f"{file} does not hold the layers {', '.join(names)} of this model ("
                         + "; ".join(filter(None, (f"extra: {', '.join(extra[:4])}" if extra else "",
                                                   f"missing: {', '.join(missing[:4])}" if missing else "")))
                         + "): the file was damaged or edited; export the model again")
    takes = inputs
    for name in names:
        weight, bias = state[name + ".weight"], state[name + ".bias"]
        if weight.dim() != 2 or weight.numel() == 0 or weight.shape[1] != takes or list(bias.shape) != [len(weight)]:
            raise ValueError(f"{file}: {name}.weight has shape {list(weight.shape)} and {name}.bias "
                             f"{list(bias.shape)}, expected [neurons, {takes}] and [neurons]: the file was damaged "
                             f"or edited; export the model again")
        takes = len(weight)
    if takes != classes:
        raise ValueError(f"{file}: {names[-1]} gives {takes} outputs, the model has {classes} classes: the file was "
                         f"damaged or edited; export the model again")


def _refuse_overflow(file, linears, activation):
    """Refuse weights so large that some input within PROBE_RADIUS of the mean gets Inf or NaN logits.

    Each layer's outputs are bounded by |W| @ (bound of its inputs) + |b|; a ReLU keeps the bound, a sigmoid's
    outputs stay below 1. Finite weights of 3e38 pass the finite check but overflow on any input.
    """
    bound = torch.full((linears[0].in_features,), PROBE_RADIUS, dtype=torch.float64)
    for position, layer in enumerate(linears):
        if position and activation == "sigmoid":
            bound = bound.clamp(max=1.0)
        bound = layer.weight.detach().double().abs() @ bound + layer.bias.detach().double().abs()
        if not float(bound.max()) <= torch.finfo(torch.float32).max:  # NaN (Inf times a zero weight) fails too
            largest = max(float(each.weight.detach().abs().max()) for each in linears)
            raise ValueError(f"{file} holds weights so large (up to {largest:.3g}) that the model's outputs overflow "
                             f"to Inf or NaN: the model it came from diverged; export a model from an earlier "
                             f"iteration")


def standardise(values):
    """Return model inputs [N, features]: images in [0, 1] as (pixels - MEAN) / STD, features as (x - MEAN) / STD."""
    values = torch.as_tensor(values).float()
    return (values.reshape(len(values), -1) - torch.as_tensor(MEAN)) / torch.as_tensor(STD)


def read_inputs(path):
    """Return the inputs in a PNG, .npy or (features) .csv file: images as [N, *IMAGE_SHAPE] in [0, 1], features as
    [N, features]."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ((".png", ".npy") if IMAGE_SHAPE is not None else (".npy", ".csv")):
        kinds = ".png image or a .npy array" if IMAGE_SHAPE is not None else ".npy array or a .csv file of rows of " \
                                                                             "features"
        raise ValueError(f"{path}: expected a {kinds}")
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes: inputs larger than {MAX_BYTES:,} bytes are refused")
    if suffix == ".png":
        pixels = scale(read_png(path), path)
        if tuple(pixels.shape) != IMAGE_SHAPE:  # resize other sizes to the model's, as MNIST's 28x28
            pixels = nn.functional.interpolate(pixels[None, None], size=IMAGE_SHAPE, mode="bilinear",
                                               antialias=True)[0, 0]
        return pixels[None]
    values = read_npy(path) if suffix == ".npy" else read_csv(path)
    if values.numel() == 0:
        raise ValueError(f"{path} holds an empty array of shape {list(values.shape)}: expected at least one input")
    if IMAGE_SHAPE is None:
        features = len(MEAN) if isinstance(MEAN, tuple) else None
        rows = values.reshape(1, -1) if values.dim() == 1 else values
        if rows.dim() != 2 or (features is not None and rows.shape[1] != features):
            raise ValueError(f"{path} holds an array of shape {list(values.shape)}: expected [rows, {features}]")
        if rows.is_complex() or rows.dtype == torch.bool or not torch.isfinite(rows.double()).all():
            raise ValueError(f"{path} holds values that are not finite real numbers")
        return rows.double().float()
    size = math.prod(IMAGE_SHAPE)
    shapes = (list(IMAGE_SHAPE), ["N", *IMAGE_SHAPE], ["N", size])
    if tuple(values.shape) == IMAGE_SHAPE:
        values = values[None]
    elif values.dim() == 2 and values.shape[1] == size:
        values = values.reshape(len(values), *IMAGE_SHAPE)
    elif values.dim() != 3 or tuple(values.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{path} holds an array of shape {list(values.shape)}: expected one of "
                         f"{', '.join(map(str, shapes))}")
    return scale(values, path)


read_pixels = read_inputs  # the name earlier exports used


def scale(values, path):
    """Return grey levels as fractions in [0, 1] by one rule: integers are grey levels 0..255; floats are fractions
    when all lie in [0, 1], grey levels when all lie in [0, 255] and the largest is at least 2; anything else
    (negative values, values above 255, NaN, or a largest value between 1 and 2) is refused as ambiguous."""
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"{path} holds {values.dtype} values: expected grey levels 0..255 or fractions in [0, 1]")
    wide = values.double()
    if not torch.isfinite(wide).all():
        raise ValueError(f"{path} holds NaN or Inf values: expected grey levels 0..255 or fractions in [0, 1]")
    low, high = float(wide.min()), float(wide.max())
    if low < 0 or high > 255:
        raise ValueError(f"{path} holds values from {low:g} to {high:g}: expected grey levels 0..255 or fractions "
                         f"in [0, 1]")
    if not values.is_floating_point() or high >= 2:
        return (wide / 255).float()
    if high > 1:
        raise ValueError(f"{path} holds values up to {high:g}, which is ambiguous (fractions stop at 1, grey levels "
                         f"this dark are unlikely): expected fractions in [0, 1], or grey levels 0..255")
    return wide.float()


def read_csv(path):
    """Return the rows of a CSV file of features as a float64 tensor [rows, features]. A first line that is not
    numbers is a header; the columns it names `label` or `split` (as in a training file) are left out."""
    import csv

    with open(path, newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.reader(stream) if any(field.strip() for field in row)]
    keep = None
    if rows and not all(_is_number(field) for field in rows[0]):
        header, rows = [name.strip() for name in rows[0]], rows[1:]
        keep = [k for k, name in enumerate(header) if name not in ("label", "split")]
    values = []
    for number, row in enumerate(rows, start=2 if keep is not None else 1):
        fields = [row[k] for k in keep if k < len(row)] if keep is not None else row
        if values and len(fields) != len(values[0]) or not all(_is_number(field) for field in fields):
            raise ValueError(f"{path} line {number}: expected {len(values[0]) if values else 'the same number of'} "
                             f"numbers separated by commas")
        values.append([float(field) for field in fields])
    return torch.tensor(values, dtype=torch.float64)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_npy(path):
    """Return the array in a NumPy .npy file as a tensor (without NumPy)."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        raise ValueError(f"{path} is not a .npy file")
    try:
        size, start = (struct.unpack("<H", data[8:10])[0], 10) if data[6] == 1 else \
            (struct.unpack("<I", data[8:12])[0], 12)
        header = ast.literal_eval(data[start:start + size].decode("latin1"))
        descr, shape, fortran = header["descr"], tuple(header["shape"]), header["fortran_order"]
    except (struct.error, ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"{path} has a damaged .npy header") from None
    if not isinstance(descr, str) or descr not in NPY_TYPES:
        raise ValueError(f"{path} holds {str(descr)[:40]} values; expected one of {', '.join(NPY_TYPES)}")
    if not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 4 or type(fortran) is not bool:
        raise ValueError(f"{path} has a damaged .npy header (shape {str(shape)[:40]}, fortran_order "
                         f"{str(fortran)[:10]})")
    body = data[start + size:]
    count = math.prod(shape)
    width = torch.empty(0, dtype=NPY_TYPES[descr]).element_size()
    if len(body) != count * width:
        raise ValueError(f"{path} is truncated or damaged: its header promises {count * width} bytes of data, it has "
                         f"{len(body)}")
    values = torch.frombuffer(bytearray(body), dtype=NPY_TYPES[descr]) if count else \
        torch.empty(0, dtype=NPY_TYPES[descr])
    if fortran:
        return values.reshape(shape[::-1]).permute(*reversed(range(len(shape))))
    return values.reshape(shape)


def _unfilter(kind, row, above, step):
    """Undo one PNG row filter in place (None, Sub, Up, Average, Paeth)."""
    if kind not in (0, 1, 2, 3, 4):
        raise ValueError(f"unknown PNG row filter {kind}")
    for i in range(len(row)):
        left = row[i - step] if i >= step else 0
        up_left = above[i - step] if i >= step else 0
        if kind == 1:
            row[i] = (row[i] + left) & 255
        elif kind == 2:
            row[i] = (row[i] + above[i]) & 255
        elif kind == 3:
            row[i] = (row[i] + (left + above[i]) // 2) & 255
        elif kind == 4:
            guess = left + above[i] - up_left
            nearest = min((abs(guess - left), 0, left), (abs(guess - above[i]), 1, above[i]),
                          (abs(guess - up_left), 2, up_left))
            row[i] = (row[i] + nearest[2]) & 255
    return row


def read_png(path):
    """Return a non-interlaced 8- or 16-bit grey or RGB(A) PNG as a [height, width] tensor of grey levels 0..255."""
    data = Path(path).read_bytes()
    if data[:8] != PNG_SIGNATURE:
        raise ValueError(f"{path} is not a PNG file")
    position, compressed, header = 8, [], None
    while position < len(data):
        if position + 8 > len(data):
            raise ValueError(f"{path} is a truncated PNG file")
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if position + 12 + length > len(data):
            raise ValueError(f"{path} is a truncated PNG file")
        chunk = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            if length != 13:
                raise ValueError(f"{path} has a damaged PNG header")
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed.append(chunk)
        elif kind == b"IEND":
            break
    if header is None or not compressed:
        raise ValueError(f"{path} is a truncated PNG file (no image data)")
    width, height, depth, colour, _, _, interlace = header
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"{path} is {width}x{height} pixels: images larger than {MAX_SIDE}x{MAX_SIDE} are refused; "
                         f"shrink it first")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if channels is None or depth not in (8, 16) or interlace:
        raise ValueError(f"{path}: only non-interlaced 8- or 16-bit grey or RGB PNGs are read; save it as 8-bit grey")
    step = channels * depth // 8
    stride = width * step
    expected = height * (stride + 1)
    decompressor = zlib.decompressobj()
    try:
        raw = decompressor.decompress(b"".join(compressed), expected)
    except zlib.error:
        raise ValueError(f"{path} holds damaged PNG image data") from None
    if len(raw) != expected:
        raise ValueError(f"{path} is a truncated PNG file: {len(raw)} bytes of image data, expected {expected}")
    rows, above = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        above = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), above, step)
        rows.append(above)
    pixels = torch.tensor(list(b"".join(rows)), dtype=torch.float32).reshape(height, width, channels, depth // 8)
    pixels = pixels[..., 0]  # the high byte of 16-bit samples
    if channels >= 3:
        return (pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114).round()
    return pixels[..., 0]

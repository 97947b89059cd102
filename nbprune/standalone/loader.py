"""Load a pruned model file into SimpleNN, and turn PNG or .npy digits into its input. Needs only torch."""

import ast
import struct
import zlib
from pathlib import Path

import torch
from torch import nn

MEAN, STD = 0.1307, 0.3081  # pixel statistics (pixels / 255) of the images the model was trained on

NPY_TYPES = {"|u1": torch.uint8, "|i1": torch.int8, "<i2": torch.int16, "<i4": torch.int32, "<i8": torch.int64,
             "<f2": torch.float16, "<f4": torch.float32, "<f8": torch.float64}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_pruned_model(model, file):
    """Reshape the model's linear layers to the file's shapes, load its weights, and return the model."""
    state = torch.load(file, map_location="cpu", weights_only=True)
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{file} holds NaN or Inf values in {key}: export a model from an earlier iteration")
    for name, layer in list(model.named_modules()):
        if isinstance(layer, nn.Linear) and state[name + ".weight"].shape != layer.weight.shape:
            out_features, in_features = state[name + ".weight"].shape
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, nn.Linear(in_features, out_features))
    model.load_state_dict(state)
    return model.eval()


def standardise(pixels):
    """Return pixels in [0, 1] of shape [N, 28, 28] as the model's input: (pixels - MEAN) / STD, shape [N, 784]."""
    return (pixels.reshape(len(pixels), -1).float() - MEAN) / STD


def read_pixels(path):
    """Return the digits in a PNG or .npy file as [N, 28, 28] floats in [0, 1] (white digit on black)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise ValueError(f"{path}: expected a .png image or a .npy array of 28x28 digits")
    values = read_png(path) if suffix == ".png" else read_npy(path)
    pixels = values.float() if values.is_floating_point() and values.max() <= 1 else values.float() / 255
    if suffix == ".npy" and pixels.shape[-1] == 784:
        return pixels.reshape(-1, 28, 28)
    if tuple(pixels.shape[-2:]) != (28, 28):  # resize other sizes, as MNIST's 28x28
        pixels = nn.functional.interpolate(pixels.reshape(-1, 1, *pixels.shape[-2:]), size=(28, 28),
                                           mode="bilinear", antialias=True)
    return pixels.reshape(-1, 28, 28)


def read_npy(path):
    """Return the array in a NumPy .npy file as a tensor (without NumPy)."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path} is not a .npy file")
    size, start = (struct.unpack("<H", data[8:10])[0], 10) if data[6] == 1 else (struct.unpack("<I", data[8:12])[0], 12)
    header = ast.literal_eval(data[start:start + size].decode("latin1"))
    if header["descr"] not in NPY_TYPES:
        raise ValueError(f"{path} holds {header['descr']} values; expected one of {', '.join(NPY_TYPES)}")
    shape = header["shape"]
    values = torch.frombuffer(bytearray(data[start + size:]), dtype=NPY_TYPES[header["descr"]])
    if header["fortran_order"]:
        return values.reshape(shape[::-1]).permute(*reversed(range(len(shape))))
    return values.reshape(shape)


def _unfilter(kind, row, above, step):
    """Undo one PNG row filter in place (None, Sub, Up, Average, Paeth)."""
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
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunk = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed.append(chunk)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if channels is None or depth not in (8, 16) or interlace:
        raise ValueError(f"{path}: only non-interlaced 8- or 16-bit grey or RGB PNGs are read; save it as 8-bit grey")
    step, raw = channels * depth // 8, zlib.decompress(b"".join(compressed))
    stride, rows = width * step, []
    above = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        above = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), above, step)
        rows.append(above)
    pixels = torch.tensor(list(b"".join(rows)), dtype=torch.float32).reshape(height, width, channels, depth // 8)
    pixels = pixels[..., 0]  # the high byte of 16-bit samples
    if channels >= 3:
        return (pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114).round()
    return pixels[..., 0]

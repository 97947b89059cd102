"""A pruned sequential network exported by nbprune (convolutions, pooling, linear layers). Needs only torch.

The model file lists its layers with their options; `load_network` rebuilds them from that list, checks the file's
tensors against them, and loads the weights (torch.load with weights_only=True: nothing in the file runs).
"""

import math

import torch
from torch import nn

RECORD_KEY = "nbprune"  # where the model file's record (its layer list) is kept in the state dict's metadata
MAX_LAYERS = 256  # a layer list longer than this is refused before anything is built
LARGEST = 2 ** 31 - 1  # no option of a layer is larger
MAX_VALUES = 2 ** 26  # no layer of a sample's pass holds more values than this (256 MiB of float32)


class InputError(TypeError, ValueError):
    """Input the model cannot take; the message says what to pass instead."""


NUMBER, PAIR, FLAG, SHAPE = "a whole number", "two whole numbers", "true or false", "1 to 4 whole numbers"
OPTIONS = {  # kind -> its recorded options and what each must be
    "Linear": {"in_features": NUMBER, "out_features": NUMBER, "bias": FLAG},
    "Conv2d": {"in_channels": NUMBER, "out_channels": NUMBER, "kernel_size": PAIR, "stride": PAIR, "padding": PAIR,
               "dilation": PAIR, "bias": FLAG},
    "ReLU": {}, "Sigmoid": {}, "Flatten": {}, "Identity": {},
    "MaxPool2d": {"kernel_size": PAIR, "stride": PAIR},
    "AvgPool2d": {"kernel_size": PAIR, "stride": PAIR},
    "Unflatten": {"shape": SHAPE},
}
BUILDERS = {  # kind -> the layer built from its recorded options (o), on `device`
    "Linear": lambda o, device: nn.Linear(o["in_features"], o["out_features"], bias=o["bias"], device=device),
    "Conv2d": lambda o, device: nn.Conv2d(o["in_channels"], o["out_channels"], tuple(o["kernel_size"]),
                                          tuple(o["stride"]), tuple(o["padding"]), tuple(o["dilation"]),
                                          bias=o["bias"], device=device),
    "ReLU": lambda o, device: nn.ReLU(),
    "Sigmoid": lambda o, device: nn.Sigmoid(),
    "MaxPool2d": lambda o, device: nn.MaxPool2d(tuple(o["kernel_size"]), tuple(o["stride"])),
    "AvgPool2d": lambda o, device: nn.AvgPool2d(tuple(o["kernel_size"]), tuple(o["stride"])),
    "Flatten": lambda o, device: nn.Flatten(),
    "Unflatten": lambda o, device: nn.Unflatten(1, tuple(o["shape"])),
    "Identity": lambda o, device: nn.Identity(),
}


def _fits(value, what):
    """Return whether a recorded option is what its kind expects (whole numbers up to LARGEST, or a flag)."""
    if what == FLAG:
        return type(value) is bool
    if what == NUMBER:
        return type(value) is int and 0 < value <= LARGEST
    return isinstance(value, list) and (len(value) == 2 if what == PAIR else 0 < len(value) <= 4) and \
        all(type(item) is int and 0 <= item <= LARGEST for item in value)


def build_layers(layers, device=None):
    """Return an nn.Sequential of the recorded `layers` ([{"kind": "Conv2d", ...}, ...]); ValueError if damaged."""
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        raise ValueError(f"the file's layer list is not a list of 1 to {MAX_LAYERS} layers: the file was damaged "
                         f"or edited; export the model again")
    built = []
    for values in layers:
        if not isinstance(values, dict) or values.get("kind") not in OPTIONS:
            raise ValueError(f"layer {str(values)[:80]} is not one of {', '.join(OPTIONS)}: the file was damaged or "
                             f"edited; export the model again")
        expected = OPTIONS[values["kind"]]
        options = {key: value for key, value in values.items() if key != "kind"}
        if set(options) != set(expected) or not all(_fits(options[key], what) for key, what in expected.items()):
            wanted = ", ".join(f"{key} ({what})" for key, what in expected.items()) or "no options"
            raise ValueError(f"layer {str(values)[:80]} is damaged: a {values['kind']} records {wanted}; export the "
                             f"model again")
        try:
            built.append(BUILDERS[values["kind"]](options, device))
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"layer {str(values)[:80]} cannot be built ({type(error).__name__}): the file was "
                             f"damaged or edited; export the model again") from None
    return nn.Sequential(*built)


def input_shape(layers):
    """Return the shape of one input the network reads: [channels, height, width] after nn.Unflatten, or
    [features] for a first linear layer."""
    first = layers[0]
    if isinstance(first, nn.Unflatten):
        return tuple(first.unflattened_size)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ValueError(f"a network that starts with {first} does not say what it reads: export the model again")


class Network(nn.Module):
    """The exported network: its recorded layers, run on standardised inputs of shape [batch, features] (or
    [batch, *image shape])."""

    def __init__(self, layers):
        super().__init__()
        self.layers = build_layers(layers)
        self.in_features = math.prod(input_shape(list(self.layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of standardised inputs of shape [batch, in_features]."""
        weight = next(self.parameters())
        if not isinstance(x, torch.Tensor):
            raise InputError(f"Network expects a torch.Tensor, got {type(x).__name__}: convert with "
                             f"torch.as_tensor(x, dtype=torch.float32)")
        if x.layout != torch.strided or x.is_nested:
            raise InputError(f"Network expects a dense tensor, got layout {x.layout}: convert with x.to_dense()")
        if x.is_meta:
            raise InputError("Network got a tensor on the meta device, which holds no values: expected real data")
        if x.is_complex() or not x.is_floating_point():
            raise InputError(f"Network expects floating-point input, got {x.dtype}: convert with x.float() and "
                             f"standardise it (loader.standardise)")
        if x.dtype != weight.dtype or x.device != weight.device:
            raise InputError(f"Network's weights are {weight.dtype} on {weight.device}, the input {x.dtype} on "
                             f"{x.device}: convert with x.to({weight.dtype}).to('{weight.device}')")
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise InputError(f"Network expects input of shape [batch, {self.in_features}], got {list(x.shape)}: "
                             f"add a batch dimension with x.unsqueeze(0) for one sample")
        if x.shape[0] == 0:
            raise InputError(f"Network got an empty batch {list(x.shape)}: expected at least one row")
        x = x.reshape(x.shape[0], -1)
        if not math.isfinite(x.detach().sum().item()) and not torch.isfinite(x).all():  # a ReLU hides -Inf
            raise InputError("Network got NaN or Inf input values: expected finite, standardised values")
        return self.layers(x)


def _check_tensor(file, key, value):
    """Refuse anything but a dense tensor of finite floating-point weights."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_nested \
            or value.is_quantized or value.is_meta:
        raise ValueError(f"{file} holds something other than a dense tensor in {key}")
    if value.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"{file} holds {value.dtype} values in {key}: expected floating-point weights")
    if not torch.isfinite(value).all():
        raise ValueError(f"{file} holds NaN or Inf values in {key}: export a model from an earlier iteration")


def load_network(file):
    """Return the network a model file holds, rebuilt from its layer list with its weights, in eval mode."""
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
    if not isinstance(record, dict) or "layers" not in record:
        raise ValueError(f"{file} records no layer list: export the network's best_model.pth again")
    state = {key: value for key, value in state.items()}  # the tensors alone
    layers = build_layers(record["layers"], "meta")  # the meta device holds no values: nothing is allocated
    expected = {key: list(value.shape) for key, value in layers.state_dict().items()}
    found = {key: list(value.shape) for key, value in state.items()}
    if expected != found:
        raise ValueError(f"{file}: its layers need tensors {str(expected)[:200]}, the file holds "
                         f"{str(found)[:200]}: the file was damaged or edited; export the model again")
    _check_shapes(file, layers)
    model = Network(record["layers"])
    dtypes = {value.dtype for value in state.values()}
    if len(dtypes) == 1:
        model = model.to(dtypes.pop())
    model.layers.load_state_dict(state)
    return model.eval()


def _check_shapes(file, layers):
    """Refuse layers (on the meta device) that do not fit together, that hold more than MAX_VALUES values per sample
    anywhere, or whose outputs are not one score per class."""
    shape = input_shape(list(layers))
    try:
        value = torch.zeros(1, math.prod(shape), device="meta")
        for layer in layers:
            if value.numel() > MAX_VALUES:
                break
            value = layer(value)
    except Exception as error:  # meta kernels raise what they will for nonsense options (ZeroDivisionError, ...)
        raise ValueError(f"{file}: its layers do not fit together ({str(error).splitlines()[0][:120]}): the file "
                         f"was damaged or edited; export the model again") from None
    if value.numel() > MAX_VALUES:
        raise ValueError(f"{file}: its layers make {value.numel():,} values per input, more than {MAX_VALUES:,}: "
                         f"the file was damaged or edited; export the model again")
    if value.dim() != 2:
        raise ValueError(f"{file}: its network gives outputs of shape {list(value.shape)}, expected one score "
                         f"per class: export the model again")

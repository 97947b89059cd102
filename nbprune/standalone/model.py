"""SimpleNN, standalone: the pruned network exported by nbprune. Needs only torch."""

import math

import torch
from torch import nn

HIDDEN = (256, 64)  # the exported model's hidden sizes; load_pruned_model reshapes to any model file's
ACTIVATION = "relu"  # the activation between layers
IN_FEATURES = 784  # input values per sample (a 28x28 image has 784)
NUM_CLASSES = 10  # outputs (logits), one per class


class InputError(TypeError, ValueError):
    """Input the model cannot take; the message says what to pass instead."""


class KeepInputs(nn.Module):
    """Passes on only the input features the pruned model kept, in order."""

    def __init__(self, index):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.int64).clone())

    def forward(self, x):
        return x.index_select(1, self.index)


class SimpleNN(nn.Module):
    """An MLP of linear layers fc1 ... fcN with an activation between them, as in the reference workflow."""

    def __init__(self, hidden=HIDDEN, in_features=IN_FEATURES, num_classes=NUM_CLASSES, activation=ACTIVATION):
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"activation={activation!r} is not supported: expected relu or sigmoid")
        sizes = [in_features, *hidden, num_classes]
        for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"fc{index}", nn.Linear(fan_in, fan_out))
        self.activation = activation
        self.in_features = in_features
        self.act = nn.ReLU() if activation == "relu" else nn.Sigmoid()
        self.keep_inputs = None

    def keep(self, index):
        """Read only the input features `index` from now on (what an input-pruned model file asks for)."""
        self.keep_inputs = KeepInputs(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of standardised inputs of shape [batch, IN_FEATURES] or [batch, 28, 28]."""
        weight = self.fc1.weight
        if not isinstance(x, torch.Tensor):
            raise InputError(f"SimpleNN expects a torch.Tensor, got {type(x).__name__}: convert with "
                             f"torch.as_tensor(x, dtype=torch.float32)")
        if x.layout != torch.strided or x.is_nested:
            raise InputError(f"SimpleNN expects a dense tensor, got layout {x.layout}: convert with x.to_dense()")
        if x.is_meta:
            raise InputError("SimpleNN got a tensor on the meta device, which holds no values: expected real data")
        if x.is_complex() or not x.is_floating_point():
            raise InputError(f"SimpleNN expects floating-point input, got {x.dtype}: convert with x.float() and "
                             f"standardise it (loader.standardise)")
        if x.dtype != weight.dtype or x.device != weight.device:
            raise InputError(f"SimpleNN's weights are {weight.dtype} on {weight.device}, the input {x.dtype} on "
                             f"{x.device}: convert with x.to({weight.dtype}).to('{weight.device}')")
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            raise InputError(f"SimpleNN expects input of shape [batch, {self.in_features}], got {list(x.shape)}: "
                             f"add a batch dimension with x.unsqueeze(0) for one sample")
        if x.shape[0] == 0:
            raise InputError(f"SimpleNN got an empty batch {list(x.shape)}: expected at least one row")
        x = x.reshape(x.shape[0], -1)
        if not math.isfinite(x.detach().sum().item()) and not torch.isfinite(x).all():  # a ReLU hides -Inf
            raise InputError("SimpleNN got NaN or Inf input values: expected finite, standardised values")
        outputs = self.keep_inputs(x) if self.keep_inputs is not None else x
        linears = [module for name, module in self.named_children() if name.startswith("fc")]
        for layer in linears[:-1]:
            outputs = self.act(layer(outputs))
        outputs = linears[-1](outputs)
        return outputs

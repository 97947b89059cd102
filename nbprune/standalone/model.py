"""SimpleNN, standalone: the pruned network exported by nbprune. Needs only torch."""

import torch
from torch import nn

HIDDEN = (256, 64)  # the exported model's hidden sizes; load_pruned_model reshapes to any model file's
ACTIVATION = "relu"


class SimpleNN(nn.Module):
    """An MLP of linear layers fc1 ... fcN with an activation between them, as in the seed."""

    def __init__(self, hidden=HIDDEN, in_features=784, num_classes=10, activation=ACTIVATION):
        super().__init__()
        sizes = [in_features, *hidden, num_classes]
        for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"fc{index}", nn.Linear(fan_in, fan_out))
        self.act = nn.ReLU() if activation == "relu" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of standardised inputs of shape [batch, 784] or [batch, 28, 28]."""
        linears = [module for name, module in self.named_children() if name.startswith("fc")]
        x = x.reshape(x.shape[0], -1)
        for layer in linears[:-1]:
            x = self.act(layer(x))
        return linears[-1](x)

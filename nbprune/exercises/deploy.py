"""Exercises of 06_deploy: the deployed model's size, and what predict.py answers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import Verdict, close, exercise


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@exercise("06.1", "How many parameters does the deployed model have? Count them from its layer sizes.",
          solver=lambda model: _parameters(model))
def deployed_size(answer, model: nn.Module) -> Verdict:
    sizes = [layer.out_features for layer in model.modules() if isinstance(layer, nn.Linear)]
    return close(answer, _parameters(model), "the deployed model's parameter count",
                 why="in × out + out for each linear layer: the pruned layers are simply smaller.",
                 hint=f"its linear layers have {sizes} outputs; the first reads {model.fc1.in_features} inputs.",
                 tolerance=0)


def _fraction(model: nn.Module, dense_parameters: int) -> float:
    return 100 * _parameters(model) / dense_parameters


@exercise("06.2", "What percentage of the dense model's parameters does the deployed model keep?",
          solver=lambda model, dense_parameters: _fraction(model, dense_parameters))
def kept_fraction(answer, model: nn.Module, dense_parameters: int) -> Verdict:
    return close(answer, _fraction(model, dense_parameters), "the share of parameters kept (in %)",
                 why="parameters fall faster than neurons: a first-layer neuron carries its 784 input weights.",
                 hint=f"100 × (deployed parameters) / {dense_parameters:,}.", tolerance=1e-2)


def _predicted(model: nn.Module, image: torch.Tensor, classes: Sequence[str]) -> str:
    with torch.no_grad():
        return classes[int(model(image.reshape(1, -1)).argmax(dim=1))]


@exercise("06.3", "Which class will predict.py print for `image` (a standardised test image)? Run the model "
                  "yourself: the three steps above.",
          solver=lambda model, image, classes: _predicted(model, image, classes))
def prediction(answer, model: nn.Module, image: torch.Tensor, classes: Sequence[str]) -> Verdict:
    expected = _predicted(model, image, classes)
    if str(answer).strip() == expected:
        return Verdict(True, f"{expected}: predict.py runs the same network on the same standardised pixels, so it "
                             f"prints the class of the largest logit, as model(image).argmax() does here.")
    return Verdict(False, f"{answer!r} is not what the model predicts. Compute model(image).argmax() and look the "
                          f"index up in data.classes.")

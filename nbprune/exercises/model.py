"""Exercises of 02_model: parameter counts of a multilayer perceptron, and what removing one neuron saves."""

from __future__ import annotations

from torch import nn

from . import Verdict, close, exercise


def mlp_parameters(sizes: list[int]) -> int:
    """Return the weights and biases of fully connected layers of the given widths (inputs first)."""
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))


@exercise("02.1", "How many parameters (weights and biases) does a 784-100-10 network have?",
          solver=lambda: mlp_parameters([784, 100, 10]))
def small_network(answer) -> Verdict:
    return close(answer, mlp_parameters([784, 100, 10]), "the parameter count of 784-100-10",
                 why="784·100 + 100 weights and biases into the hidden layer, 100·10 + 10 into the outputs.",
                 hint="each layer has in × out weights and out biases; add the two layers.", tolerance=0)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [layer for layer in model.modules() if isinstance(layer, nn.Linear)]


def _own_count(model: nn.Module) -> int:
    layers = _linears(model)
    return mlp_parameters([layers[0].in_features, *(layer.out_features for layer in layers)])


@exercise("02.2", "Count the parameters of your own model by hand from its layer sizes (not with "
                  "parameter_count).", solver=lambda model: _own_count(model))
def own_network(answer, model: nn.Module) -> Verdict:
    layers = _linears(model)
    sizes = "-".join(str(size) for size in [layers[0].in_features, *(layer.out_features for layer in layers)])
    return close(answer, _own_count(model), f"the parameter count of your {sizes} network",
                 why="the same sum as in 02.1, one term per linear layer.",
                 hint=f"sum in × out + out over the layers of {sizes}.", tolerance=0)


def _one_neuron(model: nn.Module) -> int:
    first, second = _linears(model)[:2]
    return first.in_features + 1 + second.out_features


@exercise("02.3", "Pruning one neuron of the first hidden layer removes a row of fc1's weights, its bias and a "
                  "column of fc2's weights. How many parameters does that save in your model?",
          solver=lambda model: _one_neuron(model))
def one_neuron(answer, model: nn.Module) -> Verdict:
    first, second = _linears(model)[:2]
    return close(answer, _one_neuron(model), "what one first-layer neuron costs",
                 why=f"{first.in_features} incoming weights + 1 bias + {second.out_features} outgoing weights: this "
                     f"is why the first layer holds almost all the parameters.",
                 hint="count the neuron's incoming weights (one per input), its bias, and its outgoing weights (one "
                      "per neuron of the next layer).", tolerance=0)

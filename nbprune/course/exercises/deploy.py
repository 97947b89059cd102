"""Exercises of 06_deploy: the parameters of the padded TorchScript copy and of a shape the workbook does not print,
what predict.py answers, and why predict.py cannot catch inputs divided by 255 twice."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import Verdict, ask, close, exercise
from ...export import PAD_TO, padded_layers
from ...model import linear_layers, mlp_parameters


def _padded_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for layer in padded_layers(model.sequence()) for parameter in layer.parameters())


def _hidden(model: nn.Module) -> list[int]:
    return [layer.out_features for layer in linear_layers(model)[:-1]]


@exercise("06.1", f"The TorchScript (and ONNX) copy pads each hidden layer with zero neurons to a multiple of "
                  f"{PAD_TO}. How many parameters (weights and biases, zeros included) does the padded copy of your "
                  f"deployed model hold? Count them from its layer sizes.",
          solver=lambda model: _padded_parameters(model))
def padded_size(answer, model: nn.Module) -> Verdict:
    hidden = _hidden(model)
    padded = [-(-width // PAD_TO) * PAD_TO for width in hidden]
    inputs = linear_layers(model)[0].in_features
    return close(answer, _padded_parameters(model), "the padded copy's parameter count",
                 why=f"in × out + out for each linear layer of {inputs}-{'-'.join(map(str, padded))}-"
                     f"{linear_layers(model)[-1].out_features}: the zero neurons cost memory, not accuracy, and buy "
                     f"speed (CPUs multiply blocks of {PAD_TO} columns at a time).",
                 hint=f"the hidden layers {'+'.join(map(str, hidden))} become the next multiples of {PAD_TO}; the "
                      f"first layer reads {inputs} inputs.", tolerance=0)


def _one_more_share(model: nn.Module, dense_parameters: int) -> float:
    layers = linear_layers(model)
    wider = mlp_parameters(layers[0].in_features, [width + 1 for width in _hidden(model)], layers[-1].out_features)
    return 100 * wider / dense_parameters


@exercise("06.2", "A shape the workbook does not print: your deployed model with one more neuron in every hidden "
                  "layer. What percentage of the dense model's parameters would it hold?",
          solver=lambda model, dense_parameters: _one_more_share(model, dense_parameters))
def one_more_neuron(answer, model: nn.Module, dense_parameters: int) -> Verdict:
    hidden = _hidden(model)
    return close(answer, _one_more_share(model, dense_parameters), "the share of the dense model's parameters (%)",
                 why="a first-layer neuron carries all its input weights, so one more there costs far more than "
                     "one more in a later layer: parameters follow the layer sizes, not the neuron count.",
                 hint=f"count in × out + out per linear layer for the hidden sizes "
                      f"{'+'.join(str(width + 1) for width in hidden)}, then 100 × that / {dense_parameters:,}.",
                 tolerance=1e-3)


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


ask("06.4", "An application divides its images by 255 twice and sends values up to 1/255: why can't predict.py "
            "catch that, and what would the network see?",
    "Values up to 1/255 are valid fractions in [0, 1], so predict.py takes them as a (nearly black) image: nothing "
    "in the numbers says they were divided twice. After standardisation, (x - mean) / std, every pixel sits near "
    "-mean / std, the value of a black pixel, so the network sees an almost empty image and predicts much the same "
    "class for every image. Only the sender knows the scale. (The reference workflow's own input transform divided "
    "by 255 twice, a known defect of its code that nbprune does not reproduce.)")

# --- the questionnaire --------------------------------------------------------------------------------------------
ask("06.q1", "What are the three steps that run a pruned model, and why does the first need the file's sizes?",
    "Build the network (`SimpleNN` with the file's hidden sizes, inputs, classes and activation), load the file's "
    "weights into it (`load_pruned_model`), and call it on standardised inputs. The weights of a pruned layer only fit "
    "a layer of the same, smaller size.")
ask("06.q2", "In what sense are the removed neurons physically gone, and in what sense not in the TorchScript copy?",
    "The model file's layers are smaller matrices: the removed rows and columns are not stored and cost nothing. The "
    "TorchScript and ONNX copies pad each hidden layer with zero neurons to a multiple of 16, because CPU kernels "
    "multiply in blocks and a part-filled block can cost as much as a full one; those neurons change no output, but "
    "their zeros are stored and multiplied.")
ask("06.q3", "Why does the parameter count fall faster than the neuron count when the first hidden layer shrinks?",
    "Each first-layer neuron carries one weight per input (784 for MNIST) plus a bias and its outgoing weights, "
    "while a later neuron carries only as many as the layers beside it are wide: removing first-layer neurons "
    "removes most of the parameters.")
ask("06.q4", "What does a self-describing model file record, and why does the standalone folder need it?",
    "The architecture (hidden sizes, inputs kept, activation), the standardisation (mean and std), the dataset and "
    "the class names. Without them the folder could not rebuild the network, scale the inputs as training did, or "
    "name the class it predicts.")
ask("06.q5", "Why does the notebook prove the export in a fresh Python process that cannot import nbprune?",
    "Because the folder is meant to run where nbprune is not installed: a check inside this kernel could pass "
    "because something from nbprune was already imported. A fresh isolated interpreter shows the folder needs torch "
    "only, and its predictions are compared with the library's.")
ask("06.q6", "Why does predict.py accept both grey levels 0-255 and fractions in [0, 1], and what can it not know?",
    "Applications hand images over in either scale, and one rule tells them apart: integers are grey levels, floats "
    "are fractions when all lie in [0, 1] and grey levels when the largest is 2 or more (in between is refused as "
    "ambiguous). It cannot know a scale mistake that still lands in a valid range, such as an image divided by 255 "
    "twice.")
ask("06.q7", "Why is the chosen model's test accuracy, not its validation accuracy, the number to quote next to "
             "the deployed model?",
    "Validation chose the epochs, the learning-rate drops and the iteration, so it is optimistic about the chosen "
    "model; the test set chose nothing, so its accuracy is an honest estimate on new images.")
ask("06.q8", "What does zero padding change in what the network computes, and what does it cost?",
    "Nothing in the outputs: a padded neuron has zero weights, bias and outgoing weights, so whatever its activation "
    "gives, it adds nothing to the next layer. It costs memory and multiplications, which blocked CPU kernels repay "
    "for some shapes and not for others: the project's benchmark measured 43+11 neurons at 4.40x the dense model's "
    "throughput padded (48+16) against 3.02x unpadded, and 34+9 at 4.42x against 4.39x.")

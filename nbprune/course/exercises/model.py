"""Exercises of 02_model: parameter counts of a multilayer perceptron, what removing one neuron saves, which
epoch's weights training keeps, and the notebook's questionnaire."""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from . import Verdict, ask, close, exercise
from ...config import TrainConfig
from ...files import read_table
from ...datasets import MNIST
from ...model import mlp_parameters
from ...training import Stopping


PIXELS, CLASSES = MNIST.features, len(MNIST.classes)  # 02.1 asks about a network for MNIST


@exercise("02.1", f"How many parameters (weights and biases) does a {PIXELS}-100-{CLASSES} network have?",
          solver=lambda: mlp_parameters(PIXELS, [100], CLASSES))
def small_network(answer) -> Verdict:
    return close(answer, mlp_parameters(PIXELS, [100], CLASSES), f"the parameter count of {PIXELS}-100-{CLASSES}",
                 why=f"{PIXELS}·100 + 100 weights and biases into the hidden layer, 100·{CLASSES} + {CLASSES} into "
                     f"the outputs.",
                 hint="each layer has in × out weights and out biases; add the two layers.", tolerance=0)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [layer for layer in model.modules() if isinstance(layer, nn.Linear)]


def _halved(model: nn.Module) -> tuple[int, list[int], int]:
    """Return the model's inputs, its hidden sizes halved (rounded down, at least 1) and its outputs."""
    layers = _linears(model)
    return layers[0].in_features, [max(1, layer.out_features // 2) for layer in layers[:-1]], layers[-1].out_features


@exercise("02.2", "How many parameters would your model have with every hidden layer half as wide (rounded down, "
                  "at least one neuron), the inputs and outputs unchanged?",
          solver=lambda model: mlp_parameters(*_halved(model)))
def halved_network(answer, model: nn.Module) -> Verdict:
    inputs, hidden, outputs = _halved(model)
    sizes = "-".join(str(size) for size in (inputs, *hidden, outputs))
    return close(answer, mlp_parameters(inputs, hidden, outputs), f"the parameter count of {sizes}",
                 why="The same sum as in 02.1, one term in × out + out per linear layer. Halving every hidden layer "
                     "halves the first layer's weights but quarters the weights between two hidden layers: "
                     "parameters fall faster than neurons.",
                 hint=f"write down the halved shape, {sizes}, then sum in × out + out over its layers.", tolerance=0)


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


def validation_losses(model_dir: str | os.PathLike) -> list[float]:
    """Return the validation loss of every epoch a training run logged in model_dir/train_results.txt."""
    header, rows = read_table(os.path.join(model_dir, "train_results.txt"))
    return [row[header.index("ValLoss")] for row in rows]


def _best_epoch(losses: Sequence[float], settings: TrainConfig | None = None) -> int:
    """Return the epoch (1 for the first) whose weights training keeps: the last one Stopping counts as better."""
    settings = settings or TrainConfig()
    stopping = Stopping(settings, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=settings.lr))
    best = 0
    for epoch, loss in enumerate(losses, start=1):
        if stopping.improved(float(loss)):
            best = epoch
    return best


@exercise("02.4", "Set demo_epochs = 3 and rerun the notebook. Which epoch's weights (1 for the first) are in "
                  "best_model.pth? Read the ValLoss column of train_results.txt (one row per epoch).",
          solver=_best_epoch)
def best_epoch(answer, losses: Sequence[float], settings: TrainConfig | None = None) -> Verdict:
    epoch = _best_epoch(losses, settings)
    shown = ", ".join(f"{float(loss):.4f}" for loss in losses)
    if len(losses) == 1:
        later = "; with a single epoch there is nothing to choose: set demo_epochs = 3 and rerun to see a choice"
    elif epoch < len(losses):
        later = ("; no later epoch lowered it by more than min_delta, so training kept these weights and not the "
                 "last epoch's")
    else:
        later = "; it is the last epoch here: the validation loss fell every epoch (with more epochs it often does not)"
    return close(answer, epoch, "the epoch whose weights best_model.pth holds",
                 why=f"The validation losses were {shown}: epoch {epoch} has the lowest{later}.",
                 hint=f"The validation losses were {shown}: training keeps the epoch with the lowest one (a later "
                      f"epoch counts only if it is lower by more than min_delta).", tolerance=0)


# --- the questionnaire -------------------------------------------------------------------------------------------
ask("02.q1", "Why does the first layer hold most of the parameters of a network that reads 784 pixels?",
    "A linear layer has in × out weights. The first reads all 784 inputs, so each of its neurons has 784 incoming "
    "weights, while a neuron of a later layer has only as many as the (much smaller) layer before it.")
ask("02.q2", "What does removing neuron j of a hidden layer remove from the weight matrices?",
    "Row j of that layer's weight matrix and its bias b_j (what computes the neuron), and column j of the next "
    "layer's weight matrix (where the next layer reads it).")
ask("02.q3", "Why is a pruned network still an ordinary, smaller SimpleNN, and why does that matter for speed?",
    "Removing whole neurons (structured pruning) leaves dense layers of fewer rows and columns, so the pruned "
    "network is a SimpleNN with smaller hidden sizes, computed with the same ordinary matrix products on smaller "
    "matrices (faster, though not always in proportion: docs/results.md measures it). Removing single weights "
    "(unstructured pruning) leaves matrices of the same shape full of zeros, which only special sparse kernels turn "
    "into speed.")
ask("02.q4", "What does the validation loss decide while a network trains?",
    "Which epoch's weights are kept (the lowest validation loss so far), when the learning rate drops (×0.2 once "
    "more than lr_patience epochs in a row brought no improvement, in the default recipe) and when training "
    "stops (patience epochs without improvement, or lr_drops drops without one).")
ask("02.q5", "Why is the test accuracy printed during training but never used to decide anything?",
    "So that it stays an honest estimate of accuracy on unseen images. If it chose the epoch or the learning rate, "
    "the reported figure would belong to a model picked for doing well on the test images, and would be "
    "optimistic.")
ask("02.q6", "Why is the loss cross-entropy and not the accuracy itself?",
    "Accuracy changes only when a prediction flips, so its gradient is zero almost everywhere and gives the "
    "optimiser nothing to follow. Cross-entropy, -log of the probability given to the right class, changes smoothly "
    "with the weights and keeps pushing a right but unsure prediction towards certainty, and it punishes confident "
    "mistakes most.")
ask("02.q7", "Which network does notebook 04 prune: the one this notebook trained?",
    "No. Notebook 04's iteration 0 trains a fresh network of the same architecture (and seed) for real, with its "
    "own epochs and patience, and prunes that one; this notebook's short run only demonstrates the loop. Notebooks "
    "03 and 04 read only the architecture and activation from this notebook's best_model.pth.")
ask("02.q8", "What does a model file record, and why is that enough to rebuild the network?",
    "Its weights (and, after input pruning, which inputs are kept) together with a record of the architecture "
    "(input size, hidden sizes, classes), the activation, the dataset and the standardisation. SimpleNN.from_file "
    "builds a network of that shape and loads the weights into it, and the standardisation lets it read new images "
    "the way it was trained: no other file or flag is needed.")
ask("02.q9", "Halving every hidden layer of a 784-256-64-10 network removes half its hidden neurons. Does it remove "
             "half its parameters?",
    "About half of the first layer's (its weights scale with the first hidden size), but the weights between two "
    "hidden layers fall to a quarter, since both their sizes halve, while the output layer's fall by half. Most "
    "parameters sit in the first layer, so the total falls to a little under half: exercise 02.2 computes it for "
    "your model.")

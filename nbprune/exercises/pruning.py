"""Exercises of 04_iterative_pruning: the last hidden layer's adjoint, constant pixels, global allocation's order,
and how many pixels a schedule keeps."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import Verdict, close, exercise
from ..diagnostics import constant_features
from ..model import linear_layers
from ..retention import RetentionStep, inputs_as_hidden


def _column_sum(model: nn.Module) -> float:
    return float(linear_layers(model)[-1].weight.detach()[:, 0].sum())


@exercise("04.1", "With the default seed (1 on every logit), the adjoint of last-hidden-layer neuron j is "
                  "(column sum j of the output weights) × the activation's derivative interval. Compute the "
                  "column sum for neuron 0 of your scored model's last hidden layer.",
          solver=lambda model: _column_sum(model))
def column_sum(answer, model: nn.Module) -> Verdict:
    return close(answer, _column_sum(model), "the column sum of the output weights for neuron 0",
                 why="the transpose rule: the seed 1 on every logit, times Wᵀ, gives each neuron the sum of its "
                     "outgoing weights.",
                 hint="the output layer's weight has one row per logit and one column per neuron: add up column 0 "
                      "(model.linears[-1].weight[:, 0]).")


def _constant_pixels(box: tuple[torch.Tensor, torch.Tensor]) -> int:
    return len(constant_features(box))


@exercise("04.2", "How many pixels have the same value in every one of your training images (box width 0)?",
          solver=lambda box: _constant_pixels(box))
def constant_pixels(answer, box: tuple[torch.Tensor, torch.Tensor]) -> Verdict:
    return close(answer, _constant_pixels(box), "the number of constant pixels",
                 why="their interval has width 0, so their significance is 0: they are the first pixels to go.",
                 hint="compare the box's lower and upper bounds pixel by pixel (box[0] == box[1]).", tolerance=0)


@exercise("04.3", "Global allocation with normalise = 'mean': neuron A of hidden layer 1 scores 2.0, and layer 1's "
                  "mean score is 4.0; neuron B of hidden layer 2 scores 30, and layer 2's mean is 40. Which is "
                  "removed first: 'A' or 'B'?", solver=lambda: "A")
def allocation_order(answer) -> Verdict:
    if str(answer).strip().upper() == "A":
        return Verdict(True, "A: normalised, A scores 2/4 = 0.5 and B 30/40 = 0.75; the lower normalised score "
                             "goes first, whatever the raw scores and whatever each neuron costs.")
    return Verdict(False, f"{answer!r} is not it: divide each score by its layer's mean first, then the lower "
                          f"normalised score goes first.")


def _pixels_kept(schedule: Sequence[RetentionStep], iteration: int, features: int) -> int | None:
    """The pixels `iteration` keeps, or None when the schedule leaves that iteration out."""
    steps = inputs_as_hidden([step._replace(inputs=None) for step in schedule], features)
    return next((step.inputs for step in steps if step.iteration == iteration), None)


@exercise("04.4", "With prune_inputs = True and input_q = None, pixels follow your schedule (03's retain.txt): "
                  "iteration t keeps the same share of the pixels as of the hidden neurons. How many of the "
                  "pixels does iteration 2 keep?",
          solver=lambda schedule, features: _pixels_kept(schedule, 2, features))
def pixels_kept(answer, schedule: Sequence[RetentionStep], features: int) -> Verdict:
    step = next((step for step in schedule if step.iteration == 2), None)
    if step is None:
        why = f"ends at iteration {schedule[-1].iteration}" if schedule[-1].iteration < 2 else \
            "leaves iteration 2 out (it would keep what iteration 1 kept)"
        return Verdict(False, f"your schedule {why}, so there is nothing to count: rebuild it in 03 with larger "
                              f"layers, a smaller q or more iterations, or take the default schedule, and ask again.")
    return close(answer, _pixels_kept(schedule, 2, features), "the pixels iteration 2 keeps",
                 why=f"round({features} × {step.percentage:g} / 100): the share perNodesRetained of retain.txt.",
                 hint=f"iteration 2 keeps {step.percentage:g} % of the hidden neurons (perNodesRetained); take "
                      f"that share of the {features} pixels and round.", tolerance=0)

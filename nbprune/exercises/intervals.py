"""Exercises of 00_intervals: a linear layer, an activation's derivative and a significance bounded by hand, and
the dependency problem on the primer's 2-2-1 network."""

from __future__ import annotations

import torch

from . import Verdict, close, exercise, same_interval
from ..interval import Interval
from ..primer import primer_box, primer_network
from ..criteria import PruningContext, interval_adjoint, interval_forward, significance


def _first_neuron_over(lower, upper) -> tuple[float, float]:
    z = interval_forward(primer_network(), primer_box(lower, upper))[0][..., 0]
    return float(z.lower), float(z.upper)


@exercise("00.1", "Bound the primer's first pre-activation z1 = x1 - 2 x2 over another box: x1 in [-1, 2], "
                  "x2 in [0, 1]. Answer (lower, upper).", solver=lambda: _first_neuron_over((-1, 0), (2, 1)))
def other_box(answer) -> Verdict:
    return same_interval(answer, *_first_neuron_over((-1, 0), (2, 1)), "[z1] over [-1, 2] x [0, 1]",
                         why="centre 1·0.5 - 2·0.5 = -0.5, radius |1|·1.5 + |-2|·0.5 = 2.5; or lower = 1·(-1) "
                             "+ (-2)·1, upper = 1·2 + (-2)·0.",
                         hint="centre W c, radius |W| r with c = (0.5, 0.5), r = (1.5, 0.5); a negative weight "
                              "takes the input's upper bound into the lower bound.")


def _sigmoid_slope(lower: float, upper: float) -> tuple[float, float]:
    slope = Interval(torch.tensor(lower, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64))
    derivative = slope.sigmoid_derivative()
    return float(derivative.lower), float(derivative.upper)


@exercise("00.2", "Give the interval of the sigmoid's derivative s'(z) = s(z)(1 - s(z)) over [z] = [-1, 2], as "
                  "(lower, upper), to 3 decimals.", solver=lambda: _sigmoid_slope(-1.0, 2.0))
def sigmoid_slope(answer) -> Verdict:
    return same_interval(answer, *_sigmoid_slope(-1.0, 2.0), "s' over [-1, 2]",
                         why="the interval holds 0, where s' peaks at 0.25; s' falls with |z|, so its smallest "
                             "value is at the end farther from 0, s'(2) = 0.105.",
                         hint="where does s' peak, and is that point inside [-1, 2]? Which end is farther from 0?")


def _changed_weight_significance() -> float:
    network, box = primer_network(first=((1.0, -1.0), (0.5, 1.0))), primer_box()
    return float(significance(network, "interval_adjoint", PruningContext(input_box=(box.lower, box.upper)))[0][0])


@exercise("00.3", "Change the primer's weight W1[0][1] from -2 to -1 (so z1 = x1 - x2). What is the significance "
                  "s1 of hidden neuron 1 now?", solver=_changed_weight_significance)
def changed_weight(answer) -> Verdict:
    return close(answer, _changed_weight_significance(), "s1 with z1 = x1 - x2",
                 why="[z1] = [0 - 1, 1 + 1] = [-1, 2], width 3; it still holds 0, so relu' is [0, 1] and the "
                     "adjoint [0, 1] · 1 = [0, 1]: s1 = 3 · 1.",
                 hint="redo step 1 for z1 only, then ask whether [z1] still holds 0.")


@torch.no_grad()
def _second_input_adjoint() -> tuple[float, float]:
    network = primer_network(second=((1.0, 1.0),))
    adjoint = interval_adjoint(network, interval_forward(network, primer_box()))[0] @ network.fc1.weight
    return float(adjoint.lower[0, 1]), float(adjoint.upper[0, 1])


@exercise("00.4", "Give the primer the output weights W2 = (1, 1) (as at the end of step 6) and carry its interval "
                  "adjoint back to the input x2 (x̄ = W1ᵀ z̄). Answer (lower, upper).",
          solver=_second_input_adjoint)
def input_adjoint(answer) -> Verdict:
    return same_interval(answer, *_second_input_adjoint(), "the adjoint of x2",
                         why="ā = W2ᵀ · 1 = (1, 1), so z̄1 = z̄2 = [0, 1] · 1 = [0, 1]; "
                             "x̄2 = W1[0][1] · z̄1 + W1[1][1] · z̄2 = -2 · [0, 1] + 1 · [0, 1] = [-2, 0] + [0, 1].",
                         hint="the transpose: x2 feeds z1 with weight -2 and z2 with weight 1; multiply each "
                              "adjoint interval by its weight (a negative weight swaps the ends) and add.")


@exercise("00.5", "With W2 = [1, 1], the interval of y is [0, 4.5] but no input of the box reaches 4.5. Which "
                  "point (z1, z2) of the rectangle [z1] x [z2] gives 4.5?", solver=lambda: (3.0, 1.5))
def unreachable_corner(answer) -> Verdict:
    z1, z2 = (float(value) for value in answer)
    if abs(z1 - 3.0) <= 1e-3 and abs(z2 - 1.5) <= 1e-3:
        return Verdict(True, "(3, 1.5): relu(3) + relu(1.5) = 4.5. z1 = 3 needs x = (1, -1), where z2 = -0.5; "
                             "interval arithmetic forgets that z1 and z2 depend on the same x (the dependency "
                             "problem), so it bounds y over the whole rectangle.")
    return Verdict(False, f"({z1:g}, {z2:g}) gives y = {max(z1, 0) + max(z2, 0):g}, not 4.5: y = relu(z1) + "
                          f"relu(z2) is largest where both are largest.")

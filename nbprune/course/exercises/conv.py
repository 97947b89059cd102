"""Exercises of 08_conv: an interval convolution's output bound, a max-pool's bound and its adjoint computed by hand,
and the parameters and multiply-accumulates of a pruned LeNet-5, each answer checked against nbprune's own rules
and counts."""

from __future__ import annotations

import torch
from torch import nn

from . import Verdict, ask, close, exercise, same_interval, whole
from ...architectures import CHANNELS, count_parameters, lenet, multiply_accumulates
from ...datasets import DEFAULT
from ...interval import Interval
from ...layers import kind_of
from ..conv import HAND_FILTER, hand_box, hand_network, hand_passes

HORIZONTAL = tuple(zip(*HAND_FILTER))  # the filter transposed: top row +1, middle 0, bottom row -1


def _horizontal_output() -> tuple[float, float]:
    convolved = hand_passes(hand_network(HORIZONTAL), hand_box()).convolved
    return float(convolved.lower[0, 0, 0, 1]), float(convolved.upper[0, 0, 0, 1])


@exercise("08.1", "Turn the filter into a horizontal-edge detector (its transpose: top row 1 1 1, middle row 0, "
                  "bottom row -1 -1 -1) and bound the output y01 (row 0, column 1) over the same 4x4 box. Answer "
                  "(lower, upper).", solver=_horizontal_output)
def horizontal_output(answer) -> Verdict:
    return same_interval(answer, *_horizontal_output(), "[y01] with the horizontal filter",
                         why="y01 reads rows 0-2, columns 1-3: the top row u 0 0 counts +1, the bottom row 1 1 u "
                             "counts -1, so y01 = u - 2 - u' with two different uncertain pixels: [0 - 2 - 1, "
                             "1 - 2 - 0].",
                         hint="write the 3x3 window under y01 (rows 0 to 2, columns 1 to 3); only the top and bottom "
                              "rows count, with +1 and -1. A negative weight takes an uncertain pixel's upper end "
                              "into the lower bound.")


POOLED = ((-1.0, 2.0), (0.0, 0.5), (1.0, 3.0), (-2.0, 4.0))  # a 2x2 window of intervals, row by row


def _window() -> Interval:
    lower, upper = (torch.tensor([pair[end] for pair in POOLED], dtype=torch.float64).reshape(1, 1, 2, 2)
                    for end in (0, 1))
    return Interval(lower, upper)


def _pooled() -> tuple[float, float]:
    pool = nn.MaxPool2d(2)
    window = _window()
    pooled = kind_of(pool).forward(pool, window, tuple(window.shape[1:]))
    return float(pooled.lower), float(pooled.upper)


@exercise("08.2", f"A 2x2 max-pool reads four intervals {', '.join(f'[{a:g}, {b:g}]' for a, b in POOLED)}. What is "
                  f"the interval of its output? Answer (lower, upper).", solver=_pooled)
def pooled_bound(answer) -> Verdict:
    return same_interval(answer, *_pooled(), "the pooled interval",
                         why="max is increasing in every argument, so its smallest value over the box is the max "
                             "of the lower bounds, its largest the max of the upper bounds.",
                         hint="the maximum is monotone: take the maximum of the four lower ends, and of the four "
                              "upper ends.")


def _pool_adjoint() -> list[tuple[float, float]]:
    pool = nn.MaxPool2d(2)
    window = _window()
    seed = Interval(torch.ones(1, 1, 1, 1, dtype=torch.float64))
    adjoint = kind_of(pool).adjoint(pool, seed, window, tuple(window.shape[1:]))
    return [(float(low), float(high)) for low, high in zip(adjoint.lower.flatten(), adjoint.upper.flatten())]


@exercise("08.3", "Seed the same max-pool's output with adjoint 1. Give the interval adjoint of each of its four "
                  "inputs, in the same order, as four (lower, upper) pairs.", solver=_pool_adjoint)
def pool_adjoint(answer) -> Verdict:
    expected = _pool_adjoint()
    pairs = [tuple(float(value) for value in pair) for pair in answer]
    if len(pairs) != len(expected) or any(len(pair) != 2 for pair in pairs):
        return Verdict(False, f"give four (lower, upper) pairs, one per input of the window, not {len(pairs)}.")
    if all(abs(a - b) <= 1e-9 for pair, right in zip(pairs, expected) for a, b in zip(pair, right)):
        return Verdict(True, f"{expected}: the window's maximum is at least 1 (the largest lower bound), so "
                             f"[0, 0.5] is never the maximum (adjoint 0); the other three may be the maximum "
                             f"somewhere in the box, or not, so each gets the hull of 1 and 0, [0, 1].")
    return Verdict(False, f"{pairs} is not it. Which inputs can be the maximum somewhere in the box (upper end at "
                          f"least the largest lower end)? An input that never is gets 0; one that may or may not "
                          f"be gets every value between 0 and the seed.")


PRUNED_SHAPE = ((8, 20), (150,))  # conv1 channels, conv2 channels, fc1 neurons: a shape 08's default run never prints


def _pruned_parameters() -> int:
    return count_parameters(lenet(DEFAULT, *PRUNED_SHAPE))


@exercise("08.4", "A pruned LeNet-5-Caffe keeps 8 filters in conv1, 20 in conv2 and 150 neurons in the first fully "
                  "connected layer (MNIST: 28x28 images, ten classes). How many parameters (weights and biases) "
                  "does it have?", solver=_pruned_parameters)
def pruned_parameters(answer) -> Verdict:
    return close(whole(answer), _pruned_parameters(), "the parameters of LeNet-5 8-20-150",
                 why="conv1 8·1·5·5 + 8, conv2 20·8·5·5 + 20, fc1 (20·4·4)·150 + 150, fc2 150·10 + 10: a removed "
                     "conv2 channel takes its 4x4 block of 16 columns of fc1 with it.", tolerance=0,
                 hint="a 5x5 convolution of c_in channels into c_out has c_out·c_in·25 weights and c_out biases; "
                      "after two 5x5 convolutions and two 2x2 pools a 28x28 image is 4x4 per channel, so fc1 reads "
                      "conv2's channels x 16 features.")


def _first_layer_macs() -> int:
    height, width = DEFAULT.image_shape
    first = nn.Sequential(nn.Unflatten(1, (CHANNELS, height, width)), nn.Conv2d(CHANNELS, PRUNED_SHAPE[0][0], 5))
    return multiply_accumulates(first)


@exercise("08.5", "How many multiply-accumulates does that network's conv1 (8 filters of 5x5 on one 28x28 channel, "
                  "no padding) spend on one image?", solver=_first_layer_macs)
def first_layer_macs(answer) -> Verdict:
    return close(whole(answer), _first_layer_macs(), "conv1's multiply-accumulates",
                 why="each of the 8 filters computes 24·24 outputs (28 - 5 + 1 = 24 per side), each 25 products: "
                     "8·25·576. A convolution's weights are few, its work is large: pruning a channel saves "
                     "multiply-accumulates in proportion to its positions.", tolerance=0,
                 hint="count the output positions first (a 5x5 window fits 28 - 5 + 1 times per side), then the "
                      "products each output position needs per filter.")


# --- the questionnaire -------------------------------------------------------------------------------------------
ask("08.q1", "Why does a convolution over a box of independent pixels give each output's exact range, and what "
             "does the centre-radius form compute for it?",
    "Each output is a weighted sum of the pixels in its window plus the bias: a linear map. Its smallest value over "
    "the box takes each pixel at the end its weight prefers (the lower end for a positive weight, the upper end for "
    "a negative one), and since each pixel enters that sum once, that choice is an image of the box. Centre-radius "
    "form computes the same bounds with two convolutions: centre W * c + b and radius |W| * r.")
ask("08.q2", "Why may max-pooling map the bounds, and why would that fail for a pooling that is not monotone?",
    "The maximum never decreases when one of its arguments grows, so over a box its smallest value is at the lower "
    "ends and its largest at the upper ends. A function that is not monotone can take its extremes inside the box, "
    "so its values at the ends do not bound it. Average pooling is linear with positive weights, so it maps bounds "
    "too.")
ask("08.q3", "Why does max-pooling's adjoint give an input that may or may not be the maximum the hull of 0 and the "
             "seed, and not the seed?",
    "The interval adjoint must enclose the derivative at every image of the box. Where that input is the maximum the "
    "derivative passes the seed on; where another input is the maximum it passes 0. Only an interval holding both "
    "encloses both; the seed alone would be wrong at every image where another input wins.")
ask("08.q4", "What is the adjoint of a convolution, and why?",
    "The transposed convolution. An output is y_p = sum over k of W_k x_(p+k), so dy_p/dx_q = W_(q-p) where the "
    "window of p holds q, and the chain rule adds over every output whose window holds x_q: x̄_q = sum over p of "
    "W_(q-p) ȳ_p. Each output's adjoint goes back to the pixels of its window times their weights, and a pixel adds "
    "what it gets from every window it lies in.")
ask("08.q5", "Why is a whole channel the unit removed, and not one position of a feature map?",
    "Removing one position saves nothing: the filter still runs over the others and the next layer keeps its "
    "weights. Removing a channel removes its filter and bias and every weight that reads it, so the network becomes "
    "a smaller dense network with fewer parameters and multiply-accumulates, which runs faster on any hardware.")
ask("08.q6", "Why does the default aggregation take the maximum over a channel's positions, and what would the sum "
             "do when channels and neurons compete for one budget?",
    "A channel is needed where it matters most: a detector that fires in one place of the image is needed even if it "
    "is silent elsewhere. The sum would score a unit higher the more positions it has: LeNet-5's conv1 channels "
    "have 576 positions, conv2's 64, fc1's neurons one. That matters where the layers' scores are compared as they "
    "are (allocation = 'global', normalise = 'none'); the default normalise = 'mean' divides each layer's scores by "
    "their mean, which removes a layer's scale whatever the aggregation, and then max and sum differ only in how "
    "they order the channels within a layer. Which prunes better is measured in benchmarks/conv_pareto.py, not "
    "assumed.")
ask("08.q7", "When LeNet-5-Caffe's conv2 loses channel k, which weights go with it?",
    "conv2's filter k and its bias; and, after the second max-pool and Flatten, channel k's 4x4 = 16 positions are "
    "the 16 consecutive inputs k·16 to k·16 + 15 of fc1, so those 16 columns of fc1's weight go too. A conv1 "
    "channel k takes conv2's input channel k with it: a 5x5 slice of every conv2 filter.")
ask("08.q8", "In the hand example the adjoint at pixel (1, 1) is [0, 2], yet the derivative there is 1 at every "
             "image of the box. Where does the width come from, and is the enclosure wrong?",
    "The pixel lies in the windows of y01 and y11 with weight 1. Their intervals overlap, so as far as the intervals "
    "tell either may be the maximum: each brings [0, 1], and the transposed convolution adds them as if both could "
    "pass the seed at once; at each image the pool passes it to one of them (in fact y01 <= y11 everywhere, so to "
    "y11, or to y01 where they tie). The enclosure is still valid (it holds 1), only not tight: the dependency "
    "problem of notebook 00. A significance built from it is still a bound, a looser one.")

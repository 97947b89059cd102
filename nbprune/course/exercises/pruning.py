"""Exercises of 04_iterative_pruning: a last-hidden-layer neuron's significance by hand, which layer global
allocation cuts first on your scores, what local boxes do to the likeness with magnitude, how many pixels a schedule
keeps, and the bias a compensated cut leaves; the questions to think about and the questionnaire."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import Verdict, ask, close, exercise
from ...criteria import PruningContext, interval_forward, node_significance
from ...interval import Interval
from ...model import linear_layers
from ...prune import node_midpoints, normalised, shrink
from ...retention import RetentionStep, inputs_as_hidden


def _last_layer_significance(model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> float:
    return float(node_significance(model, "interval_adjoint", PruningContext(input_box=box))[-1][0])


@exercise("04.1", "With the default seed (1 on every logit), compute the significance s_0 of neuron 0 of your scored "
                  "model's last hidden layer from three numbers: the width of its pre-activation interval "
                  "(z[-2]), the column sum of the output weights for it, and the largest slope of its activation "
                  "over that interval (ReLU: 1 when the interval reaches above 0).",
          solver=lambda model, box: _last_layer_significance(model, box))
def last_layer_significance(answer, model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> Verdict:
    return close(answer, _last_layer_significance(model, box), "s_0 of the last hidden layer",
                 why="the adjoint of a last-hidden-layer neuron is (its column sum of the output weights) × the "
                     "activation's derivative interval, so its largest magnitude is |column sum| × the largest "
                     "slope, and s_0 = width × |column sum| × largest slope: the library's number.",
                 hint="take z[-2].width[0, 0], scored.linears[-1].weight[:, 0].sum() (its absolute value) and the "
                      "largest slope derivative_intervals(scored, z)[-1].upper[0, 0], and multiply.")


def _first_cut_layer(scores: Sequence[torch.Tensor]) -> int:
    """The hidden layer (1 for the first) of the node global allocation with normalise='mean' removes first."""
    flat = torch.cat([normalised(score.float(), "mean") for score in scores])
    layer_of = torch.cat([torch.full((len(score),), k) for k, score in enumerate(scores, start=1)])
    return int(layer_of[torch.sort(flat, stable=True).indices[0]])


@exercise("04.2", "Global allocation with normalise = 'mean' divides each score by its layer's mean and removes the "
                  "lowest first (a neuron scoring 2.0 in a layer whose mean is 4.0 goes before one scoring 30 in a "
                  "layer whose mean is 40: 0.5 < 0.75). On your model's scores (`scores[1:]`, one vector per hidden "
                  "layer), which hidden layer holds the node it removes first? Answer its number (1 for the first).",
          solver=lambda scores: _first_cut_layer(scores))
def first_cut_layer(answer, scores: Sequence[torch.Tensor]) -> Verdict:
    expected = _first_cut_layer(scores)
    lows = ", ".join(f"layer {k}: {float((score / score.mean()).min()):.3g}"
                     for k, score in enumerate(scores, start=1))
    return close(answer, expected, "the layer of the first cut",
                 why=f"the lowest normalised score of each layer ({lows}); the lowest of them all goes first, "
                     f"whatever each neuron costs.",
                 hint="for each layer, divide its scores by their mean and take the smallest; compare the layers' "
                      "smallest values.", tolerance=0)


def _local_is_lower(table) -> bool:
    """Whether local boxes' rank correlation with magnitude, averaged over the hidden layers, is below the data
    box's (box_summary's table)."""
    hidden = table[table["layer"] != "logits"]
    means = hidden.groupby("boxes")["corr. with magnitude"].mean()
    return bool(means["local"] < means["data"])


@exercise("04.3", "Small local boxes narrow the intervals, so fewer hold 0 and the derivative intervals start to "
                  "depend on where the training images lie. In your box table (`boxes`), is the rank correlation "
                  "with magnitude, averaged over the hidden layers, 'lower' or 'higher' for local boxes than for "
                  "the data box?", solver=lambda table: "lower" if _local_is_lower(table) else "higher")
def local_boxes(answer, table) -> Verdict:
    said = str(answer).strip().lower()
    if said not in ("lower", "higher"):
        return Verdict(False, f"{answer!r} is not 'lower' or 'higher'.")
    hidden = table[table["layer"] != "logits"]
    numbers = "; ".join(f"{kind}: correlation {group['corr. with magnitude'].mean():.2f}, "
                        f"{group['% holding 0'].mean():.0f}% of intervals holding 0"
                        for kind, group in hidden.groupby("boxes", sort=False) if kind in ("data", "local"))
    measured = "lower" if _local_is_lower(table) else "higher"
    why = (f"your table, averaged over the hidden layers: {numbers}. Where intervals still hold 0, a ReLU's "
           f"derivative interval stays [0, 1] and the score stays built from the weights and the boxes' pixel "
           f"ranges; the intervals that no longer hold 0 bring in where the training images lie, which is what can "
           f"pull the ranking away from magnitude.")
    if said == measured:
        return Verdict(True, f"{measured}: {why}")
    return Verdict(False, f"{said} is not what your table shows: compare the column 'corr. with magnitude' of the "
                          f"rows 'local' and 'data' (hidden layers only).")


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


def _compensated_bias(model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Logit 0's bias after removing neuron 0 of the last hidden layer with bias_compensation = 'midpoint'."""
    widths = [layer.out_features for layer in linear_layers(model)[:-1]]
    kept = [torch.arange(width) for width in widths[:-1]] + [torch.arange(1, widths[-1])]
    cut = shrink(model, kept, constants=node_midpoints(model, box))
    return float(linear_layers(cut)[-1].bias.detach()[0])


@exercise("04.5", "Bias compensation by hand: remove neuron 0 of your scored model's last hidden layer with "
                  "bias_compensation = 'midpoint'. Its activation a_0 lies in the interval relu([z_0]) (z[-2]); the "
                  "cut adds (output weight from neuron 0) × (that interval's midpoint) to each logit's bias. What "
                  "does logit 0's bias become?", solver=lambda model, box: _compensated_bias(model, box))
def compensated_bias(answer, model: nn.Module, box: tuple[torch.Tensor, torch.Tensor]) -> Verdict:
    last = linear_layers(model)[-1]
    with torch.no_grad():
        pre = interval_forward(model, Interval(*(bound.reshape(1, -1).to(last.weight) for bound in box)))[-2]
    return close(answer, _compensated_bias(model, box), "logit 0's bias after the compensated cut",
                 why="the removed neuron stood for its interval's midpoint: W[0, 0] × midpoint moved into the bias, "
                     "so the logit moves by at most |W[0, 0]| × half the interval's width instead of the whole.",
                 hint=f"the old bias is scored.linears[-1].bias[0] ({float(last.bias.detach()[0]):.4g}); [z_0] is "
                      f"[{float(pre.lower[0, 0]):.4g}, {float(pre.upper[0, 0]):.4g}], so relu([z_0]) starts at "
                      f"{max(0.0, float(pre.lower[0, 0])):.4g}; add scored.linears[-1].weight[0, 0] times its "
                      f"midpoint.")


ask("04.6", "Why can a neuron with a large significance still be safe to remove?",
    "The significance bounds how far the sum of the logits can move while the neuron's pre-activation moves anywhere "
    "in its interval over the whole box, most of which no image reaches. It does not measure removal: removal fixes "
    "the activation at 0, which a ReLU neuron may already output for most real images; the softmax ignores a change "
    "that moves every logit alike, which the sum of the logits counts in full; and the other neurons, or the "
    "retraining after the cut, can take over what it did. The section 'What removing one neuron does' measures it "
    "on your model.")

# --- the questionnaire --------------------------------------------------------------------------------------------
ask("04.q1", "What are the four steps that score the neurons, in order?",
    "The input box (each pixel's smallest and largest training value), the interval forward pass (each layer's "
    "pre-activation interval over the box), the interval adjoint pass backwards from the seed (the derivative "
    "intervals of the seeded output), and the significance, the width of a neuron's interval times the largest "
    "magnitude of its adjoint.")
ask("04.q2", "What exactly does the significance bound, and what does it not?",
    "It is a rigorous mean-value bound built from first derivatives: how far the seed-weighted sum of the logits "
    "(with the default seed, their plain sum) can move while the neuron's pre-activation moves within its interval, "
    "anywhere in the box. It bounds neither the effect of removing the neuron nor any single logit.")
ask("04.q3", "Why are the intervals over the input box much wider than the ranges the training images produce?",
    "The box holds every combination of every pixel's extremes at once, which no image is; and interval arithmetic "
    "forgets that the neurons depend on the same inputs (the dependency problem), so the width grows layer by "
    "layer.")
ask("04.q4", "Once every interval holds 0, why does the ReLU network's score depend only on the weights and the "
             "pixel ranges?",
    "Every ReLU derivative interval is then [0, 1] whatever the data, so the adjoint is fixed by the weights alone; "
    "the widths come from |W| and the pixel ranges. Nothing in the score says where the training images lie inside "
    "the box.")
ask("04.q5", "Why can the significance rank the neurons of the last hidden layer differently from magnitude?",
    "With the default seed its adjoint is the column sum of the output weights, in which weights of opposite sign "
    "cancel, while magnitude takes the root of the sum of the squares of the neuron's weights. A neuron that raises "
    "one logit and lowers another scores low on the sum, not on the squares.")
ask("04.q6", "Why is a pixel that is constant over the training images the first to go, and what does removing it "
             "change?",
    "Its interval has width 0, so its significance is 0. But it feeds a constant into every first-layer neuron: it "
    "acts as a bias, and removing it shifts each pre-activation by its weight times the constant, unless bias "
    "compensation folds that into the bias.")
ask("04.q7", "What does the input box promise about images outside it?",
    "Nothing. The bounds hold for inputs inside the box only; a test image with a pixel above the largest training "
    "value there is outside it, and the scores say nothing about the network's behaviour on it.")
ask("04.q8", "In global allocation, why are scores normalised per layer, and does a neuron's cost change its rank?",
    "The layers' scores live on different scales, so raw scores would empty the layer with the smallest ones; "
    "dividing by the layer's mean (or ranking within the layer) makes them comparable. The cost does not enter the "
    "order: it only decides when the budget is met.")
ask("04.q9", "What does retraining after each cut do that the score cannot?",
    "It lets the remaining weights take over what the removed neurons did, on the real training images. The score "
    "looks at one network once; the retraining repairs the damage of each cut before the next is scored.")
ask("04.q10", "Why does bias compensation with the mean differ from compensation with the midpoint?",
    "The removed neuron's activation a lies in an interval [l, u] over the box. Folding the midpoint (l + u) / 2 "
    "into the next layer's bias leaves its pre-activation i off by |W_ij| |a - (l + u) / 2| <= |W_ij| (u - l) / 2, "
    "with W_ij the removed neuron's outgoing weight: the smallest worst case over the whole box any constant gives "
    "(for a ReLU interval starting at 0, half the uncompensated one). Folding the mean of a over training images "
    "makes that error average to zero over those images instead. Which is better depends on whether the worst "
    "input in the box or the typical image matters.")

"""Exercises of 03_retention: the schedule n_t = max(1, round(h q^t)) by hand, checked against nbprune.schedule,
and the notebook's questionnaire."""

from __future__ import annotations

from typing import Sequence

from ...config import MAX_ITERATIONS, or_default
from ...retention import schedule
from . import Verdict, ask, close, exercise, whole

SKIP_SIZES, SKIP_Q, LAST = (256, 64), 0.85, 32  # 03.2's layers and factor, and where its schedule reaches 1 + 1
SINGLE_SIZE, SINGLE_Q = 64, 0.75  # 03.3's layer and factor: the questions' own numbers, not the configuration's


def _kept(h: int, q: float, t: int) -> int:
    return schedule((h,), q, range(t + 1))[-1].retained[0]  # a skipped t keeps what the step before kept


@exercise("03.1", "With q = 0.7, how many of its 256 neurons does hidden layer 1 keep at iteration 4?",
          solver=lambda: _kept(256, 0.7, 4))
def kept_at_iteration(answer) -> Verdict:
    return close(answer, _kept(256, 0.7, 4), "layer 1's size at iteration 4 for q = 0.7",
                 why="256 · 0.7⁴ = 61.47, rounded to 61 (nbprune.schedule gives the same).",
                 hint="compute 256 · 0.7 ** 4 and round it to the nearest whole neuron.", tolerance=0)


def _skipped() -> list[int]:
    kept = {step.iteration for step in schedule(SKIP_SIZES, SKIP_Q, range(LAST + 1))}
    return [t for t in range(LAST + 1) if t not in kept]


@exercise("03.2", "For 256 + 64 neurons and q = 0.85, the schedule reaches 1 + 1 neurons at iteration 32. Which "
                  "iterations before it does retain.txt leave out? Answer a list, and say to yourself why.",
          solver=_skipped)
def skipped_iterations(answer) -> Verdict:
    expected = _skipped()
    given = sorted(whole(t) for t in answer)
    if given == expected:
        return Verdict(True, f"iterations {expected}: layer 2 is at one neuron from iteration 24 on, and at each of "
                             f"these round(256 · 0.85^t) equals the iteration before's (e.g. 256 · 0.85^26 = 3.7 and "
                             f"256 · 0.85^25 = 4.4 both round to 4): they would retrain the same sizes again.")
    return Verdict(False, f"{given} is not the list. Find where both layers' rounded sizes stop changing: compute "
                          f"round(256 · 0.85^t) and max(1, round(64 · 0.85^t)) for t from 22 to 32.")


def _first_single() -> int:
    steps = schedule((SINGLE_SIZE,), SINGLE_Q, range(LAST))
    return next(step.iteration for step in steps if step.retained[0] == 1)


@exercise("03.3", "With q = 0.75, at which iteration is a hidden layer of 64 neurons first down to a single neuron?",
          solver=_first_single)
def single_neuron(answer) -> Verdict:
    return close(answer, _first_single(), "the first iteration a 64-neuron layer is down to one neuron",
                 why="64 · 0.75^t falls below 1.5 (and so rounds to 1) first at t = 14: 64 · 0.75¹³ = 1.52 still "
                     "rounds to 2, 64 · 0.75¹⁴ = 1.14 to 1.",
                 hint="solve 64 · 0.75^t < 1.5 for the smallest whole t.", tolerance=0)


GENTLE_Q, DEFAULT_Q = 0.9, 0.8  # 03.4: the gentler factor it asks about, and the one it compares with


def _to_one(hidden: Sequence[int], q: float) -> list:
    """Return the whole schedule at factor q, down to the row where every layer keeps one neuron."""
    return schedule(tuple(hidden), q, range(MAX_ITERATIONS))


@exercise("03.4", "With q = 0.9 and as many iterations as it takes, at which iteration does every hidden layer of "
                  "your model first keep a single neuron?",
          solver=lambda hidden=None: _to_one(or_default(hidden, "hidden"), GENTLE_Q)[-1].iteration)
def gentler_schedule(answer, hidden: Sequence[int] | None = None) -> Verdict:
    hidden = or_default(hidden, "hidden")
    gentle, default = _to_one(hidden, GENTLE_Q), _to_one(hidden, DEFAULT_Q)
    widest = max(hidden)
    return close(answer, gentle[-1].iteration, f"the iteration where {'+'.join(map(str, hidden))} reaches one neuron "
                                               f"per layer at q = {GENTLE_Q}",
                 why=f"The widest layer decides: {widest} · {GENTLE_Q}^t first falls below 1.5 at t = "
                     f"{gentle[-1].iteration}; at q = {DEFAULT_Q} that happens at iteration {default[-1].iteration}. "
                     f"retain.txt then holds {len(gentle)} rows (the iterations that are trained, iteration 0 "
                     f"included) against {len(default)} at q = {DEFAULT_Q}, so with the same epochs per iteration "
                     f"notebook 04 takes about {len(gentle) / len(default):.1f} times as long, each retraining "
                     f"repairing a smaller cut. (To see it on the sliders, raise iterations to "
                     f"{gentle[-1].iteration + 1} or more.)",
                 hint=f"solve {widest} · {GENTLE_Q}^t < 1.5 for the smallest whole t: the widest layer is the last "
                      f"to reach one neuron.", tolerance=0)


# --- the questionnaire -------------------------------------------------------------------------------------------
ask("03.q1", "Why does nbprune prune in many small steps, retraining after each, rather than removing all the "
             "neurons at once?",
    "Each step removes only a fraction 1 - q of what is left, so the network retrained afterwards is close to one "
    "that worked, and retraining has only a little damage to repair. Removing everything at once leaves one large "
    "cut to recover from, and the scores that chose it were computed on a network very different from the result.")
ask("03.q2", "What does the factor q trade off?",
    "Time against gentleness. A larger q removes less per iteration, so each retraining repairs a smaller cut but "
    "more iterations (and retrainings) are needed to reach a given size; a smaller q gets there in fewer, rougher "
    "steps.")
ask("03.q3", "Why is the schedule's size rounded, and why is it at least 1?",
    "A layer can only keep a whole number of neurons, so h q^t is rounded to the nearest one. A layer of zero "
    "neurons would cut the network in two (no signal could reach the outputs), so every hidden layer keeps at "
    "least one.")
ask("03.q4", "Why does the schedule skip some iterations?",
    "Once a layer is small, h q^t can change by less than a neuron from one iteration to the next, so both round to "
    "the same sizes in every layer. Retraining the same sizes again would only repeat work, so such an iteration is "
    "left out of retain.txt.")
ask("03.q5", "What is iteration 0 of the schedule?",
    "The dense network itself: every layer keeps all its neurons (q^0 = 1). Notebook 04 trains it as its first "
    "iteration, and every later iteration starts from the one before.")
ask("03.q6", "Why can the sliders not go beyond the sizes of the model notebook 02 trained?",
    "A schedule can only keep neurons the model has: pruning removes neurons, it never adds them. So each size "
    "slider stops at its layer's size in best_model.pth.")
ask("03.q7", "Why is the schedule saved to a file (retain.txt) instead of being recomputed by notebook 04?",
    "So that what notebook 04 runs is exactly what the sliders showed when it was saved, including sizes moved by "
    "hand; the file is the one statement of the schedule that both notebooks, and a later resume, read.")
ask("03.q8", "Python rounds halves to the even neighbour (round(2.5) = 2, round(3.5) = 4). When does that matter "
             "here?",
    "Only when h q^t is exactly a half: h = 5 and q = 0.5 give 2.5 at t = 1, and the layer keeps 2, not 3. With "
    "q = 0.8 and 256 + 64 neurons it never happens (256 · 0.8^t = 2^(8+2t) / 5^t is never a half). Where it does, "
    "your hand computation agrees with nbprune.schedule only if both round the same way.")
ask("03.q9", "Every hidden layer shrinks by the same factor q. Is that the only way to allocate the cut?",
    "No. The reference workflow and this schedule cut each layer by q (allocation = 'layer'). Notebook 04 also "
    "offers allocation = 'global', where all hidden neurons compete for one budget per iteration, so a layer whose "
    "neurons score low loses more of them than another.")

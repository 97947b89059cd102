"""Exercises of 03_retention: the schedule n_t = max(1, round(h q^t)) by hand, checked against nbprune.schedule."""

from __future__ import annotations

from ..retention import schedule
from . import Verdict, close, exercise, whole

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

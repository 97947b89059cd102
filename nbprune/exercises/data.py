"""Exercises of 01_data: standardisation by hand, and which split may choose a model."""

from __future__ import annotations

from . import Verdict, close, exercise


def _standardised(pixel: float, mean: float, std: float) -> float:
    return (pixel / 255 - mean) / std


@exercise("01.1", "A black pixel has grey level 0. What value does the network read for it, given the training "
                  "split's mean and std printed above?", solver=lambda mean, std: _standardised(0, mean, std))
def black_pixel(answer, mean: float, std: float) -> Verdict:
    return close(answer, _standardised(0, mean, std), "the standardised black pixel",
                 why=f"(0/255 - {mean:.4f}) / {std:.4f}: black is below the mean, so it is negative; it is what the "
                     f"network reads for the background around every digit.",
                 hint="divide the grey level by 255 first, then subtract the mean and divide by the std.",
                 tolerance=1e-3)


@exercise("01.2", "And a white pixel (grey level 255)?", solver=lambda mean, std: _standardised(255, mean, std))
def white_pixel(answer, mean: float, std: float) -> Verdict:
    return close(answer, _standardised(255, mean, std), "the standardised white pixel",
                 why=f"(1 - {mean:.4f}) / {std:.4f}. Together with 01.1 this is the range [black, white] every input "
                     f"pixel lies in; notebook 04's input box is narrower: each pixel's own range over the "
                     f"training images.",
                 hint="255/255 = 1; then subtract the mean and divide by the std.", tolerance=1e-3)


SPLITS = ("train", "validation", "test")


def _which_chooses() -> str:
    return "validation"


@exercise("01.3", "Which split may be used to choose between models (epochs, learning-rate drops, the pruning "
                  "iteration to deploy): 'train', 'validation' or 'test'?", solver=_which_chooses)
def choosing_split(answer) -> Verdict:
    name = str(answer).strip().lower()
    if name not in SPLITS:
        return Verdict(False, f"{answer!r} is not a split: answer one of {', '.join(SPLITS)}.")
    if name == "validation":
        return Verdict(True, "validation: held out from training, so it can compare models; its accuracy then becomes "
                             "slightly optimistic too, which is why the test split is kept for the final report.")
    if name == "train":
        return Verdict(False, "the training split is what the weights were fitted to: every model looks good on it, "
                              "the biggest best of all.")
    return Verdict(False, "a model chosen on the test split makes its test accuracy optimistic: nothing unseen is "
                          "left to report an honest number.")

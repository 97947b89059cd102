"""Exercises of 01_data: standardisation by hand, which split may choose a model, the splits' sizes under `subset`,
and the notebook's questionnaire."""

from __future__ import annotations

import torch

from . import Verdict, ask, close, exercise
from ...data import own_tensors, split_data


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


ASKED_SUBSET, TRAIN_IMAGES, TEST_IMAGES = 5000, 60_000, 10_000  # 01.4 asks about MNIST with subset = 5000


def _split_sizes() -> list[int]:
    """Return [train, validation, test] as load_data makes them from MNIST-sized data with subset = 5000."""
    shaped_like_mnist = own_tensors((torch.zeros(TRAIN_IMAGES, 1), torch.arange(TRAIN_IMAGES) % 2),
                                    (torch.zeros(TEST_IMAGES, 1), torch.arange(TEST_IMAGES) % 2))
    data = split_data(shaped_like_mnist, None, None, None, ASKED_SUBSET, None)
    return [len(loader.dataset.targets) for loader in data]


@exercise("01.4", "MNIST has 60,000 training and 10,000 test images. With subset = 5000 (val_size left at None), how "
                  "many images does each split hold? Answer [train, validation, test].", solver=_split_sizes)
def subset_sizes(answer) -> Verdict:
    expected, given = _split_sizes(), [int(value) for value in answer]
    if given == expected:
        return Verdict(True, f"{expected}: the validation split is drawn first, 1 in 12 of all 60,000 training "
                             f"images, so it keeps its 5,000; subset then cuts the rest of the training images and the "
                             f"test images to 5,000 each. Rerun the notebook with subset = 5000 to see it: the "
                             f"mean and std move a little (they come from 5,000 training images now) and so do the "
                             f"class shares; the validation images are the same as before.")
    return Verdict(False, f"{given} is not it. Which split does load_data take out of the training images first, and "
                          f"what does subset cut: see the text on how the data is split, and the parameters cell.")


# --- the questionnaire -------------------------------------------------------------------------------------------
ask("01.q1", "Why are the mean and standard deviation of the standardisation computed from the training images "
             "only?",
    "Anything computed from the validation or test images would carry information about them into the model, so "
    "their accuracy would no longer measure how it does on images it has never met. The model file records the "
    "training statistics, and every image the model ever reads (validation, test, new ones) is standardised with "
    "them.")
ask("01.q2", "Why is most of a standardised MNIST image one and the same negative number?",
    "Most pixels are black background (grey level 0), and the training mean is above 0, so (0/255 - mean)/std is "
    "negative; every black pixel maps to that same value (exercise 01.1 computes it).")
ask("01.q3", "What is each of the three splits for?",
    "Training images fit the weights. Validation images choose: the epoch whose weights are kept, when the "
    "learning rate drops and when training stops, and in notebook 05 the pruning iteration to deploy. Test images "
    "are only evaluated and reported, never used to choose anything.")
ask("01.q4", "Why is the validation accuracy of the chosen model slightly optimistic?",
    "Because it was chosen for being good on the validation images: among several models whose accuracies differ "
    "partly by chance, the best-looking one is likely to have been lucky there. Images that played no part in the "
    "choice (the test split) give the unbiased figure.")
ask("01.q5", "The reference workflow used the test set both to choose and to report. What does that do to its test "
             "accuracies?",
    "It makes them slightly optimistic, for the reason validation accuracy is: the reported number belongs to the "
    "model picked for doing well on those very images. Nothing unseen is left to give an honest figure.")
ask("01.q6", "Why is accuracy a fair single number here, and when would it not be?",
    "Every class makes up about a tenth of each split, so no class is rare enough for a model to ignore it and "
    "still score well. If one class were, say, 1% of the images, a model that never predicted it could reach 99%: "
    "per-class accuracy or a confusion matrix would then be needed.")
ask("01.q7", "What does the seed decide in this notebook, and what stays the same when you rerun with the same seed?",
    "It decides which training images are held out for validation and the order in which training batches are "
    "shuffled (notebook 02 also seeds the initial weights with it). Rerun with the same seed and the split is the "
    "same, image for image; so are the mean and the standard deviation.")
ask("01.q8", "Why does every model file record the standardisation (mean and std)?",
    "A network's weights only make sense for inputs standardised the way it was trained. To predict on new images "
    "(notebooks 05 and 06, the exported folder's predict.py) they must be standardised with the training split's "
    "mean and std, which depend on the dataset, subset and split; the file carries them so the model reads new "
    "images correctly without the training data.")
ask("01.q9", "What is notebook 04's input box, and why is it narrower than the range from a black to a white pixel?",
    "For each pixel, the interval from its smallest to its largest standardised value over the training images. "
    "Many pixels never reach white in any image, and some (near the corners) are black in every one, so their "
    "interval is narrower than [black, white] or has width 0. The interval analysis then bounds the network only "
    "over values the data actually shows.")

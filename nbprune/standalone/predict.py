"""Classify inputs: python predict.py image.png [images.npy ...]. Needs only torch.

Prints one line per input, `NAME: CLASS (PROBABILITY)`. A bad input ends with one line on stderr and exit code 2.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # find model.py and loader.py from any folder, even under python -I

import torch  # noqa: E402

from loader import CLASSES, IMAGE_SHAPE, load_pruned_model, read_inputs, standardise  # noqa: E402
from model import InputError, SimpleNN  # noqa: E402

USAGE = ("usage: python predict.py image.png [images.npy ...]  (grey images like the training data)"
         if IMAGE_SHAPE is not None else "usage: python predict.py rows.npy [rows.csv ...]  (rows of features)")


def main(paths):
    model = SimpleNN()
    load_pruned_model(model, HERE / "best_model.pth")
    for path in paths:
        with torch.no_grad():
            logits = model(standardise(read_inputs(path)))
        if not torch.isfinite(logits).all():  # load_pruned_model bounds the logits; this is the last guard
            raise ValueError(f"the model gives Inf or NaN outputs for {path}: export a model from an earlier "
                             f"iteration")
        probabilities = logits.softmax(dim=1)
        for index, (probability, label) in enumerate(zip(*probabilities.max(dim=1))):
            name = path if len(probabilities) == 1 else f"{path}[{index}]"
            print(f"{name}: {CLASSES[label.item()]} ({probability.item():.1%})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1:])
    except BrokenPipeError:  # the reader stopped early (python predict.py ... | head): end quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (ValueError, OSError, InputError) as error:  # InputError is a ValueError too
        print(f"predict.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)

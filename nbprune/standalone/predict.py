"""Classify handwritten digits: python predict.py digit.png [digits.npy ...]. Needs only torch."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # find model.py and loader.py from any folder, even under python -I

import torch  # noqa: E402

from loader import load_pruned_model, read_pixels, standardise  # noqa: E402
from model import SimpleNN  # noqa: E402


def main(paths):
    model = SimpleNN()
    load_pruned_model(model, HERE / "best_model.pth")
    for path in paths:
        with torch.no_grad():
            probabilities = model(standardise(read_pixels(path))).softmax(dim=1)
        for index, (probability, digit) in enumerate(zip(*probabilities.max(dim=1))):
            name = path if len(probabilities) == 1 else f"{path}[{index}]"
            print(f"{name}: {digit.item()} ({probability.item():.1%})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python predict.py digit.png [digits.npy ...]  (28x28, white digit on black, like MNIST)")
    main(sys.argv[1:])

"""08_conv's helpers: the hand-sized convolution (a one-channel 4x4 input box, a 3x3 filter, a 2x2 max-pool) run
through nbprune.layers' own rules, sampled checks that its intervals enclose what the network computes, the nested
session its LeNet-5 run writes to, the shapes along that run, the filters its first cut keeps, and how its export
agrees with the library.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..architectures import ARCHITECTURES, multiply_accumulates
from ..datasets import DATASETS
from ..errors import ConfigError
from ..evaluation import loss_and_accuracy
from ..interval import Interval
from ..layers import hidden_units, kind_of, unit_layers
from ..networkfile import network_from_file
from ..prune import top
from ..session import Session

CONV = "conv"  # 08's run lives in <session>/conv, a session of its own: 04's MLP chain stays where it is

# The hand example: '1' a stroke pixel (exactly 1), '0' background (exactly 0), 'u' a pixel that may be anything in
# [0, 1]; the filter is Prewitt's vertical-edge detector (left column +1, middle 0, right column -1).
HAND_IMAGE = ("1u00",
              "01u0",
              "011u",
              "0100")
HAND_FILTER = ((1, 0, -1),
               (1, 0, -1),
               (1, 0, -1))


def hand_box(rows: Sequence[str] = HAND_IMAGE) -> Interval:
    """Return the input box of a one-channel image written as rows of '0', '1' and 'u' (anything in [0, 1]), as
    one box of shape [1, 1, height, width] in float64 (exact for small integers)."""
    allowed = set("01u")
    if not rows or any(set(row) - allowed or len(row) != len(rows[0]) for row in rows):
        raise ValueError(f"rows {list(rows)} are not an image: expected rows of equal length made of '0', '1' and "
                         f"'u'")
    lower = torch.tensor([[1.0 if pixel == "1" else 0.0 for pixel in row] for row in rows], dtype=torch.float64)
    upper = torch.tensor([[0.0 if pixel == "0" else 1.0 for pixel in row] for row in rows], dtype=torch.float64)
    return Interval(lower.reshape(1, 1, *lower.shape), upper.reshape(1, 1, *upper.shape))


def hand_network(weights: Sequence[Sequence[float]] = HAND_FILTER, bias: float = 0.0, pool: int = 2
                 ) -> nn.Sequential:
    """Return the hand example's network: one 3x3 (or the weights' size) convolution of one channel into one, with
    `weights` and `bias`, then a `pool` x `pool` max-pool; float64."""
    weight = torch.tensor(weights, dtype=torch.float64)
    conv = nn.Conv2d(1, 1, tuple(weight.shape), dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(weight.reshape(1, 1, *weight.shape))
        conv.bias.fill_(bias)
    return nn.Sequential(conv, nn.MaxPool2d(pool)).requires_grad_(False)  # sampled_check differentiates the inputs


class HandPasses(NamedTuple):
    """The hand example's intervals, from nbprune.layers' rules: forward and adjoint, through both layers."""

    convolved: Interval  # the convolution's outputs [y] over the box (pre-activations: the channel's positions)
    pooled: Interval  # the max-pool's outputs
    pooled_adjoint: Interval  # the seed on the pooled outputs
    convolved_adjoint: Interval  # the max-pool's adjoint: the interval adjoint at the convolution's outputs
    input_adjoint: Interval  # the transposed convolution's result: the adjoint at the input pixels


@torch.no_grad()
def hand_passes(network: nn.Sequential, box: Interval, seed: float = 1.0) -> HandPasses:
    """Return the interval forward through the convolution and the max-pool over `box`, and the interval adjoint
    back from `seed` on every pooled output, each computed by the layer kind's own rule (nbprune.layers)."""
    conv, pool = network[0], network[1]
    shape = tuple(box.shape[1:])
    convolved = kind_of(conv).forward(conv, box, shape)
    pooled = kind_of(pool).forward(pool, convolved, tuple(convolved.shape[1:]))
    pooled_adjoint = Interval(torch.full_like(pooled.lower, seed))
    convolved_adjoint = kind_of(pool).adjoint(pool, pooled_adjoint, convolved, tuple(convolved.shape[1:]))
    input_adjoint = kind_of(conv).adjoint(conv, convolved_adjoint, box, shape)
    return HandPasses(convolved, pooled, pooled_adjoint, convolved_adjoint, input_adjoint)


def as_grid(value: Interval) -> list[list[tuple[float, float]]]:
    """Return one channel of a [1, 1, H, W] interval as rows of (lower, upper) pairs, for printing."""
    lower, upper = value.lower.reshape(value.shape[-2:]), value.upper.reshape(value.shape[-2:])
    return [[(float(low), float(high)) for low, high in zip(low_row, high_row)]
            for low_row, high_row in zip(lower.tolist(), upper.tolist())]


class SampledCheck(NamedTuple):
    """What sampling the box showed: how many inputs, and whether every value and derivative lay in its interval."""

    samples: int
    outputs_inside: bool  # the convolution's and the pool's outputs of every sample lie in [y] and the pooled interval
    derivatives_inside: bool  # every sample's gradient of the seeded pooled outputs lies in the input adjoint


def sampled_check(network: nn.Sequential, box: Interval, passes: HandPasses, samples: int = 2000,
                  sample_seed: int = 0) -> SampledCheck:
    """Return whether `samples` random inputs of the box (corners included) give values and derivatives inside the
    intervals `passes` computed: the enclosure, measured (float64, so up to rounding exactly)."""
    generator = torch.Generator().manual_seed(sample_seed)
    lower, upper = box.lower[0], box.upper[0]
    corners = torch.randint(0, 2, (samples // 2, *lower.shape), generator=generator).to(lower.dtype)
    uniform = torch.rand((samples - len(corners), *lower.shape), generator=generator, dtype=lower.dtype)
    inputs = (lower + torch.cat([corners, uniform]) * (upper - lower)).requires_grad_()
    convolved = network[0](inputs)
    pooled = network[1](convolved)
    (pooled * passes.pooled_adjoint.lower[0]).sum().backward()
    tolerance = 1e-12

    def inside(values: torch.Tensor, interval: Interval) -> bool:
        return bool(((values >= interval.lower - tolerance) & (values <= interval.upper + tolerance)).all())

    return SampledCheck(samples, inside(convolved.detach(), passes.convolved) and inside(pooled.detach(),
                                                                                       passes.pooled),
                        inside(inputs.grad, passes.input_adjoint))


# --- the student's LeNet-5 run ------------------------------------------------------------------------------------
def has_images(dataset: str) -> bool:
    """Return whether a dataset setting names a declared image dataset, whose images a convolution can read (a file
    of the user's own holds rows of features)."""
    return dataset in DATASETS


def without_images(dataset: str) -> str:
    """Return what 08_conv says when its dataset has no images to convolve."""
    return (f"your data ({dataset}) are rows of features, not the images of a declared dataset: a convolutional "
            f"network has nothing to convolve, so steps 5 to 7 are skipped. Run 08 with dataset = one of "
            f"{', '.join(repr(name) for name in DATASETS)} to prune a LeNet-5.")


def require_architecture(architecture: str | None) -> str:
    """Return the architecture 08_conv prunes; None (the MLP, 02 to 07's network) is refused in one line."""
    if architecture is None:
        raise ConfigError(f"architecture=None is not allowed: 08_conv prunes a network declared by name, expected "
                          f"one of {', '.join(ARCHITECTURES)}; the MLP notebooks 02 to 07 take hidden and activation "
                          f"instead.")
    return architecture


def conv_session(session: Session) -> Session:
    """Return the session 08_conv prunes in: <session>/conv, a session folder of its own (with its own
    iterative_pruning/ and lock), so the MLP chain of 04 in the same session stays untouched."""
    return Session.open(session.part(CONV))


class Shape(NamedTuple):
    """One iteration of a network's run: its units per hidden unit layer (and those layers' names), parameters,
    multiply-accumulates and validation and test accuracy."""

    iteration: int
    units: tuple[int, ...]
    parameters: int
    multiply_accumulates: int
    val_accuracy: float
    test_accuracy: float
    layers: tuple[str, ...]  # conv1, conv2, ..., fc1, ...: the hidden unit layers in order


def unit_layer_names(network: nn.Module) -> tuple[str, ...]:
    """Return the names of a network's hidden unit layers: conv1, conv2, ... for its convolutions and fc1, ... for
    its linear layers, in order (the last linear layer, the outputs, has no name here)."""
    names, counts = [], {"conv": 0, "fc": 0}
    for layer in unit_layers(network)[:-1]:
        kind = "conv" if isinstance(layer, nn.Conv2d) else "fc"
        counts[kind] += 1
        names.append(f"{kind}{counts[kind]}")
    return tuple(names)


def shapes(session: Session) -> list[Shape]:
    """Return every complete iteration of the session's run as a Shape, read from its model file and results."""
    rows = []
    for record in session.finished():
        network, _ = network_from_file(session.model_file(record["iteration"]))
        rows.append(Shape(record["iteration"], hidden_units(network), record["parameters"],
                          multiply_accumulates(network), record["Val_Accuracy"], record["Test_Accuracy"],
                          unit_layer_names(network)))
    return rows


def shape_lines(rows: Sequence[Shape]) -> list[str]:
    """Return a table of the shapes, one line per iteration: the units of each hidden unit layer (channels of the
    convolutions, neurons of the linear layers), parameters, multiply-accumulates and accuracies."""
    names = rows[0].layers if rows else ()
    head = f"{'iteration':>9} " + " ".join(f"{name:>6}" for name in names) + \
        f" {'parameters':>10} {'MACs':>10} {'val acc':>8} {'test acc':>8}"
    return [head] + [f"{row.iteration:>9} " + " ".join(f"{units:>6}" for units in row.units) +
                     f" {row.parameters:>10,} {row.multiply_accumulates:>10,} {row.val_accuracy:>7.2f}% "
                     f"{row.test_accuracy:>7.2f}%" for row in rows]


def first_cut(session: Session, experiment, first: int, second: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first convolution's filters in iteration `first`'s model ([channels, 1, k, k]) and the indices
    of those the cut to iteration `second` keeps, scored again as the run scored them (its criterion and
    options, aggregation included, and its context) and kept by count as `second`'s model file says."""
    from ..channels import unit_significance

    scored, _ = network_from_file(session.model_file(first))
    kept_counts = hidden_units(network_from_file(session.model_file(second))[0])
    criterion = experiment.criterion_function or experiment.config.prune.criterion
    scores = unit_significance(scored, criterion, experiment.context(), experiment.config.prune)
    filters = next(layer for layer in scored if isinstance(layer, nn.Conv2d)).weight.detach()
    return filters, top(scores[0], kept_counts[0])


def standalone_accuracy(folder: str | Path, data, work: str | Path) -> float:
    """Return the test accuracy (percent) of an export's torch-only predict.py on all of `data`'s test images,
    written into `work` as an application hands them over (grey levels) and run in a fresh interpreter."""
    from ..export import example_inputs, run_standalone, standalone_predictions

    inputs, targets = data.test_loader.dataset.data, data.test_loader.dataset.targets
    Path(work).mkdir(parents=True, exist_ok=True)
    printed = run_standalone(folder, *example_inputs(data, inputs, work))
    predicted = [label for _, label, _ in standalone_predictions(printed)[1:]]  # after the first file's line
    return 100.0 * sum(label == data.classes[int(k)] for label, k in zip(predicted, targets)) / len(targets)


def library_accuracy(file: str | Path, loader) -> float:
    """Return the test accuracy (percent) of the network a model file holds, rebuilt by the library."""
    network, _ = network_from_file(file)
    return loss_and_accuracy(network, loader)[1]

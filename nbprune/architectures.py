"""Networks declared by name, each built from a dataset's declaration (its image shape and classes) as an
nn.Sequential of the layer kinds nbprune.layers declares, reading flat rows (nn.Unflatten first) as nbprune's loaders
give them; and the parameter and multiply-accumulate counts of any such network.

- `lenet5`: LeNet-5-Caffe, the network structured-pruning papers report on MNIST: conv 20 5x5, max-pool 2, conv 50 5x5,
  max-pool 2, flatten, fc 800-500, ReLU, fc 500-10 (431,080 parameters on MNIST); no activation after the
  convolutions, as in Caffe's model (the max-pooling is their nonlinearity);
- `lenet5_small`: LeCun's widths: the same convolutions and pools with 6 and 16 filters, then two hidden linear
  layers of 120 and 84 neurons.

A new architecture is one `declare_architecture(name, builder)`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from torch import nn

from .config import ARCHITECTURES as ARCHITECTURE_NAMES
from .data import InputSpec
from .datasets import DATASETS, DEFAULT, Dataset
from .errors import ConfigError
from .layers import kind_of, layer_shapes, sequence_of

CHANNELS = 1  # the declared datasets are grayscale IDX images: one input channel

Builder = Callable[[Dataset], nn.Sequential]
ARCHITECTURES: dict[str, Builder] = {}


def declare_architecture(name: str, builder: Builder) -> Builder:
    """Make `builder` (dataset -> network) known by `name`; return it."""
    if name in ARCHITECTURES and ARCHITECTURES[name] is not builder:
        raise ValueError(f"architecture {name!r} is declared twice, differently")
    ARCHITECTURES[name] = builder
    return builder


def lenet(dataset: Dataset, channels: Sequence[int], hidden: Sequence[int], kernel: int = 5, pool: int = 2
          ) -> nn.Sequential:
    """Return a LeNet-5-Caffe-like network for `dataset`: per entry of `channels` a kernel x kernel convolution and a
    max-pool, then fully connected layers of `hidden` widths with ReLU, then one output per class."""
    height, width = dataset.image_shape
    layers: list[nn.Module] = [nn.Unflatten(1, (CHANNELS, height, width))]
    reads = CHANNELS
    for count in channels:
        layers += [nn.Conv2d(reads, count, kernel), nn.MaxPool2d(pool)]
        height, width = (height - kernel + 1) // pool, (width - kernel + 1) // pool
        reads = count
    if height < 1 or width < 1:
        raise ConfigError(f"images of {dataset.image_shape} are too small for {len(channels)} convolutions of "
                          f"{kernel}x{kernel} and pooling by {pool}: choose fewer convolutions or a smaller kernel.")
    layers.append(nn.Flatten())
    features = reads * height * width
    for width_ in hidden:
        layers += [nn.Linear(features, width_), nn.ReLU()]
        features = width_
    return nn.Sequential(*layers, nn.Linear(features, len(dataset.classes)))


declare_architecture("lenet5", lambda dataset: lenet(dataset, (20, 50), (500,)))
declare_architecture("lenet5_small", lambda dataset: lenet(dataset, (6, 16), (120, 84)))


_undeclared = set(ARCHITECTURES) ^ set(ARCHITECTURE_NAMES)
if _undeclared:
    raise RuntimeError(f"architectures {sorted(_undeclared)} differ between nbprune.config.ARCHITECTURES (the "
                       f"architecture setting's choices) and the declarations here: declare each in both.")


def build_architecture(name: str, dataset: Dataset = DEFAULT) -> nn.Sequential:
    """Return a freshly initialised network of the architecture `name` for `dataset`'s images and classes."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"architecture {name!r} is not known: expected one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name](dataset)


def architecture_for(name: str, spec: InputSpec) -> nn.Sequential:
    """Return a freshly initialised network of the architecture `name` for the data `spec` describes (a declared
    dataset's images, or a subset of them)."""
    if spec.dataset not in DATASETS or spec.image_shape is None:
        raise ConfigError(f"architecture {name!r} needs the images of a declared dataset ({', '.join(DATASETS)}); "
                          f"the data is {spec.describe()}: choose one of those datasets, or leave architecture "
                          f"unset for an MLP.")
    return build_architecture(name, DATASETS[spec.dataset])


def count_parameters(model: nn.Module) -> int:
    """Return the number of weights and biases of a network."""
    return sum(parameter.numel() for parameter in model.parameters())


def multiply_accumulates(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Return the multiply-accumulates of one input's forward pass through the unit layers: a Linear's weights, a
    convolution's weights times its output positions (pooling and activations are not counted)."""
    layers = sequence_of(model)
    shapes = layer_shapes(layers, input_shape)
    total = 0
    for layer, output in zip(layers, shapes[1:]):
        if kind_of(layer).units:
            total += layer.weight.numel() * (output[1] * output[2] if isinstance(layer, nn.Conv2d) else 1)
    return total


class LeNetCost(NamedTuple):
    """A LeNet-5 shape's parameters and multiply-accumulates."""

    parameters: int
    multiply_accumulates: int


def lenet5_cost(conv1: int, conv2: int, fc_in: int, fc_out: int, dataset: Dataset = DEFAULT, kernel: int = 5,
                pool: int = 2) -> LeNetCost:
    """Return the cost of a pruned LeNet-5 in the four numbers published results give (conv1 channels, conv2
    channels, the first fc layer's inputs and outputs), counted as count_parameters and multiply_accumulates count
    a network: weights and biases of the remaining layers. fc_in may be below conv2 x positions (inputs pruned
    within channels), so the shape need not be a network nbprune can build."""
    height, width = dataset.image_shape
    first = (height - kernel + 1) * (width - kernel + 1)
    second = ((height - kernel + 1) // pool - kernel + 1) * ((width - kernel + 1) // pool - kernel + 1)
    classes = len(dataset.classes)
    weights = [CHANNELS * conv1 * kernel * kernel, conv1 * conv2 * kernel * kernel, fc_in * fc_out, fc_out * classes]
    biases = conv1 + conv2 + fc_out + classes
    macs = weights[0] * first + weights[1] * second + weights[2] + weights[3]
    return LeNetCost(sum(weights) + biases, macs)

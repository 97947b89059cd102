"""Architectures declared by name: LeNet-5-Caffe has its published 431,080 parameters, the networks run on a
dataset's flat rows, and published pruned shapes are counted as nbprune counts its own networks."""

import pytest
import torch
from torch import nn

from nbprune.architectures import (ARCHITECTURES, build_architecture, count_parameters, lenet5_cost,
                                   multiply_accumulates)
from nbprune.datasets import FASHION_MNIST, MNIST
from nbprune.errors import ConfigError
from nbprune.layers import shrink_units, unit_layers


def test_lenet5_is_lenet5_caffe_with_431080_parameters():
    model = build_architecture("lenet5", MNIST)
    assert count_parameters(model) == 431_080
    assert [len(layer.weight) for layer in unit_layers(model)] == [20, 50, 500, len(MNIST.classes)]
    assert model[6].in_features == 800
    assert [type(layer) for layer in model] == [nn.Unflatten, nn.Conv2d, nn.MaxPool2d, nn.Conv2d, nn.MaxPool2d,
                                                nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]


def test_lenet5_small_has_the_same_layout_with_lecuns_widths():
    model = build_architecture("lenet5_small", FASHION_MNIST)
    assert [len(layer.weight) for layer in unit_layers(model)] == [6, 16, 120, 84, len(FASHION_MNIST.classes)]
    assert count_parameters(model) == 6 * 26 + 16 * (6 * 25 + 1) + 120 * (256 + 1) + 84 * 121 + 10 * 85


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_runs_on_flat_rows(name):
    model = build_architecture(name, MNIST)
    assert model(torch.randn(3, MNIST.features)).shape == (3, len(MNIST.classes))


def test_unknown_architectures_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="expected one of lenet5, lenet5_small"):
        build_architecture("resnet50")


def test_multiply_accumulates_of_lenet5():
    model = build_architecture("lenet5", MNIST)
    assert multiply_accumulates(model) == 20 * 25 * 24 * 24 + 50 * 20 * 25 * 8 * 8 + 800 * 500 + 500 * 10


@pytest.mark.parametrize("shape", [(20, 50, 800, 500), (3, 18, 18 * 16, 283), (7, 9, 9 * 16, 30)])
def test_lenet5_cost_counts_as_the_networks_are_counted(shape):
    conv1, conv2, _, fc_out = shape
    dense = build_architecture("lenet5", MNIST)
    kept = [torch.arange(conv1), torch.arange(conv2), torch.arange(fc_out)]
    model = shrink_units(dense, kept)
    assert lenet5_cost(*shape) == (count_parameters(model), multiply_accumulates(model))


def test_published_lenet5_shapes():
    # anchors.md: L0 about 39K parameters, Bayesian Compression (GHS) about 2.8K
    assert lenet5_cost(3, 18, 284, 283).parameters == 78 + 1_368 + 80_655 + 2_840 == 84_941  # SBP
    assert lenet5_cost(20, 25, 45, 462).parameters == 520 + 12_525 + 21_252 + 4_630 == 38_927  # L0
    assert lenet5_cost(5, 10, 76, 16).parameters == 130 + 1_260 + 1_232 + 170 == 2_792  # BC-GHS
    assert lenet5_cost(20, 50, 800, 500).parameters == 431_080

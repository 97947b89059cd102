"""Network model files record the layer list: the file alone rebuilds the network, exactly; damaged or hostile
records are refused in one line before anything large is built; an MLP's reader points to the right function."""

import math

import pytest
import torch
from torch import nn

from nbprune.architectures import build_architecture
from nbprune.data import InputSpec
from nbprune.datasets import MNIST
from nbprune.errors import ModelFileError, NbpruneError
from nbprune.layers import shrink_units
from nbprune.model import SimpleNN
from nbprune.modelfile import read_model_file, write_model_state
from nbprune.networkfile import layer_list, network_from_file, save_network_file

SPEC = InputSpec(MNIST.name, MNIST.classes, MNIST.standardisation[0], MNIST.standardisation[1], MNIST.features,
                 MNIST.image_shape)


def small_network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Unflatten(1, (2, 6, 6)), nn.Conv2d(2, 3, 3, padding=1), nn.Sigmoid(),
                         nn.AvgPool2d(2), nn.Conv2d(3, 4, 2, stride=2, bias=False), nn.MaxPool2d(1), nn.Flatten(),
                         nn.Identity(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


@pytest.mark.parametrize("make, spec", [(small_network, None),
                                        (lambda: build_architecture("lenet5_small", MNIST), SPEC)])
def test_a_network_file_rebuilds_the_network_exactly(make, spec, tmp_path):
    model = make()
    path = save_network_file(model, tmp_path / "best_model.pth", architecture="lenet5_small", spec=spec, iteration=2,
                             criterion="magnitude")
    rebuilt, record = network_from_file(path)
    x = torch.randn(7, math.prod(model[0].unflattened_size))
    assert torch.equal(rebuilt(x), model.eval()(x))
    assert layer_list(rebuilt) == layer_list(model)
    assert (record.architecture, record.spec, record.iteration, record.criterion) == ("lenet5_small", spec, 2,
                                                                                      "magnitude")
    assert save_network_file(rebuilt, tmp_path / "again.pth", architecture="lenet5_small", spec=spec, iteration=2,
                             criterion="magnitude").read_bytes() == path.read_bytes()


def test_a_spec_of_other_data_is_refused_when_saving(tmp_path):
    with pytest.raises(NbpruneError, match="reads 72 features and gives 3 classes"):
        save_network_file(small_network(), tmp_path / "best_model.pth", spec=SPEC)


def test_a_pruned_lenet5_round_trips(tmp_path):
    model = shrink_units(build_architecture("lenet5", MNIST), [torch.tensor([1, 4, 7]), torch.arange(0, 50, 5),
                                                              torch.arange(30)])
    rebuilt, _ = network_from_file(save_network_file(model, tmp_path / "pruned.pth"))
    x = torch.randn(3, MNIST.features)
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt[3].in_channels == 3 and rebuilt[6].in_features == 10 * 16


def rewrite(path, tmp_path, change) -> str:
    """Write a copy of a network file whose record `change` edits; return its path."""
    state, record = read_model_file(path)
    change(record, state)
    return write_model_state(state, tmp_path / "edited.pth", record)


@pytest.mark.parametrize("change, message", [
    (lambda record, state: record["layers"].append({"kind": "Tanh"}), "expected a kind among"),
    (lambda record, state: record["layers"][1].update(out_channels=-3), "expected whole numbers"),
    (lambda record, state: record["layers"][1].update(out_channels=2 ** 30), "its layers need tensors"),
    (lambda record, state: record["layers"][1].update(stride="2"), "expected whole numbers"),
    (lambda record, state: record["layers"][1].update(groups=1), "expected the options"),
    (lambda record, state: record.update(layers=[]), "format"),
    (lambda record, state: state.update({"1.weight": torch.zeros(3, 2, 2, 2)}), "its layers need tensors"),
    (lambda record, state: record["layers"].__setitem__(6, {"kind": "Identity"}), "do not fit together"),
    (lambda record, state: record.update(iteration=-1), "iteration -1"),
])
def test_damaged_records_are_refused_in_one_line(change, message, tmp_path):
    path = save_network_file(small_network(), tmp_path / "best_model.pth")
    with pytest.raises(ModelFileError, match=message):
        network_from_file(rewrite(path, tmp_path, change))


def test_each_reader_points_to_the_other(tmp_path):
    network_path = save_network_file(small_network(), tmp_path / "network.pth")
    with pytest.raises(ModelFileError, match="network_from_file"):
        SimpleNN.from_file(network_path)
    from nbprune.modelfile import save_model_file
    mlp_path = save_model_file(SimpleNN(hidden=[4], in_features=6, num_classes=3), tmp_path / "mlp.pth")
    with pytest.raises(ModelFileError, match="SimpleNN.from_file"):
        network_from_file(mlp_path)


def test_simple_nn_input_pruning_is_not_a_layer_list():
    model = SimpleNN(hidden=[4], in_features=6, num_classes=3)
    model.keep(torch.tensor([0, 2]))
    with pytest.raises(NbpruneError, match="save_model_file"):
        layer_list(model)

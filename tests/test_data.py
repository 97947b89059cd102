"""Data: loaders, standardisation, the validation split, the input box and the errors for bad data folders."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import make_tiny_mnist, needs_mnist
from nbprune import DataError, input_box, load_data
from nbprune.data import RAW_FILES, TensorLoader, data_root


def test_root_comes_from_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("NBPRUNE_DATA_ROOT", str(tmp_path))
    assert data_root("x") == Path("x")
    assert data_root() == tmp_path
    monkeypatch.delenv("NBPRUNE_DATA_ROOT")
    assert data_root() == Path("data")


def test_loaders_are_standardised_flat_and_split(tiny_data):
    train, val, test = tiny_data
    assert len(train.dataset) == 500 and len(val.dataset) == 100 and len(test.dataset) == 200
    inputs, targets = next(iter(train))
    assert inputs.shape == (64, 784) and inputs.dtype == torch.float32 and targets.dtype == torch.int64
    pixels = train.dataset.data
    assert abs(pixels.mean().item()) < 1e-4 and abs(pixels.std().item() - 1) < 1e-3
    assert len(train) == 8  # ceil(500 / 64)


def test_validation_split_never_overlaps_training(tiny_data):
    train, val, _ = tiny_data
    seen = {tuple(row.tolist()) for inputs, _ in train for row in inputs}
    assert not any(tuple(row.tolist()) in seen for row in val.dataset.data)


def test_epochs_reshuffle_reproducibly():
    inputs, targets = torch.arange(20.).reshape(10, 2), torch.arange(10)
    first, second = TensorLoader(inputs, targets, 4, seed=3), TensorLoader(inputs, targets, 4, seed=3)
    epoch_a, epoch_b = [t.tolist() for _, t in first], [t.tolist() for _, t in first]
    assert epoch_a != epoch_b
    assert epoch_a == [t.tolist() for _, t in second]
    assert sorted(sum(epoch_a, [])) == list(range(10))


def test_input_box_matches_for_tensor_and_plain_loaders(tiny_data):
    train = tiny_data.train_loader
    lower, upper = input_box(train)
    plain = DataLoader(TensorDataset(train.dataset.data.reshape(-1, 1, 28, 28), train.dataset.targets), batch_size=50)
    plain_lower, plain_upper = input_box(plain)
    assert torch.equal(lower, plain_lower) and torch.equal(upper, plain_upper)
    assert lower.shape == (784,) and (lower <= upper).all()
    assert lower.min() < 0  # standardised space, not raw pixels


def test_missing_data_names_folder_files_and_variable(tmp_path):
    with pytest.raises(DataError) as error:
        load_data(tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path) in message and "NBPRUNE_DATA_ROOT" in message
    assert all(name in message for name in RAW_FILES)


def test_truncated_file_gives_clear_error(tmp_path):
    root = make_tiny_mnist(tmp_path, train=50, test=20)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_data(root, val_size=10, download=False)


def test_corrupt_magic_gives_clear_error(tmp_path):
    root = make_tiny_mnist(tmp_path, train=50, test=20)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x12\x34\x56\x78" + labels.read_bytes()[4:])
    with pytest.raises(DataError, match="not an IDX file"):
        load_data(root, val_size=10, download=False)


def test_bad_split_sizes_are_refused(tiny_root):
    with pytest.raises(DataError, match="val_size"):
        load_data(tiny_root, val_size=10_000, download=False)
    with pytest.raises(DataError, match="subset"):
        load_data(tiny_root, val_size=10, subset=0, download=False)


@needs_mnist
def test_real_mnist_split_sizes_and_statistics(real_data):
    train, val, test = real_data
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (55000, 5000, 10000)
    assert abs(real_data.mean - 0.1307) < 2e-3 and abs(real_data.std - 0.3081) < 2e-3

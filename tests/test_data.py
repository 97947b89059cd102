"""Data: loaders, standardisation, the validation split, the input box and the errors for bad data folders."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import make_tiny_mnist
from nbprune import input_box, load_arrays, load_data
from nbprune.errors import DataError
from nbprune.config import project_root
from nbprune.data import TensorLoader, data_root
from nbprune.datasets import MNIST, RAW_FILES

REPO = Path(__file__).resolve().parents[1]


def test_root_comes_from_argument_then_environment_then_the_projects_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("NBPRUNE_DATA_ROOT", str(tmp_path))
    assert data_root("x") == Path("x")
    assert data_root() == tmp_path
    monkeypatch.delenv("NBPRUNE_DATA_ROOT")
    assert data_root() == REPO / "data"  # the same folder from every door and every working directory
    monkeypatch.chdir(REPO / "notebooks")
    assert project_root() == REPO and data_root() == REPO / "data"


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


@pytest.mark.mnist
def test_real_mnist_split_sizes_and_statistics(real_data):
    train, val, test = real_data
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (55000, 5000, 10000)
    assert abs(real_data.mean - 0.1307) < 2e-3 and abs(real_data.std - 0.3081) < 2e-3


def test_loaders_describe_their_data(tiny_data):
    spec = tiny_data.train_loader.spec
    assert spec is tiny_data.val_loader.spec is tiny_data.test_loader.spec is tiny_data.spec
    assert (spec.dataset, spec.classes, spec.features, spec.image_shape) == ("MNIST", MNIST.classes, 784,
                                                                              (28, 28))
    raw = (tiny_data.to_pixels(tiny_data.test_loader.dataset.data[:3]) * 255).round()
    assert torch.allclose(spec.standardise(raw), tiny_data.test_loader.dataset.data[:3], atol=1e-5)


def test_fashion_mnist_has_its_class_names(tmp_path):
    root = make_tiny_mnist(tmp_path, train=60, test=20, name="FashionMNIST")
    data = load_data(root, name="FashionMNIST", val_size=10, download=False)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot" and data.name == "FashionMNIST"


def test_a_given_standardisation_is_used_instead_of_the_training_splits(tiny_root):
    data = load_data(tiny_root, val_size=100, download=False, standardisation=(0.5, 0.25))
    assert (data.mean, data.std) == (0.5, 0.25)
    pixels = tiny_data_pixels(tiny_root)
    assert torch.allclose(data.test_loader.dataset.data[0], (pixels / 255 - 0.5) / 0.25)


def tiny_data_pixels(root: Path) -> torch.Tensor:
    from nbprune.data import read_raw
    return read_raw(root, download=False).test[0][0].reshape(-1).float()


def test_users_own_features_are_standardised_per_feature_with_the_training_statistics():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(300, 5, generator=generator) * torch.tensor([1.0, 10.0, 100.0, 0.1, 0.0]) + 3
    labels = torch.randint(0, 3, (300,), generator=generator)
    data = load_arrays(train=(features[:240].numpy(), labels[:240].numpy()), test=(features[240:], labels[240:]),
                     val_size=40, classes=["a", "b", "c"])
    inputs = data.train_loader.dataset.data
    assert inputs.shape == (200, 5) and data.classes == ("a", "b", "c") and data.spec.image_shape is None
    assert torch.allclose(inputs[:, :4].mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(inputs[:, :4].std(0), torch.ones(4), atol=1e-4)
    assert data.spec.std[4] == 1.0  # a constant feature is centred, not divided by zero
    assert data.name == "custom" and len(data.spec.mean) == 5


@pytest.mark.parametrize("train, message", [
    ((torch.zeros(10, 3, 2), torch.zeros(10, dtype=torch.long)), "expected \\[samples, features\\]"),
    ((torch.zeros(10, 3), torch.zeros(9, dtype=torch.long)), "one whole number per row"),
    ((torch.zeros(10, 3), torch.zeros(10)), "expected whole numbers"),
    ((torch.full((10, 3), float("nan")), torch.zeros(10, dtype=torch.long)), "finite real numbers"),
    ((torch.zeros(10, 3), -torch.ones(10, dtype=torch.long)), "class numbers 0, 1, 2"),
])
def test_users_own_data_is_checked(train, message):
    with pytest.raises(DataError, match=message):
        load_arrays(train=train, test=(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), val_size=2)


def test_a_raw_file_that_is_a_folder_or_a_fifo_is_refused_without_hanging(tmp_path):
    root = make_tiny_mnist(tmp_path, train=50, test=20)
    raw = root / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").mkdir()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is a folder"):
        load_data(root, val_size=10, download=False)
    (raw / "t10k-labels-idx1-ubyte").rmdir()
    os.mkfifo(raw / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="not a regular file"):
        load_data(root, val_size=10, download=False)


def test_training_images_without_variance_are_refused_with_the_right_advice(tmp_path):
    from conftest import write_idx
    root = make_tiny_mnist(tmp_path, train=50, test=20)
    write_idx(root / "MNIST" / "raw" / "train-images-idx3-ubyte", np.full((50, 28, 28), 7, dtype=np.uint8))
    with pytest.raises(DataError, match="standard deviation 0.*download again"):
        load_data(root, val_size=10, download=False)


def test_a_failed_download_leaves_no_folders_behind(tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        (Path(self.raw_folder) / "partial.gz").parent.mkdir(parents=True, exist_ok=True)
        (Path(self.raw_folder) / "partial.gz").write_bytes(b"half")
        raise OSError("no network (test)")
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    (tmp_path / "mine.txt").write_text("a file of the user's")
    with pytest.raises(DataError, match="no network \\(test\\)"):
        load_data(tmp_path, name="FashionMNIST")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]

"""The teacher setting, the convolutional teacher and its file, and augmentation by random shifts, on tiny data."""

import copy
import dataclasses
import hashlib
from collections import OrderedDict

import pytest
import torch

from nbprune import load_arrays, load_data, RunConfig, SimpleNN
from nbprune.errors import ConfigError, ModelFileError
from nbprune.cli import main
from nbprune.epoch import Trainer, image_shift, shifted_images
from nbprune.evaluation import loss_and_accuracy
from nbprune.fast_mlp import FlatMLPTrainer
from nbprune.iterative import plan_run
from nbprune.modelfile import read_record, save_model_file
from nbprune.session import Session
from nbprune.teacher import (TEACHER_KEY, ConvTeacher, check_teacher_fits, load_teacher, save_teacher,
                             train_teacher)
from nbprune.training import train

from conftest import make_tiny_mnist, tree_bytes


@pytest.fixture(scope="module")
def teacher_file(tiny_data, tmp_path_factory):
    """A ConvTeacher trained two epochs on the tiny data, saved."""
    trained = train_teacher(tiny_data, 3, channels=(4, 8), head=16, lr=2e-2, progress=False)
    return save_teacher(trained, tiny_data.spec, tmp_path_factory.mktemp("teacher") / "teacher.pth"), trained


# --- shifts ------------------------------------------------------------------------------------------------------
def test_shifted_images_move_each_image_by_its_own_offset_and_fill_what_they_uncover():
    images = torch.zeros(200, 28, 28)
    images[:, 10, 12] = 1.0  # one bright pixel per image, far from the border
    torch.manual_seed(0)
    moved = shifted_images(images.reshape(200, -1), 2, (28, 28), fill=-0.5).reshape(200, 28, 28)
    bright = (moved == 1.0).nonzero()
    assert len(bright) == 200  # every image keeps its pixel
    offsets = {(int(row) - 10, int(col) - 12) for _, row, col in bright}
    assert offsets <= {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)} and len(offsets) > 15
    assert set(moved.unique().tolist()) <= {-0.5, 0.0, 1.0} and (moved == -0.5).any()  # the uncovered border
    corner = torch.arange(784.0).reshape(1, 784)
    assert torch.equal(shifted_images(corner, 0, (28, 28), fill=0.0), corner)


def test_no_shift_is_no_augmentation_and_flat_features_are_refused(tiny_data):
    assert image_shift(0, tiny_data.spec) is None and image_shift(0, None) is None
    assert image_shift(1, tiny_data.spec) is not None
    flat = load_arrays(train=(torch.randn(40, 6), torch.arange(40) % 2),
                       test=(torch.randn(10, 6), torch.arange(10) % 2), val_size=10)
    with pytest.raises(ConfigError, match="augment_shift=2 shifts images, but the training data holds flat "
                                          "features: use augment_shift=0"):
        image_shift(2, flat.spec)


def test_both_trainers_train_on_the_same_shifted_batches(tiny_data):
    train_loader = copy.copy(tiny_data.train_loader)
    seen = []
    augment = image_shift(2, tiny_data.spec)

    def spy(inputs):
        seen.append(inputs.clone())
        return augment(inputs)

    results = []
    for trainer_class in (Trainer, FlatMLPTrainer):
        torch.manual_seed(0)
        model = SimpleNN((32,))
        train_loader.reseed(0)
        trainer = trainer_class(model, 1e-2, 1e-4, augment=spy)
        trainer.epoch(train_loader, torch.device("cpu"))
        results.append(trainer.finish().fc1.weight.detach().clone())
    assert len(seen) == 2 * len(train_loader)
    assert torch.allclose(results[0], results[1], atol=1e-5)  # the fast path shifts exactly as autograd's does
    torch.manual_seed(0)
    model = SimpleNN((32,))
    train_loader.reseed(0)
    Trainer(model, 1e-2, 1e-4).epoch(train_loader, torch.device("cpu"))
    assert not torch.allclose(model.fc1.weight, results[0], atol=1e-3)  # the shifts changed what it learned


def test_with_shifts_the_teacher_answers_each_shifted_batch(tiny_data):
    train_loader, val_loader, test_loader = tiny_data
    rows = {tuple(row.tolist()) for row in train_loader.dataset.data[:, :50]}

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.inputs = SimpleNN((8,)), []

        def forward(self, x):
            self.inputs.append(x.clone())
            return self.net(x)

    for shift, calls in ((0, 1), (2, len(train_loader))):
        teacher = Recorder()
        train(SimpleNN((16,)), train_loader, test_loader, val_loader=val_loader, num_epochs=1, progress=False,
              teacher=teacher, augment_shift=shift)
        assert len(teacher.inputs) == calls  # precomputed once without shifts, once per shifted batch with them
        seen = torch.cat(teacher.inputs)
        unchanged = sum(tuple(row.tolist()) in rows for row in seen[:, :50])
        assert (unchanged == len(seen)) == (shift == 0)


# --- the teacher file --------------------------------------------------------------------------------------------
def test_teacher_trains_on_the_training_split_and_its_file_describes_it(teacher_file, tiny_data):
    path, trained = teacher_file
    assert trained.val_accuracy == loss_and_accuracy(trained.model, tiny_data.val_loader)[1] > 50
    assert trained.settings["training_images"] == len(tiny_data.train_loader.dataset) == 500
    teacher = load_teacher(path, tiny_data.spec)
    assert isinstance(teacher.model, ConvTeacher) and teacher.model.channels == (4, 8) and not teacher.model.training
    assert teacher.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert teacher.record() == {"file": str(path.resolve()), "sha256": teacher.sha256}
    inputs = tiny_data.test_loader.dataset.data[:20]
    assert torch.equal(teacher.model(inputs), trained.model(inputs))
    state = torch.load(path, weights_only=True)
    record = state._metadata[""][TEACHER_KEY]
    assert record["input"]["dataset"] == "MNIST" and record["training"]["best_epoch"] == trained.best_epoch
    assert teacher.training == record["training"] and teacher.training["val_accuracy"] == trained.val_accuracy


def test_a_simplenn_best_model_can_teach(tiny_data, tmp_path):
    model = train(SimpleNN((16,)), tiny_data.train_loader, tiny_data.test_loader, val_loader=tiny_data.val_loader,
                  num_epochs=1, progress=False)
    path = save_model_file(model, tmp_path / "best_model.pth")
    teacher = load_teacher(path, tiny_data.spec)
    assert isinstance(teacher.model, SimpleNN) and teacher.model.hidden == (16,)
    assert teacher.training == {}  # a pruned model's file carries no teacher-training record


def _edited(source, target, change):
    state = torch.load(source, weights_only=True)
    metadata = state._metadata
    change(state, metadata[""][TEACHER_KEY])
    state._metadata = metadata
    torch.save(state, target)
    return target


@pytest.mark.parametrize("change, message", [
    (lambda state, record: record.update(channels=[4, 9]), "damaged teacher record .*its weights do not fit"),
    (lambda state, record: record.update(format=7), "damaged teacher record \\(format 7, expected 1\\)"),
    (lambda state, record: record.update(head="many"), "damaged teacher record \\(channels"),
    (lambda state, record: record["input"].update(std=0), "damaged teacher record \\(std 0"),
    (lambda state, record: state.__setitem__("fc2.bias", torch.full((10,), float("nan"))), "NaN or Inf"),
    *[(lambda state, record, key=key: state[key].view(-1).__setitem__(0, 3e38),
       r"weights so large \(up to 3e\+38\) that its outputs overflow to Inf or NaN .*Train the teacher again")
      for key in ("conv1.weight", "conv2.bias", "fc1.weight", "fc2.weight")],
])
def test_a_damaged_teacher_file_is_refused_in_one_line(teacher_file, tmp_path, change, message):
    damaged = _edited(teacher_file[0], tmp_path / "damaged.pth", change)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_teacher(damaged)
    assert "\n" not in str(caught.value)


def test_large_but_safe_teacher_weights_still_load_and_give_finite_outputs(teacher_file, tmp_path):
    scaled = _edited(teacher_file[0], tmp_path / "scaled.pth", lambda state, record: state["fc2.weight"].mul_(1e6))
    teacher = load_teacher(scaled)
    assert torch.isfinite(teacher.model(torch.full((2, 784), 10.0))).all()


def test_foreign_files_are_refused(tmp_path):
    noise = tmp_path / "noise.pth"
    noise.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_teacher(noise)
    plain = tmp_path / "plain.pth"
    torch.save(OrderedDict(SimpleNN((8,)).state_dict()), plain)
    with pytest.raises(ModelFileError, match="holds no record of the data it was trained on"):
        load_teacher(plain)


def test_a_teacher_of_other_data_is_refused(teacher_file, tmp_path):
    teacher = load_teacher(teacher_file[0])
    fashion = load_data(make_tiny_mnist(tmp_path, name="FashionMNIST"), "FashionMNIST", val_size=100, download=False)
    with pytest.raises(ModelFileError, match="was trained on MNIST .*this run's data is FashionMNIST"):
        check_teacher_fits(teacher, fashion.spec)
    other = load_data(make_tiny_mnist(tmp_path / "m"), val_size=100, download=False, standardisation=(0.5, 0.5))
    with pytest.raises(ModelFileError, match="takes inputs standardised with mean .* this run's with mean 0.5"):
        check_teacher_fits(teacher, other.spec)
    check_teacher_fits(teacher, load_data(tmp_path / "m", val_size=100, seed=3, download=False).spec)  # another split
    same = load_data(tmp_path / "m", val_size=100, download=False).spec
    for other_shape in (dataclasses.replace(same, classes=same.classes[:5]), dataclasses.replace(same, features=100)):
        with pytest.raises(ModelFileError, match=r"was trained on MNIST \(10 classes, 784 features\), this run's"):
            check_teacher_fits(teacher, other_shape)


# --- the setting ---------------------------------------------------------------------------------------------------
def test_teacher_needs_distillation():
    assert RunConfig().train.teacher is None and RunConfig().train.augment_shift == 0
    with pytest.raises(ConfigError, match="teacher='t.pth' needs distill=true"):
        RunConfig.from_flat(teacher="t.pth", distill=False)
    with pytest.raises(ConfigError, match="augment_shift=9 is not allowed: expected a whole number from 0 to 8"):
        RunConfig.from_flat(augment_shift=9)


def _config(tiny_root, **changes):
    return RunConfig.from_flat(data_root=str(tiny_root), val_size=100, hidden=(32, 16), iterations=3, epochs=1,
                               patience=1, threads=1, **changes)


@pytest.mark.slow
def test_pruned_iterations_distil_from_the_teacher_file_and_their_records_name_it(tiny_root, teacher_file, tmp_path,
                                                                                   monkeypatch):
    path, _ = teacher_file
    session = Session.open(tmp_path / "session")
    experiment, planned = plan_run(_config(tiny_root, teacher=str(path)), session, progress=False)
    assert isinstance(planned.teacher_file.model, ConvTeacher)
    calls, forward = [], ConvTeacher.forward
    monkeypatch.setattr(ConvTeacher, "forward", lambda module, x: calls.append(len(x)) or forward(module, x))
    experiment.run(planned)
    assert calls == [500]  # its outputs on the training rows are computed once per run, not once per iteration
    assert experiment.distillation.teacher is planned.teacher_file.model
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    records = [read_record(session.model_file(iteration)) for iteration in range(3)]
    assert records[0].teacher is None  # the dense model trains on the labels, as without a teacher
    assert [record.teacher for record in records[1:]] == [{"file": str(path.resolve()), "sha256": digest}] * 2
    experiment, resumed = plan_run(_config(tiny_root, teacher=str(path)), session, begin_itr=2, progress=False)
    assert resumed.dense is None  # a resume distils from the teacher file too, not from the dense model
    experiment.run(resumed)
    assert calls == [500, 500] and experiment.distillation.teacher is resumed.teacher_file.model


def test_with_shifts_the_teachers_outputs_for_every_offset_are_looked_up_for_the_offset_each_row_drew(tiny_data):
    from nbprune.epoch import batches, shifted_teacher_probabilities, teacher_probabilities
    train_loader = tiny_data.train_loader
    augment, teacher = image_shift(1, train_loader.spec), SimpleNN((8,)).eval()
    table = shifted_teacher_probabilities(teacher, train_loader.dataset.data, 2.0, augment)
    assert table.shape == (len(train_loader.dataset), 9, 10)  # (2 * 1 + 1)**2 offsets
    assert torch.allclose(table[:, 4], teacher_probabilities(teacher, train_loader.dataset.data, 2.0))  # (0, 0)
    looked_up = list(batches(train_loader, torch.device("cpu"), table, augment))
    assert len(looked_up) == len(train_loader)
    for moved, _, soft in looked_up:
        assert torch.allclose(soft, teacher_probabilities(teacher, moved, 2.0), atol=1e-6)  # what the student sees
    train_loader.reseed(0)
    torch.manual_seed(0)
    plain = [moved for moved, _, _ in batches(train_loader, torch.device("cpu"), None, augment)]
    train_loader.reseed(0)
    torch.manual_seed(0)
    same = [moved for moved, _, _ in batches(train_loader, torch.device("cpu"), table, augment)]
    assert all(torch.equal(a, b) for a, b in zip(plain, same))  # the lookup draws the same shifts


@pytest.mark.slow
def test_with_shifts_a_teacher_file_answers_once_per_offset_per_run_not_per_batch(tiny_root, teacher_file, tmp_path,
                                                                                   monkeypatch):
    path, _ = teacher_file
    session = Session.open(tmp_path / "session")
    experiment, planned = plan_run(_config(tiny_root, teacher=str(path), augment_shift=1), session, progress=False)
    calls, forward = [], ConvTeacher.forward
    monkeypatch.setattr(ConvTeacher, "forward", lambda module, x: calls.append(len(x)) or forward(module, x))
    experiment.run(planned)
    assert calls == [500] * 9  # every training row under each of the nine offsets, once for both iterations


def test_a_teacher_of_another_dataset_is_refused_before_any_write(tiny_root, tmp_path):
    fashion = load_data(make_tiny_mnist(tmp_path / "f", name="FashionMNIST"), "FashionMNIST", val_size=100,
                        download=False)
    trained = train_teacher(fashion, 1, channels=(2, 2), head=4, progress=False)
    other = save_teacher(trained, fashion.spec, tmp_path / "fashion_teacher.pth")
    session = Session.open(tmp_path / "session")
    before = tree_bytes(session.root)
    with pytest.raises(ModelFileError, match="trained on FashionMNIST"):
        plan_run(_config(tiny_root, teacher=str(other)), session, progress=False)
    after = tree_bytes(session.root)
    assert after == before and not any(session.pruning.glob("*/prune_w_retrain"))


@pytest.mark.slow
def test_cli_trains_a_teacher_and_prune_takes_it(tiny_root, tmp_path, capsys):
    out = tmp_path / "teacher.pth"
    assert main(["teacher", str(out), "--data-root", str(tiny_root), "--val-size", "100", "--epochs", "1",
                 "--threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "validation accuracy" in printed and "test accuracy" in printed
    assert main(["teacher", str(tmp_path), "--data-root", str(tiny_root)]) == 2
    assert "nbprune: error: OUT_FILE" in capsys.readouterr().err
    assert main(["prune", "--session-dir", str(tmp_path / "s"), "--data-root", str(tiny_root), "--val-size", "100",
                 "--hidden", "16", "--iterations", "2", "--epochs", "1", "--teacher", str(tmp_path / "none.pth"),
                 "--no-progress"]) == 2
    assert "nbprune: error: teacher: model file" in capsys.readouterr().err
    assert not (tmp_path / "s" / "iterative_pruning" / "0").exists()

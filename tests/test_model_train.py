"""SimpleNN, train and evaluate: shapes, the reference's keys and files, reproducibility, real-MNIST accuracy."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nbprune import NbpruneError, SimpleNN, evaluate, parameter_count, train
from nbprune.files import read_table


def test_simple_nn_is_the_reference_workflows_network():
    model = SimpleNN()
    assert [name for name, _ in model.named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    assert model.hidden == (256, 64) and parameter_count(model) == 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10
    assert model(torch.zeros(5, 784)).shape == (5, 10)
    assert model(torch.zeros(5, 28, 28)).shape == (5, 10)


def test_any_depth_and_sigmoid():
    model = SimpleNN(hidden=(32, 16, 8), activation="sigmoid", in_features=20, num_classes=3)
    assert model.hidden == (32, 16, 8) and model(torch.rand(2, 20)).shape == (2, 3)
    with pytest.raises(ValueError, match="activation"):
        SimpleNN(activation="tanh")


@pytest.mark.parametrize("bad, kind", [(torch.zeros(3, 100), ValueError), (torch.zeros(784), ValueError),
                                       (torch.zeros(2, 784, dtype=torch.uint8), TypeError)])
def test_wrong_input_is_explained(bad, kind):
    with pytest.raises(kind, match="SimpleNN expects"):
        SimpleNN()(bad)


def test_evaluate_returns_the_reference_workflows_keys_and_percentages(tiny_data):
    train_loader, _, test_loader = tiny_data
    results = evaluate(SimpleNN(), train_loader, test_loader)
    assert set(results) == {"Train_Loss", "Test_Loss", "Train_Accuracy", "Test_Accuracy"}
    assert 0 <= results["Test_Accuracy"] <= 100 and results["Train_Loss"] > 0


def test_train_writes_the_reference_workflows_files_and_learns(tiny_data, tmp_path):
    train_loader, val_loader, test_loader = tiny_data
    torch.manual_seed(0)
    model = train(SimpleNN(), train_loader, test_loader, num_epochs=6, patience=3, logdir=tmp_path, progress=False,
                  val_loader=val_loader)
    header, rows = read_table(tmp_path / "train_results.txt")
    assert header[:4] == ["TrainLoss", "TrainAccuracy", "TestLoss", "TestAccuracy"]
    assert header[4:] == ["ValLoss", "ValAccuracy"] and 1 <= len(rows) <= 6
    assert evaluate(model, train_loader, test_loader)["Test_Accuracy"] > 80
    reloaded = SimpleNN()
    reloaded.load_state_dict(torch.load(tmp_path / "best_model.pth", weights_only=True))
    val_loss = evaluate(reloaded, val_loader, val_loader)["Test_Loss"]
    assert any(val_loss == pytest.approx(row[4], rel=1e-4) for row in rows)
    assert val_loss <= min(row[4] for row in rows) + 1e-4  # selected by validation loss (min_delta 1e-4)


def test_seeded_training_is_reproducible_to_the_byte(tiny_data, tmp_path):
    train_loader, val_loader, test_loader = tiny_data
    results = []
    for run in ("a", "b"):
        train_loader.reseed(7)
        torch.manual_seed(7)
        model = train(SimpleNN(), train_loader, test_loader, num_epochs=2, seed=7, progress=False,
                      val_loader=val_loader, logdir=tmp_path / run)
        results.append(evaluate(model, train_loader, test_loader))
    assert results[0] == results[1]
    assert (tmp_path / "a" / "best_model.pth").read_bytes() == (tmp_path / "b" / "best_model.pth").read_bytes()


def test_train_is_fit_in_the_reference_workflows_shape_and_fit_logs_only_the_loaders_it_got(tiny_data, tmp_path):
    from nbprune import fit
    from nbprune.config import TrainConfig

    train_loader, val_loader, test_loader = tiny_data
    for run in ("train", "fit"):
        train_loader.reseed(3)
        torch.manual_seed(3)
        if run == "train":
            train(SimpleNN(hidden=(16,)), train_loader, test_loader, lr=3e-3, num_epochs=2, logdir=tmp_path / run,
                  progress=False, val_loader=val_loader, recipe="reference")
        else:
            fit(SimpleNN(hidden=(16,)), train_loader, val_loader, TrainConfig(lr=3e-3, epochs=2, recipe="reference"),
                test_loader=test_loader, logdir=tmp_path / run, progress=False)
    assert (tmp_path / "train" / "best_model.pth").read_bytes() == (tmp_path / "fit" / "best_model.pth").read_bytes()
    fit(SimpleNN(hidden=(16,)), train_loader, val_loader, TrainConfig(epochs=1), logdir=tmp_path / "no_test",
        progress=False)
    header, rows = read_table(tmp_path / "no_test" / "train_results.txt")
    assert header == ["TrainLoss", "TrainAccuracy", "ValLoss", "ValAccuracy"] and len(rows) == 1


def test_without_a_validation_loader_train_warns_that_it_selects_on_the_training_loss(tiny_data):
    train_loader, _, test_loader = tiny_data
    with pytest.warns(UserWarning, match="no val_loader"):
        train(SimpleNN(hidden=(8,)), train_loader, test_loader, num_epochs=1, progress=False)


def test_training_settings_come_from_the_configuration_and_can_be_overridden(tiny_data, tmp_path):
    from nbprune.config import TrainConfig
    train_loader, val_loader, test_loader = tiny_data
    config = TrainConfig(epochs=2, patience=5)
    train(SimpleNN(hidden=(8,)), train_loader, test_loader, logdir=tmp_path / "a", config=config,
          val_loader=val_loader, progress=False)
    assert len(read_table(tmp_path / "a" / "train_results.txt")[1]) == 2
    train(SimpleNN(hidden=(8,)), train_loader, test_loader, num_epochs=1, logdir=tmp_path / "b", config=config,
          val_loader=val_loader, progress=False)
    assert len(read_table(tmp_path / "b" / "train_results.txt")[1]) == 1
    with pytest.raises(NbpruneError, match="unknown training setting.*momentum"):
        train(SimpleNN(hidden=(8,)), train_loader, test_loader, momentum=0.9, val_loader=val_loader)


def test_plain_dataloader_works_with_explicit_validation(tiny_data):
    train_loader, val_loader, test_loader = tiny_data
    images = train_loader.dataset.data.reshape(-1, 1, 28, 28)
    plain = DataLoader(TensorDataset(images, train_loader.dataset.targets), batch_size=64, shuffle=True)
    model = train(SimpleNN(), plain, test_loader, num_epochs=2, val_loader=val_loader, progress=False)
    assert evaluate(model, plain, test_loader)["Train_Accuracy"] > 50


def test_reference_recipe_and_unknown_recipe(tiny_data):
    train_loader, val_loader, test_loader = tiny_data
    train(SimpleNN(), train_loader, test_loader, num_epochs=1, recipe="reference", progress=False,
          val_loader=val_loader)
    with pytest.raises(NbpruneError, match="recipe"):
        train(SimpleNN(), train_loader, test_loader, recipe="fast")


@pytest.mark.parametrize("lr_patience, lr_drops", [(1, 1), (1, 3), (2, 2), (0, 2)])
def test_learning_rate_drops_and_stop_follow_their_settings(tiny_data, tmp_path, lr_patience, lr_drops):
    train_loader, _, test_loader = tiny_data
    # min_delta=10: no epoch after the first counts as an improvement, so every later epoch is a stalled one.
    train(SimpleNN(hidden=(8, 4)), train_loader, test_loader, num_epochs=50, patience=50, min_delta=10.0,
          lr_patience=lr_patience, lr_drops=lr_drops, logdir=tmp_path, progress=False, val_loader=train_loader)
    _, rows = read_table(tmp_path / "train_results.txt")
    assert len(rows) == 1 + lr_drops * (lr_patience + 1)


@pytest.mark.parametrize("setting", [{"lr_drops": 0}, {"lr_patience": -1}, {"lr": float("nan")}, {"lr": 0},
                                     {"num_epochs": 0}, {"temperature": 0.0}])
def test_bad_training_settings_are_explained(tiny_data, setting):
    train_loader, _, test_loader = tiny_data
    name = next(iter(setting)).replace("num_epochs", "epochs")
    with pytest.raises(NbpruneError, match=f"{name}=.* is not allowed: expected"):
        train(SimpleNN(), train_loader, test_loader, progress=False, **setting)


@pytest.mark.mnist
def test_dense_model_reaches_97_percent_on_real_mnist(real_data):
    train_loader, val_loader, test_loader = real_data
    train_loader.reseed(0)
    model = train(SimpleNN(), train_loader, test_loader, num_epochs=4, seed=0, progress=False, val_loader=val_loader)
    assert evaluate(model, train_loader, test_loader)["Test_Accuracy"] >= 97.0


def test_distillation_follows_the_teacher_on_both_loader_kinds(tiny_data):
    train_loader, val_loader, test_loader = tiny_data
    torch.manual_seed(0)
    teacher = train(SimpleNN(), train_loader, test_loader, num_epochs=3, progress=False, val_loader=val_loader)
    plain = DataLoader(TensorDataset(train_loader.dataset.data, train_loader.dataset.targets), batch_size=64)
    for loader in (train_loader, plain):
        torch.manual_seed(1)
        student = train(SimpleNN(hidden=(32, 16)), loader, test_loader, num_epochs=15, val_loader=val_loader,
                        teacher=teacher, distill_weight=1.0, progress=False)
        agreement = (student(test_loader.dataset.data).argmax(1) == teacher(test_loader.dataset.data).argmax(1))
        assert agreement.float().mean() > 0.8


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("distill", [False, True])
def test_hand_written_backward_matches_autograd(activation, distill):
    import copy

    from nbprune.data import TensorLoader
    from nbprune.epoch import Trainer
    from nbprune.fast_mlp import FlatMLPTrainer
    torch.manual_seed(0)
    inputs, targets = torch.randn(640, 30), torch.randint(0, 5, (640,))
    teacher = SimpleNN((16,), in_features=30, num_classes=5) if distill else None
    reference = SimpleNN((20, 10), in_features=30, num_classes=5, activation=activation)
    fast_model = copy.deepcopy(reference)
    slow = Trainer(reference, 1e-2, 1e-4, teacher=teacher)
    fast = FlatMLPTrainer(fast_model, 1e-2, 1e-4, teacher=teacher)
    assert FlatMLPTrainer.supports(fast_model)
    for _ in range(3):
        slow_result = slow.epoch(TensorLoader(inputs, targets, 64, seed=1), torch.device("cpu"))
        fast_result = fast.epoch(TensorLoader(inputs, targets, 64, seed=1), torch.device("cpu"))
        assert fast_result == pytest.approx(slow_result, rel=1e-5)
    fast.finish()
    for (name, a), (_, b) in zip(reference.named_parameters(), fast_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert fast_model.fc1.weight.untyped_storage().data_ptr() != fast_model.fc2.weight.untyped_storage().data_ptr()


@pytest.mark.parametrize("recipe", ["reference", "default"])
def test_the_reference_recipe_keeps_its_learning_rate_and_stops_only_on_patience(recipe):
    import dataclasses

    from nbprune import RunConfig
    from nbprune.training import Stopping
    settings = dataclasses.replace(RunConfig().train, recipe=recipe, patience=4, lr_patience=1, lr_drops=3)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    stopping = Stopping(settings, optimizer)
    rates, stopped = [], None
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], start=1):
        stopping.improved(loss)
        rates.append(optimizer.param_groups[0]["lr"])
        if stopping.done and stopped is None:
            stopped = epoch
    if recipe == "reference":  # a constant rate; four epochs without a better loss after the first
        assert rates == [1e-3] * 6 and stopped == 5
    else:  # x0.2 after every second stalled epoch (lr_patience 1); patience ends it at the same epoch here
        assert rates == pytest.approx([1e-3, 1e-3, 2e-4, 2e-4, 4e-5, 4e-5]) and stopped == 5

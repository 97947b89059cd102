"""The onecycle recipe: its learning-rate schedule, its exact epoch counts, the model it keeps, and its settings
through every door (CLI, workbook, sweep), bad values refused in one line."""

import dataclasses

import pytest
import torch

from conftest import prune_argv
from nbprune import RunConfig, SimpleNN
from nbprune.cli import main
from nbprune.config import ConfigError, TrainConfig
from nbprune.course.workbook import NOTEBOOK_PARAMETERS, parse_parameters
from nbprune.files import read_table
from nbprune.session import Session
from nbprune.sweeps import build_spec, expand
from nbprune.training import fit, one_cycle_rates

CYCLE_SETTINGS = ("cycle_epochs", "dense_cycle_epochs", "cycle_batch_size", "max_lr")


@pytest.mark.parametrize("steps", [7, 40, 123])
def test_the_rates_are_torchs_one_cycle_rise_then_fall(steps):
    rates = one_cycle_rates(4e-3, steps)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=4e-3, total_steps=steps, cycle_momentum=False)
    expected = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        optimizer.step()
        schedule.step()
        expected.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx(expected, rel=1e-9)
    peak = rates.index(max(rates))
    assert max(rates) <= 4e-3 and max(rates) == pytest.approx(4e-3, rel=0.05) and rates[0] == pytest.approx(4e-3 / 25)
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))  # rises to the peak ...
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))  # ... then falls to the end
    assert rates[-1] < rates[0] / 1000


def _onecycle(**changes) -> TrainConfig:
    return dataclasses.replace(RunConfig().train, recipe="onecycle", **changes)


def test_it_trains_exactly_the_cycles_epochs_at_its_batch_size_on_that_schedule(tiny_data, tmp_path, monkeypatch):
    train_loader, val_loader, test_loader = tiny_data
    seen_rates = []
    from nbprune import fast_mlp
    original = fast_mlp.FlatMLPTrainer._adamw_step

    def recording(trainer):
        seen_rates.append(trainer.optimizer.param_groups[0]["lr"])
        original(trainer)
    monkeypatch.setattr(fast_mlp.FlatMLPTrainer, "_adamw_step", recording)
    torch.manual_seed(0)
    settings = _onecycle(cycle_epochs=3, cycle_batch_size=100, max_lr=5e-3, patience=1, epochs=1)
    fit(SimpleNN(hidden=(16,)), train_loader, val_loader, settings, test_loader=test_loader, logdir=tmp_path,
        progress=False)
    header, rows = read_table(tmp_path / "train_results.txt")
    steps_per_epoch = -(-len(train_loader.dataset) // 100)
    assert len(rows) == 3  # neither patience 1 nor epochs 1 cut the cycle short
    assert seen_rates == pytest.approx(one_cycle_rates(5e-3, 3 * steps_per_epoch))
    assert train_loader.batch_size == 64 and train_loader.epoch >= 3  # the caller's loader keeps its batch size


def test_the_model_kept_is_the_epoch_with_the_lowest_validation_loss(tiny_data, tmp_path):
    train_loader, val_loader, test_loader = tiny_data
    torch.manual_seed(1)
    model = fit(SimpleNN(hidden=(16,)), train_loader, val_loader, _onecycle(cycle_epochs=5, max_lr=0.05),
                test_loader=test_loader, logdir=tmp_path, progress=False)  # a rate high enough to make it wander
    header, rows = read_table(tmp_path / "train_results.txt")
    losses = [row[header.index("ValLoss")] for row in rows]
    from nbprune import loss_and_accuracy
    assert loss_and_accuracy(model, val_loader)[0] == pytest.approx(min(losses), rel=1e-4, abs=1e-6)
    saved = SimpleNN(hidden=(16,))
    saved.load_state_dict(torch.load(tmp_path / "best_model.pth", weights_only=True))
    assert loss_and_accuracy(saved, val_loader)[0] == pytest.approx(min(losses), rel=1e-4, abs=1e-6)


def test_a_pruning_run_from_the_command_line_trains_the_dense_and_pruned_cycles(tiny_root, tmp_path, capsys):
    pruning = tmp_path / "iterative_pruning"
    assert main(prune_argv(pruning, tiny_root, "--recipe", "onecycle", "--cycle-epochs", "2",
                           "--dense-cycle-epochs", "4", "--cycle-batch-size", "128", "--max-lr", "4e-3")) == 0
    session = Session.for_pruning_dir(pruning)
    epochs = [len(read_table(session.iteration_dir(i) / "train_results.txt")[1]) for i in range(4)]
    assert epochs == [4, 2, 2, 2]
    assert all((session.iteration_dir(i) / name).is_file() for i in range(4)
               for name in ("best_model.pth", "train_results.txt", "validation_results.txt"))


def test_the_settings_reach_the_workbook_and_the_sweep():
    assert set(CYCLE_SETTINGS) <= set(NOTEBOOK_PARAMETERS["04_iterative_pruning"])
    assert parse_parameters([["recipe", "onecycle"], ["cycle_epochs", "3"], ["max_lr", "5e-3"]]) == \
        {"recipe": "onecycle", "cycle_epochs": 3, "max_lr": 5e-3}
    chains = expand(build_spec(grid={"cycle_batch_size": [256, 512]}, fixed={"recipe": "onecycle"}))
    assert [chain.config.train.cycle_batch_size for chain in chains] == [256, 512]
    assert all(chain.config.train.recipe == "onecycle" for chain in chains)


@pytest.mark.parametrize("flag, value, expected", [
    ("--cycle-epochs", "0", "cycle_epochs='0' is not allowed: expected a whole number from 1 to 100000"),
    ("--cycle-batch-size", "big", "cycle_batch_size='big' is not allowed: expected a whole number from 1 to 65536"),
    ("--max-lr", "0", "max_lr='0' is not allowed: expected a number above 0 to 10"),
    ("--recipe", "fast", "recipe='fast' is not allowed: expected one of default, reference, onecycle"),
])
def test_bad_values_are_refused_in_one_line(flag, value, expected, capsys):
    assert main(["prune", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    with pytest.raises(ConfigError, match=f"{flag[2:].replace('-', '_')}=.* is not allowed"):
        TrainConfig(**{flag[2:].replace("-", "_"): int(value) if value.isdigit() else value})

"""A network declared by name runs through `nbprune prune --architecture`: channels and neurons shrink along the
schedule, each iteration's model file rebuilds the network it holds, and what channel pruning does not do yet is
refused in one line before anything is written; a resumed run equals an uninterrupted one."""

import json

import pytest
import torch

from nbprune.cli import main
from nbprune.files import read_table
from nbprune.layers import hidden_units
from nbprune.networkfile import network_from_file
from nbprune.session import VALIDATION_FILE, Session


def run(session_dir, tiny_root, *extra) -> int:
    return main(["prune", "--architecture", "lenet5_small", "--session-dir", str(session_dir), "--data-root",
                 str(tiny_root), "--epochs", "1", "--patience", "1", "--q", "0.5", "--end-itr", "2", "--seed", "0",
                 "--threads", "1", "--no-progress", *extra])


def test_a_short_lenet_run_prunes_channels_and_neurons_and_its_files_evaluate(tiny_root, tmp_path, capsys):
    session_dir = tmp_path / "iterative_pruning"
    assert run(session_dir, tiny_root) == 0
    session = Session.for_pruning_dir(session_dir)
    expected = [(6, 16, 120, 84), (3, 8, 60, 42), (2, 4, 30, 21)]
    for iteration, units in enumerate(expected):
        network, record = network_from_file(session.model_file(iteration))
        assert hidden_units(network) == units
        assert record.iteration == iteration and record.spec is not None and record.spec.dataset == "MNIST"
        assert record.architecture == "lenet5_small" and record.teacher is None  # the file says what it is alone
        assert network(torch.zeros(2, record.spec.features)).shape == (2, len(record.spec.classes))
    assert [record["hidden"] for record in session.summary()] == expected
    config = json.loads((session_dir / "run.json").read_text())["runs"][-1]["config"]
    assert config["architecture"] == "lenet5_small" and tuple(config["hidden"]) == expected[0]

    capsys.readouterr()
    assert main(["evaluate", str(session.model_file(2)), "--data-root", str(tiny_root), "--threads", "1"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    header, rows = read_table(session.iteration_dir(2) / VALIDATION_FILE)
    assert evaluated["hidden"] == list(expected[2])
    assert evaluated["Test_Accuracy"] == pytest.approx(rows[0][header.index("Test_Accuracy")], abs=1e-9)
    assert main(["export", str(session.model_file(2)), str(tmp_path / "export"), "--no-onnx"]) == 0
    assert (tmp_path / "export" / "best_model.pth").read_bytes() == session.model_file(2).read_bytes()


def test_a_taught_lenet_runs_files_name_their_teacher(tiny_root, tmp_path):
    from nbprune import load_data
    from nbprune.teacher import load_teacher, save_teacher, train_teacher
    data = load_data(tiny_root, download=False)
    teacher = save_teacher(train_teacher(data, 1, channels=(2, 4), head=8, progress=False), data.spec,
                           tmp_path / "teacher.pth")
    session_dir = tmp_path / "iterative_pruning"
    assert run(session_dir, tiny_root, "--teacher", str(teacher), "--end-itr", "1") == 0
    _, pruned = network_from_file(Session.for_pruning_dir(session_dir).model_file(1))
    assert pruned.teacher == {"file": str(teacher.resolve()), "sha256": load_teacher(teacher).sha256}
    assert pruned.architecture == "lenet5_small" and pruned.criterion == "interval_adjoint"


def test_global_allocation_shares_the_schedules_units_among_channels_and_neurons(tiny_root, tmp_path):
    session_dir = tmp_path / "iterative_pruning"
    assert run(session_dir, tiny_root, "--allocation", "global", "--end-itr", "1") == 0
    kept = Session.for_pruning_dir(session_dir).summary()[1]["hidden"]
    assert sum(kept) == 3 + 8 + 60 + 42 and kept != (3, 8, 60, 42)


def test_a_parameter_budget_is_met_by_channels_and_neurons_together(tiny_root, tmp_path):
    session_dir = tmp_path / "iterative_pruning"
    assert run(session_dir, tiny_root, "--allocation", "global", "--budget", "parameters", "--end-itr", "2") == 0
    summary = Session.for_pruning_dir(session_dir).summary()
    dense = summary[0]["parameters"]
    assert dense == 44_426  # lenet5_small on 28x28 images, 10 classes
    # the schedule keeps 3+8+60+42 = 113, then 2+4+30+21 = 57 of the 226 units: the same shares of the parameters
    budgets = [round(dense * 113 / 226), round(dense * 57 / 226)]
    assert all(record["parameters"] <= budget for record, budget in zip(summary[1:], budgets))
    assert summary[2]["parameters"] > budgets[1] * 0.9  # as much kept as the budget allows, about


def test_a_multiply_accumulate_budget_is_met_and_written_in_its_own_column(tiny_root, tmp_path):
    from nbprune.architectures import multiply_accumulates
    from nbprune.retention import read_retain
    session_dir = tmp_path / "iterative_pruning"
    assert run(session_dir, tiny_root, "--allocation", "global", "--budget", "macs", "--end-itr", "2") == 0
    session = Session.for_pruning_dir(session_dir)
    macs = [multiply_accumulates(network_from_file(session.model_file(i))[0]) for i in range(3)]
    budgets = [round(macs[0] * 113 / 226), round(macs[0] * 57 / 226)]  # the schedule's shares, as for parameters
    assert all(cost <= budget for cost, budget in zip(macs[1:], budgets)) and macs[2] > budgets[1] * 0.8
    steps = read_retain(session.run_retain_file)
    assert session.run_retain_file.read_text().splitlines()[0].split()[-1] == "macBudget"
    assert [step.budget for step in steps] == [macs[0], *budgets] and {step.measure for step in steps} == {"macs"}
    parameters = tmp_path / "by_parameters" / "iterative_pruning"
    assert run(parameters, tiny_root, "--allocation", "global", "--budget", "parameters", "--end-itr", "2") == 0
    assert Session.for_pruning_dir(parameters).summary()[2]["hidden"] != session.summary()[2]["hidden"]


def test_a_multiply_accumulate_budget_is_refused_for_an_mlp_before_anything_is_written(tiny_root, tmp_path, capsys):
    session_dir = tmp_path / "iterative_pruning"
    assert main(["prune", "--session-dir", str(session_dir), "--data-root", str(tiny_root), "--allocation", "global",
                 "--budget", "macs", "--end-itr", "1", "--no-progress"]) == 2
    assert "budget='macs' counts the multiply-accumulates of a network of layers" in capsys.readouterr().err
    assert not session_dir.exists()


def test_a_lenet_run_compensates_the_biases_of_what_it_removes(tiny_root, tmp_path):
    plain, mean = tmp_path / "plain" / "iterative_pruning", tmp_path / "mean" / "iterative_pruning"
    assert run(plain, tiny_root, "--end-itr", "1", "--epochs", "1") == 0
    assert run(mean, tiny_root, "--end-itr", "1", "--epochs", "1", "--bias-compensation", "mean") == 0
    shapes = [hidden_units(network_from_file(Session.for_pruning_dir(folder).model_file(1))[0])
              for folder in (plain, mean)]
    assert shapes[0] == shapes[1] == (3, 8, 60, 42)  # the same units removed; their biases differ
    assert Session.for_pruning_dir(plain).model_file(1).read_bytes() != \
        Session.for_pruning_dir(mean).model_file(1).read_bytes()


def test_a_resumed_lenet_run_equals_an_uninterrupted_one(tiny_root, tmp_path):
    whole, parts = tmp_path / "whole" / "iterative_pruning", tmp_path / "parts" / "iterative_pruning"
    assert run(whole, tiny_root) == 0
    assert run(parts, tiny_root, "--end-itr", "1") == 0
    assert run(parts, tiny_root, "--begin-itr", "auto") == 0
    for iteration in range(3):
        assert Session.for_pruning_dir(parts).model_file(iteration).read_bytes() == \
            Session.for_pruning_dir(whole).model_file(iteration).read_bytes()


@pytest.mark.parametrize("extra, message", [(["--prune-inputs"], "prune_inputs is not supported")])
def test_what_channel_pruning_does_not_do_yet_is_refused_before_anything_is_written(extra, message, tiny_root,
                                                                                     tmp_path, capsys):
    assert run(tmp_path / "iterative_pruning", tiny_root, *extra) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "iterative_pruning").exists() or not any((tmp_path / "iterative_pruning").glob("*/"))

"""Iterative pruning end to end on tiny data: the reference's tree, resume, round trip, concatenate, the CLI."""

import json

import pytest
import torch

from conftest import tree_bytes
from nbprune import evaluate, load_pruned_model, Session, SimpleNN
from nbprune.errors import ModelFileError, ScheduleError, SessionError
from nbprune.cli import main
from nbprune.config import project_root
from nbprune.files import read_table
from nbprune.iterative import IterativePruning
from nbprune.session import iteration_dir
from nbprune.report import choose_iteration, concatenate, session_summary
from nbprune.retention import read_retain, schedule

STEPS = schedule()[:3]
FILES = {"best_model.pth", "train_results.txt", "validation_results.txt"}
HEADER = ["Train_Loss", "Test_Loss", "Train_Accuracy", "Test_Accuracy", "PercentageRetain", "Parameters", "Val_Loss",
          "Val_Accuracy"]


def run_session(tiny_data, session_dir, begin_itr=0, end_itr=None):
    train_loader, val_loader, test_loader = tiny_data
    experiment = IterativePruning(train_loader, test_loader, val_loader=val_loader, progress=False,
                                  num_epochs=2, patience=2)
    torch.manual_seed(0)
    return experiment.run(SimpleNN(), STEPS, session_dir, begin_itr=begin_itr, end_itr=end_itr)


@pytest.fixture(scope="module")
def session(tiny_data, tmp_path_factory):
    session_dir = tmp_path_factory.mktemp("session") / "iterative_pruning"
    records = run_session(tiny_data, session_dir)
    return session_dir, records


def test_run_writes_exactly_the_reference_workflows_tree(session):
    session_dir, records = session
    expected = {"run.json", "retain.txt"}  # the lock is the session folder's, one level up
    for step in STEPS:
        expected |= {str(step.iteration), f"{step.iteration}/prune_w_retrain"}
        expected |= {f"{step.iteration}/prune_w_retrain/{name}" for name in FILES}
    assert set(tree_bytes(session_dir)) == expected
    assert [r["iteration"] for r in records] == [0, 1, 2]
    header, rows = read_table(iteration_dir(session_dir, 1) / "validation_results.txt")
    assert header == HEADER  # the reference workflow's five columns first, then parameters and the validation figures
    assert rows[0][4] == 80 and rows[0][5] == SimpleNN(hidden=(205, 51)).state_dict()["fc1.weight"].numel() + \
        205 + 205 * 51 + 51 + 51 * 10 + 10
    assert read_retain(session_dir / "retain.txt") == STEPS  # what each iteration kept, as run


def test_models_physically_shrink_and_reproduce_their_results(session, tiny_data):
    session_dir, _ = session
    train_loader, val_loader, test_loader = tiny_data
    for step in STEPS:
        folder = iteration_dir(session_dir, step.iteration)
        model = load_pruned_model(SimpleNN(), folder / "best_model.pth")
        assert model.hidden == step.retained
        _, rows = read_table(folder / "validation_results.txt")
        results = evaluate(model, train_loader, test_loader)
        expected = dict(zip(HEADER[:4], rows[0]))
        assert results == pytest.approx(expected, rel=1e-5)
        assert evaluate(model, val_loader, val_loader)["Test_Accuracy"] == pytest.approx(rows[0][7], rel=1e-5)


def test_every_model_file_says_what_made_it(session):
    session_dir, _ = session
    from nbprune import read_record
    dense, pruned = read_record(iteration_dir(session_dir, 0) / "best_model.pth"), \
        read_record(iteration_dir(session_dir, 2) / "best_model.pth")
    assert (dense.iteration, dense.criterion, dense.hidden) == (0, None, (256, 64))
    assert (pruned.iteration, pruned.criterion, pruned.hidden) == (2, "interval_adjoint", (164, 41))
    assert pruned.spec.dataset == "MNIST" and pruned.activation == "relu" and 0.1 < pruned.spec.mean < 0.3


def test_resume_from_an_iteration_gives_the_same_tree_results_and_bytes(session, tiny_data, tmp_path):
    session_dir, records = session
    copy_dir = tmp_path / "iterative_pruning"
    run_session(tiny_data, copy_dir, end_itr=0)
    resumed = run_session(tiny_data, copy_dir, begin_itr=1)
    assert set(tree_bytes(copy_dir)) == set(tree_bytes(session_dir))
    assert [r["Test_Accuracy"] for r in resumed] == [r["Test_Accuracy"] for r in records[1:]]
    for step in STEPS:  # same seed, same CPU: the very same bytes
        assert (iteration_dir(copy_dir, step.iteration) / "best_model.pth").read_bytes() == \
            (iteration_dir(session_dir, step.iteration) / "best_model.pth").read_bytes()
    assert run_session(tiny_data, copy_dir, begin_itr="auto") == []
    runs = Session.for_pruning_dir(copy_dir).runs()
    assert [run["begin_itr"] for run in runs] == [0, 1, "auto"]  # a resumed run appends, never erases
    assert runs[0]["end_itr"] == 0 and runs[0]["config"]["hidden"] == [256, 64]


def test_begin_itr_errors_name_the_problem_and_write_nothing(tiny_data, tmp_path):
    with pytest.raises(ScheduleError, match="begin_itr=-1 is not an iteration"):
        run_session(tiny_data, tmp_path / "s", begin_itr=-1)
    with pytest.raises(ScheduleError, match="0/prune_w_retrain/best_model.pth is missing"):
        run_session(tiny_data, tmp_path / "s", begin_itr=1)
    assert not (tmp_path / "s").exists()


def test_concatenate_writes_one_row_per_iteration_and_plots(session):
    session_dir, records = session
    out = concatenate(session_dir)
    header, rows = read_table(out / "validations.txt")
    assert header == HEADER
    assert [row[4] for row in rows] == [100, 80, 64.0625]
    assert len({tuple(row) for row in rows}) == len(rows)
    for name in ("accuracies.png", "losses.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    summary = session_summary(session_dir)
    assert [r["hidden"] for r in summary] == [s.retained for s in STEPS]
    within = [r["iteration"] for r in summary if r["Val_Accuracy"] >= max(r["Val_Accuracy"] for r in summary) - 1]
    assert choose_iteration(summary) == max(within)  # the smallest of them: sizes fall with the iteration here


@pytest.mark.parametrize("name", ["my_dir", "iterative_pruning_old"])
def test_the_reference_workflows_my_dir_of_any_name_works_for_run_and_concatenate(session, name, tmp_path, capsys):
    """experiment.run(model, data, my_dir) writes my_dir/<i>/...; concatenate(my_dir) reads the same folder."""
    import shutil
    session_dir, _ = session
    my_dir = tmp_path / name
    shutil.copytree(session_dir, my_dir)
    out = concatenate(my_dir)
    assert out == my_dir / "prune_w_retrain_results" and (out / "validations.txt").is_file()
    assert read_table(out / "validations.txt") == read_table(concatenate(session_dir) / "validations.txt")
    assert [record["iteration"] for record in session_summary(my_dir)] == [0, 1, 2]
    assert main(["concat", str(my_dir)]) == 0 and "prune_w_retrain_results" in capsys.readouterr().out
    assert not (my_dir / "iterative_pruning").exists()
    assert Session.open(my_dir.parent).pruning == my_dir.parent / "iterative_pruning"  # a folder that holds none


def test_a_session_folder_and_a_pruning_folder_still_open_as_before(session, tmp_path):
    session_dir, _ = session
    assert Session.open(session_dir.parent).pruning == session_dir  # holds iterative_pruning/
    assert Session.open(session_dir).pruning == session_dir
    assert Session.open(tmp_path / "new").pruning == tmp_path / "new" / "iterative_pruning"  # nothing there yet


def test_a_stray_folder_in_the_session_is_ignored(session, tmp_path):
    import shutil
    session_dir, _ = session
    copy_dir = tmp_path / "iterative_pruning"
    shutil.copytree(session_dir, copy_dir)
    (copy_dir / "²").mkdir()  # str.isdigit() is true for it, int() is not
    (copy_dir / "²" / "prune_w_retrain").mkdir()
    assert [record["iteration"] for record in session_summary(copy_dir)] == [0, 1, 2]
    assert concatenate(copy_dir).is_dir()


def test_a_run_from_scratch_sets_an_earlier_runs_iterations_aside_and_never_joins_them(session, tiny_data, tmp_path):
    import shutil
    session_dir, _ = session
    copy_dir = tmp_path / "iterative_pruning"
    shutil.copytree(session_dir, copy_dir)
    earlier = {name: (iteration_dir(copy_dir, 2) / name).read_bytes() for name in FILES}
    run_session(tiny_data, copy_dir, end_itr=0)  # from scratch, a shorter run
    assert Session.for_pruning_dir(copy_dir).iterations() == [0]
    aside = copy_dir / "earlier_runs" / "before_run_2"
    assert sorted(p.name for p in aside.iterdir() if p.name.isdigit()) == ["0", "1", "2"]
    assert (aside / "retain.txt").is_file()
    assert {name: (aside / "2" / "prune_w_retrain" / name).read_bytes() for name in FILES} == earlier
    runs = Session.for_pruning_dir(copy_dir).runs()
    assert [(run["run"], run["first_iteration"]) for run in runs[-1:]] == [(2, 0)]
    _, rows = read_table(concatenate(copy_dir) / "validations.txt")
    assert len(rows) == 1

    run_session(tiny_data, copy_dir, begin_itr=1, end_itr=2)  # a resume continues the run it resumes
    run_session(tiny_data, copy_dir, begin_itr=1, end_itr=1)  # ... and sets aside what came after its start
    assert Session.for_pruning_dir(copy_dir).iterations() == [0, 1]
    assert sorted(p.name for p in (copy_dir / "earlier_runs" / "before_run_4").iterdir() if p.name.isdigit()) == \
        ["1", "2"]
    _, rows = read_table(concatenate(copy_dir) / "validations.txt")
    assert [row[4] for row in rows] == [100, 80]


def test_concatenate_refuses_iterations_of_runs_that_do_not_continue_each_other(session, tmp_path):
    """A session from before runs were set aside: a 2-iteration run from scratch over a 3-iteration one."""
    import shutil
    session_dir, _ = session
    copy_dir = tmp_path / "iterative_pruning"
    shutil.copytree(session_dir, copy_dir)
    shutil.rmtree(copy_dir / "prune_w_retrain_results", ignore_errors=True)  # another test may have concatenated
    record = json.loads((copy_dir / "run.json").read_text())
    first = record["runs"][0]
    later = {key: value for key, value in first.items() if key not in ("run", "first_iteration")}
    record["runs"] = [later, dict(later, schedule=later["schedule"][:1])]
    (copy_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(SessionError, match="mixes two runs that do not continue each other: iteration 0 "
                                           "from run 2, iterations 1, 2 from the earlier run 1 .* move "
                                           "iterations 1, 2 out of"):
        concatenate(copy_dir)
    assert not (copy_dir / "prune_w_retrain_results").exists()


def test_the_curves_tick_percentages_and_label_every_iteration(session):
    from nbprune.report import plot_accuracies
    session_dir, _ = session
    figure = plot_accuracies(session_summary(session_dir))
    axes = figure.axes[0]
    figure.canvas.draw()
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    assert ticks == ["100%", "80%", "64.1%"] and not any("10^" in tick or "$" in tick for tick in ticks)
    top = axes.child_axes[0]  # the iterations along the top, in black: not the colour of any curve
    assert [label.get_text() for label in top.get_xticklabels()] == ["0", "1", "2"] and not axes.texts
    assert top.get_xlabel() == "iteration"
    assert axes.get_xlim()[0] > axes.get_xlim()[1]  # reversed: fewer nodes to the right
    assert [line.get_label() for line in axes.get_lines()] == ["train", "validation", "test"]


def test_load_refuses_a_file_of_another_architecture(session):
    session_dir, _ = session
    file = iteration_dir(session_dir, 1) / "best_model.pth"
    with pytest.raises(ModelFileError, match="784-205-51-10 relu network.*inputs 784 in the file, 100 in the model"):
        load_pruned_model(SimpleNN(in_features=100), file)
    with pytest.raises(ModelFileError, match="hidden layers 2 in the file, 3 in the model.*SimpleNN.from_file"):
        load_pruned_model(SimpleNN(hidden=(10, 10, 10)), file)
    with pytest.raises(ModelFileError, match="activation 'relu' in the file, 'sigmoid' in the model"):
        load_pruned_model(SimpleNN(activation="sigmoid"), file)
    assert SimpleNN.from_file(file).hidden == (205, 51)


def test_choose_iteration_takes_the_smallest_within_one_point_of_validation_accuracy():
    records = [{"iteration": 0, "Val_Accuracy": 98.0, "Test_Accuracy": 90.0, "parameters": 100},
               {"iteration": 1, "Val_Accuracy": 97.5, "Test_Accuracy": 99.9, "parameters": 80},
               {"iteration": 2, "Val_Accuracy": 96.5, "Test_Accuracy": 99.9, "parameters": 64}]
    assert choose_iteration(records) == 1  # the test accuracy plays no part
    with pytest.raises(Exception, match="without looking at the test set"):
        choose_iteration([{"iteration": 0, "Test_Accuracy": 98.0, "parameters": 1}])


def test_the_default_session_is_one_stable_folder_of_the_project(tmp_path, monkeypatch):
    assert Session.default().root == project_root() / "sessions" / "default"
    monkeypatch.chdir(tmp_path)
    assert Session.open(None).root == tmp_path / "sessions" / "default"
    assert Session.open(tmp_path / "s" / "iterative_pruning").root == tmp_path / "s"  # the reference workflow's my_dir
    assert Session.open(tmp_path / "s").pruning == tmp_path / "s" / "iterative_pruning"


def test_cli_prune_concat_evaluate(tiny_root, tmp_path, capsys):
    session_dir = tmp_path / "cli_session"
    args = ["prune", "--data-root", str(tiny_root), "--session-dir", str(session_dir), "--epochs", "1",
            "--end-itr", "1", "--no-progress", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    pruning = session_dir / "iterative_pruning"
    assert (pruning / "prune_w_retrain_results" / "validations.txt").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(iteration_dir(pruning, 1) / "best_model.pth"), "--data-root", str(tiny_root)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["hidden"] == [205, 51] and printed["dataset"] == "MNIST" and 0 <= printed["Val_Accuracy"] <= 100
    assert main(["prune", "--data-root", str(tiny_root), "--session-dir", str(session_dir), "--begin-itr", "22"]) == 2
    assert "begin_itr=22 is not an iteration" in capsys.readouterr().err
    assert main(["concat", str(session_dir)]) == 0


def test_cli_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--help"])
    assert exit_info.value.code == 0
    assert "--begin-itr" in capsys.readouterr().out


def test_a_train_function_in_the_reference_workflows_shape_gets_only_its_own_arguments(tiny_data, tmp_path):
    from nbprune import train
    calls = []

    def reference_train(model, train_loader, test_loader, lr=1e-3, num_epochs=300, patience=10, logdir=None,
                        save_model=True):
        calls.append((num_epochs, logdir))
        return train(model, train_loader, test_loader, lr, num_epochs, patience, logdir, save_model, progress=False,
                     val_loader=train_loader)

    train_loader, _, test_loader = tiny_data
    with pytest.warns(UserWarning, match="no val_loader"):
        experiment = IterativePruning(train_loader, test_loader, reference_train, evaluate, num_epochs=1,
                                      progress=False)
    experiment.run(SimpleNN(), STEPS[:2], tmp_path / "iterative_pruning")
    assert [epochs for epochs, _ in calls] == [1, 1]
    assert all((iteration_dir(tmp_path / "iterative_pruning", i) / "best_model.pth").is_file() for i in (0, 1))
    header, _ = read_table(iteration_dir(tmp_path / "iterative_pruning", 1) / "validation_results.txt")
    assert header == HEADER[:6]  # without a validation split there are no validation columns


def test_a_train_function_of_ones_own_gets_the_reference_workflows_arguments_whatever_it_declares(tiny_data):
    calls = []

    def own_train(model, train_loader, test_loader, **options):
        calls.append(sorted(options))
        return model

    train_loader, val_loader, test_loader = tiny_data
    experiment = IterativePruning(train_loader, test_loader, own_train, evaluate, val_loader=val_loader,
                                  progress=False)
    experiment.prune(SimpleNN(), STEPS[1].retained, STEPS[1].percentage)
    assert calls == [["logdir", "lr", "num_epochs", "patience"]]  # told explicitly, never by its signature

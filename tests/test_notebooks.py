"""The workbook: the committed notebooks' structure, parameters, widgets, and a papermill run of all six."""

import json
from pathlib import Path

import nbformat
import papermill
import pytest
import torch

from conftest import needs_mnist
from nbprune import NbpruneError, ScheduleError
from nbprune.cli import main
from nbprune.io import read_table
from nbprune.iterative import iteration_dir
from nbprune.report import choose_iteration, session_summary
from nbprune.retention import read_retain
from nbprune.widgets import IterationPicker, ScheduleEditor
from nbprune.workbook import NOTEBOOKS, PARAMETERS, PROFILES, notebooks_path, parse_parameters, run_workbook

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
TINY = {"subset": 2000, "end_itr": 2, "epochs": 1, "patience": 1, "demo_epochs": 1, "chosen_itr": 1}


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def parameters_cells(notebook) -> list:
    return [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]


# --- the committed notebooks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_carries_no_outputs(name):
    for cell in read(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip the outputs of {cell.source!r}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_has_exactly_one_parameters_cell_and_it_is_the_first_code_cell(name):
    notebook = read(name)
    cells = parameters_cells(notebook)
    assert len(cells) == 1, f"{name} has {len(cells)} cells tagged parameters, expected exactly one"
    assert cells[0] is next(cell for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_opens_with_a_title_and_an_explanation(name):
    first = read(name).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert first.source.count("\n\n") >= 2, f"{name}: open with a few paragraphs on what the step does and why"


def test_notebooks_declare_exactly_the_batch_parameters():
    declared = {name: set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))) for name in NOTEBOOKS}
    for name, names in declared.items():
        assert names <= set(PARAMETERS), f"{name} declares {names - set(PARAMETERS)}, unknown to parse_parameters"
    assert set().union(*declared.values()) == set(PARAMETERS)
    for profile in PROFILES.values():
        assert set(profile) <= set(PARAMETERS)
    assert PROFILES["full"] == {"epochs": 300, "patience": 10}


def test_notebooks_folder_is_found_from_the_checkout():
    assert notebooks_path() == NOTEBOOK_DIR
    with pytest.raises(NbpruneError, match="notebooks_dir"):
        notebooks_path(NOTEBOOK_DIR.parent / "nowhere")


# --- parameters -----------------------------------------------------------------------------------------------
def test_parse_parameters_gives_each_knob_its_type():
    pairs = [["epochs", "3"], ["q", "0.7"], ["hidden", "128,32"], ["end_itr", "None"], ["begin_itr", "auto"],
             ["session_dir", "/tmp/s"], ["criterion", "magnitude"], ["data_root", "7"], ["chosen_itr", "4"],
             ["distill", "false"]]
    assert parse_parameters(pairs) == {"epochs": 3, "q": 0.7, "hidden": [128, 32], "end_itr": None,
                                       "begin_itr": "auto", "session_dir": "/tmp/s", "criterion": "magnitude",
                                       "data_root": "7", "chosen_itr": 4, "distill": False}
    assert parse_parameters([["hidden", "[512, 128, 32]"], ["begin_itr", "5"]]) == {"hidden": [512, 128, 32],
                                                                                  "begin_itr": 5}


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(NbpruneError, match="unknown notebook parameter 'epoch'.*epochs.*patience"):
        parse_parameters([["epoch", "3"]])


@pytest.mark.parametrize("pair", [["epochs", "many"], ["epochs", "2.5"], ["begin_itr", "later"], ["q", "[1]"],
                                  ["hidden", "wide"], ["epochs", "None"], ["distill", "maybe"]])
def test_bad_parameter_values_are_refused(pair):
    with pytest.raises(NbpruneError, match=pair[0]):
        parse_parameters([pair])


def test_cli_exits_2_on_a_bad_parameter_or_profile(capsys):
    assert main(["workbook", "-p", "epoch", "3"]) == 2
    assert "unknown notebook parameter 'epoch'" in capsys.readouterr().err
    with pytest.raises(NbpruneError, match="profile"):
        run_workbook(profile="slow")


# --- batch runs, on stand-in notebooks (no MNIST needed) ------------------------------------------------------
def stand_in(title: str, parameters: str, body: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), cell, nbformat.v4.new_code_cell(body)]
    return notebook


def test_a_failing_notebook_stops_the_run_with_its_error_and_executed_copy(tmp_path):
    source = tmp_path / "notebooks"
    source.mkdir()
    record = ("import json, pathlib\n"
              "seen = {'session_dir': session_dir, 'epochs': epochs, 'undeclared': 'subset' in globals()}\n"
              "pathlib.Path(session_dir, 'seen.json').write_text(json.dumps(seen))")
    bodies = {"01_data": record, "02_model": "1 / 0"}
    for name in NOTEBOOKS:
        nbformat.write(stand_in(name, "session_dir = None\nepochs = 0", bodies.get(name, "pass")),
                       source / f"{name}.ipynb")
    session = tmp_path / "session"
    with pytest.raises(NbpruneError) as failure:
        run_workbook(session, parameters={"subset": 10}, notebooks_dir=source)
    message = str(failure.value)
    copy = session / "notebooks" / "02_model.ipynb"
    assert "02_model" in message and "ZeroDivisionError" in message and str(copy) in message
    assert "\n" not in message
    assert copy.is_file() and not (session / "notebooks" / "03_retention.ipynb").exists()
    seen = json.loads((session / "seen.json").read_text())
    assert seen == {"session_dir": str(session.resolve()), "epochs": PROFILES["quick"]["epochs"], "undeclared": False}


# --- widgets ---------------------------------------------------------------------------------------------------
def test_schedule_editor_follows_its_sliders_and_saves_the_chosen_schedule(tmp_path):
    editor = ScheduleEditor(hidden=(256, 64), q=0.8, iterations=31, dir=tmp_path)
    before = [bytes(plot.value) for plot in editor.plots]
    assert all(value.startswith(b"\x89PNG") for value in before)
    editor.q.value = 0.7
    assert all(bytes(plot.value) != old for plot, old in zip(editor.plots, before))
    editor.sizes[1].value = 32
    editor.iterations.value = 10
    editor.save()
    steps = read_retain(tmp_path / "retain.txt")
    assert steps[0].retained == (256, 32) and steps[1].retained == (179, 22) and steps[-1].iteration == 9
    assert (tmp_path / "pruneNodesIteration.png").is_file() and (tmp_path / "pruneNodesDistribution.png").is_file()
    with pytest.raises(ScheduleError, match="q="):
        ScheduleEditor(q=1.5)


def fake_records() -> list[dict]:
    return [{"iteration": i, "hidden": (256 // 2 ** i, 64 // 2 ** i), "parameters": 200_000 // 2 ** i,
             "PercentageRetain": 100 / 2 ** i, "Train_Accuracy": 99 - i, "Test_Accuracy": 98 - i,
             "Train_Loss": 0.1 * (i + 1), "Test_Loss": 0.2 * (i + 1)} for i in (0, 1, 2, 4)]


def test_iteration_picker_describes_and_marks_the_chosen_iteration(tmp_path):
    picker = IterationPicker(fake_records(), 1)
    assert "iteration 1: 128 + 32 hidden neurons" in picker.summary.value
    before = [bytes(plot.value) for plot in picker.plots]
    picker.slider.value = 4
    assert all(bytes(plot.value) != old for plot, old in zip(picker.plots, before))
    assert picker.value == 4 and picker.record["hidden"] == (16, 4)
    assert "iteration 4:" in picker.summary.value
    accuracy, loss = picker.figures()
    assert "iteration 4" in [text.get_text() for text in accuracy.axes[0].get_legend().get_texts()]
    assert [path.name for path in picker.save(tmp_path)] == ["chosen_accuracies.png", "chosen_losses.png"]
    with pytest.raises(NbpruneError, match="has not finished"):
        IterationPicker(fake_records(), 3)


# --- the six notebooks on the real MNIST ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    """Run the whole workbook with tiny parameters: 2,000 images, one epoch, iterations 0..2; return the session."""
    session = tmp_path_factory.mktemp("workbook") / "session"
    run_workbook(session, parameters=TINY)
    return session


@needs_mnist
def test_every_notebook_ran_and_left_an_executed_copy(workbook):
    for name in NOTEBOOKS:
        notebook = nbformat.read(workbook / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
        errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
                  if output.output_type == "error"]
        assert not errors, f"{name}: {errors}"


@needs_mnist
def test_01_data_leaves_samples_class_balance_and_the_split(workbook):
    assert (workbook / "data" / "samples.png").is_file() and (workbook / "data" / "class_balance.png").is_file()
    split = json.loads((workbook / "data" / "split.json").read_text())
    assert (split["train"], split["validation"], split["test"]) == (2000, 5000, 2000)
    assert 0.1 < split["mean"] < 0.2 and 0.25 < split["std"] < 0.35


@needs_mnist
def test_02_model_leaves_the_architecture_and_a_short_training_run(workbook):
    assert "total:" in (workbook / "model" / "architecture.txt").read_text()
    _, rows = read_table(workbook / "model" / "train_results.txt")
    assert len(rows) == 1
    assert (workbook / "model" / "best_model.pth").is_file()


@needs_mnist
def test_03_retention_leaves_the_seeds_schedule_and_plots(workbook):
    steps = read_retain(workbook / "retain" / "retain.txt")
    assert steps[:2] == [(0, (256, 64), 100.0), (1, (205, 51), 80.0)]
    assert {p.name for p in (workbook / "retain").iterdir()} >= {"pruneNodesIteration.png",
                                                                   "pruneNodesDistribution.png"}


@needs_mnist
def test_04_pruning_leaves_three_iterations_and_the_curves(workbook):
    pruning = workbook / "iterative_pruning"
    for iteration in (0, 1, 2):
        assert {p.name for p in iteration_dir(pruning, iteration).iterdir()} == {
            "best_model.pth", "train_results.txt", "validation_results.txt"}
    assert not (pruning / "3").exists()
    results = pruning / "prune_w_retrain_results"
    assert len(read_table(results / "validations.txt")[1]) == 3
    assert (results / "accuracies.png").is_file() and (results / "losses.png").is_file()
    assert (pruning / "significance_layer1.png").is_file()
    config = json.loads((pruning / "run.json").read_text())["config"]
    assert config["subset"] == 2000 and 0.1 < config["mean"] < 0.2


@needs_mnist
def test_05_test_records_the_chosen_iteration(workbook):
    chosen = json.loads((workbook / "test" / "chosen.json").read_text())
    assert chosen["iteration"] == TINY["chosen_itr"] and chosen["hidden"] == [205, 51]
    assert 0 <= chosen["Test_Accuracy"] <= 100
    assert choose_iteration(session_summary(workbook / "iterative_pruning")) in (0, 1, 2)
    assert (workbook / "test" / "chosen_accuracies.png").is_file()


@needs_mnist
def test_06_deploy_leaves_a_standalone_folder_of_the_chosen_model(workbook):
    folder = workbook / "deploy" / "standalone"
    assert {"best_model.pth", "model.py", "loader.py", "predict.py"} <= {p.name for p in folder.iterdir()}
    chosen = iteration_dir(workbook / "iterative_pruning", TINY["chosen_itr"]) / "best_model.pth"
    assert (folder / "best_model.pth").read_bytes() == chosen.read_bytes()
    assert (workbook / "deploy" / "predictions.png").is_file()
    assert torch.load(folder / "best_model.pth", weights_only=True)["fc1.weight"].shape == (205, 784)

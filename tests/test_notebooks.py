"""The workbook: the committed notebooks' structure, parameters, widgets, and a papermill run of all nine."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import torch

from conftest import session_held_elsewhere, tree_bytes, wait_for, write_stand_ins
from nbprune import NbpruneError, read_record, Session
from nbprune.errors import ConfigError, ScheduleError, SessionError
from nbprune.cli import main
from nbprune.files import read_table
from nbprune.session import iteration_dir
from nbprune.report import choose_iteration, session_summary
from nbprune.retention import read_retain
from nbprune.course.widgets import IterationPicker, ScheduleEditor
from nbprune.course.workbook import (NOTEBOOK_PARAMETERS, NOTEBOOKS, PARAMETERS, PROFILES, notebooks_path,
                                     parameters_source, parse_parameters, run_workbook)

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


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cells_are_built_from_the_configuration(name):
    cell = parameters_cells(read(name))[0]
    assert cell.source == parameters_source(name), \
        f"run `python -m nbprune.course.workbook sync` to rebuild {name}'s cell"
    declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert list(declared) == list(NOTEBOOK_PARAMETERS[name])


def test_notebooks_declare_exactly_the_batch_parameters():
    declared = {name: set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))) for name in NOTEBOOKS}
    assert set().union(*declared.values()) == set(PARAMETERS)
    for profile in PROFILES.values():
        assert set(profile) <= set(PARAMETERS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_code_cells_are_a_few_lines_and_import_from_few_modules(name):
    for cell in read(name).cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            lines = [line for line in cell.source.splitlines() if line.strip()]
            assert len(lines) <= 12, f"{name}: a cell of {len(lines)} lines: {cell.source[:80]!r}"
            modules = {line.split()[1] for line in lines if line.startswith("from nbprune")}
            assert len(modules) <= 5, f"{name} imports from {sorted(modules)}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_figure_a_cell_draws_is_shown_not_only_saved(name):
    # the course's figures are matplotlib Figures, not pyplot's: IPython shows one only as a cell's last top-level
    # expression or through display(); one drawn anywhere else is saved to its file and never seen in the notebook
    import ast

    drawn = ("plot_", "show_inputs")
    for cell in read(name).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%")))
        last = tree.body[-1] if tree.body else None
        shown = {id(last.value)} if isinstance(last, ast.Expr) else set()
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.IfExp):
            shown |= {id(last.value.body), id(last.value.orelse)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "display":
                shown |= {id(argument) for argument in node.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").startswith(drawn):
                assert id(node) in shown, f"{name}: {node.func.id} draws a figure the cell never shows"


def test_notebooks_folder_is_found_from_the_checkout():
    assert notebooks_path() == NOTEBOOK_DIR
    with pytest.raises(NbpruneError, match="notebooks_dir"):
        notebooks_path(NOTEBOOK_DIR.parent / "nowhere")


# --- parameters -----------------------------------------------------------------------------------------------
def test_parse_parameters_gives_each_knob_its_type():
    pairs = [["epochs", "3"], ["q", "0.7"], ["hidden", "128,32"], ["end_itr", "None"], ["begin_itr", "auto"],
             ["session_dir", "/tmp/s"], ["criterion", "magnitude"], ["data_root", "7"], ["chosen_itr", "4"],
             ["distill", "false"], ["dataset", "FashionMNIST"], ["activation", "sigmoid"]]
    assert parse_parameters(pairs) == {"epochs": 3, "q": 0.7, "hidden": (128, 32), "end_itr": None,
                                       "begin_itr": "auto", "session_dir": "/tmp/s", "criterion": "magnitude",
                                       "data_root": "7", "chosen_itr": 4, "distill": False,
                                       "dataset": "FashionMNIST", "activation": "sigmoid"}
    assert parse_parameters([["hidden", "[512, 128, 32]"], ["begin_itr", "5"]]) == {"hidden": (512, 128, 32),
                                                                                  "begin_itr": 5}


def test_unknown_parameter_names_the_allowed_ones():
    with pytest.raises(NbpruneError, match="unknown notebook parameter 'epoch'.*epochs.*patience"):
        parse_parameters([["epoch", "3"]])
    with pytest.raises(NbpruneError, match="'retain' is not a workbook parameter: 03_retention makes the schedule"):
        parse_parameters([["retain", "x.txt"]])


@pytest.mark.parametrize("pair", [["epochs", "many"], ["epochs", "2.5"], ["begin_itr", "later"], ["q", "[1]"],
                                  ["hidden", "wide"], ["epochs", "None"], ["distill", "maybe"], ["dataset", "CIFAR"]])
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


@pytest.mark.slow
def test_a_failing_notebook_stops_the_run_with_its_error_and_executed_copy(tmp_path, tiny_root):
    source = tmp_path / "notebooks"
    source.mkdir()
    record = ("import json, pathlib\n"
              "seen = {'session_dir': session_dir, 'seed': seed, 'undeclared': 'epochs' in globals()}\n"
              "pathlib.Path(session_dir, 'seen.json').write_text(json.dumps(seen))")
    bodies = {"01_data": record, "02_model": "1 / 0"}
    for name in NOTEBOOKS:
        nbformat.write(stand_in(name, "session_dir = None\nseed = 0", bodies.get(name, "pass")),
                       source / f"{name}.ipynb")
    session = tmp_path / "session"
    with pytest.raises(NbpruneError) as failure:
        run_workbook(session, parameters={"seed": 5, "epochs": 2, "data_root": str(tiny_root)}, notebooks_dir=source)
    message = str(failure.value)
    copy = session / "notebooks" / "02_model.ipynb"
    assert "02_model" in message and "ZeroDivisionError" in message and str(copy) in message
    assert "\n" not in message
    assert copy.is_file() and not (session / "notebooks" / "03_retention.ipynb").exists()
    seen = json.loads((session / "seen.json").read_text())
    assert seen == {"session_dir": str(session.resolve()), "seed": 5, "undeclared": False}


def test_the_workbook_never_runs_into_the_folder_of_its_own_notebooks(tmp_path, tiny_root):
    checkout = tmp_path / "checkout"
    source = write_stand_ins(checkout / "notebooks")
    before = tree_bytes(tmp_path)
    for session in (checkout, source, checkout / "iterative_pruning", tmp_path):
        with pytest.raises(SessionError, match=f"holds the workbook's own notebooks \\({source}\\): their executed "
                                               f"copies would replace them"):
            run_workbook(session, parameters={"data_root": str(tiny_root)}, notebooks_dir=source)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "notebooks").symlink_to(source)
    before = tree_bytes(tmp_path)
    with pytest.raises(SessionError, match=f"{NOTEBOOKS[0]}.ipynb is the workbook's own notebook"):
        run_workbook(linked, parameters={"data_root": str(tiny_root)}, notebooks_dir=source)
    assert tree_bytes(tmp_path) == before


@pytest.mark.slow
def test_a_successful_workbook_interrupts_no_kernel_and_keeps_kernel_output_off_the_terminal(tmp_path, tiny_root,
                                                                                             monkeypatch, capfd):
    from jupyter_client.manager import KernelManager
    interrupted = []
    original = KernelManager._async_interrupt_kernel

    async def spy(self):
        interrupted.append(self)
        await original(self)
    monkeypatch.setattr(KernelManager, "_async_interrupt_kernel", spy)
    noisy = "import sys\nprint('kernel noise', file=sys.__stderr__, flush=True)"
    source = write_stand_ins(tmp_path / "notebooks", {name: noisy for name in NOTEBOOKS})
    run_workbook(tmp_path / "session", parameters={"data_root": str(tiny_root)}, notebooks_dir=source)
    assert interrupted == []  # an interrupt makes ipykernel log "ERROR | KeyboardInterrupt caught in kernel"
    assert "kernel noise" not in capfd.readouterr().err


def test_a_bad_parameter_writes_nothing(tmp_path):
    with pytest.raises(NbpruneError, match="lr=-1.0 is not allowed"):
        run_workbook(tmp_path / "session", parameters={"lr": -1.0})
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SessionError, match="is a file"):
        run_workbook(blocker, parameters={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# --- widgets ---------------------------------------------------------------------------------------------------
def test_schedule_editor_saves_what_its_sliders_show_at_every_move(tmp_path):
    editor = ScheduleEditor(hidden=(256, 64), q=0.8, iterations=31, dir=tmp_path, max_hidden=(256, 64))
    assert read_retain(tmp_path / "retain.txt")[1].retained == (205, 51)  # saved as soon as it is shown
    before = [bytes(plot.value) for plot in editor.plots]
    assert all(value.startswith(b"\x89PNG") for value in before)
    editor.q.value = 0.7
    assert all(bytes(plot.value) != old for plot, old in zip(editor.plots, before))
    editor.sizes[1].value = 32
    editor.iterations.value = 10
    steps = read_retain(tmp_path / "retain.txt")  # no save cell to rerun: the file follows the sliders
    assert steps[0].retained == (256, 32) and steps[1].retained == (179, 22) and steps[-1].iteration == 9
    assert (tmp_path / "pruneNodesIteration.png").is_file() and (tmp_path / "pruneNodesDistribution.png").is_file()
    assert "saved" in editor.status.value and "10 iterations" in editor.status.value
    with pytest.raises(ScheduleError, match="q="):
        ScheduleEditor(q=1.5)


def test_schedule_sliders_cannot_go_beyond_the_model_notebook_02_trained(tmp_path):
    editor = ScheduleEditor(hidden=(300, 100, 50), dir=tmp_path, max_hidden=(300, 100, 50))
    assert [slider.max for slider in editor.sizes] == [300, 100, 50] and len(editor.sizes) == 3
    editor.sizes[2].value = 500  # a widget clamps a value beyond its maximum
    assert editor.sizes[2].value == 50 and read_retain(tmp_path / "retain.txt")[0].retained == (300, 100, 50)
    with pytest.raises(NbpruneError, match="do not fit the model's \\[256, 64\\].*Rerun 02_model"):
        ScheduleEditor(hidden=(512, 64), dir=tmp_path, max_hidden=(256, 64))


def fake_records() -> list[dict]:
    return [{"iteration": i, "hidden": (256 // 2 ** i, 64 // 2 ** i), "parameters": 200_000 // 2 ** i,
             "PercentageRetain": 100 / 2 ** i, "Train_Accuracy": 99 - i, "Test_Accuracy": 98 - i,
             "Val_Accuracy": 97.5 - i, "Train_Loss": 0.1 * (i + 1), "Test_Loss": 0.2 * (i + 1),
             "Val_Loss": 0.15 * (i + 1)} for i in (0, 1, 2, 4)]


def test_iteration_picker_records_each_choice_for_06(tmp_path):
    choice = tmp_path / "test" / "chosen.json"
    picker = IterationPicker(fake_records(), 1, choice_file=choice, model_files={1: "one.pth", 4: "four.pth"})
    assert json.loads(choice.read_text())["iteration"] == 1
    picker.slider.value = 4
    assert json.loads(choice.read_text()) == {"iteration": 4, "model_file": "four.pth", "hidden": [16, 4],
                                              "parameters": 12_500, "Val_Accuracy": 93.5, "Test_Accuracy": 94}
    picker.write_choice(Test_Loss=0.5)
    assert json.loads(choice.read_text())["Test_Loss"] == 0.5


def test_iteration_picker_describes_and_marks_the_chosen_iteration(tmp_path):
    picker = IterationPicker(fake_records(), 1)
    assert "iteration 1: 128 + 32 hidden neurons" in picker.summary.value
    assert "validation accuracy 96.50% (the run's best 97.50% at iteration 0; dense 97.50%)" in picker.summary.value
    assert "test accuracy shown once the choice is written" in picker.summary.value  # validation chooses
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


@pytest.mark.mnist
def test_every_notebook_ran_and_left_an_executed_copy(workbook):
    for name in NOTEBOOKS:
        notebook = nbformat.read(workbook / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
        errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
                  if output.output_type == "error"]
        assert not errors, f"{name}: {errors}"
    for name in NOTEBOOKS:  # the first cell after the parameters says which folder the notebook uses
        executed = nbformat.read(workbook / "notebooks" / f"{name}.ipynb", as_version=4)
        setup_cell = next(cell for cell in executed.cells if cell.cell_type == "code" and not
                          {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", [])))
        printed = "".join(output.get("text", "") for output in setup_cell.get("outputs", []))
        assert f"session folder: {workbook.resolve()} (session_dir)" in printed, name


@pytest.mark.mnist
def test_00_intervals_leaves_the_primers_picture(workbook):
    assert (workbook / "intervals" / "primer.png").is_file()


@pytest.mark.mnist
def test_01_data_leaves_samples_class_balance_and_the_split(workbook):
    assert (workbook / "data" / "samples.png").is_file() and (workbook / "data" / "class_balance.png").is_file()
    split = json.loads((workbook / "data" / "split.json").read_text())
    assert (split["train"], split["validation"], split["test"], split["dataset"]) == (2000, 5000, 2000, "MNIST")
    assert 0.1 < split["mean"] < 0.2 and 0.25 < split["std"] < 0.35


@pytest.mark.mnist
def test_02_model_leaves_the_architecture_and_a_short_training_run(workbook):
    assert "total:" in (workbook / "model" / "architecture.txt").read_text()
    _, rows = read_table(workbook / "model" / "train_results.txt")
    assert len(rows) == 1
    assert read_record(workbook / "model" / "best_model.pth").hidden == (256, 64)


@pytest.mark.mnist
def test_03_retention_leaves_the_reference_workflows_schedule_and_plots(workbook):
    steps = read_retain(workbook / "retain" / "retain.txt")
    assert [(s.iteration, s.retained, s.percentage) for s in steps[:2]] == [(0, (256, 64), 100.0), (1, (205, 51), 80.0)]
    assert {p.name for p in (workbook / "retain").iterdir()} >= {"pruneNodesIteration.png",
                                                                   "pruneNodesDistribution.png"}


@pytest.mark.mnist
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
    assert (pruning / "significance_distribution.png").is_file() and (pruning / "width_against_range.png").is_file()
    config = Session(workbook).runs()[-1]["config"]
    assert config["subset"] == 2000 and config["epochs"] == 1 and config["threads"] == 1


@pytest.mark.mnist
def test_05_test_records_the_chosen_iteration(workbook):
    chosen = json.loads((workbook / "test" / "chosen.json").read_text())
    assert chosen["iteration"] == TINY["chosen_itr"] and chosen["hidden"] == [205, 51]
    assert 0 <= chosen["Test_Accuracy"] <= 100 and 0 <= chosen["Val_Accuracy"] <= 100
    summary = session_summary(workbook / "iterative_pruning")
    within = [r["iteration"] for r in summary if r["Val_Accuracy"] >= max(r["Val_Accuracy"] for r in summary) - 1]
    assert choose_iteration(summary) == max(within)  # what 05 would choose without chosen_itr
    assert (workbook / "test" / "chosen_accuracies.png").is_file()


@pytest.mark.mnist
def test_06_deploy_leaves_a_standalone_folder_of_the_chosen_model(workbook):
    folder = workbook / "deploy" / "standalone"
    assert {"best_model.pth", "model.py", "loader.py", "predict.py"} <= {p.name for p in folder.iterdir()}
    chosen = iteration_dir(workbook / "iterative_pruning", TINY["chosen_itr"]) / "best_model.pth"
    assert (folder / "best_model.pth").read_bytes() == chosen.read_bytes()
    assert (workbook / "deploy" / "predictions.png").is_file()
    assert torch.load(folder / "best_model.pth", weights_only=True)["fc1.weight"].shape == (205, 784)


@pytest.mark.mnist
def test_07_compare_leaves_a_table_of_every_method_at_the_default_levels_and_its_figure(workbook):
    with open(workbook / "compare" / "comparison.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["method"] for row in rows} == {"interval_adjoint", "magnitude", "taylor", "random", "scratch"}
    assert sorted({int(row["level"]) for row in rows}) == [6, 10, 13]  # nearest 25%, 10% and 5% of the neurons
    assert len(rows) == 30 and (workbook / "compare" / "comparison.png").is_file()  # two seeds by default
    printed = executed_text(workbook, "07_compare")
    assert "one budget of at most 3 epochs from random weights for every network: the pruned ones inherit the " \
           "dense model's 1 and retrain for at most 2, scratch trains for at most 3" in printed  # quick: 2 in 07
    assert "mean over 2 seeds" in printed and "Against the project's benchmark" in printed


@pytest.mark.mnist
def test_08_conv_prunes_lenet5_channels_in_a_session_of_its_own_and_exports_the_choice(workbook):
    conv = Session(workbook / "conv")
    assert conv.iterations() == [0, 1, 2]  # end_itr reaches 08 too
    assert [record["hidden"] for record in conv.finished()] == [(20, 50, 500), (10, 25, 250), (5, 12, 125)]
    config = conv.runs()[-1]["config"]
    assert config["architecture"] == "lenet5" and config["subset"] == 2000 and config["epochs"] == 1
    assert (conv.pruning / "conv1_filters.png").is_file() and (conv.results / "validations.txt").is_file()
    assert (conv.part("deploy") / "standalone" / "model_torchscript.pt").is_file()
    printed = executed_text(workbook, "08_conv")
    assert "every gradient inside the interval adjoint: True" in printed
    library, exported = (printed.split(what)[1].split("%")[0] for what in ("the library's network ",
                                                                           "the exported predict.py "))
    assert library == exported


def executed_text(workbook, name: str) -> str:
    """Return everything an executed notebook's code cells printed, one output after another."""
    notebook = nbformat.read(workbook / "notebooks" / f"{name}.ipynb", as_version=4)
    return "\n".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                     for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


@pytest.mark.mnist
def test_executed_copies_keep_no_finished_inner_bar_and_no_blank_output(workbook):
    for name in NOTEBOOKS:
        notebook = nbformat.read(workbook / "notebooks" / f"{name}.ipynb", as_version=4)
        streams = [output.text for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
                   if output.output_type == "stream"]
        assert not [text for text in streams if not text.strip()], f"{name}: an output holding only a newline"
    printed = executed_text(workbook, "04_iterative_pruning")
    assert printed.count("pruning iterations: 100%") == 1 and "epochs" not in printed  # the inner bars are gone
    assert "epochs: 100%" in executed_text(workbook, "02_model")  # a bar on its own stays


@pytest.mark.mnist
def test_04_measures_what_removing_each_last_layer_neuron_costs_and_where_constant_pixels_lie(workbook):
    printed = executed_text(workbook, "04_iterative_pruning")
    assert "Spearman's rank correlation of the significance with the loss increase each removal causes" in printed
    assert "in the four corner squares" in printed
    assert "rank correlation with weight magnitude: hidden layer 1" in printed
    assert (workbook / "iterative_pruning" / "removal_against_significance.png").is_file()
    assert "its TorchScript copy: 208+64" in executed_text(workbook, "06_deploy")  # 205+51 padded to 16s


@pytest.mark.mnist
def test_the_workbook_runs_fashion_mnist_with_three_sigmoid_layers_and_every_method_option(tmp_path):
    from nbprune import RunConfig
    from nbprune.course import load_data_for
    from nbprune.teacher import load_teacher, save_teacher, train_teacher
    session = tmp_path / "fashion"
    data = load_data_for(RunConfig.from_flat(dataset="FashionMNIST", subset=TINY["subset"]))
    teacher = save_teacher(train_teacher(data, 1, channels=(4, 8), head=16, progress=False), data.spec,
                           tmp_path / "teacher.pth")  # 04 distils from a teacher file when given one
    options = {"prune_inputs": True, "allocation": "global", "budget": "parameters", "bias_compensation": "mean",
               "adjoint_seeds": "class_sum", "input_boxes": "local", "box_count": 64, "teacher": str(teacher)}
    run_workbook(session, parameters={**TINY, "dataset": "FashionMNIST", "hidden": (300, 100, 50),
                                      "activation": "sigmoid", "chosen_itr": None, "end_itr": 1, **options})
    taught = read_record(iteration_dir(session / "iterative_pruning", 1) / "best_model.pth").teacher
    assert taught == load_teacher(teacher).record()
    assert read_retain(session / "retain" / "retain.txt")[1].retained == (240, 80, 40)
    ran = read_retain(session / "iterative_pruning" / "retain.txt")  # what the run chose, inputs included
    assert ran[1].inputs < 784 and ran[1].budget < ran[0].budget
    assert (session / "iterative_pruning" / "kept_pixels.png").is_file()
    assert (session / "iterative_pruning" / "input_mask.png").is_file()
    chosen = json.loads((session / "test" / "chosen.json").read_text())
    record = read_record(chosen["model_file"])
    assert record.activation == "sigmoid" and len(record.hidden) == 3 and record.spec.dataset == "FashionMNIST"
    readme = (session / "deploy" / "standalone" / "README.md").read_text()
    assert "FashionMNIST classifier" in readme and "Ankle boot" in readme


# --- what a student meets -----------------------------------------------------------------------------------------
def test_a_missing_step_is_named_with_the_notebook_that_makes_it_and_the_session_folder(tmp_path):
    from nbprune import RunConfig
    from nbprune.course.workbook import trained_model
    session = Session(tmp_path / "yesterday")
    with pytest.raises(SessionError, match=f"model/best_model.pth is missing in the session folder "
                                           f"{session.root.resolve()}: run notebook 02_model first"):
        trained_model(session, RunConfig())
    with pytest.raises(SessionError, match="retain/retain.txt is missing.*03_retention"):
        session.require(session.retain_file, "retain")
    with pytest.raises(SessionError, match="no finished pruning iteration in the session folder .*04_iterative"):
        session.finished()


def test_a_notebook_refuses_a_dataset_other_than_the_one_02_trained_on(tmp_path):
    from nbprune import RunConfig, SimpleNN
    from nbprune.data import InputSpec
    from nbprune.datasets import DATASETS
    from nbprune.modelfile import save_model_file
    from nbprune.course.workbook import trained_model
    session = Session(tmp_path / "s")
    model = SimpleNN()
    model.spec = InputSpec("FashionMNIST", DATASETS["FashionMNIST"].classes, 0.286, 0.353, 784)
    save_model_file(model, session.dense_model_file)
    assert trained_model(session, RunConfig.from_flat(dataset="FashionMNIST")).spec.dataset == "FashionMNIST"
    with pytest.raises(ConfigError, match="02_model trained this session's model on FashionMNIST, but this "
                                          "notebook's dataset is MNIST: set dataset = 'FashionMNIST'"):
        trained_model(session, RunConfig())


def test_a_workbook_on_a_session_a_prune_holds_is_refused_before_any_notebook_runs(tmp_path):
    session = tmp_path / "busy"
    session.mkdir()
    with session_held_elsewhere(session / "iterative_pruning") as holder:  # as `nbprune prune` holds it
        with pytest.raises(SessionError, match=f"is in use by another nbprune run \\(PID {holder.pid}\\)"):
            run_workbook(session, parameters=TINY)
        assert not (session / "notebooks").exists()


HOLDS_THE_LOCK = """
import pathlib, time
from nbprune import Session
with Session(session_dir).lock():  # the workbook holds it: its kernels share it
    pathlib.Path(session_dir, 'entered').write_text('')
while not pathlib.Path(session_dir, 'go').exists():
    time.sleep(0.02)
"""


@pytest.mark.slow
def test_one_lock_for_every_door_the_workbooks_kernels_share_it_and_every_other_process_is_refused(tmp_path,
                                                                                                   tiny_root):
    source = write_stand_ins(tmp_path / "notebooks", {"01_data": HOLDS_THE_LOCK})
    session = tmp_path / "session"
    run = ("import sys\nfrom nbprune.course.workbook import run_workbook\n"
           "run_workbook(sys.argv[1], parameters={'data_root': sys.argv[2]}, notebooks_dir=sys.argv[3])")
    workbook = subprocess.Popen([sys.executable, "-c", run, str(session), str(tiny_root), str(source)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for((session / "entered").exists, workbook, "01's kernel entered the workbook's lock")
        doors = {"prune": ["-m", "nbprune.cli", "prune", "--session-dir", str(session), "--data-root", str(tiny_root),
                           "--hidden", "8", "--epochs", "1"],
                 "concat": ["-m", "nbprune.cli", "concat", str(session)],
                 "a notebook by hand": ["-c", "import sys\nfrom nbprune.course.workbook import setup\n"
                                              "setup('05_test', {'session_dir': sys.argv[1]})", str(session)]}
        for door, argv in doors.items():
            done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=900)
            assert done.returncode != 0, door
            assert f"is in use by another nbprune run (PID {workbook.pid})" in done.stderr, (door, done.stderr)
        assert not (session / "iterative_pruning").exists()
    finally:
        session.mkdir(exist_ok=True)
        (session / "go").write_text("")
        _, err = workbook.communicate(timeout=900)
    assert workbook.returncode == 0, err


def test_a_choice_past_the_last_iteration_is_refused_before_any_notebook_runs(tmp_path):
    with pytest.raises(ConfigError, match="chosen_itr=8 comes after end_itr=4: 05_test can only choose an iteration "
                                          "04 runs"):
        run_workbook(tmp_path / "s", parameters={**TINY, "chosen_itr": 8, "end_itr": 4})
    assert not (tmp_path / "s").exists()


def test_the_default_session_is_found_again_on_another_day():
    notebook = read("05_test")
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "today" not in code and "date" not in code
    assert parameters_cells(notebook)[0].source.startswith("session_dir = None")
    assert Session.open(None).root.name == "default"


@pytest.mark.slow
def test_jupyters_pre_save_hook_keeps_the_tracked_notebooks_free_of_outputs(tmp_path):
    """Save notebooks through a real Jupyter server: the workbook's lose their outputs, any other keeps them."""
    import re
    import shutil
    import socket
    import urllib.request

    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    (root / "nbprune").mkdir()
    (root / "nbprune" / "workbook.py").write_text("")
    shutil.copy(NOTEBOOK_DIR / "03_retention.ipynb", root / "notebooks" / "03_retention.ipynb")
    executed = read("03_retention")  # as Lab saves it after a run: outputs, widget state, ids, kernel details
    for number, cell in enumerate(executed.cells):
        cell["id"] = f"cell-{number}"
        cell.metadata["trusted"] = True
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
            cell.execution_count = 1
    executed.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    executed.metadata["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    executed.metadata["language_info"].update(version="3.11.7", mimetype="text/x-python", file_extension=".py")
    executed.nbformat_minor = 5
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbprune.json"
    assert installed.read_bytes() == (NOTEBOOK_DIR.parent / "jupyter-config" / "jupyter_server_config.d" /
                                      "nbprune.json").read_bytes(), "the set-up (make) installs the hook's config"
    log = tmp_path / "server.log"
    with open(log, "w") as stream:  # port 0: the system picks a free port, and the server says which
        server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", "--port=0",
                                   "--ServerApp.ip=127.0.0.1", "--ServerApp.token=t", f"--ServerApp.root_dir={root}",
                                   "--ServerApp.allow_root=True"], stdout=subprocess.DEVNULL, stderr=stream)
    try:
        listening = re.compile(r"http://127\.0\.0\.1:([0-9]+)/")
        wait_for(lambda: listening.search(log.read_text()), server, "the server said where it listens")
        port = int(listening.search(log.read_text()).group(1))

        def accepts() -> bool:  # the URL can be printed a moment before the socket takes connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                return True
            except OSError:
                return False
        wait_for(accepts, server, "the server accepted a connection")

        def put(path: str, content) -> None:
            body = json.dumps({"type": "notebook", "format": "json", "content": content}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/{path}?token=t", data=body,
                                             method="PUT", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=900).read()
        put("notebooks/03_retention.ipynb", executed)
        put("mine.ipynb", executed)
    finally:
        server.terminate()
        server.wait(timeout=900)
    saved = root / "notebooks" / "03_retention.ipynb"
    assert saved.read_bytes() == (NOTEBOOK_DIR / "03_retention.ipynb").read_bytes()  # git sees no change at all
    theirs = nbformat.read(root / "mine.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in theirs.cells)

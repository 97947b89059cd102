"""The course in 01, 02, 03, 05 and 06: exercises checked, 05's choice rule, and executed copies that show what ran."""

import os
import re
import warnings

import nbformat
import papermill
import pytest
import torch

from nbprune import NbpruneError, RunConfig, Session, SimpleNN, load_data
from nbprune.course.exercises import check, exercises_of, solution
from nbprune.iterative import IterativePruning
from nbprune.progress import HEADLESS, FinishedLine, headless_kernels, progress_bar
from nbprune.report import best_validation, choose_iteration, draw_choice, plot_accuracies
from nbprune.retention import read_retain
from nbprune.course.widgets import IterationPicker, ScheduleEditor
from nbprune.course.workbook import notebooks_path

NOTEBOOKS = ("01", "02", "03", "05", "06")
TINY_MODEL = SimpleNN((43, 11))


def context(key: str) -> dict:
    """Return what exercise `key`'s checker needs from the student's run (here: made by hand), as the notebook
    passes it."""
    standardisation = {"mean": 0.1307, "std": 0.3081}
    image = {"image": torch.linspace(-0.4, 2.8, 784), "classes": [str(k) for k in range(10)]}
    return {"01.1": standardisation, "01.2": standardisation, "02.2": {"model": SimpleNN((256, 64))},
            "02.3": {"model": SimpleNN((256, 64))}, "02.4": {"losses": [0.30, 0.25, 0.26]},
            "03.4": {"hidden": (256, 64)}, "05.3": {"records": undertrained_dense()},
            "06.1": {"model": TINY_MODEL}, "06.2": {"model": TINY_MODEL, "dense_parameters": 218_058},
            "06.3": {"model": TINY_MODEL, **image}}.get(key, {})


def wrong(answer):
    """Return an answer that differs from `answer` and has its type."""
    if isinstance(answer, str):
        return "test" if answer != "test" else "train"
    if isinstance(answer, list):
        return answer[:-1]
    return answer + 1


def keys() -> list[str]:
    return [key for notebook in NOTEBOOKS for key in exercises_of(notebook)]


def test_each_notebook_has_three_to_five_exercises():
    for notebook in NOTEBOOKS:
        assert 3 <= len(exercises_of(notebook)) <= 5, notebook


@pytest.mark.parametrize("key", keys())
def test_every_solution_is_accepted_and_a_wrong_answer_refused(key):
    answer = solution(key, **context(key))
    verdict = check(key, answer, **context(key))
    assert verdict.right, f"{key}: {verdict}"
    refused = check(key, wrong(answer), **context(key))
    assert not refused.right and str(refused).startswith("not yet"), f"{key}: {refused}"
    unanswered = check(key, None, **context(key))  # the notebook's cell before the student writes anything
    assert not unanswered.right


UNREADABLE = {"huge": 10 ** 400, "inf": float("inf"), "minus_inf": -float("inf"), "nan": float("nan"),
              "text": "abc", "huge_list": [10 ** 400], "object": object(), "fractions": [26.9, 28.9, 30.9, 31.9]}


@pytest.mark.parametrize("answer", list(UNREADABLE))
@pytest.mark.parametrize("key", keys())
def test_an_answer_that_is_no_number_of_the_kind_asked_is_a_verdict_never_an_exception(key, answer):
    verdict = check(key, UNREADABLE[answer], **context(key))
    assert not verdict.right and str(verdict).startswith("not yet"), f"{key}: {verdict}"


def test_a_fraction_is_not_a_whole_iteration_and_a_whole_float_is():
    assert not check("03.2", [26.9, 28.9, 30.9, 31.9])  # int() would truncate them to the solution
    assert "26.9 is not a whole number" in str(check("03.2", [26.9, 28.9, 30.9, 31.9]))
    assert check("03.2", [26.0, 28.0, 30.0, 31.0]) and check("03.2", ["26", "28", "30", "31"])


def test_an_infinite_expected_value_is_met_by_that_infinity_only():
    from nbprune.course.exercises import close, same_interval
    assert not close(5, float("inf"), "the bound") and not close(float("-inf"), float("inf"), "the bound")
    assert close(float("inf"), float("inf"), "the bound")
    assert not same_interval((0, 1), float("-inf"), float("inf"), "the box")
    assert same_interval((float("-inf"), float("inf")), float("-inf"), float("inf"), "the box")


@pytest.mark.parametrize("key", [None, "99.1", "3.1", 3.1, ""])
def test_an_unknown_exercise_is_a_verdict_naming_the_known_ones(key):
    verdict = check(key, 61)
    assert not verdict.right and f"no exercise {key!r}: expected a key like '04.2' (known: 00.1," in str(verdict)
    with pytest.raises(NbpruneError, match="no exercise"):
        solution(key)


def test_the_solutions_are_the_numbers_worked_by_hand():
    assert solution("01.1", mean=0.1307, std=0.3081) == pytest.approx(-0.1307 / 0.3081)
    assert solution("01.2", mean=0.1307, std=0.3081) == pytest.approx((1 - 0.1307) / 0.3081)
    assert solution("01.3") == "validation"
    assert solution("02.1") == 784 * 100 + 100 + 100 * 10 + 10 == 79_510
    assert solution("02.2", model=SimpleNN((256, 64))) == 784 * 128 + 128 + 128 * 32 + 32 + 32 * 10 + 10 == 104_938
    assert solution("02.3", model=SimpleNN((256, 64))) == 784 + 1 + 64 == 849
    assert solution("03.1") == 61  # 256 * 0.7**4 = 61.47
    assert solution("03.2") == [26, 28, 30, 31]
    assert solution("03.3") == 14  # 64 * 0.75**14 = 1.14
    assert (solution("05.1"), solution("05.2")) == (3, 5)
    assert solution("06.1", model=TINY_MODEL) == 784 * 48 + 48 + 48 * 16 + 16 + 16 * 10 + 10  # 43+11 padded: 48+16
    assert solution("06.2", model=TINY_MODEL, dense_parameters=218_058) == pytest.approx(100 * 35_210 / 218_058)


def test_the_exercises_that_replaced_01_to_03s_questions_to_think_about():
    assert solution("01.4") == [5000, 5000, 5000]  # validation drawn first from all 60,000: subset leaves it alone
    assert solution("02.4", losses=[0.30, 0.25, 0.26]) == 2 and solution("02.4", losses=[0.3, 0.2, 0.1]) == 3
    assert solution("02.4", losses=[0.30, 0.29995, 0.2]) == 3  # 0.29995 is not better by min_delta = 1e-4
    assert "nothing to choose" in check("02.4", 1, losses=[0.3]).message
    assert solution("03.4", hidden=(256, 64)) == 49  # 256 * 0.9**48 = 1.63 rounds to 2, 256 * 0.9**49 = 1.47 to 1
    assert "23 at q = 0.8" in check("03.4", 49, hidden=(256, 64)).message  # retain.txt's rows at q = 0.8: 0..21, 24
    assert solution("03.4", hidden=(16, 8)) == 23  # 16 * 0.9**23 = 1.42


# --- 05's rule ----------------------------------------------------------------------------------------------
def undertrained_dense() -> list[dict]:
    """A quick-profile-like run: the dense model (iteration 0) is beaten by the retrained iterations 1-4."""
    accuracies = [(96.64, 96.5), (97.8, 97.6), (98.2, 98.04), (97.9, 97.8), (97.6, 97.3), (97.0, 96.9),
                  (96.9, 96.6), (96.7, 96.42), (95.0, 94.8)]
    return [{"iteration": i, "hidden": (256 - 20 * i, 64 - 5 * i), "parameters": 218_058 - 20_000 * i,
             "PercentageRetain": 100 - 9 * i, "Train_Accuracy": val + 1, "Val_Accuracy": val, "Test_Accuracy": test,
             "Train_Loss": 0.1, "Val_Loss": 0.2, "Test_Loss": 0.2} for i, (val, test) in enumerate(accuracies)]


def test_the_rule_measures_from_the_runs_best_and_warns_when_the_dense_model_is_not_it():
    records = undertrained_dense()
    with pytest.warns(UserWarning, match=r"the dense model \(iteration 0, validation accuracy 96.64%\) is not the "
                                         r"run's best: iteration 2 reached 98.20%.*epochs and patience"):
        chosen = choose_iteration(records)
    assert chosen == 4  # 97.6 >= 98.2 - 1; from the dense model's 96.64 the bar would let iteration 7 through
    assert best_validation(records)["iteration"] == 2
    with pytest.warns(UserWarning):
        narrower = choose_iteration(records, tolerance=0.3), choose_iteration(records, tolerance=0)
    assert narrower == (3, 2)


def test_the_rule_is_silent_when_the_dense_model_is_the_best_and_ignores_test_accuracy():
    records = [{"iteration": 0, "Val_Accuracy": 98.0, "Test_Accuracy": 90.0, "parameters": 100},
               {"iteration": 1, "Val_Accuracy": 97.5, "Test_Accuracy": 99.9, "parameters": 80},
               {"iteration": 2, "Val_Accuracy": 96.5, "Test_Accuracy": 99.9, "parameters": 64}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_iteration(records) == 1


@pytest.mark.parametrize("tolerance", [-1, float("nan"), float("inf"), "1"])
def test_the_rule_refuses_a_tolerance_that_is_not_a_number_of_points(tolerance):
    with pytest.raises(NbpruneError, match=r"tolerance .* expected a finite number >= 0"):
        choose_iteration(undertrained_dense(), tolerance)


def test_the_plot_shades_the_band_and_zooms_to_the_choice():
    records = undertrained_dense()
    figure = draw_choice(plot_accuracies(records), records, 1.0)
    axes = figure.axes[0]
    band = axes.patches[0].get_extents().transformed(axes.transData.inverted())  # (x0, y0), (x1, y1) in data
    assert band.y0 == pytest.approx(97.2) and band.y1 == pytest.approx(98.2)
    assert "validation within 1 point of the best (98.20%)" in [text.get_text()
                                                                 for text in axes.get_legend().get_texts()]
    low, high = axes.get_ylim()
    assert 94.8 < low < 97.2 < high < 100  # zoomed: iteration 8's 94.8% is off the chart, the band is in it
    assert axes.get_xlim()[1] > records[-1]["PercentageRetain"]


def test_iteration_labels_never_overlap_however_close_the_iterations_lie():
    records = [{**record, "PercentageRetain": share} for record, share in
               zip(undertrained_dense(), (100, 80, 64, 51, 41, 2.19, 1.88, 1.87, 1.56))]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    figure = plot_accuracies(records)
    FigureCanvasAgg(figure).draw()  # lay the labels out where a saved picture has them
    top = figure.axes[0].child_axes[0]
    labels = [label for label in top.get_xticklabels() if label.get_text()]
    boxes = [label.get_window_extent() for label in labels]
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:])), [label.get_text() for label in labels]
    assert "7" not in [label.get_text() for label in labels]  # 1.87% lies on 1.88%'s label: left out
    assert {"0", "5", "6", "8"} <= {label.get_text() for label in labels}


def test_the_picker_shows_no_test_curve_or_accuracy_until_the_choice_is_saved(tmp_path):
    records = undertrained_dense()
    with pytest.warns(UserWarning):
        picker = IterationPicker(records, choose_iteration(records))
    assert "test accuracy" not in picker.summary.value.replace("test accuracy shown once the choice is written", "")
    for figure in picker.figures():
        assert "test" not in [line.get_label() for line in figure.axes[0].get_lines()]
    picker.save(tmp_path)  # the choice made: now the test curves are drawn, and saved
    assert all("test" in [line.get_label() for line in figure.axes[0].get_lines()]
               for figure in picker.figures(test=True))
    assert (tmp_path / "chosen_accuracies.png").is_file()


def test_the_picker_describes_against_the_runs_best():
    records = undertrained_dense()
    with pytest.warns(UserWarning):
        picker = IterationPicker(records, choose_iteration(records))
    assert "validation accuracy 97.60% (the run's best 98.20% at iteration 2; dense 96.64%)" in picker.summary.value


# --- executed copies: finished bars, static pictures ------------------------------------------------------------
def test_a_headless_bar_prints_one_finished_line_in_one_write_and_an_inner_bar_nothing(capsys, monkeypatch):
    import io
    monkeypatch.setenv(HEADLESS, "1")
    bar = progress_bar(total=3, desc="iterations", unit="iteration")
    assert isinstance(bar, FinishedLine)
    for _ in range(2):
        bar.update()
    assert capsys.readouterr().out == ""  # nothing while it runs
    writes = []
    monkeypatch.setattr(bar, "fp", type("Stream", (io.StringIO,), {"write": lambda self, text: writes.append(text)})())
    bar.close()
    writes = [text for text in writes if text]
    assert len(writes) == 1 and writes[0].endswith("\n") and writes[0].count("\n") == 1  # one output, no blank line
    assert "iterations (stopped after 2 of 3): 100%" in writes[0] and "\r" not in writes[0]
    outer = progress_bar(range(2), desc="iterations")
    for _ in outer:  # leave=None: an inner bar disappears when done, a bar on its own stays
        inner = progress_bar(total=3, desc="epochs", unit="epoch", leave=None)
        inner.update()
        inner.close()
    printed = capsys.readouterr().out
    assert "epochs" not in printed and printed.count("\n") == 1 and "iterations: 100%" in printed
    alone = progress_bar(total=1, desc="epochs", leave=None)
    alone.update()
    alone.close()
    assert "epochs: 100%" in capsys.readouterr().out
    monkeypatch.setenv(HEADLESS, "0")
    assert not isinstance(progress_bar(range(2), disable=True), FinishedLine)


def test_a_live_inner_bar_that_stops_early_closes_as_finished_so_tqdm_hides_it(monkeypatch):
    import io
    monkeypatch.delenv(HEADLESS, raising=False)
    bar = progress_bar(total=5, desc="epochs", leave=False, file=io.StringIO())
    bar.update(2)
    bar.close()  # tqdm.notebook leaves a red bar for a total not reached, and hides a finished one
    assert (bar.n, bar.total) == (2, 2) and bar.desc.startswith("epochs (stopped after 2 of 5)")


def test_headless_kernels_mark_only_the_block():
    before = os.environ.get(HEADLESS)
    with headless_kernels():
        assert os.environ[HEADLESS] == "1"
    assert os.environ.get(HEADLESS) == before


def shown(control, monkeypatch) -> list:
    import IPython.display
    displayed = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **options: displayed.extend(objects))
    control._ipython_display_()
    return displayed


def test_controls_show_static_pictures_headless_and_their_widget_live(tmp_path, monkeypatch):
    import IPython.display
    monkeypatch.delenv(HEADLESS, raising=False)
    editor = ScheduleEditor(dir=tmp_path, iterations=5)
    assert shown(editor, monkeypatch) == [editor.widget]
    monkeypatch.setenv(HEADLESS, "1")
    picker = IterationPicker(undertrained_dense(), 4)
    for control in (editor, picker):
        caption, *pictures = shown(control, monkeypatch)
        assert "text/html" in caption and len(pictures) == 2
        assert all(isinstance(p, IPython.display.Image) and p.data[:4] == b"\x89PNG" for p in pictures)


def run_notebook(name: str, out, **parameters) -> nbformat.NotebookNode:
    with headless_kernels():
        papermill.execute_notebook(str(notebooks_path() / f"{name}.ipynb"), str(out), kernel_name="python3",
                                   parameters=parameters, progress_bar=False)
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def executed(tiny_root, tmp_path_factory):
    """Run 02, 03 and 05 headless (as `nbprune workbook` does) on tiny data, 04's pruning by the library between;
    return the executed copies."""
    root = tmp_path_factory.mktemp("course")
    session = Session.open(root / "session")
    data_options = {"session_dir": str(session.root), "data_root": str(tiny_root), "val_size": 100}
    copies = {"02": run_notebook("02_model", root / "02.ipynb", **data_options, hidden=[16, 8], demo_epochs=2)}
    copies["03"] = run_notebook("03_retention", root / "03.ipynb", session_dir=str(session.root), q=0.5,
                                iterations=3)
    data = load_data(tiny_root, val_size=100, download=False)
    config = RunConfig.from_flat({"epochs": 1, "patience": 1, "threads": 1})
    IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config).run(
        SimpleNN((16, 8)), read_retain(session.retain_file), session.pruning)
    copies["05"] = run_notebook("05_test", root / "05.ipynb", **data_options)
    return copies


def outputs(notebook) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def text_of(output) -> str:
    return output.get("text", "") or output.get("data", {}).get("text/plain", "")


@pytest.mark.slow
def test_executed_copies_show_their_figures(executed):
    for name in ("03", "05"):
        images = [output for output in outputs(executed[name]) if "image/png" in output.get("data", {})]
        assert len(images) >= 2, f"{name}: {len(images)} pictures"
        widgets = [output for output in outputs(executed[name])
                   if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
        assert not widgets, f"{name}: a widget saved where a picture belongs"


@pytest.mark.slow
def test_executed_copies_carry_finished_progress_lines_and_no_zero_percent_bar(executed):
    printed = "\n".join(text_of(output) for notebook in executed.values() for output in outputs(notebook))
    assert not re.search(r"(?<![\d.])0%\|", printed), "a progress bar saved before it moved"
    assert re.search(r"epochs: 100%\|█+\| 2/2 ", printed), printed


@pytest.mark.slow
def test_05_states_the_rule_and_what_validation_is(executed):
    printed = "\n".join(text_of(output) for output in outputs(executed["05"]))
    assert "the run's best validation accuracy" in printed and "the rule chooses iteration" in printed
    text = "\n".join(cell.source for cell in executed["05"].cells if cell.cell_type == "markdown")
    assert "optimistic" in text and "run's best" in text

"""08_conv: the hand-sized convolution through nbprune.layers' rules, its sampled check, the exercises' checkers, the
workbook's architecture parameter (08's alone), and the notebook run headless: prune, resume, concat, choose,
evaluate and export of a LeNet in <session>/conv."""

import json
import math

import nbformat
import papermill
import pytest

from conftest import write_stand_ins
from nbprune.course.conv import (CONV, as_grid, conv_session, hand_box, hand_network, hand_passes,
                                 require_architecture, sampled_check, shape_lines, shapes)
from nbprune.course.exercises import check, exercises_of, solution
from nbprune.course.workbook import (NOTEBOOK_PARAMETERS, OWN_DEFAULTS, checked_run, notebooks_path,
                                     parameters_source, parse_parameters, run_workbook)
from nbprune.cli import main
from nbprune.errors import ConfigError, ScheduleError
from nbprune.interval import Interval
from nbprune.layers import hidden_units
from nbprune.networkfile import network_from_file
from nbprune.progress import headless_kernels
from nbprune.session import Session


# --- the hand example ---------------------------------------------------------------------------------------------
def test_the_hand_example_gives_the_numbers_worked_on_paper():
    passes = hand_passes(hand_network(), hand_box())
    assert as_grid(passes.convolved) == [[(-1, 0), (1, 3)], [(-2, -1), (2, 3)]]
    assert as_grid(passes.pooled) == [[(2, 3)]]
    assert as_grid(passes.convolved_adjoint) == [[(0, 0), (0, 1)], [(0, 0), (0, 1)]]
    assert as_grid(passes.input_adjoint) == [[(0, 0), (0, 1), (0, 0), (-1, 0)], [(0, 0), (0, 2), (0, 0), (-2, 0)],
                                             [(0, 0), (0, 2), (0, 0), (-2, 0)], [(0, 0), (0, 1), (0, 0), (-1, 0)]]


def test_sampling_the_box_confirms_the_enclosure_and_catches_one_that_is_too_narrow():
    network, box = hand_network(), hand_box()
    passes = hand_passes(network, box)
    assert sampled_check(network, box, passes) == (2000, True, True)
    narrow_output = passes._replace(convolved=Interval(passes.convolved.lower, passes.convolved.lower))
    assert not sampled_check(network, box, narrow_output).outputs_inside
    upper = passes.input_adjoint.upper
    narrow_adjoint = passes._replace(input_adjoint=Interval(upper, upper))  # as if y01 were always the maximum
    assert not sampled_check(network, box, narrow_adjoint).derivatives_inside


def test_in_the_hand_box_y11_is_always_a_maximum_and_y01_wins_only_the_ties_where_its_pixel_is_1():
    # what 08's step 3 says: the intervals [1, 3] and [2, 3] overlap, but y01 - y11 = u - 1 <= 0 (u: pixel (0, 1));
    # at a tie torch's max-pool passes the seed to y01, the first of the tied inputs, so the hull [0, 1] is needed
    import torch

    network, box = hand_network(), hand_box()
    pixels = (box.lower + torch.rand((500, *box.shape[1:]), dtype=torch.float64,
                                     generator=torch.Generator().manual_seed(0)).round() * box.width)  # corners
    convolved = network[0](pixels).requires_grad_()
    network[1](convolved).sum().backward()
    y01, y11, u = convolved[:, 0, 0, 1].detach(), convolved[:, 0, 1, 1].detach(), pixels[:, 0, 0, 1]
    assert torch.equal(y01 - y11, u - 1) and (u == 1).any() and (u == 0).any()
    assert torch.equal(convolved.grad[:, 0, 0, 1], (u == 1).double())  # the seed reaches y01 at the ties only


@pytest.mark.parametrize("rows", [(), ("10", "1"), ("1x", "00")])
def test_a_hand_image_that_is_not_rows_of_0_1_u_is_refused(rows):
    with pytest.raises(ValueError, match="expected rows of equal length"):
        hand_box(rows)


# --- the exercises ------------------------------------------------------------------------------------------------
def test_08_has_five_exercises_and_each_solution_is_the_number_worked_by_hand():
    assert exercises_of("08") == ["08.1", "08.2", "08.3", "08.4", "08.5"]
    assert solution("08.1") == (-3, -1)
    assert solution("08.2") == (1, 4)
    assert solution("08.3") == [(0, 1), (0, 0), (0, 1), (0, 1)]
    assert solution("08.4") == (8 * 25 + 8) + (20 * 8 * 25 + 20) + (20 * 16 * 150 + 150) + (150 * 10 + 10)
    assert solution("08.5") == 8 * 25 * 24 * 24


def test_08s_counting_exercises_ask_about_a_shape_the_notebook_never_prints():
    from nbprune.architectures import ARCHITECTURES
    from nbprune.course.exercises.conv import PRUNED_SHAPE
    from nbprune.datasets import DEFAULT
    from nbprune.retention import schedule

    own = OWN_DEFAULTS["08_conv"]
    dense = hidden_units(ARCHITECTURES[own["architecture"]](DEFAULT))
    printed = [tuple(step.retained) for step in schedule(dense, own["q"], range(own["end_itr"] + 1))]
    assert (20, 50, 500) in printed and (5, 12, 125) in printed  # the run's table and figure show these shapes
    assert (*PRUNED_SHAPE[0], *PRUNED_SHAPE[1]) not in printed  # so 08.4's count is not read off them


WRONG = {"08.1": ((-3, 0), "A negative weight takes an uncertain pixel's upper end"),
         "08.2": ((-2, 4), "the maximum of the four lower ends"),
         "08.3": ([(0, 1)] * 4, "An input that never is gets 0"),
         "08.4": (53_000, "fc1 reads conv2's channels x 16 features"),
         "08.5": (8 * 25 * 28 * 28, "28 - 5 + 1 times per side")}


@pytest.mark.parametrize("key", sorted(WRONG))
def test_a_right_answer_is_accepted_and_a_wrong_one_refused_with_a_hint(key):
    assert check(key, solution(key)).right
    answer, hint = WRONG[key]
    verdict = check(key, answer)
    assert not verdict.right and hint in str(verdict), str(verdict)
    assert not check(key, None).right


@pytest.mark.parametrize("answer", [float("nan"), "abc", 10 ** 400, [1.5], object(), 27_027.5])
@pytest.mark.parametrize("key", sorted(WRONG))
def test_an_unreadable_answer_is_a_verdict_never_an_exception(key, answer):
    verdict = check(key, answer)
    assert not verdict.right and str(verdict).startswith("not yet")


# --- the workbook's door ------------------------------------------------------------------------------------------
def test_architecture_is_a_parameter_of_08_alone_with_its_own_defaults_in_its_cell():
    assert parse_parameters([["architecture", "lenet5_small"]]) == {"architecture": "lenet5_small"}
    for only_08 in ("architecture", "aggregation"):
        assert [name for name, names in NOTEBOOK_PARAMETERS.items() if only_08 in names] == ["08_conv"]
    assert parse_parameters([["aggregation", "sum"]]) == {"aggregation": "sum"}
    cell = parameters_source("08_conv")
    for name, value in OWN_DEFAULTS["08_conv"].items():
        assert f"\n{name} = {json.dumps(value)} " in f"\n{cell}", name
    assert "subset = None" in parameters_source("04_iterative_pruning")  # 08's defaults stay 08's
    with pytest.raises(ConfigError, match="architecture"):
        parse_parameters([["architecture", "resnet18"]])


def test_a_workbook_without_an_architecture_for_08_is_refused_in_one_line_before_anything_is_written(tiny_root,
                                                                                                     tmp_path):
    stand_ins = write_stand_ins(tmp_path / "notebooks")
    parameters = {"data_root": str(tiny_root), "val_size": 100}
    with pytest.raises(ConfigError) as refused:
        checked_run(tmp_path / "session", "quick", {**parameters, "architecture": None}, stand_ins)
    message = str(refused.value)
    assert "\n" not in message and "architecture=None is not allowed: 08_conv prunes a network declared by name" in \
        message and "lenet5, lenet5_small" in message
    assert not (tmp_path / "session").exists()
    values, _, _ = checked_run(tmp_path / "session", "quick", {**parameters, "architecture": "lenet5_small"},
                               stand_ins)
    assert values["architecture"] == "lenet5_small"


@pytest.mark.slow
def test_08s_resume_is_checked_in_its_own_session_before_any_notebook_runs(tiny_root, tmp_path):
    session_dir = tmp_path / "session"
    assert main(["prune", "--session-dir", str(session_dir), "--data-root", str(tiny_root), "--val-size", "100",
                 "--hidden", "16", "8", "--epochs", "1", "--patience", "1", "--end-itr", "1", "--threads", "1",
                 "--no-progress"]) == 0  # 04's chain has iterations 0 and 1: begin_itr=2 is fine for 04
    parameters = {"data_root": str(tiny_root), "val_size": 100, "hidden": (16, 8), "begin_itr": 2,
                  "architecture": "lenet5_small"}
    with pytest.raises(ScheduleError, match=f"begin_itr=2 needs iteration 1's model, but {session_dir / CONV}"):
        checked_run(session_dir, "quick", parameters, write_stand_ins(tmp_path / "notebooks"))
    assert not (session_dir / CONV).exists()


def test_08_refuses_the_mlp_in_one_line_naming_the_architectures():
    assert require_architecture("lenet5_small") == "lenet5_small"
    with pytest.raises(ConfigError, match="^architecture=None is not allowed: 08_conv prunes a network declared by "
                                          "name, expected one of lenet5, lenet5_small; the MLP notebooks"):
        require_architecture(None)


@pytest.mark.slow
def test_the_workbook_hands_architecture_to_08_and_to_no_other_notebook(tiny_root, tmp_path):
    bodies = {name: "assert 'architecture' not in globals()" for name in NOTEBOOK_PARAMETERS}
    bodies["08_conv"] = "assert architecture == 'lenet5_small', architecture"
    stand_ins = write_stand_ins(tmp_path / "notebooks", bodies)
    run_workbook(tmp_path / "session", parameters={"architecture": "lenet5_small", "data_root": str(tiny_root),
                                                   "val_size": 100}, notebooks_dir=stand_ins)


# --- the notebook, headless -----------------------------------------------------------------------------------------
def run_08(out, session_dir, tiny_root, **parameters) -> nbformat.NotebookNode:
    with headless_kernels():
        papermill.execute_notebook(str(notebooks_path() / "08_conv.ipynb"), str(out), kernel_name="python3",
                                   progress_bar=False, parameters={
                                       "session_dir": str(session_dir), "data_root": str(tiny_root), "val_size": 100,
                                       "architecture": "lenet5_small", "epochs": 1, "patience": 1, **parameters})
    return nbformat.read(out, as_version=4)


def printed(notebook) -> str:
    return "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)


@pytest.mark.slow
def test_08_prunes_resumes_chooses_and_exports_a_lenet_in_a_session_of_its_own(tiny_root, tmp_path):
    session_dir = tmp_path / "session"
    first = run_08(tmp_path / "first.ipynb", session_dir, tiny_root, end_itr=1)
    conv = conv_session(Session.open(session_dir))
    assert conv.root == session_dir / CONV and conv.iterations() == [0, 1]
    assert not (session_dir / "iterative_pruning").exists()  # 04's chain is elsewhere
    assert "2 iterations ran" in printed(first)

    resumed = run_08(tmp_path / "resumed.ipynb", session_dir, tiny_root, begin_itr="auto", end_itr=2)
    text = printed(resumed)
    assert "1 iterations ran" in text and conv.iterations() == [0, 1, 2]
    assert [hidden_units(network_from_file(conv.model_file(k))[0]) for k in range(3)] == [
        (6, 16, 120, 84), (3, 8, 60, 42), (2, 4, 30, 21)]
    assert [run["begin_itr"] for run in conv.runs()] == [0, "auto"]
    rows = shapes(conv)
    assert [row.parameters for row in rows] == [record["parameters"] for record in conv.finished()]
    assert shape_lines(rows)[0].split()[:5] == ["iteration", "conv1", "conv2", "fc1", "fc2"]  # lenet5_small
    assert shape_lines(rows)[3].split()[:5] == ["2", "2", "4", "30", "21"]
    assert "2,000 images of the box" in text
    assert "the cut from iteration 0 to 1 keeps conv1 filters" in text
    for figure in ("conv1_filters.png", "accuracy_against_parameters.png"):
        assert (conv.pruning / figure).is_file()
    assert (conv.results / "validations.txt").is_file()
    assert (conv.part("deploy") / "standalone" / "predict.py").is_file()
    library, exported = (float(text.split(what)[1].split("%")[0]) for what in ("the library's network ",
                                                                                "the exported predict.py "))
    assert library == exported and math.isfinite(library)
    errors = [output for cell in resumed.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors

"""07_compare: the criteria compared on a session's own dense model, its reading of the table, its exercises and its
notebook, on a tiny synthetic session."""

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch

from conftest import session_held_elsewhere, tree_bytes
import nbprune.course.compare as compare
from nbprune import GeneratePruneData, IterativePruning, RunConfig, SimpleNN
from nbprune.course import load_data_for
from nbprune.errors import ConfigError, SessionError
from nbprune.course.compare import (METHODS, against_benchmark, compare_criteria, conclusion, plan_comparison,
                                    standard_error, starting_model, winners)
from nbprune.course.exercises import check, exercises_of, solution
from nbprune.model import mlp_parameters
from nbprune.modelfile import save_model_file
from nbprune.session import Session

HIDDEN = (24, 12)
LEVELS = [2, 5]


def make_session(folder: Path, root: Path) -> Session:
    """Return a session where 03 wrote its schedule and 04 trained the dense model (iteration 0) on tiny data."""
    session = Session(folder)
    config = RunConfig.from_flat(data_root=str(root), val_size=100, hidden=HIDDEN, epochs=2, patience=1, threads=1)
    data = load_data_for(config, download=False)
    steps = GeneratePruneData(HIDDEN, 0.7, range(8), dir=session.retain_file.parent).generate_data()
    torch.manual_seed(0)
    IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                     progress=False).run(SimpleNN(HIDDEN), steps, session.pruning, end_itr=0)
    return session


@pytest.fixture(scope="module")
def session(tiny_root, tmp_path_factory) -> Session:
    return make_session(tmp_path_factory.mktemp("compare") / "session", tiny_root)


@pytest.fixture(scope="module")
def table(session) -> pd.DataFrame:
    """The comparison at two levels over two seeds."""
    return compare_criteria(session, LEVELS, seeds=[0, 1], progress=False)


# --- the comparison ----------------------------------------------------------------------------------------------
def test_the_comparison_is_refused_while_another_process_holds_the_session(session):
    before = tree_bytes(session.root, skip=(".nbprune.lock",))
    with session_held_elsewhere(session.pruning) as holder:
        with pytest.raises(SessionError, match=f"in use by another nbprune run \\(PID {holder.pid}\\)"):
            compare_criteria(session, [5], seeds=[0], progress=False)
    assert tree_bytes(session.root, skip=(".nbprune.lock",)) == before


def test_the_table_has_one_row_per_method_level_and_seed_and_is_saved_in_the_session(session, table):
    assert len(table) == len(METHODS) * len(LEVELS) * 2
    assert set(zip(table["method"], table["level"], table["seed"])) == {
        (method, level, seed) for method in METHODS for level in LEVELS for seed in (0, 1)}
    steps = {step.iteration: step for step in GeneratePruneData(HIDDEN, 0.7, range(8), dir=".").data}
    for row in table.itertuples():
        assert row.hidden == "+".join(map(str, steps[row.level].retained))
        assert row.parameters == mlp_parameters(784, steps[row.level].retained, 10)
        assert 0 <= row.val_accuracy <= 100 and 0 <= row.test_accuracy <= 100 and row.seconds > 0
    assert set(table["val_images"]) == {100}
    saved = pd.read_csv(session.root / "compare" / "comparison.csv")
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)


def test_every_criterion_prunes_the_same_dense_model_and_scratch_draws_fresh_weights(session, monkeypatch):
    dense_bytes = session.model_file(0).read_bytes()
    dense = SimpleNN.from_file(session.model_file(0))
    started = []

    def spy(model, train_loader, val_loader, config, **options):
        started.append((copy.deepcopy(model), val_loader, options.get("test_loader")))
        return model
    monkeypatch.setattr(compare, "fit", spy)
    compare_criteria(session, [5], seeds=[0], progress=False)
    assert len(started) == len(METHODS)
    for method, (model, val_loader, test_loader) in zip(METHODS, started):
        assert len(val_loader.dataset) == 100 and test_loader is None  # stops on validation; test chooses nothing
        first = [int(torch.nonzero((dense.fc1.weight == row).all(dim=1))[0]) if (dense.fc1.weight == row).all(
            dim=1).any() else None for row in model.fc1.weight]
        if method == "scratch":
            assert first == [None] * len(first), "scratch must start from fresh weights, not the dense model's"
            continue
        assert None not in first, f"{method} must start from rows of the dense model"
        second = [int(torch.nonzero((dense.fc2.weight[:, first] == row).all(dim=1))[0])
                  for row in model.fc2.weight]
        assert torch.equal(model.fc2.weight, dense.fc2.weight[second][:, first])
        assert torch.equal(model.fc3.weight, dense.fc3.weight[:, second])
        assert torch.equal(model.fc3.bias, dense.fc3.bias)
    assert session.model_file(0).read_bytes() == dense_bytes  # the dense model is only read


def test_every_method_gets_one_training_budget_counted_from_random_weights(session, monkeypatch):
    from nbprune.files import read_table
    dense_ran = len(read_table(session.iteration_dir(0) / "train_results.txt")[1])  # epochs iteration 0 ran
    trained = {}

    def spy(model, train_loader, val_loader, config, **options):
        trained[len(trained)] = config
        return model
    monkeypatch.setattr(compare, "fit", spy)
    compare_criteria(session, [5], seeds=[0], epochs=3, progress=False)
    epochs = {method: trained[position].epochs for position, method in enumerate(METHODS)}
    assert {epochs[method] for method in METHODS if method != "scratch"} == {3}  # each retrains for compare_epochs
    assert epochs["scratch"] == dense_ran + 3  # from random weights: the dense model's epochs, then the same 3
    plan = plan_comparison(session, [5], epochs=3)
    assert plan.budget.total == dense_ran + 3 == plan.budget.dense + epochs["interval_adjoint"]
    assert f"one budget of at most {dense_ran + 3} epochs from random weights for every network" in str(plan)
    others = {name: getattr(trained[0], name) for name in ("lr", "patience", "distill", "weight_decay")}
    assert all({name: getattr(config, name) for name in others} == others for config in trained.values())


@pytest.mark.parametrize("epochs, retrain", [(None, 2), (3, 3)])
def test_a_session_pruned_with_onecycle_gets_one_budget_of_cycle_epochs(tiny_root, tmp_path, monkeypatch, epochs,
                                                                         retrain):
    session = Session(tmp_path / "session")
    config = RunConfig.from_flat(data_root=str(tiny_root), val_size=100, hidden=HIDDEN, recipe="onecycle",
                                 cycle_epochs=2, dense_cycle_epochs=3, threads=1)
    data = load_data_for(config, download=False)
    steps = GeneratePruneData(HIDDEN, 0.7, range(8), dir=session.retain_file.parent).generate_data()
    torch.manual_seed(0)
    IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                     progress=False).run(SimpleNN(HIDDEN), steps, session.pruning, end_itr=0)
    trained = []
    monkeypatch.setattr(compare, "fit", lambda model, *loaders, **options: trained.append(loaders[2]) or model)
    compare_criteria(session, [5], seeds=[0], epochs=epochs, progress=False)
    cycles = {method: trained[position].cycle_epochs for position, method in enumerate(METHODS)}
    assert {cycles[method] for method in METHODS if method != "scratch"} == {retrain}
    assert cycles["scratch"] == 3 + retrain  # the dense model's 3 epochs (its whole cycle), then the same
    assert all(config.recipe == "onecycle" for config in trained)


def test_the_same_seed_and_level_give_the_same_numbers_whatever_else_runs(session, table):
    again = compare_criteria(session, [5], seeds=[1], progress=False)
    earlier = table[(table["level"] == 5) & (table["seed"] == 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), earlier.drop(columns="seconds"))


def test_scratch_draws_its_fresh_weights_from_the_seed_and_level(session):
    dense = plan_comparison(session, [5]).dense
    drawn = []
    for seed in (0, 0, 1):
        torch.manual_seed(compare.run_seed(seed, 5))
        drawn.append(starting_model(dense, "scratch", (4, 2), context=None).fc1.weight)
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])
    assert len({compare.run_seed(seed, level) for seed in range(3) for level in range(31)}) == 3 * 31


def test_the_retraining_distils_from_what_04_distilled_from(session, tmp_path):
    plan = plan_comparison(session, [5])
    data = load_data_for(plan.config, download=False)
    assert torch.equal(compare.teacher_of(plan, data).fc1.weight, plan.dense.fc1.weight)
    assert "distilling from the dense model (24+12 neurons)" in str(plan)
    other = SimpleNN(HIDDEN)
    other.spec = data.spec
    save_model_file(other, tmp_path / "teacher.pth")
    taught = dataclasses.replace(plan, config=plan.config.replace(teacher=str(tmp_path / "teacher.pth")))
    assert torch.equal(compare.teacher_of(taught, data).fc1.weight, other.fc1.weight)
    assert "distilling from " + str(tmp_path / "teacher.pth") in str(taught)
    assert compare.teacher_of(dataclasses.replace(plan, config=plan.config.replace(distill=False)), data) is None


def session_taught_by(folder: Path, root: Path, teacher: str, end_itr: int) -> Session:
    """Return a session whose 04 ran to `end_itr` distilling from the teacher file `teacher` (as given: relative to
    the working folder)."""
    session = Session(folder)
    config = RunConfig.from_flat(data_root=str(root), val_size=100, hidden=HIDDEN, epochs=1, patience=1, threads=1,
                                 teacher=teacher)
    data = load_data_for(config, download=False)
    steps = GeneratePruneData(HIDDEN, 0.7, range(8), dir=session.retain_file.parent).generate_data()
    torch.manual_seed(0)
    IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, config=config,
                     progress=False).run(SimpleNN(HIDDEN), steps, session.pruning, end_itr=end_itr)
    return session


@pytest.mark.slow
def test_07_distils_from_the_teacher_file_04_used_wherever_it_runs_and_refuses_another(tiny_root, tmp_path,
                                                                                        monkeypatch):
    started, elsewhere = tmp_path / "started_here", tmp_path / "elsewhere"
    for folder in (started, elsewhere):
        folder.mkdir()
    data = load_data_for(RunConfig.from_flat(data_root=str(tiny_root), val_size=100), download=False)
    teacher, impostor = SimpleNN(HIDDEN), SimpleNN(HIDDEN)
    teacher.spec = impostor.spec = data.spec
    save_model_file(teacher, started / "teacher.pth")
    save_model_file(impostor, elsewhere / "teacher.pth")  # the same relative name, another file
    monkeypatch.chdir(started)
    session = session_taught_by(tmp_path / "session", tiny_root, "teacher.pth", end_itr=0)
    assert session.runs()[-1]["config"]["teacher"] == str(started / "teacher.pth")  # stored resolved
    monkeypatch.chdir(elsewhere)
    plan = plan_comparison(session, [5])
    assert plan.config.train.teacher == str(started / "teacher.pth")
    assert torch.equal(compare.teacher_of(plan, data).fc1.weight, teacher.fc1.weight)
    save_model_file(impostor, started / "teacher.pth")  # replaced by another file of the same name
    with pytest.raises(SessionError, match="now holds other content .*put the run's teacher file back"):
        plan_comparison(session, [5])
    with pytest.raises(SessionError, match="now holds other content"):  # changed after the plan: still refused
        compare.teacher_of(plan, data)
    (started / "teacher.pth").unlink()
    with pytest.raises(SessionError, match="distilled from the teacher file .*teacher.pth, which is not there"):
        compare_criteria(session, [5], progress=False)
    assert not (session.root / "compare").exists()


def test_07_refuses_a_teacher_file_whose_outputs_overflow(session, tmp_path):
    from nbprune.errors import ModelFileError
    from nbprune.teacher import ConvTeacher, TrainedTeacher, save_teacher
    plan = plan_comparison(session, [5])
    data = load_data_for(plan.config, download=False)
    model = ConvTeacher((4, 8), 16)
    with torch.no_grad():
        model.fc1.weight[0, 0] = 3e38
    save_teacher(TrainedTeacher(model, 1, 0.0, 0.0, {}), data.spec, tmp_path / "teacher.pth")
    taught = dataclasses.replace(plan, config=plan.config.replace(teacher=str(tmp_path / "teacher.pth")))
    with pytest.raises(ModelFileError, match="weights so large"):
        compare.teacher_of(taught, data)


@pytest.mark.slow
def test_a_run_recorded_before_run_json_held_the_teacher_is_read_from_its_models_records(tiny_root, tmp_path,
                                                                                        monkeypatch):
    import json
    data = load_data_for(RunConfig.from_flat(data_root=str(tiny_root), val_size=100), download=False)
    teacher = SimpleNN(HIDDEN)
    teacher.spec = data.spec
    (tmp_path / "started_here").mkdir()
    save_model_file(teacher, tmp_path / "started_here" / "teacher.pth")
    monkeypatch.chdir(tmp_path / "started_here")
    session = session_taught_by(tmp_path / "session", tiny_root, "teacher.pth", end_itr=1)
    record = json.loads((session.pruning / "run.json").read_text())
    for run in record["runs"]:  # as an older nbprune wrote it: the path as given, no hash
        run["config"]["teacher"] = "teacher.pth"
        run.pop("teacher")
    (session.pruning / "run.json").write_text(json.dumps(record))
    monkeypatch.chdir(tmp_path)
    plan = plan_comparison(session, [5])
    assert plan.config.train.teacher == str(tmp_path / "started_here" / "teacher.pth")
    assert plan.teacher_sha256 == hashlib.sha256((tmp_path / "started_here" / "teacher.pth").read_bytes()).hexdigest()


def test_a_session_whose_04_has_not_run_is_refused_before_anything_is_written(tmp_path, tiny_root):
    session = Session(tmp_path / "session")
    GeneratePruneData(HIDDEN, 0.7, range(8), dir=session.retain_file.parent).generate_data()
    before = tree_bytes(tmp_path, skip=(".nbprune.lock",))
    with pytest.raises(SessionError, match="run notebook 04_iterative_pruning .*first"):
        compare_criteria(session, progress=False)
    assert tree_bytes(tmp_path, skip=(".nbprune.lock",)) == before and not (session.root / "compare").exists()


@pytest.mark.parametrize("levels, message", [([0], r"compare_levels=\[0\]"), ([3, 99], r"compare_levels=\[3, 99\]"),
                                             ([2, 2], "different iterations")])
def test_levels_outside_the_schedule_are_refused_naming_the_allowed_ones(session, levels, message):
    before = tree_bytes(session.root, skip=(".nbprune.lock",))
    with pytest.raises(ConfigError, match=message + r".*\(1, 2, 3, 4, 5, 6, 7\)"):
        compare_criteria(session, levels, progress=False)
    assert tree_bytes(session.root, skip=(".nbprune.lock",)) == before


@pytest.mark.parametrize("seeds, methods", [([], METHODS), ([0, 0], METHODS), ([-1], METHODS), ([0], ["pruning"]),
                                            ([0], [])])
def test_bad_seeds_and_methods_are_refused(session, seeds, methods):
    with pytest.raises(ConfigError, match="seeds=|methods="):
        plan_comparison(session, LEVELS, seeds, methods=methods)


def test_default_levels_are_the_rows_nearest_a_quarter_a_tenth_and_a_twentieth_of_the_neurons(session):
    assert [step.iteration for step in plan_comparison(session).steps] == [4, 6, 7]  # 25.0%, 11.1%, 8.3%
    assert "5 methods x 3 levels" in str(plan_comparison(session))


# --- reading the table: validation chooses ----------------------------------------------------------------------
def made_up(rows: list[tuple[str, int, int, float, float]]) -> pd.DataFrame:
    """Return a comparison table from (method, level, seed, validation, test) rows."""
    return pd.DataFrame([{"method": method, "level": level, "hidden": f"{level}+1", "percentage": 10.0 * level,
                          "parameters": 1000 * level, "seed": seed, "val_accuracy": val, "test_accuracy": test,
                          "val_images": 5000, "seconds": 1.0} for method, level, seed, val, test in rows])


def test_the_winner_of_a_level_is_chosen_on_validation_not_on_test():
    table = made_up([("interval_adjoint", 3, 0, 90.0, 95.0), ("magnitude", 3, 0, 92.0, 91.0),
                     ("interval_adjoint", 6, 0, 96.0, 96.0), ("magnitude", 6, 0, 95.9, 96.5)])
    best = winners(table).set_index("level")
    assert best.loc[3, "best"] == "magnitude" and best.loc[3, "test_accuracy"] == 91.0
    assert best.loc[6, "best"] == "interval_adjoint"
    assert "iteration 3 (3+1, 3,000 parameters): magnitude is best (92.00%)" in conclusion(table)
    assert check("07.4", 2, table=table)  # choosing on test would change both levels' winners


def test_a_margin_is_clear_only_above_twice_the_seed_spread_and_the_sampling_error():
    error = standard_error(95.0, 5000)
    assert error == pytest.approx((95 * 5 / 5000) ** 0.5)
    tight = made_up([("magnitude", 3, seed, 95.0 + 2.5 * error, 90.0) for seed in (0, 1)]
                    + [("interval_adjoint", 3, seed, 95.0, 90.0) for seed in (0, 1)])
    assert winners(tight)["clear"].tolist() == [True]
    spread = made_up([("magnitude", 3, 0, 96.0 + 2.5 * error, 90.0), ("magnitude", 3, 1, 94.0 + 2.5 * error, 90.0)]
                     + [("interval_adjoint", 3, seed, 95.0, 90.0) for seed in (0, 1)])
    row = winners(spread).iloc[0]
    assert row["noise"] == pytest.approx(2 ** 0.5) and not row["clear"]  # sd of 96 and 94
    assert "clearly behind at 0" in conclusion(spread) and "Not shown here: every gap is within the noise" in \
        conclusion(spread)
    ahead = made_up([("magnitude", 3, seed, 90.0, 90.0) for seed in (0, 1)]
                    + [("interval_adjoint", 3, seed, 95.0 + seed / 10, 95.0) for seed in (0, 1)])
    assert "worth it against magnitude pruning (which needs no interval analysis)? Yes here" in conclusion(ahead)


def test_one_seed_draws_no_verdict_however_large_the_margin():
    table = made_up([("magnitude", 3, 0, 80.0, 80.0), ("interval_adjoint", 3, 0, 95.0, 95.0),
                     ("scratch", 3, 0, 50.0, 50.0)])
    assert winners(table)["clear"].tolist() == [False] and winners(table)["noise"].isna().all()
    text = conclusion(table)
    assert "one seed: the retraining's luck (the spread over seeds) is unknown" in text
    assert "the spread is unknown (one seed)" in text and "clear;" not in text and "Yes here" not in text
    assert text.count("No verdict: one seed") == 2  # against magnitude and against scratch


def test_the_conclusion_on_the_tiny_session_names_every_level_and_compares_with_scratch(table):
    text = conclusion(table)
    assert all(f"iteration {level} (" in text for level in LEVELS)
    assert "mean over 2 seeds" in text and "interval_adjoint minus magnitude" in text
    assert "beat training the same shapes from scratch on the same budget?" in text
    assert "interval_adjoint minus scratch" in text


def benchmark_of(accuracies: dict[str, list[float]], hidden=(3, 1)) -> dict:
    """Return a benchmark results file's content: per method, per seed, one level of `hidden` neurons."""
    return {"results": {method: {str(seed): {"3": {"hidden": list(hidden), "Test_Accuracy": value}}
                                 for seed, value in enumerate(values)} for method, values in accuracies.items()}}


def test_the_comparison_is_set_beside_the_benchmark_and_a_clear_verdict_of_the_other_sign_disagrees(tmp_path):
    table = made_up([(method, 3, seed, val, 90.0) for seed in (0, 1) for method, val in
                     (("interval_adjoint", 95.0), ("magnitude", 90.0), ("scratch", 95.1 - seed * 0.2))])
    agreeing = benchmark_of({"interval_adjoint": [94.0, 94.2], "magnitude": [93.0, 93.2], "scratch": [92.0, 95.0]})
    text = against_benchmark(table, agreeing)
    assert "2 of 2 comparisons agree" in text
    assert "minus magnitude at 3+1: here +5.00 (clear); the benchmark +1.00 ± 0.14 over 2 seeds" in text
    opposite = benchmark_of({"interval_adjoint": [94.0, 94.2], "magnitude": [96.0, 96.2], "scratch": [94.0, 94.2]})
    assert "1 of 2 comparisons agree" in against_benchmark(table, opposite) and "DISAGREES" in \
        against_benchmark(table, opposite)
    assert "not the same experiment" not in against_benchmark(table, opposite)  # magnitude's disagreement: no excuse
    scratch_ahead = made_up([(method, 3, seed, val, 90.0) for seed in (0, 1) for method, val in
                             (("interval_adjoint", 90.0 + seed * 0.1), ("scratch", 95.0 + seed * 0.1))])
    chain_ahead = benchmark_of({"interval_adjoint": [94.0, 94.2], "scratch": [92.0, 92.2]})
    text = against_benchmark(scratch_ahead, chain_ahead)  # the benchmark's pruned chain beat its scratch, clearly
    assert "DISAGREES (not the same experiment: the benchmark trained scratch for at most 40 epochs" in text
    assert "ran none of these shapes" in against_benchmark(table, benchmark_of({"magnitude": [1.0]}, hidden=(9, 9)))
    assert "are not in this installation" in against_benchmark(table, tmp_path / "none.json")


def test_the_projects_benchmark_file_is_read_at_the_shapes_it_ran():
    from nbprune.course.compare import BENCHMARK_RESULTS, benchmark_gap
    results = json.loads(BENCHMARK_RESULTS.read_text())
    gap, spread, seeds = benchmark_gap(results, "interval_adjoint", "scratch", "14+4")
    assert gap == pytest.approx(94.02 - 92.93, abs=0.01) and seeds == 2  # the table of compare_criteria.md


# --- exercises ---------------------------------------------------------------------------------------------------
def test_every_solution_of_07_is_accepted_and_a_wrong_answer_refused(table):
    keys = exercises_of("07")
    assert keys == ["07.1", "07.2", "07.3", "07.4"]
    for key in keys:
        answer = solution(key, table=table)
        assert check(key, answer, table=table), f"{key}: {check(key, answer, table=table)}"
        assert not check(key, None, table=table)
        assert not check(key, answer + 0.5, table=table)
    one_seed = table[table["seed"] == 0]
    verdict = check("07.1", 0.0, table=one_seed)
    assert not verdict and "needs two seeds or more: set compare_seeds = 2" in verdict.message
    assert not check("07.2", 0.0, table=one_seed)


def test_the_exercise_numbers_are_what_a_student_computes_by_hand():
    table = made_up([("interval_adjoint", 3, 0, 90.0, 95.0), ("magnitude", 3, 0, 92.0, 91.0),
                     ("interval_adjoint", 3, 1, 91.0, 95.0), ("magnitude", 3, 1, 95.0, 91.0),
                     ("magnitude", 6, 0, 97.0, 97.0), ("interval_adjoint", 6, 0, 96.0, 96.0),
                     ("magnitude", 6, 1, 97.0, 96.0), ("interval_adjoint", 6, 1, 96.0, 97.0)])
    assert solution("07.1", table=table) == pytest.approx(0.5 ** 0.5)  # 90 and 91: sqrt(0.5 / 1)
    assert solution("07.2", table=table) == pytest.approx(4.5 ** 0.5)  # 92, 95: above sqrt(93.5 * 6.5 / 5000)
    assert "the gap is -3.00 points, not more than twice it" in check("07.2", 4.5 ** 0.5, table=table).message
    assert solution("07.3", table=table) == pytest.approx((90.5 * 9.5 / 5000) ** 0.5)
    assert solution("07.4", table=table) == 1  # level 3: magnitude on validation, interval_adjoint on test


# --- the notebook ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_notebook_runs_headless_on_a_tiny_session(tmp_path, tiny_root, monkeypatch):
    papermill = pytest.importorskip("papermill")
    session = make_session(tmp_path / "session", tiny_root)
    executed = tmp_path / "07.ipynb"
    monkeypatch.setenv("NBPRUNE_HEADLESS", "1")  # the kernel inherits it: finished progress lines, not widgets
    papermill.execute_notebook(str(Path(__file__).resolve().parents[1] / "notebooks" / "07_compare.ipynb"),
                               str(executed), kernel_name="python3", progress_bar=False,
                               parameters={"session_dir": str(session.root), "data_root": str(tiny_root),
                                           "compare_levels": [3, 6], "threads": 1})
    outputs = [output for cell in nbformat.read(executed, as_version=4).cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "20 trainings" in text and "Was the interval adjoint worth it against magnitude pruning" in text
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the figure is in the executed copy
    assert (session.root / "compare" / "comparison.png").is_file()
    assert len(pd.read_csv(session.root / "compare" / "comparison.csv")) == len(METHODS) * 2 * 2  # two seeds


def test_the_notebook_has_the_course_shape_and_a_checked_cell_for_every_exercise():
    cells = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "07_compare.ipynb", as_version=4).cells
    text = {cell.source.split("\n", 1)[0]: cell.source for cell in cells if cell.cell_type == "markdown"}
    opening = cells[0].source
    assert opening.startswith("# 7 · Was the interval adjoint worth it?")
    learn = opening.split("**What you will learn**")[1].split("\n\n")[0]
    assert 3 <= learn.count("\n- ") <= 5
    assert 3 <= text["## Summary"].count("\n- ") <= 6
    for reference in ("Afghan, U. Naumann", "Molchanov et al.", "Han et al.", "Blalock et al."):
        assert reference in text["## Further reading"]
    code = "\n".join(cell.source for cell in cells if cell.cell_type == "code")
    for key in exercises_of("07"):
        assert f'check("{key}", answer, table=table)' in code
    assert "benchmarks/results/compare_criteria.md" in text["## The full study"]


def test_the_comparison_figure_is_saved_with_bands_over_several_seeds(table, tmp_path):
    from nbprune.course import plot_comparison

    figure = plot_comparison(table, dense={"Val_Accuracy": 50.0, "Test_Accuracy": 40.0}, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert "bands: lowest to highest of 2 seeds" in figure.get_suptitle()  # two seeds make no 95% interval
    band = figure.axes[0].collections[0].get_paths()[0].vertices  # interval_adjoint's band, validation
    rows = table[table["method"] == "interval_adjoint"]
    assert band[:, 1].min() == pytest.approx(rows["val_accuracy"].min())
    assert band[:, 1].max() == pytest.approx(rows["val_accuracy"].max())
    for level in rows["parameters"].unique():  # at each level, the band spans exactly that level's seeds
        seeds = rows[rows["parameters"] == level]["val_accuracy"]
        near = band[abs(band[:, 0] / level - 1) < 0.1, 1]
        assert near.min() == pytest.approx(seeds.min()) and near.max() == pytest.approx(seeds.max())
    single = plot_comparison(table[table["seed"] == 0])
    assert "one seed: no bands" in single.get_suptitle()
    assert len(figure.axes[0].collections) == len(METHODS) and not single.axes[0].collections  # a band per method
    lines = [line for line in single.axes[0].get_lines() if len(line.get_xdata()) and line.get_marker() != "None"]
    assert len(lines) == len(METHODS) and len({line.get_marker() for line in lines}) == len(METHODS)  # its own marker
    assert len({round(float(line.get_xdata()[0])) for line in lines}) == len(METHODS)  # set apart: none hides another
    low, high = figure.axes[1].get_ylim()
    assert low < 40.0 < high and low < 50.0 < high  # the dense lines inside the frame

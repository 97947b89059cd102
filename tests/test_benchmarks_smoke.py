"""The benchmark scripts on tiny settings: they run, write their reports, and the comparison resumes."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import compare_criteria  # noqa: E402
import conv_pareto  # noqa: E402
import inference_speed  # noqa: E402
import pareto  # noqa: E402
import small_network_ceiling  # noqa: E402
import speed_recipe  # noqa: E402


@pytest.mark.slow
def test_inference_speed_writes_its_report(tmp_path):
    assert inference_speed.main(["--small-calls", "20", "--big-calls", "3", "--wait-quiet", "0", "--choice", "6",
                                 "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "inference_speed.md").read_text()
    record = json.loads((tmp_path / "inference_speed.json").read_text())
    assert "Verdict" in text and "freshly initialised" in text
    assert [model["hidden"] for model in record["models"]] == [[256, 64], [43, 11], [67, 17]]
    assert record["models"][1]["macs"] == 784 * 43 + 43 * 11 + 11 * 10
    assert set(record["target"]["met"]) == {"eager", "TorchScript"}  # what users run; the unpadded program is shown
    assert set(record["models"][1]) >= {"eager", "TorchScript", "TorchScript unpadded"}


def test_pruning_quality_table_gives_the_default_choice(tmp_path):
    table = tmp_path / "pruning_quality.md"
    table.write_text("| iteration | hidden | validation acc. | test accuracy |\n|---|---|---|---|\n"
                     "| 0 | 256+64 | 98.0 | 90.0 |\n| 6 | 67+17 | 97.5 ± 0.1 | 99.0 |\n| 8 | 43+11 | 96.5 | 99.9 |\n")
    assert inference_speed.choice_from_pruning_quality(table)[0] == 6  # on validation; the test column plays no part
    table.write_text("| iteration | hidden |\n|---|---|\n| 7 | 54+13 |\n")
    assert inference_speed.choice_from_pruning_quality(table)[0] == 7


@pytest.mark.slow
def test_small_network_ceiling_retrains_one_level_by_every_route(tiny_root, tmp_path):
    session, results = tmp_path / "session", tmp_path / "results"
    arguments = ["--data-root", str(tiny_root), "--val-size", "100", "--epochs", "1", "--level", "2",
                 "--sources", "0", "1", "--seeds", "0", "--skip-long", "--session-dir", str(session),
                 "--results-dir", str(results)]
    assert small_network_ceiling.main(arguments) == 0
    record = json.loads((results / "small_network_ceiling.json").read_text())
    routes = [run["route"] for run in record["runs"]]
    assert routes == ["default chain (the session's model)", "one step from iteration 0",
                      "one step from iteration 1", "interval_adjoint, from iteration 1", "magnitude, from iteration 1",
                      "taylor, from iteration 1", "random, from iteration 1", "from scratch"]
    assert all(0 <= run["val"] <= 100 and 0 <= run["test"] <= 100 for run in record["runs"])
    assert (session / "iterative_pruning" / "2" / "prune_w_retrain" / "best_model.pth").is_file()
    text = (results / "small_network_ceiling.md").read_text()
    assert "| from scratch | 1 |" in text and "reach the 95% test target" in text

    with pytest.raises(SystemExit):
        small_network_ceiling.main([*arguments, "--sources", "2"])


@pytest.mark.slow
def test_pruning_quality_writes_its_report_for_the_levels_it_ran(tiny_root, tmp_path):
    import pruning_quality
    assert pruning_quality.main(["--data-root", str(tiny_root), "--session-dir", str(tmp_path / "session"),
                                 "--set", "val_size=100", "iterations=3", "epochs=1", "patience=1",
                                 "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "pruning_quality.md").read_text()
    assert "| 100% retained | >= 98.0% |" in text and "| 16.875% retained | >= 97.5% | not run |" in text
    assert [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| 2 |")] == ["164+41"]
    assert (tmp_path / "pruning_quality.png").is_file()


@pytest.mark.slow
def test_epoch_speed_writes_its_report(tiny_root, tmp_path):
    import epoch_speed
    assert epoch_speed.main(["--data-root", str(tiny_root), "--repeats", "1", "--val-size", "100",
                             "--matmul-size", "64", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "epoch_speed.md").read_text()
    assert "500 training images" in text and "| ratio (reference / nbprune) |" in text and "Verdict" in text
    assert "| ratio (reference, same run's epochs / nbprune at batch 128) |" in text and "| 128 | " in text


@pytest.mark.slow
def test_teacher_benchmark_reports_the_teacher_and_the_probe(tiny_root, tmp_path):
    import teacher
    assert teacher.main(["--data-root", str(tiny_root), "--val-size", "100", "--epochs", "2", "--probe",
                         "--probe-hidden", "8", "4", "--probe-epochs", "1", "--probe-shift", "1",
                         "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "teacher.md").read_text()
    record = json.loads((tmp_path / "teacher.json").read_text())
    assert record["teacher"]["training_images"] == 500 and record["teacher"]["epochs"] == 2
    assert "| epochs | epoch kept | validation acc. | test acc." in text and "proves nothing alone" in text
    assert set(record["probe"]["rows"]) == {"dense model (784-256-64-10)", "student, dense model teaches",
                                            "student, CNN teacher teaches", "dense model, augment_shift=1"}
    assert record["probe"]["parameters"] == 784 * 8 + 8 + 8 * 4 + 4 + 4 * 10 + 10


@pytest.mark.slow
def test_pareto_report_regenerates_from_a_sweep_table_equal_in_every_number(tmp_path):
    from nbprune import RunConfig
    from nbprune.sweeps import SweepFolder, spec_from_dict
    from nbprune.sweeps.spec import value_text
    committed = pareto.load_state(pareto.RESULTS_DIR / "pareto.json", None)  # round two's "seed" rows: "reference"
    committed["rows"] = [row for row in committed["rows"] if row["method"] != "scratch"]  # not a pruning chain
    methods = [method for method in pareto.EVERY_METHOD if method in {row["method"] for row in committed["rows"]}]
    args = pareto.parse_args(["--seeds", "0", "1", "2", "--methods", *methods, "--epochs",
                              str(committed["settings"]["config"]["epochs"]), "--min-parameters",
                              str(committed["settings"]["min_parameters"]), "--results-dir", str(tmp_path)])
    spec = pareto.sweep_spec(args)
    varied = spec_from_dict(spec).varied()
    table = []
    for row in committed["rows"]:  # the table a sweep of the same chains writes for the same models
        config = RunConfig.from_flat(pareto.EVERY_METHOD[row["method"]])
        flat = config.flat()
        retained = 100 * sum(row["hidden"]) / sum(config.model.hidden)  # the share a sweep's table records
        table.append({"chain": row["method"], **{name: value_text(flat[name]) for name in varied},
                      "seed": row["seed"], "iteration": row["iteration"], "hidden": value_text(row["hidden"]),
                      "inputs": row["inputs"], "parameters": row["parameters"], "retained": retained,
                      "val_acc": row["val_acc"], "test_acc": row["test_acc"], "model_file": row["model_file"],
                      "seconds": ""})
    folder = SweepFolder(tmp_path / "sweep")
    folder.root.mkdir()
    folder.save_state({"format": 1, "spec": spec, "chains": {}, "dense": {}})
    folder.write_table(table, varied)

    regenerated = pareto.state_from_sweep(args, folder.root)
    assert len(regenerated["rows"]) == len(committed["rows"])
    shown = ("updated", "command", "machine", "workers", "sitting_minutes", "attempt_minutes", "settings", "targets")
    regenerated.update({key: committed[key] for key in shown})
    (tmp_path / "from_json").mkdir()
    expected = pareto.render(committed, tmp_path / "from_json").read_text()
    assert pareto.render(regenerated, tmp_path).read_text() == expected
    assert "| <= 10,000 parameters | >= 97.5% | best |" in expected  # the targets table, round two's targets


def test_pareto_results_are_judged_against_the_targets_of_the_round_they_were_run_for(tmp_path):
    def wanted(state):
        return {label: value for label, _, value in pareto.targets(state)}
    round_two = pareto.load_state(pareto.RESULTS_DIR / "pareto.json", None)
    assert wanted(round_two) == {"<= 5,000 parameters": 96.0, "<= 10,000 parameters": 97.5,
                                 "<= 20,000 parameters": 98.0, "<= 18 hidden neurons": 95.0}
    new = pareto.load_state(tmp_path / "new.json", {"epochs": 1})  # a new results file stores this round's targets
    assert new["targets"] == pareto.current_targets()
    assert wanted(new)["<= 10,000 parameters"] == pareto.PARAMETER_TARGETS[10_000] != 97.5
    assert wanted({"rows": []}) == wanted(new)  # a file from before targets were stored: this round's


@pytest.mark.parametrize("script, name", [(pareto, "pareto"), (pareto, "pareto_teacher"), (pareto, "pareto_speed"),
                                          (compare_criteria, "compare_criteria"), (conv_pareto, "conv_pareto"),
                                          (speed_recipe, "speed_recipe"), (speed_recipe, "speed_recipe_rerun")])
def test_the_committed_reports_re_render_equal_from_their_results(tmp_path, script, name):
    committed = pareto.RESULTS_DIR
    shutil.copy(committed / f"{name}.json", tmp_path / f"{name}.json")
    naming = ["--name", name] if script in (pareto, speed_recipe) else []
    assert script.main(["--report-only", "--results-dir", str(tmp_path), *naming]) == 0
    assert (tmp_path / f"{name}.md").read_text() == (committed / f"{name}.md").read_text()
    assert (tmp_path / f"{name}.png").read_bytes() == (committed / f"{name}.png").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{name}.{kind}" for kind in ("json", "md", "png")]


def test_speed_recipe_judges_against_todays_seed_spread_and_reports_what_is_missing():
    assert speed_recipe.verdict([97.0, 97.4, 97.2], [97.1, 96.0, 97.3]) == "BELOW today's seed spread"
    assert speed_recipe.verdict([97.0, 97.4, 97.2], [97.1, 97.0, 97.3]) == "within the seed spread of today's recipe"
    assert speed_recipe.verdict([97.0, 97.4], [97.9, 97.5]) == "above today's seed spread"

    def run(recipe, seed, seconds, accuracy):
        levels = {f"{share:g}": accuracy for share in (100.0, 80.0, *speed_recipe.LEVELS)}
        return {"recipe": recipe, "seed": seed, "seconds": seconds, "other_load": 0.5, "loadavg": 1.0,
                "epochs": 10, "levels": levels, "validation": levels}
    state = {"runs": [run("today", 0, 240, 97.0), run("onecycle", 0, 60, 97.1), run("today", 1, 200, 97.4),
                      run("onecycle", 1, 50, 97.2), run("today", 2, 220, 97.2)],
             "settings": {"seeds": 3, "threads": 1, "subset": None}, "command": "python benchmarks/speed_recipe.py",
             "onecycle": {"recipe": "onecycle"}, "machine": {"cpu": "test"}, "name": "speed_recipe"}
    text, _ = speed_recipe.report(state)
    assert "Seeds run with both recipes: 2 of 3 asked (0, 1)" in text  # seed 2's onecycle run is missing
    assert "| today | 3.67 min | 3.33-4.00 min | 10 | 1.00x |" in text and "| onecycle | 0.92 min " in text
    assert "| onecycle | 0 | 60 | 4.00x | 0.50 | 1.00 |" in text
    assert text.count("within the seed spread of today's recipe") == 4
    assert "Quality kept at all four levels: yes" in text

"""The retention schedule: byte-for-byte the reference's retain.txt, any depth, plots, and the checked reader."""

from pathlib import Path

import pytest

from nbprune.errors import ScheduleError
from nbprune.retention import GeneratePruneData, read_retain, schedule

REFERENCE = Path(__file__).with_name("data") / "reference_retain.txt"


def test_default_retain_txt_equals_the_reference_byte_for_byte(tmp_path):
    GeneratePruneData(dir=tmp_path).generate_data(save_data=True)
    assert (tmp_path / "retain.txt").read_bytes() == REFERENCE.read_bytes()


def test_reference_table_is_the_one_in_reference_md():
    reference_md = Path(__file__).parents[2] / "shared" / "seed" / "REFERENCE.md"
    if not reference_md.is_file():
        pytest.skip("../shared/seed/REFERENCE.md is not beside this checkout")
    table = reference_md.read_text().split("## retain.txt")[1].split("```")[1].lstrip("\n")
    assert table == REFERENCE.read_text()


def test_any_number_of_layers_and_at_least_one_neuron(tmp_path):
    generator = GeneratePruneData(hidden=(100, 50, 10), q=0.5, iterations=range(12), dir=tmp_path)
    steps = generator.generate_data()
    header = (tmp_path / "retain.txt").read_text().splitlines()[0]
    assert header == "Iteration h1NodesRetained h2NodesRetained h3NodesRetained perNodesRetained"
    assert steps[0].retained == (100, 50, 10) and steps[-1].retained == (1, 1, 1)
    assert all(min(step.retained) >= 1 for step in steps)


def test_plots_are_written_without_blocking(tmp_path):
    generator = GeneratePruneData(dir=tmp_path)
    generator.plot_data_iterations()
    generator.plot_data_distribution()
    for name in ("pruneNodesIteration.png", "pruneNodesDistribution.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reader_round_trips_and_checks(tmp_path):
    GeneratePruneData(dir=tmp_path).generate_data()
    assert read_retain(tmp_path / "retain.txt", (256, 64)) == schedule()


@pytest.mark.parametrize("rows, hidden, message", [
    ("0 256 64 100\n1 20.5 51 80\n", (256, 64), "not a whole number"),
    ("0 256 64 100\n1 205 51 80\n2 164 60 64\n", (256, 64), "may never grow"),
    ("0 300 64 100\n", (256, 64), "only"),
    ("0 256 64 100\n0 205 51 80\n", (256, 64), "must increase"),
    ("0 256 100\n", (256, 64), "fields"),
])
def test_reader_refuses_malformed_files(tmp_path, rows, hidden, message):
    path = tmp_path / "retain.txt"
    path.write_text("Iteration h1NodesRetained h2NodesRetained perNodesRetained\n" + rows)
    with pytest.raises(ScheduleError, match=message):
        read_retain(path, hidden)


def test_bad_q_is_refused():
    with pytest.raises(ScheduleError, match="q=1.5"):
        schedule(q=1.5)


def test_the_distribution_plot_leaves_a_gap_where_iterations_are_skipped(tmp_path):
    figure = GeneratePruneData(dir=tmp_path).plot_data_distribution(save=False)
    positions = sorted({round(patch.get_x() + patch.get_width() / 2) for patch in figure.axes[0].patches})
    assert positions[-3:] == [20, 21, 24]  # 22 and 23 would keep what 21 kept: no bars there


def test_lab_opens_for_root_and_other_users_on_the_notebooks():
    from nbprune.course.lab import lab_command
    command = lab_command(Path("notebooks"))
    assert "--ServerApp.allow_root=True" in command and "--ServerApp.root_dir=notebooks" in command
    assert "--ServerApp.jpserver_extensions={'nbprune.course.lab': True}" in command


def test_a_budget_column_says_what_it_counts_and_reads_back_so(tmp_path):
    from nbprune.retention import format_retain, with_budgets
    steps = schedule((20, 50, 500), 0.5, range(3))
    by_macs = with_budgets(steps, macs=2_293_000)
    assert [step.budget for step in by_macs] == [round(2_293_000 * step.percentage / 100) for step in steps]
    assert by_macs[1].budget == 1_146_500  # half the units: half the multiply-accumulates
    path = tmp_path / "retain.txt"
    path.write_text(format_retain(by_macs))
    assert path.read_text().splitlines()[0].split()[-1] == "macBudget"
    def fields(steps):
        return [(step.iteration, step.retained, step.budget, step.measure) for step in steps]
    assert fields(read_retain(path)) == fields(by_macs) and read_retain(path)[1].measure == "macs"
    path.write_text(format_retain(with_budgets(steps, parameters=431_080)))
    assert path.read_text().splitlines()[0].split()[-1] == "parameterBudget"
    assert {step.measure for step in read_retain(path)} == {"parameters"}
    with pytest.raises(ScheduleError, match="not both"):
        with_budgets(steps, parameters=1, macs=1)


def test_whole_numbers_of_a_million_and_more_are_written_out_and_read_back_exactly(tmp_path):
    from nbprune.files import format_table, read_table
    path = tmp_path / "table.txt"
    path.write_text(format_table(["Parameters", "Accuracy"], [[1_863_690, 97.123456789]]))
    assert path.read_text().splitlines()[1] == "1863690 97.1235"
    assert read_table(path)[1] == [[1_863_690, 97.1235]]

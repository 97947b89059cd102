"""The command line's own promises: --help for every command, one-line errors, --debug, Ctrl-C, a light start."""

import os
import subprocess
import sys

import pytest

import nbprune.cli as cli
from nbprune.cli import main
from nbprune.config import CONTROLS, SETTINGS

OPTIONS = {"retain": ["hidden", "q", "iterations"], "prune": ["session_dir", "begin_itr", "end_itr", *[
    name for name in SETTINGS if name not in CONTROLS]], "evaluate": list(cli.DATA_SETTINGS),
           "export": ["dataset"], "workbook": ["session_dir"], "concat": []}


@pytest.mark.parametrize("command", list(OPTIONS))
def test_every_command_has_help_naming_each_setting_with_its_meaning_and_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in OPTIONS[command]:
        setting = SETTINGS.get(name) or CONTROLS[name]
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
        meaning = " ".join(setting.help.split())
        assert f"{meaning} (default: " in text, f"{command} {flag}: {meaning!r}"
    if command == "workbook":  # -p takes any setting: the help names them all
        from nbprune.course.workbook import PARAMETERS
        assert all(f" {name}," in text or f" {name}." in text for name in PARAMETERS)


def test_a_refused_setting_names_the_value_the_bound_and_the_settings_meaning(capsys):
    assert main(["prune", "--lr", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nbprune: error: ")
    assert "lr='-1' is not allowed: expected a number above 0 to 10 (learning rate of AdamW)" in err


def test_an_unexpected_error_is_one_line_and_debug_shows_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("a bug\nover two lines")
    monkeypatch.setattr(cli, "cmd_concat", broken)
    assert main(["concat", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err == ("nbprune: error: unexpected RuntimeError: a bug over two lines (rerun with --debug for the "
                   "traceback, and please report it)\n")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", "concat", "somewhere"])


@pytest.mark.parametrize("command, hint", [("prune", "Run the same command with --begin-itr auto to continue."),
                                           ("workbook", "Run the same command with -p begin_itr auto to continue."),
                                           ("concat", "")])
def test_ctrl_c_inside_a_command_says_how_to_continue(command, hint, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
    argv = {"prune": ["prune"], "workbook": ["workbook"], "concat": ["concat", "s"]}[command]
    assert main(argv) == 130
    assert capsys.readouterr().err == f"nbprune: interrupted.{' ' + hint if hint else ''}\n"


@pytest.mark.parametrize("argv", [["concat", "workbook"], ["concat", "prune"], ["export", "sweep", "prune"]])
def test_ctrl_c_gives_the_hint_of_the_command_run_not_of_a_word_among_its_arguments(argv, monkeypatch, capsys):
    """A folder named like another command (concat workbook) got that command's way to continue."""
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, f"cmd_{argv[0]}", interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == "nbprune: interrupted.\n"


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), cli.NbpruneError("a refusal")])
def test_a_stop_while_a_progress_bar_is_open_is_said_on_a_line_of_its_own(stop, monkeypatch, capsys):
    from tqdm import tqdm

    def stopped(args):
        bar = tqdm(total=4, desc="02_model", unit="cell", file=sys.stderr)  # left open, as papermill's is when stopped
        bar.update(1)
        raise stop
    monkeypatch.setattr(cli, "cmd_concat", stopped)
    assert main(["concat", "s"]) in (2, 130)
    said = capsys.readouterr().err.splitlines()  # the bar's redraws are split at "\r" too
    assert ("nbprune: interrupted." if isinstance(stop, KeyboardInterrupt) else "nbprune: error: a refusal") in said
    assert not tqdm._instances  # closed, so nothing is redrawn after the message


def test_a_warning_while_a_progress_bar_is_open_is_shown_on_a_line_of_its_own():
    # In a process of its own: pytest shows warnings its own way, the command its way.
    code = ("import sys, warnings\nfrom tqdm import tqdm\nimport nbprune.cli as cli\n"
            "def warned(args):\n"
            "    with tqdm(total=4, desc='iteration 3', unit='epoch', file=sys.stderr) as bar:\n"
            "        bar.update(1)\n        warnings.warn('a check said so')\n        bar.update(1)\n"
            "cli.cmd_concat = warned\nsys.exit(cli.main(['concat', 's']))\n")
    # The timeout only ends a hang: a loaded machine may start Python slowly.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    assert done.returncode == 0, done.stderr
    said = done.stderr.replace("\r", "\n").splitlines()
    assert "nbprune: warning: a check said so" in said, said  # not the end of the bar's line
    assert said.index("nbprune: warning: a check said so") < max(
        number for number, line in enumerate(said) if "iteration 3" in line and "2/4" in line)  # the bar went on


def test_the_command_starts_without_importing_torch():
    code = ("import sys\nfrom nbprune.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    # The timeout only ends a hang: a loaded machine may start Python slowly.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_modules_stay_modules_and_the_root_exports_the_functions():
    import pkgutil
    import types

    import nbprune
    import nbprune.evaluation as evaluation
    import nbprune.sweeps as sweeps
    import nbprune.training as training
    from nbprune import evaluate, significance, sweep, train

    assert all(isinstance(module, types.ModuleType) for module in (evaluation, sweeps, training))
    assert (train, evaluate, sweep) == (training.train, evaluation.evaluate, sweeps.sweep)
    assert not isinstance(significance, types.ModuleType)
    for package in (nbprune, sweeps):  # a name exported like a submodule would be the module once that loads
        submodules = {module.name for module in pkgutil.iter_modules(package.__path__)}
        assert not submodules & set(package.__all__), package.__name__


def test_every_error_the_readme_and_docs_name_is_an_nbprune_error_of_nbprune_errors():
    import re
    from pathlib import Path

    import nbprune
    from nbprune import errors
    top = Path(__file__).resolve().parents[1]
    readme = "\n".join(path.read_text() for path in [top / "README.md", *sorted((top / "docs").glob("*.md"))])
    named = set(re.findall(r"`(\w+Error)`", readme)) - {"TypeError", "ValueError"}
    assert {"ConfigError", "StorageError", "InputError"} <= named and "`nbprune.errors`" in readme
    for name in named:
        assert issubclass(getattr(errors, name), nbprune.NbpruneError), name

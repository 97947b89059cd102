"""The `nbprune` command: thin wrappers over the library, its options built from nbprune.config.

Every error is one line starting `nbprune: error:` with exit code 2; --debug shows the traceback of an unexpected
one. This module imports no torch until a command runs, so even an early Ctrl-C ends in one line.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame) -> None:
    print("nbprune: interrupted.", file=sys.stderr)
    os._exit(130)


if os.path.basename(sys.argv[0]) in ("nbprune", "cli.py"):  # the command, not a library import: until main()
    signal.signal(signal.SIGINT, _interrupted_while_starting)  # takes over, Ctrl-C ends in one line

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from .config import ACTIVATIONS, CONTROLS, RUN_SETTINGS, SETTINGS, Controls, RunConfig, Setting  # noqa: E402
from .errors import NbpruneError  # noqa: E402
from .sweeps.command import RESUME as SWEEP_RESUME, add_command as add_sweep_command  # noqa: E402

EPILOG = "Data: --data-root, else $NBPRUNE_DATA_ROOT, else <project>/data (downloaded there when missing)."
DATA_SETTINGS = ("dataset", "data_root", "subset", "val_size", "batch_size", "seed", "device", "threads")
TEACHER_DATA_SETTINGS = tuple(name for name in DATA_SETTINGS if name != "batch_size")  # the teacher's own: 128


class UsageError(NbpruneError):
    """A command line argparse cannot read."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (usage stays available with --help)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def add_setting(parser: argparse.ArgumentParser, setting: Setting) -> None:
    """Add the option for one declared setting; its text is parsed and checked by the setting itself."""
    flag = "--" + setting.name.replace("_", "-")
    default = "None" if setting.default is None else (
        " ".join(map(str, setting.default)) if isinstance(setting.default, tuple) else setting.default)
    help_text = f"{setting.help} (default: {default})".replace("%", "%%")
    if setting.kind == "bool":
        parser.add_argument(flag, dest=setting.name, action=argparse.BooleanOptionalAction,
                            default=argparse.SUPPRESS, help=help_text)
    elif setting.kind == "ints":
        parser.add_argument(flag, dest=setting.name, nargs="+", metavar="N", default=argparse.SUPPRESS,
                            help=help_text)
    else:
        metavar = {"path": "PATH", "iteration": "K|auto"}.get(setting.kind, setting.name.upper())
        parser.add_argument(flag, dest=setting.name, metavar=metavar, default=argparse.SUPPRESS, help=help_text)


def given(args: argparse.Namespace, names) -> dict:
    """Return the settings among `names` given on the command line, parsed and checked."""
    values = {}
    for name in names:
        if hasattr(args, name):
            raw = getattr(args, name)
            values[name] = raw if isinstance(raw, bool) else SETTINGS[name].parse(
                " ".join(raw) if isinstance(raw, list) else raw)
    return values


def _whole_number(text: str) -> int:
    if not text.strip().isdigit() or len(text) > 6 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected a whole number from 1 to 999999")
    return int(text)


def _threads(config: RunConfig) -> None:
    if config.threads is not None:
        import torch
        torch.set_num_threads(config.threads)


# --- commands ---------------------------------------------------------------------------------------------------
def cmd_retain(args) -> None:
    from .retention import GeneratePruneData
    from .locks import folder_lock

    config = RunConfig.from_flat(given(args, ("hidden", "q", "iterations")))
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise NbpruneError(f"--dir {folder} is a file: expected a folder to write retain.txt into.")
    generator = GeneratePruneData(hidden=config.model.hidden, q=config.schedule.q,
                                  iterations=range(config.schedule.iterations), dir=folder)
    with folder_lock(folder, "retain folder"):
        steps = generator.generate_data(save_data=True)
        generator.plot_data_iterations()
        generator.plot_data_distribution()
    print(f"wrote {folder / 'retain.txt'} ({len(steps)} iterations) and its two plots")


def cmd_prune(args) -> None:
    config = RunConfig.from_flat(given(args, RUN_SETTINGS))
    controls = Controls(**given(args, ("session_dir", "begin_itr", "end_itr")))
    from .iterative import plan_run
    from .report import concatenate
    from .session import Session

    session = Session.open(controls.session_dir)
    _threads(config)
    experiment, planned = plan_run(config, session, controls.begin_itr, controls.end_itr,
                                   progress=not args.no_progress)
    records = experiment.run(planned)
    for record in records:
        print(f"iteration {record['iteration']:>2}: neurons {'+'.join(map(str, record['retained']))}, "
              f"validation accuracy {record.get('Val_Accuracy', float('nan')):.2f}%, "
              f"test accuracy {record['Test_Accuracy']:.2f}%")
    out = concatenate(session)
    print(f"results in {session.pruning}; curves in {out}")


def cmd_concat(args) -> None:
    from .report import concatenate
    from .session import Session
    print(f"wrote {concatenate(Session.open(args.session_dir))}")


def cmd_evaluate(args) -> None:
    values = given(args, DATA_SETTINGS)
    config = RunConfig.from_flat(values)
    from .config import resolve_device
    from .data import OWN_TENSORS, load_data_for
    from .datasets import is_data_file
    from .evaluation import evaluate, loss_and_accuracy, own_data_evaluation
    from .export import model_for_file
    from .layers import hidden_units, inputs_read
    from .model import SimpleNN

    device = resolve_device(config.device)
    with warnings.catch_warnings(record=True) as notes:  # said after success: a failure is one line
        warnings.simplefilter("always")
        model, spec = model_for_file(args.model_file, activation=args.activation, dataset=values.get("dataset"))
    if spec is not None and spec.dataset == OWN_TENSORS:
        raise NbpruneError(f"{args.model_file} was trained on your own tensors, which nbprune evaluate cannot load: "
                           f"evaluate it in Python with your own loaders, e.g. {own_data_evaluation(args.model_file)}")
    if spec is not None:  # a data file may have moved: --dataset then says where it is now
        config = config.replace(dataset=values.get("dataset", spec.dataset))
        if "dataset" not in values and is_data_file(spec.dataset) and not Path(spec.dataset).is_file():
            raise NbpruneError(f"{args.model_file} was trained on {spec.dataset}, which is not there now: if it "
                               f"moved, say where with --dataset NEW/PLACE{Path(spec.dataset).suffix}.")
    _threads(config)
    data = load_data_for(config, standardisation=(spec.mean, spec.std) if spec is not None else None)
    features, hidden = (model.in_features, model.hidden) if isinstance(model, SimpleNN) else \
        (inputs_read(model), hidden_units(model))
    if data.spec.features != features:
        raise NbpruneError(f"{args.model_file} takes {features} inputs, {data.name} has "
                           f"{data.spec.features}: evaluate it on the data it was trained on.")
    model = model.to(device)
    results = evaluate(model, data.train_loader, data.test_loader)
    results["Val_Loss"], results["Val_Accuracy"] = loss_and_accuracy(model, data.val_loader)
    print(json.dumps({"hidden": list(hidden), "dataset": data.name, **results}, indent=2))
    _repeat(notes)


def _repeat(notes) -> None:
    """Say nbprune's own notes that were held back until the command succeeded."""
    for note in notes:
        if note.category is UserWarning:
            warnings.warn(str(note.message))


def cmd_workbook(args) -> None:
    from .course.workbook import parse_parameters, run_workbook
    controls = given(args, ("session_dir",))
    parameters = parse_parameters(args.parameter or [])
    out = run_workbook(session_dir=controls.get("session_dir"), profile=args.profile, parameters=parameters)
    print(f"workbook finished: executed notebooks in {out}")


def cmd_teacher(args) -> None:
    from .data import load_data_for
    from .evaluation import loss_and_accuracy
    from .files import TEMPORARY_SPARE, check_fits
    from .teacher import save_teacher, train_teacher

    config = RunConfig.from_flat(given(args, TEACHER_DATA_SETTINGS))
    out = Path(args.out_file)
    check_fits(out, "OUT_FILE", spare=TEMPORARY_SPARE)  # refused now, not after minutes of training
    if out.is_dir():
        raise NbpruneError(f"OUT_FILE {out} is a folder: expected the path of the teacher file to write, e.g. "
                           f"{out / 'teacher.pth'}.")
    folder = next(parent for parent in out.absolute().parents if parent.exists())
    if not folder.is_dir():
        raise NbpruneError(f"cannot write {out}: {folder} is a file, not a folder; choose a path in a folder.")
    if not os.access(folder, os.W_OK):
        raise NbpruneError(f"cannot write {out}: {folder} is not writable; choose a folder you can write to.")
    _threads(config)
    data = load_data_for(config)
    trained = train_teacher(data, args.epochs, seed=config.seed, progress=not args.no_progress)
    save_teacher(trained, data.spec, out)
    test_accuracy = loss_and_accuracy(trained.model, data.test_loader)[1]
    print(f"wrote {out}: epoch {trained.best_epoch} of {args.epochs} (chosen on validation), validation accuracy "
          f"{trained.val_accuracy:.2f}%, test accuracy {test_accuracy:.2f}% (reported only), "
          f"{trained.seconds:.0f} s")


def cmd_export(args) -> None:
    from .export import export_model
    with warnings.catch_warnings(record=True) as notes:  # said after success: a failure is one line
        warnings.simplefilter("always")
        out = export_model(args.model_file, args.out_dir, onnx=args.onnx, force=args.force,
                           activation=args.activation, dataset=given(args, ("dataset",)).get("dataset"))
    print(f"exported to {out}")
    _repeat(notes)


# --- the parser -------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nbprune",
        description="Interval-adjoint sensitivity guided node pruning. Typical order: retain -> prune -> "
                    "concat -> evaluate -> export; or run the whole workbook with `nbprune workbook`.",
        epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress messages")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    retain = commands.add_parser("retain", help="write the retention schedule retain.txt and its two plots",
                                 description="Write retain.txt (neurons kept per hidden layer at each pruning "
                                             "iteration: round(h * q**t), at least 1) and its two plots.")
    for name in ("hidden", "q", "iterations"):
        add_setting(retain, SETTINGS[name])
    retain.add_argument("--dir", default="retain", help="output folder (default: ./retain)")
    retain.set_defaults(func=cmd_retain)

    prune = commands.add_parser(
        "prune", help="train the dense model, then prune and retrain iteration by iteration", epilog=EPILOG,
        description="Iteration 0 trains the dense SimpleNN; each later iteration loads the previous best model, "
                    "keeps the most significant neurons, retrains and evaluates. Writes "
                    "<session-dir>/iterative_pruning/<i>/prune_w_retrain/{best_model.pth,train_results.txt,"
                    "validation_results.txt} and prune_w_retrain_results/. Interrupted? Run again with "
                    "--begin-itr auto.")
    for name in ("session_dir", "begin_itr", "end_itr"):
        add_setting(prune, CONTROLS[name])
    for setting in RUN_SETTINGS.values():
        add_setting(prune, setting)
    prune.add_argument("--no-progress", action="store_true", help="hide progress bars")
    prune.set_defaults(func=cmd_prune)

    concat = commands.add_parser("concat", help="collect every iteration's results into validations.txt and plots")
    concat.add_argument("session_dir", help="a session folder (or its iterative_pruning folder)")
    concat.set_defaults(func=cmd_concat)

    evaluate = commands.add_parser(
        "evaluate", help="load a model file and print its loss and accuracy", epilog=EPILOG,
        description="Loss and accuracy of a model file on the dataset and standardisation its record names.")
    evaluate.add_argument("model_file", help="a best_model.pth")
    evaluate.add_argument("--activation", choices=ACTIVATIONS,
                          help=f"only for a plain state_dict without nbprune's record (default: "
                               f"{SETTINGS['activation'].default})")
    for name in DATA_SETTINGS:
        add_setting(evaluate, SETTINGS[name])
    evaluate.set_defaults(func=cmd_evaluate)

    workbook = commands.add_parser(
        "workbook", help="run the workbook's notebooks (00-07) headless with papermill",
        epilog="-p takes every setting but retain (03_retention makes the schedule): "
               + ", ".join(name for name in SETTINGS if name != "retain")
               + ". `nbprune prune --help` gives the meanings and defaults of those it shares.")
    workbook.add_argument("--profile", default="quick", choices=["quick", "full"],
                          help="quick: few epochs per iteration; full: the reference workflow's training settings")
    add_setting(workbook, CONTROLS["session_dir"])
    workbook.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                          help="any setting, e.g. -p begin_itr 3 or -p hidden 300,100,50 (repeatable)")
    workbook.set_defaults(func=cmd_workbook)

    teacher = commands.add_parser(
        "teacher", help="train a small convolutional network to distil from (the teacher setting)", epilog=EPILOG,
        description="Train a two-layer convolutional network on the training split only (AdamW, one-cycle "
                    "schedule, random shifts of up to 2 pixels; the epoch chosen on the validation split) and write "
                    "it as a self-describing teacher file. Prints its validation and test accuracy (the test set "
                    "chooses nothing). Use it with `nbprune prune --teacher OUT_FILE`.")
    teacher.add_argument("out_file", help="the teacher file to write, e.g. teacher.pth")
    teacher.add_argument("--epochs", type=_whole_number, default=8, help="training epochs (default: 8)")
    for name in TEACHER_DATA_SETTINGS:
        add_setting(teacher, SETTINGS[name])
    teacher.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    teacher.set_defaults(func=cmd_teacher)

    export = commands.add_parser("export", help="write a standalone folder (model, model.py, loader, predict.py)")
    export.add_argument("model_file", help="a best_model.pth")
    export.add_argument("out_dir", help="folder to create (refused when it holds files, unless --force)")
    export.add_argument("--force", action="store_true", help="replace the files of an earlier export in OUT_DIR")
    export.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                        help="also write model.onnx (default: when the onnx package is installed)")
    export.add_argument("--activation", choices=ACTIVATIONS,
                        help=f"only for a plain state_dict without nbprune's record (default: "
                             f"{SETTINGS['activation'].default})")
    add_setting(export, SETTINGS["dataset"])
    export.set_defaults(func=cmd_export)
    add_sweep_command(commands)
    return parser


def _bars():
    """Return tqdm's bar class once something imported it (papermill, a training loop), else None: the command
    itself starts without tqdm."""
    return getattr(sys.modules.get("tqdm.std"), "tqdm", None)


def _say(line: str) -> None:
    """Print the command's one closing line on stderr, after closing the progress bars still open, so the line is
    one of its own instead of the end of a bar's."""
    for bar in list(getattr(_bars(), "_instances", ())):
        bar.close()
    print(line, file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as a line of its own on stderr, also while progress bars are open: tqdm's `write` clears them,
    prints the line and draws them again below it."""
    text, bars = f"nbprune: warning: {message}", _bars()
    if bars is None:
        print(text, file=sys.stderr)
    else:
        bars.write(text, file=sys.stderr)


def _resume_hint(args: argparse.Namespace | None) -> str:
    """Return how to continue the command that was interrupted, from its parsed arguments ('' when there is nothing
    to continue: a `sweep report` is written again from the start; or the arguments were not parsed yet)."""
    command = getattr(args, "command", None)
    if command == "sweep" and args.words[:1] == ["report"]:
        return ""
    return {"prune": " Run the same command with --begin-itr auto to continue.",
            "workbook": " Run the same command with -p begin_itr auto to continue.",
            "sweep": SWEEP_RESUME}.get(command, "")


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    args = None
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C is handled below
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # and a kill as Ctrl-C: half-written files go
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        warnings.showwarning = _show_warning
        args.func(args)
    except NbpruneError as error:
        _say(f"nbprune: error: {' '.join(str(error).split())}")
        return 2
    except KeyboardInterrupt:
        _say(f"nbprune: interrupted.{_resume_hint(args)}")
        return 130
    except SystemExit:
        raise
    except Exception as error:  # last resort: every known case has its own message above
        if debug:
            raise
        _say(f"nbprune: error: unexpected {type(error).__name__}: {' '.join(str(error).split())[:300]} "
             f"(rerun with --debug for the traceback, and please report it)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

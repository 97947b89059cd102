"""The `nbprune` command: thin wrappers over the library. Bad input exits with code 2 and a one-line message."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from .errors import NbpruneError

EPILOG = "Data: --data-root, else $NBPRUNE_DATA_ROOT, else ./data (downloaded there when missing)."


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default: $NBPRUNE_DATA_ROOT or ./data)")
    parser.add_argument("--dataset", default="MNIST", choices=["MNIST", "FashionMNIST"], help="default: MNIST")
    parser.add_argument("--subset", type=_positive_int, help="use only this many training and test images")
    parser.add_argument("--val-size", type=_positive_int, help="validation images held out (default 1/12: 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, shuffles and init (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--threads", type=_positive_int,
                        help="torch CPU threads (default: one per core; 1 is faster when other work shares the CPU)")


def _load(args):
    from .data import load_data
    from .train import resolve_device
    return load_data(args.data_root, name=args.dataset, seed=args.seed, subset=args.subset, val_size=args.val_size,
                     device=resolve_device(args.device))


def cmd_retain(args) -> None:
    from .retention import GeneratePruneData
    generator = GeneratePruneData(hidden=args.hidden, q=args.q, iterations=range(0, args.iterations), dir=args.dir)
    steps = generator.generate_data(save_data=True)
    generator.plot_data_iterations()
    generator.plot_data_distribution()
    print(f"wrote {Path(args.dir) / 'retain.txt'} ({len(steps)} iterations) and its two plots")


def cmd_prune(args) -> None:
    import torch

    from .iterative import IterativePruning, default_session_dir
    from .model import SimpleNN
    from .report import concatenate
    from .retention import GeneratePruneData

    session_dir = Path(args.session_dir) if args.session_dir else default_session_dir(args.results_root)
    torch.manual_seed(args.seed)
    model = SimpleNN(hidden=args.hidden, activation=args.activation)
    schedule = args.retain or GeneratePruneData(model.hidden, args.q, dir=session_dir).data
    data = _load(args)
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader,
                                  criterion=args.criterion, seed=args.seed, progress=not args.no_progress,
                                  distill=not args.no_distill,
                                  num_epochs=args.epochs, patience=args.patience, recipe=args.recipe, lr=args.lr)
    config = {key: value for key, value in vars(args).items() if key != "func"}
    config.update(mean=data.mean, std=data.std)
    records = experiment.run(model, schedule, session_dir, begin_itr=args.begin_itr, end_itr=args.end_itr,
                             config=config)
    for record in records:
        print(f"iteration {record['iteration']:>2}: neurons {'+'.join(map(str, record['retained']))}, "
              f"test accuracy {record['Test_Accuracy']:.2f}%")
    out = concatenate(session_dir)
    print(f"results in {session_dir}; curves in {out}")


def cmd_concat(args) -> None:
    from .report import concatenate
    print(f"wrote {concatenate(args.session_dir)}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate
    from .io import load_pruned_model, load_state_dict
    from .model import SimpleNN
    layers = sum(key.startswith("fc") and key.endswith(".weight") for key in load_state_dict(args.model_file))
    model = load_pruned_model(SimpleNN(hidden=[1] * max(layers - 1, 1), activation=args.activation), args.model_file)
    data = _load(args)
    results = evaluate(model.to(data.train_loader.device), data.train_loader, data.test_loader)
    print(json.dumps({"hidden": list(model.hidden), **results}, indent=2))


def cmd_workbook(args) -> None:
    from .workbook import parse_parameters, run_workbook
    out = run_workbook(session_dir=args.session_dir, profile=args.profile,
                       parameters=parse_parameters(args.parameter or []))
    print(f"workbook finished: executed notebooks in {out}")


def cmd_export(args) -> None:
    from .export import export_model
    out = export_model(args.model_file, args.out_dir, onnx=args.onnx)
    print(f"exported to {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbprune",
        description="Interval-adjoint sensitivity guided node pruning. Typical order: retain -> prune -> "
                    "concat -> evaluate -> export; or run the whole workbook with `nbprune workbook`.",
        epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    retain = commands.add_parser("retain", help="write the retention schedule retain.txt and its two plots",
                                 description="Write retain.txt (neurons kept per hidden layer at each pruning "
                                             "iteration: round(h * q**t), at least 1) and its two plots.")
    retain.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 64], help="hidden sizes (256 64)")
    retain.add_argument("--q", type=float, default=0.8, help="fraction kept per iteration (0.8)")
    retain.add_argument("--iterations", type=_positive_int, default=31, help="iterations 0..N-1 (31)")
    retain.add_argument("--dir", default="retain", help="output folder (./retain)")
    retain.set_defaults(func=cmd_retain)

    prune = commands.add_parser(
        "prune", help="train the dense model, then prune and retrain iteration by iteration", epilog=EPILOG,
        description="Iteration 0 trains the dense SimpleNN; each later iteration loads the previous best model, "
                    "keeps the most significant neurons, retrains and evaluates. Writes "
                    "<session-dir>/<i>/prune_w_retrain/{best_model.pth,train_results.txt,validation_results.txt} "
                    "and prune_w_retrain_results/. Interrupted? Run again with --begin-itr auto.")
    prune.add_argument("--session-dir", help="where to write (default <results-root>/sessions/<today>/iterative_pruning)")
    prune.add_argument("--results-root", default=".", help="root for the default session folder (.)")
    prune.add_argument("--begin-itr", default="0",
                       help="0: from scratch; k: restart at iteration k from k-1's model; auto: continue")
    prune.add_argument("--end-itr", type=int, help="stop after this iteration")
    prune.add_argument("--retain", help="a retain.txt to follow (default: the q-schedule for --hidden)")
    prune.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 64], help="hidden sizes (256 64)")
    prune.add_argument("--activation", default="relu", choices=["relu", "sigmoid"])
    prune.add_argument("--q", type=float, default=0.8, help="fraction kept per iteration (0.8)")
    prune.add_argument("--criterion", default="interval_adjoint",
                       choices=["interval_adjoint", "magnitude", "taylor", "random"], help="default interval_adjoint")
    prune.add_argument("--epochs", type=_positive_int, default=40,
                       help="most epochs per iteration (40; the seed's recipe used 300)")
    prune.add_argument("--no-distill", action="store_true",
                       help="retrain on labels only (default: also learn from the dense model's outputs)")
    prune.add_argument("--patience", type=_positive_int, default=10, help="early-stopping patience (10)")
    prune.add_argument("--recipe", default="default", choices=["default", "seed"],
                       help="default: learning-rate drops on plateaus; seed: the seed's constant rate")
    prune.add_argument("--lr", type=float, default=1e-3, help="learning rate (1e-3)")
    prune.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_data_options(prune)
    prune.set_defaults(func=cmd_prune)

    concat = commands.add_parser("concat", help="collect every iteration's results into validations.txt and plots")
    concat.add_argument("session_dir", help="the iterative_pruning folder of a session")
    concat.set_defaults(func=cmd_concat)

    evaluate = commands.add_parser("evaluate", help="load a pruned model file and print its loss and accuracy",
                                   epilog=EPILOG)
    evaluate.add_argument("model_file", help="a best_model.pth")
    evaluate.add_argument("--activation", default="relu", choices=["relu", "sigmoid"],
                          help="the activation the model was trained with (relu)")
    _add_data_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    workbook = commands.add_parser("workbook", help="run the six notebooks headless with papermill")
    workbook.add_argument("--profile", default="quick", choices=["quick", "full"],
                          help="quick: few epochs per iteration; full: the seed's training settings")
    workbook.add_argument("--session-dir", help="session folder (default sessions/<today>)")
    workbook.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                          help="a notebook parameter, e.g. -p begin_itr 3 (repeatable)")
    workbook.set_defaults(func=cmd_workbook)

    export = commands.add_parser("export", help="write a standalone folder (model, model.py, loader, predict.py)")
    export.add_argument("model_file", help="a best_model.pth")
    export.add_argument("out_dir", help="folder to create")
    export.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                        help="also write model.onnx (default: when the onnx package is installed)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    warnings.formatwarning = lambda message, category, *rest: f"nbprune: warning: {message}\n"
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except NbpruneError as error:
        print(f"nbprune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = "-p begin_itr auto" if args.command == "workbook" else "--begin-itr auto"
        print(f"nbprune: interrupted; run the same command with {resume} to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

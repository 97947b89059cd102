"""`nbprune sweep`: its options and what it does. Imports neither torch nor Ray until the command runs."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..config import CONTROLS
from ..errors import NbpruneError

SPEC_FORMAT = """\
SPEC is a TOML file: seeds = [0, 1, 2]; end_itr = 8; [set] NAME = VALUE (every chain); [grid] NAME = [V1, V2]
(every combination); [[cases]] blocks of NAME = VALUE (a list of settings sets, each crossed with the grid). Any
setting of `nbprune prune` by its flat name. The command line adds to (and replaces parts of) the file. Each chain
is a session under DIR/chains/; the dense model of each (data, architecture, training, seed) is trained once under
DIR/dense/ and shared. Rerun the same command to retry failed chains and continue unfinished ones. Data: the files
must lie in data_root on a file system every Ray node sees (the driver downloads them there once), as must DIR. A
cluster whose head uses token authentication needs RAY_AUTH_MODE=token and its token on every node and here
(docs/sweep.md)."""


def add_command(commands) -> None:
    """Add `nbprune sweep [SPEC] ...` and `nbprune sweep report DIR` to the command line."""
    sweep = commands.add_parser(
        "sweep", help="run settings x seeds as pruning chains on Ray (local or a cluster); `sweep report DIR`",
        description="Run a grid (or list) of settings times seeds as independent pruning chains on Ray and "
                    "collect one row per model in DIR/results.csv; `nbprune sweep report DIR` draws accuracy "
                    "against parameters and % retained in bands over seeds (lowest to highest), picks per parameter "
                    "budget on validation and writes DIR/report.md.",
        epilog=SPEC_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("words", nargs="*", metavar="SPEC | report DIR",
                       help="a TOML spec (optional), or `report` and a sweep folder")
    sweep.add_argument("--dir", help="the sweep's folder (sessions, sweep.json, results.csv)")
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                       help="vary a setting over these values (lists such as hidden: 'hidden=256,64;128,32')")
    sweep.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="fixed",
                       help="fix a setting for every chain, e.g. --set epochs=5")
    sweep.add_argument("--seeds", nargs="+", type=int, metavar="N", help="one chain per seed (default: 0)")
    sweep.add_argument("--end-itr", type=int, metavar="K", help=f"{CONTROLS['end_itr'].help} (default: None)")
    sweep.add_argument("--address", metavar="HOST:PORT",
                       help="a Ray cluster's address (default: $RAY_ADDRESS, else a local Ray on this machine)")
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="CPUs of the local Ray: chains run at once, one thread each (default: all cores)")
    sweep.add_argument("--budgets", nargs="+", type=int, metavar="PARAMETERS",
                       help="report: parameter budgets to pick at (default: 50, 20, 10, 5%% of the dense model)")
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar and the per-chain lines")
    sweep.set_defaults(func=run_command)


RESUME = " Run the same command again to continue the unfinished chains."  # after `nbprune: interrupted.`


def run_command(args: argparse.Namespace) -> None:
    if args.words[:1] == ["report"]:
        if len(args.words) != 2:
            raise NbpruneError(f"`nbprune sweep report` takes one sweep folder, got {len(args.words) - 1}: "
                               f"nbprune sweep report DIR.")
        from .report import sweep_report
        print(f"wrote {sweep_report(args.words[1], args.budgets)}")
        return
    if len(args.words) > 1:
        raise NbpruneError(f"nbprune sweep takes at most one SPEC file, got {' '.join(args.words)}: give the "
                           f"others' settings with --grid and --set.")
    if not args.dir:
        raise NbpruneError("nbprune sweep needs --dir DIR: the folder its sessions and results.csv go in.")
    if args.workers is not None and args.workers < 1:
        raise NbpruneError(f"--workers {args.workers} is not allowed: expected a whole number from 1.")
    from . import engine
    from .engine import STATE_FILE, ChainsFailedWarning, SweepFolder, failed_chains, sweep
    from .spec import grid_values, parse_assignment

    grid = {}
    for text in args.grid:
        name, values = parse_assignment(text, "--grid")
        grid[name] = grid_values(name, values)
    fixed = dict(parse_assignment(text, "--set") for text in args.fixed)
    engine.INTERRUPTED_LINE = "nbprune: interrupted." + RESUME  # Ctrl-C while Ray starts ends the command at once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChainsFailedWarning)  # said below, in the command's one error line
        table = sweep(args.words[0] if args.words else None, args.dir, grid=grid, seeds=args.seeds, fixed=fixed,
                      end_itr=args.end_itr, address=args.address, workers=args.workers,
                      progress=not args.no_progress)
    print(f"results in {table}; compare them with `nbprune sweep report {args.dir}`")
    failed = failed_chains(SweepFolder(args.dir).load_state(None))
    if failed:
        raise NbpruneError(f"{len(failed)} chain(s) failed ({', '.join(failed)}; their errors are in "
                           f"{Path(args.dir) / STATE_FILE}): run the same command again to retry them.")


"""A pruning folder's run history, run.json: every run's configuration, schedule and environment, appended (never
overwritten), so that each iteration can be traced to the run that made it and two runs are never joined."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from .errors import SessionError
from .files import write_text_atomic

RUN_RECORD = "run.json"
EARLIER_RUNS = "earlier_runs"  # where a run that starts at iteration k moves what an earlier run left from k on


class RunHistory:
    """The runs recorded in one run.json."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def runs(self) -> list[dict]:
        """Return every run recorded, oldest first (a record from before the list form: its one run)."""
        if not self.path.is_file():
            return []
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise SessionError(f"{self.path} is not readable JSON ({error}): it was damaged; move it away to start "
                               f"a new record.") from None
        if isinstance(record, dict) and isinstance(record.get("runs"), list):
            return record["runs"]
        return [record]

    def record(self, run: dict) -> int:
        """Append one run's record (never overwriting what earlier runs recorded); return its number."""
        runs = self.runs()
        number = self.next_number(runs)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        runs.append(dict(run, run=number, started=started))
        write_text_atomic(self.path, json.dumps({"runs": runs}, indent=2) + "\n")
        return number

    @staticmethod
    def next_number(runs: list[dict]) -> int:
        """Return the number the next recorded run gets: one more than the last (runs count from 1)."""
        return max((_run_number(run, position) for position, run in enumerate(runs)), default=0) + 1

    @staticmethod
    def run_of(iteration: int, runs: list[dict]) -> dict | None:
        """Return the record of the run that made `iteration`: the last one whose iterations, from the first it
        wrote, include it (a run that starts at k sets every later iteration aside first); None if unrecorded."""
        found = None
        for run in runs:
            first = _first_iteration(run)
            if first is not None and iteration >= first and iteration in _scheduled(run):
                found = run
        return found

    def check_one_run(self, iterations: list[int], pruning: Path) -> None:
        """Raise SessionError when the complete `iterations` of the folder `pruning` come from runs that do not
        continue each other."""
        runs = self.runs()
        makers = {iteration: self.run_of(iteration, runs) for iteration in iterations}
        for before, after in zip(iterations, iterations[1:]):
            older, newer = makers[before], makers[after]
            if older is None or newer is None or older is newer or _first_iteration(newer) == after:
                continue  # unrecorded, one run, or a run that resumed from `before`
            earlier, later = sorted((older, newer), key=lambda run: _run_number(run, runs.index(run)))
            stale = [iteration for iteration in iterations if makers[iteration] is earlier]
            fresh = [iteration for iteration in iterations if makers[iteration] is later]
            raise SessionError(
                f"the pruning folder {pruning} mixes two runs that do not continue each other: {_span(fresh)} "
                f"from run {_run_number(later, runs.index(later))}, {_span(stale)} from the earlier run "
                f"{_run_number(earlier, runs.index(earlier))} (run.json). Their results are never joined: move "
                f"{_span(stale)} out of {pruning}, or run from scratch again (which moves an earlier run aside "
                f"into {EARLIER_RUNS}/).")


def _run_number(run: dict, position: int) -> int:
    """Return a recorded run's number (records from before numbering: their place in the list, from 1)."""
    number = run.get("run")
    return number if isinstance(number, int) and not isinstance(number, bool) else position + 1


def _first_iteration(run: dict) -> int | None:
    """Return the first iteration a recorded run wrote (None: it wrote none); older records: its begin_itr, and
    'auto' as a continuation of the iterations before it."""
    if "first_iteration" in run:
        first = run["first_iteration"]
        return first if isinstance(first, int) and not isinstance(first, bool) else None
    begin = run.get("begin_itr")
    return begin if isinstance(begin, int) and not isinstance(begin, bool) else 0


def _scheduled(run: dict) -> set[int]:
    """Return the iterations of a recorded run's schedule."""
    schedule = run.get("schedule")
    if not isinstance(schedule, list):
        return set()
    return {row[0] for row in schedule if isinstance(row, list) and row and isinstance(row[0], int)}


def _span(iterations: list[int]) -> str:
    """Return 'iteration 3', 'iterations 1, 2' or 'iterations 2-9'."""
    if len(iterations) == 1:
        return f"iteration {iterations[0]}"
    return "iterations " + (", ".join(map(str, iterations)) if len(iterations) < 4 else
                            f"{iterations[0]}-{iterations[-1]}")

"""Progress bars and pictures that read the same live and in a notebook's executed copy.

A live front end (JupyterLab, a terminal) gets tqdm.auto's bars and the workbook's widgets. A headless run gets
what a saved file can show: papermill stores a widget as it was first drawn, so a bar reads "0%" for ever and an
image widget is lost. `nbprune workbook` sets NBPRUNE_HEADLESS=1 for its kernels (set it yourself around a bare
`papermill` call); then each bar that stays (`leave=True`, tqdm's default: an outer loop) prints its finished state
as one text line when it closes, a bar with `leave=False` (an inner loop, such as the epochs of each pruning
iteration) prints nothing, and each control shows static pictures of what its widget drew. Live, an inner bar that
stops early (early stopping) closes as finished, so tqdm hides it instead of leaving a red bar behind.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator

from tqdm.auto import tqdm
from tqdm.std import tqdm as text_tqdm

HEADLESS = "NBPRUNE_HEADLESS"

__all__ = ["HEADLESS", "headless", "headless_kernels", "progress_bar"]


def headless() -> bool:
    """Return whether this process runs without a live front end (NBPRUNE_HEADLESS set and not "0")."""
    return os.environ.get(HEADLESS, "") not in ("", "0")


@contextmanager
def headless_kernels() -> Iterator[None]:
    """Mark the kernels started inside this block as headless (they inherit the environment), then restore it."""
    before = os.environ.get(HEADLESS)
    os.environ[HEADLESS] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[HEADLESS]
        else:
            os.environ[HEADLESS] = before


def _stopped_early(bar) -> None:
    """Make a bar that stopped short of its total read as finished: its description says where it stopped."""
    if bar.total is not None and bar.n < bar.total:
        bar.set_description_str(f"{bar.desc.rstrip(': ')} (stopped after {bar.n} of {bar.total})", refresh=False)
        bar.total = bar.n


class FinishedLine(text_tqdm):
    """A text bar that prints nothing while it runs and, when it closes, its final state as one line written at once
    (so that an executed copy stores one output, not the line and its newline apart) if it stays (`leave`)."""

    def display(self, msg=None, pos=None):
        return False  # nothing while it runs; close() writes the finished line itself

    def close(self) -> None:
        if self.disable:
            return
        _stopped_early(self)
        if self.leave:
            self.fp.write(f"{self}\n")
            self.fp.flush()
        self.leave = False  # written: tqdm's own close must add nothing
        super().close()


class _LiveBar:
    """Mixed into tqdm.auto's bar: an early stop closes as finished, so `leave=False` hides the bar."""

    def close(self) -> None:
        if not self.disable:
            _stopped_early(self)
        super().close()


LiveBar = type("LiveBar", (_LiveBar, tqdm), {})


def _open_bars() -> bool:
    """Return whether a bar is open in this process (one that is not disabled)."""
    return any(not getattr(bar, "disable", True) for bar in list(text_tqdm._instances))


def progress_bar(iterable: Iterable | None = None, **options) -> tqdm:
    """Return tqdm.auto's bar over `iterable` (or counting to `total=`); headless, a FinishedLine on stdout that
    prints its finished state when it closes if it stays. `leave` (default True) says whether it stays when done;
    None: only when no other bar is open (a loop inside another loop's bar disappears, one on its own stays)."""
    leave = options.pop("leave", True)
    leave = not _open_bars() if leave is None else leave
    if headless():
        return FinishedLine(iterable, **options, leave=leave, file=sys.stdout, position=0)
    return LiveBar(iterable, **options, leave=leave)

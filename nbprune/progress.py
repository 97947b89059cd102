"""Progress bars and pictures that read the same live and in a notebook's executed copy.

A live front end (JupyterLab, a terminal) gets tqdm.auto's bars and the workbook's widgets. A headless run gets
what a saved file can show: papermill stores a widget as it was first drawn, so a bar reads "0%" for ever and an
image widget is lost. `nbprune workbook` sets NBPRUNE_HEADLESS=1 for its kernels (set it yourself around a bare
`papermill` call); then each bar prints one finished text line when it closes, and each control shows static
pictures of what its widget drew.
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


class FinishedLine(text_tqdm):
    """A text bar that prints nothing while it runs and one line, its final state, when it closes."""

    _closing = False

    def display(self, msg=None, pos=None):
        return super().display(msg, pos) if self._closing else True

    def close(self) -> None:
        if self.disable or self._closing:
            return
        if self.total is not None and self.n < self.total:  # stopped early: say so instead of a bar short of 100%
            self.set_description_str(f"{self.desc.rstrip(': ')} (stopped after {self.n} of {self.total})",
                                     refresh=False)
            self.total = self.n
        self._closing = True
        super().close()


def progress_bar(iterable: Iterable | None = None, **options) -> tqdm:
    """Return tqdm.auto's bar over `iterable` (or counting to `total=`); headless, a FinishedLine on stdout that
    stays when it closes."""
    if headless():
        return FinishedLine(iterable, **{**options, "file": sys.stdout, "leave": True, "position": 0})
    return tqdm(iterable, **options)

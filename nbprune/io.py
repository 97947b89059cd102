"""Files: atomic writes, the reference's text tables and figures (model files have their own module, modelfile)."""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import NbpruneError, StorageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UMASK = os.umask(0o022)  # read the process umask (the only way is to set it), then put it back at once
os.umask(UMASK)


def cannot_write(path: Path, error: OSError) -> StorageError:
    """Return the one-line error for a write that the file system refused."""
    reason = error.strerror or type(error).__name__
    return StorageError(f"could not write {path} ({reason}): make room on the disk or choose a folder you can "
                        f"write to; the file is as it was before.")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step, on failure it vanishes.

    A refused write (read-only, full disk, a file in the way) becomes a StorageError naming the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the result the mode open() would
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise cannot_write(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed to disk before the rename) and return the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def format_table(header: Sequence[str], rows: Sequence[Sequence[float]]) -> str:
    """Return the reference workflow's table format: a space-separated header and rows of %g numbers."""
    lines = [" ".join(header)]
    lines += [" ".join(f"{value:g}" for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def read_table(path: str | os.PathLike) -> tuple[list[str], list[list[float]]]:
    """Return the header and rows of a table written by format_table; every value must be a finite number."""
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise NbpruneError(f"{path} is not a text table (it is not UTF-8): expected a file nbprune wrote; "
                           f"delete it and run that step again.") from None
    except OSError as error:
        raise NbpruneError(f"{path} cannot be read ({error.strerror}): check the file exists and is "
                           f"readable.") from None
    header = lines[0].split()
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            row = [float(value) for value in line.split()]
        except ValueError:
            row = []
        if len(row) != len(header) or not all(math.isfinite(value) for value in row):
            raise NbpruneError(f"{path} line {number}: {line[:80]!r} is not a row of {len(header)} finite numbers "
                               f"under the header {' '.join(header)!r}: the file is damaged; run that step again.")
        rows.append(row)
    if not header or not rows:
        raise NbpruneError(f"{path} holds no table (header and at least one row): the file is damaged or empty; "
                           f"run that step again.")
    return header, rows


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Save a figure as PNG atomically and return the path."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    return Path(path)

"""Files: atomic writes, the reference's text tables and figures (model files have their own module, modelfile)."""

from __future__ import annotations

import errno
import math
import numbers
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .config import NAME_MAX, PATH_MAX
from .errors import NbpruneError, StorageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UMASK = os.umask(0o022)  # read the process umask (the only way is to set it), then put it back at once
os.umask(UMASK)


TEMPORARY_SPARE = len("..XXXXXXXX.tmp")  # what an atomic write's temporary file adds to the name it replaces
FIXES = {errno.ENOSPC: "make room on the disk", errno.EDQUOT: "make room on the disk (your quota is full)",
         errno.EROFS: "choose a folder you can write to", errno.EACCES: "choose a folder you can write to",
         errno.EPERM: "choose a folder you can write to",
         errno.EISDIR: "a folder of that name is in the way: move it, or choose another name",
         errno.ENOTDIR: "a file is in the way where the path needs a folder: choose another path",
         errno.ENAMETOOLONG: "choose a shorter name or path", errno.ELOOP: "a symbolic link in the path leads back "
                                                                          "to itself: choose another path"}


def resolved(path: str | os.PathLike) -> Path:
    """Return the path made absolute with its symbolic links followed, or only made absolute where they cannot be
    (a link that leads back to itself: whatever opens it refuses it in one line)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python before 3.13, for a symbolic-link loop
        return Path(os.path.abspath(path))


def write_fix(error: OSError) -> str:
    """Return what to do about a write the file system refused, for its reason."""
    return FIXES.get(error.errno, "check the path and that the disk has room")


def cannot_write(path: Path, error: OSError) -> StorageError:
    """Return the one-line error for a write that the file system refused, with the fix for its reason."""
    reason = error.strerror or type(error).__name__
    return StorageError(f"could not write {path} ({reason}): {write_fix(error)}; the file is as it was before.")


def check_fits(path: str | os.PathLike, what: str, spare: int = 0, below: str = "") -> None:
    """Raise StorageError unless the file system takes `path` (at most PATH_MAX - 1 bytes, NAME_MAX per name),
    with `spare` bytes more in its last name (the temporary name beside it) and, with `below`, the longest path a
    command writes inside it. Checked before anything is written (a longer path fails in the first open)."""
    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))

    full = Path(os.path.abspath(os.fspath(path)))
    longest = max((size(name) for name in full.parts[1:]), default=0)
    total = size(str(full)) + (1 + size(below) if below else 0) + spare
    if total < PATH_MAX and longest <= NAME_MAX and size(full.name) + spare <= NAME_MAX:
        return
    shown = os.fspath(path)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    room = f" with room for what nbprune writes {'inside it' if below else 'beside it'}" if below or spare else ""
    raise StorageError(f"{what} {shown!r} is too long ({size(str(full))} bytes, its longest name {longest} bytes): "
                       f"the file system takes at most {PATH_MAX - 1} bytes and {NAME_MAX} per name{room}; choose a "
                       f"shorter path.")


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
    """Return the reference workflow's table format: a space-separated header and rows of %g numbers, whole
    numbers written out in full (%g would write a budget of 2,293,000 as 2.293e+06, which retain.txt refuses, and
    round 1,863,690 parameters to 1.86369e+06)."""
    lines = [" ".join(header)]
    lines += [" ".join(str(int(value)) if isinstance(value, numbers.Integral) and not isinstance(value, bool)
                       else f"{value:g}" for value in row) for row in rows]
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

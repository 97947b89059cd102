"""Locks that die with their process: the OS's advisory lock (flock) on a file or folder handle.

`folder_lock` keeps two nbprune runs out of one folder (a session, a sweep, a retain folder): it holds
<folder>/.nbprune.lock and writes the holder's PID and a random token there; the processes the holder starts (the
workbook's kernels) inherit the token and may enter. `hold` is the bare lock on a folder itself, which export uses
for the folders it builds in.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import SessionError

LOCK_FILE = ".nbprune.lock"
# The tokens of the locks held by this process or the processes that started it (the workbook's kernels).
LOCK_TOKENS = "NBPRUNE_LOCK_TOKENS"


def try_lock(handle: int, wait: bool = False) -> bool:
    """Take the exclusive lock on an open handle; return False when another process holds it (and `wait` is off).
    Where the system has no flock (Windows), a file handle is locked with msvcrt."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            msvcrt.locking(handle, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def hold(folder: Path, wait: bool) -> int | None:
    """Return an open handle holding the lock on `folder` itself, or None when another process holds it (or the
    system cannot lock a folder); close the handle to let go."""
    try:
        import fcntl  # noqa: F401 (folders can be locked only where flock exists)
    except ImportError:
        return None
    handle = os.open(folder, os.O_RDONLY)
    if try_lock(handle, wait):
        return handle
    os.close(handle)
    return None


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder`/.nbprune.lock for the block; it dies with the process (no stale lock).

    The file says the holder's PID and a random token; the token is handed to the processes the holder starts
    (through $NBPRUNE_LOCK_TOKENS), which may then enter while it holds the lock. Anyone else is refused."""
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise SessionError(f"{what} {folder} cannot be written ({error.strerror}): choose a folder you can write "
                           f"to.") from None
    try:
        if not try_lock(handle):
            refuse_unless_shared(handle, folder, what)
            yield  # the process that started this one holds the lock for it
            return
        token = secrets.token_hex(16)
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()} {token}\n".encode(), 0)
        with _sharing(token):
            yield
    finally:
        os.close(handle)  # closing releases the lock


def check_free(folder: Path, what: str) -> None:
    """Raise SessionError if another process holds `folder`'s lock; create nothing."""
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDWR)  # Windows locks only what a handle may write
    except OSError:  # no lock file (or a read-only one, which nobody can hold): free
        return
    try:
        if not try_lock(handle):
            refuse_unless_shared(handle, folder, what)
    finally:
        os.close(handle)


def refuse_unless_shared(handle: int, folder: Path, what: str) -> None:
    """Raise SessionError naming the holder's PID unless the holder handed this process its token."""
    words = os.pread(handle, 200, 0).decode("ascii", "replace").split()
    holder, token = (words[0] if words else "unknown"), (words[1] if len(words) > 1 else "")
    if token and token in os.environ.get(LOCK_TOKENS, "").split(","):
        return
    raise SessionError(f"{what} {folder} is in use by another nbprune run (PID {holder}): wait for it to "
                       f"finish, or choose another {what}.")


@contextmanager
def _sharing(token: str) -> Iterator[None]:
    """Hand `token` to the processes started inside the block (they inherit the environment)."""
    before = os.environ.get(LOCK_TOKENS)
    os.environ[LOCK_TOKENS] = ",".join(filter(None, [token, before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOCK_TOKENS, None)
        else:
            os.environ[LOCK_TOKENS] = before

"""One writer per run folder: an ``fcntl.flock`` on ``run.lock`` inside it.

The kernel drops a ``flock`` when the process that holds it ends, however it ends, so a
killed run leaves no stuck lock: the file stays, the lock does not. A second run on a
folder that a live run holds is refused at once (``LOCK_NB``), with one line.

A process keeps each lock it took until ``release`` (``run.finetune`` releases, through
``released_after``, what the run took); taking a folder this process already holds is a no-op, so that one program may run
``finetune`` on the same folder again, one call after the other.
"""

import contextlib
import fcntl
import os

from keras_notes.errors import KerasNotesError

LOCK_FILE = "run.lock"

_held = {}  # absolute run folder -> open lock file


def hold(folder):
    """Take ``folder``'s lock for this process; ``KerasNotesError`` if another process holds it."""
    key = os.path.abspath(folder)
    if key in _held:
        return folder
    handle = open(os.path.join(folder, LOCK_FILE), "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise KerasNotesError(f"run folder {folder!r} is in use by another run"
                              + (f" (process {holder})" if holder else "")
                              + "; wait for it to end or choose another --output") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[key] = handle
    return folder


def is_locked_elsewhere(folder):
    """Whether another process holds ``folder``'s lock now (without taking it)."""
    path = os.path.join(folder, LOCK_FILE)
    if os.path.abspath(folder) in _held or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def release(folder):
    """Give up this process's lock on ``folder``, if it holds one."""
    handle = _held.pop(os.path.abspath(folder), None)
    if handle is not None:
        handle.close()  # closing the last descriptor drops the flock


@contextlib.contextmanager
def released_after():
    """Release, on leaving, every lock taken inside: ``run.finetune`` wraps a run in it."""
    before = set(_held)
    try:
        yield
    finally:
        for key in set(_held) - before:
            _held.pop(key).close()

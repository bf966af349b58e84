"""Atomic file writes: write under a temporary name in the same folder, then rename.

``os.replace`` is atomic on one file system, so a crash leaves either the old file or
the new one under the real name, never half of either.
"""

import contextlib
import os
import shutil

# Keras checks these suffixes on the names it saves to, so a temporary name keeps them.
_KEPT_SUFFIXES = (".weights.h5", ".keras")


def temporary_path(path):
    """A hidden name beside ``path`` with the same extension (``.weights.h5`` and ``.keras`` kept whole)."""
    directory, name = os.path.split(os.fspath(path))
    extension = next((suffix for suffix in _KEPT_SUFFIXES if name.endswith(suffix)), os.path.splitext(name)[1])
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}{extension}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success rename it to ``path``, on failure remove it."""
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path`` to fill; on success it takes ``path``'s place.

    A folder cannot be renamed over a non-empty one, so an earlier ``path`` is first renamed
    aside and removed after the swap: a crash between the two renames leaves the earlier
    folder under ``.<name>.tmp-<pid>.old``, never a half-written one under ``path``.
    """
    temporary = temporary_path(path)
    previous = temporary + ".old"
    try:
        yield temporary
        if os.path.isdir(path):
            os.replace(path, previous)
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, previous):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)

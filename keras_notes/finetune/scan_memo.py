"""Remember each file's check across scans, so that re-scanning an unchanged folder decodes nothing.

A re-run on the same folder (``kept.py`` keeps its frozen outputs) would otherwise spend
most of its time in the scan, opening and decoding every file to learn what it learnt
last time. The memo is one JSON file per scanned folder and scan setting, beside the kept
outputs (``<cache dir>/scans/<hash>.json``), mapping each file's path relative to the
folder to its size, mtime (ns) and the ``ImageCheck`` found. A file whose size or mtime
changed is checked again; files no longer there are forgotten. It is written atomically,
so two scans at once leave one of their memos whole, never a mix.
"""

import dataclasses
import hashlib
import json
import os

import PIL

from keras_notes.atomic import atomic_path
from keras_notes.finetune.imagefile import ImageCheck

FORMAT = 1


def memo_path(memo_dir, directory, **settings):
    """The memo file for ``directory`` scanned with ``settings`` (max_pixels, exif, decode_jpeg)."""
    key = json.dumps({"format": FORMAT, "directory": os.path.realpath(directory), "pillow": PIL.__version__,
                      **settings}, sort_keys=True)
    return os.path.join(memo_dir, "scans", hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + ".json")


def stamp(path):
    """``(size, mtime_ns)`` of ``path`` (symlinks followed), or None when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def load(path):
    """``{relative path: (size, mtime_ns, ImageCheck)}`` from a memo file; empty when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as file:
            rows = json.load(file)["files"]
        return {name: (size, mtime, ImageCheck(**check)) for name, (size, mtime, check) in rows.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save(path, entries):
    """Write ``{relative path: (size, mtime_ns, ImageCheck)}`` to the memo file, atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = {name: [size, mtime, dataclasses.asdict(check)] for name, (size, mtime, check) in entries.items()}
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"format": FORMAT, "files": rows}, file)

"""Keep the frozen part's outputs across runs, so that a re-run on the same images skips the frozen pass.

A user rarely trains once: another learning rate, dropout or head reruns a model whose
frozen part computes exactly what it computed last time. ``RunCache`` therefore looks
each image up here before its pass, computes only the images it misses, and adds them.

The layout, under the cache folder (``--cache-dir``, else ``$KERAS_NOTES_CACHE``, else
``~/.cache/keras_notes``)::

    <entry>/key.json               what the outputs depend on (below); <entry> is its hash
    <entry>/used                   touched on every use: its mtime orders the LRU eviction
    <entry>/<shard>.<i>.npy        (rows, *shape) float32, output i of one pass
    <entry>/<shard>.json           the shard's images, one identity per row, written last

**The key** is everything that determines the outputs: the arch, the image size, the cut
(the kept tensors' names and shapes), the preprocessing layer's configuration, the
precision, the decode options (EXIF on or off, the JPEG reduction ratios), the Keras and
TensorFlow versions, and a hash of the frozen part's weight values. The values, not the
weights file: they cover ``imagenet`` (whatever Keras downloaded), a local file, and a
random base drawn from the run's seed alike, for 13 ms (MobileNet) to 60 ms (VGG16) of
hashing. **Per image** the identity is the path relative to its folder, the file size
and its mtime in nanoseconds: ``os.stat`` costs microseconds, where hashing the contents
reads every byte (docs/kept-cache.md measures both). A changed file has a new size or
mtime, so it is computed again alone; a removed one is no longer asked for.

**Writers never disturb readers.** A shard's arrays are written under temporary names
and renamed, then its manifest is, so a manifest names only complete files; readers list
manifests only. Two runs filling one entry at once each write their own shard, and a
later lookup sees both (for an image in both, the newer manifest wins; they hold the same
values). A shard whose file turns out truncated or unreadable is dropped, said, and its
images computed again. Entries beyond ``--cache-limit`` GiB are evicted, least recently
used first, never the one in use.
"""

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import time
import uuid

import numpy as np

from keras_notes.atomic import atomic_path

CACHE_ENV = "KERAS_NOTES_CACHE"
FORMAT = 1  # the layout above; a new layout gets new entries
GIB = 2 ** 30
COMPACT_SHARDS = 8  # an entry with more shards than this is rewritten as one


def default_cache_dir():
    """``$KERAS_NOTES_CACHE``, else ``~/.cache/keras_notes``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "keras_notes")


def resolve_cache_dir(cache_dir):
    return os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))


def scan_memo_dir(config):
    """Where a run's (or a sweep's) scan keeps its memo: the kept cache's folder, or None when it is off."""
    return resolve_cache_dir(config.cache_dir) if config.kept_cache else None


def weights_digest(model):
    """A hash of the values of ``model``'s weights, in order, with their paths and shapes."""
    digest = hashlib.blake2b(digest_size=16)
    for weight in model.weights:
        values = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(f"{weight.path}:{values.dtype}:{values.shape};".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def entry_key(config, extractor, boundary, preprocessing_config):
    """The dict that names an entry: everything the outputs at ``boundary`` depend on."""
    import keras
    import tensorflow as tf

    from keras_notes.finetune.data import JPEG_RATIOS

    return {
        "format": FORMAT,
        "arch": config.arch,
        "image_size": config.image_size,
        "boundary": [[name, list(shape)] for name, shape in boundary],
        "preprocessing": {key: value for key, value in preprocessing_config.items() if key != "name"},
        "precision": config.precision,
        "exif": not config.ignore_exif,
        "jpeg_ratios": list(JPEG_RATIOS),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "weights": weights_digest(extractor),
        "weights_source": config.weights if config.weights in (None, "imagenet") else os.path.abspath(config.weights),
    }


def key_name(key):
    """The entry folder's name: a hash of the key, the source of the weights left out."""
    named = {name: value for name, value in key.items() if name != "weights_source"}
    return hashlib.blake2b(json.dumps(named, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def image_identities(paths, roots):
    """``relative path|size|mtime_ns`` of each file, relative to the first of ``roots`` that holds it.

    ``roots`` is ``((tag, folder), ...)``; the tag keeps a validation folder's names apart
    from the training folder's. A file under none of them keeps its absolute path.
    """
    prefixes = [(tag, os.path.join(os.path.abspath(root), "")) for tag, root in roots if root]
    identities = []
    for path in paths:
        info = os.stat(path)
        absolute = os.path.abspath(path)
        relative = next((tag + absolute[len(prefix):] for tag, prefix in prefixes if absolute.startswith(prefix)),
                        absolute)
        identities.append(f"{relative}|{info.st_size}|{info.st_mtime_ns}")
    return identities


@dataclasses.dataclass
class Lookup:
    """Where each asked-for image's rows are: ``found[i]`` is ``(shard, row)`` or None."""

    found: list
    dropped: list  # shard files that could not be read, and were removed

    @property
    def missing(self):
        return [index for index, place in enumerate(self.found) if place is None]


class Entry:
    """One entry of the kept cache: the outputs at one cut of one frozen part, for any images."""

    def __init__(self, cache_dir, key, outputs):
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.key = key
        self.outputs = outputs  # number of arrays per image (one per kept tensor)
        self.directory = os.path.join(self.cache_dir, key_name(key))

    # -- reading -------------------------------------------------------------------------------

    def _manifests(self):
        """The complete shards, oldest first: ``[(name, manifest dict)]`` (unreadable manifests skipped)."""
        shards = []
        for path in glob.glob(os.path.join(self.directory, "*.json")):
            if os.path.basename(path) == "key.json":
                continue
            try:
                with open(path, encoding="utf-8") as file:
                    manifest = json.load(file)
                stamp = os.stat(path).st_mtime_ns
            except (OSError, ValueError):
                continue
            shards.append((stamp, os.path.basename(path)[:-len(".json")], manifest))
        return [(name, manifest) for _, name, manifest in sorted(shards, key=lambda item: (item[0], item[1]))]

    def _open(self, name):
        """The shard's arrays, memory-mapped; raises OSError/ValueError when a file is truncated or damaged."""
        arrays = [np.load(os.path.join(self.directory, f"{name}.{index}.npy"), mmap_mode="r")
                  for index in range(self.outputs)]
        rows = {len(array) for array in arrays}
        if len(rows) != 1:
            raise ValueError(f"shard {name} has arrays of {sorted(rows)} rows")
        return arrays

    def lookup(self, identities):
        """Find ``identities`` in the entry; -> ``Lookup``. Damaged shards are removed and reported."""
        where, dropped, self._shards = {}, [], {}
        for name, manifest in self._manifests():
            try:
                arrays = self._open(name)
                if len(arrays[0]) != len(manifest["images"]):
                    raise ValueError(f"{len(arrays[0])} rows for {len(manifest['images'])} images")
            except (OSError, ValueError, KeyError) as error:
                dropped.append((os.path.join(self.directory, f"{name}.json"), " ".join(str(error).split())))
                self._remove_shard(name)
                continue
            self._shards[name] = arrays
            for row, identity in enumerate(manifest["images"]):
                where[identity] = (name, row)
        return Lookup([where.get(identity) for identity in identities], dropped)

    def gather(self, lookup, out, positions):
        """Copy the found rows into ``out`` (a list of arrays) at ``positions`` (one per found image)."""
        by_shard = {}
        for position, place in zip(positions, (place for place in lookup.found if place is not None)):
            by_shard.setdefault(place[0], ([], []))
            by_shard[place[0]][0].append(position)
            by_shard[place[0]][1].append(place[1])
        for name, (targets, rows) in by_shard.items():
            order = np.argsort(rows)  # read each memory-mapped shard front to back
            targets, rows = np.asarray(targets)[order], np.asarray(rows)[order]
            for array, stored in zip(out, self._shards[name]):
                array[targets] = stored[rows]

    # -- writing -------------------------------------------------------------------------------

    def add(self, identities, arrays):
        """Write one shard holding ``arrays`` (one per output, ``len(identities)`` rows each)."""
        if not identities:
            return
        os.makedirs(self.directory, exist_ok=True)
        with atomic_path(os.path.join(self.directory, "key.json")) as temporary:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(self.key, file, indent=1, sort_keys=True, default=str)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        for index, array in enumerate(arrays):
            with atomic_path(os.path.join(self.directory, f"{name}.{index}.npy")) as temporary:
                with open(temporary, "wb") as file:
                    np.save(file, np.ascontiguousarray(array, np.float32))
        # The manifest last: a shard is seen only when its arrays are complete.
        with atomic_path(os.path.join(self.directory, f"{name}.json")) as temporary:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump({"images": list(identities)}, file)

    def touch(self):
        """Mark the entry used now (its place in the LRU order)."""
        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, "used"), "a", encoding="utf-8"):
            pass
        os.utime(os.path.join(self.directory, "used"))

    def compact(self):
        """Rewrite an entry of more than ``COMPACT_SHARDS`` shards as one (the newest row of each image)."""
        manifests = self._manifests()
        if len(manifests) <= COMPACT_SHARDS:
            return
        identities = list(dict.fromkeys(identity for _, manifest in manifests for identity in manifest["images"]))
        lookup = self.lookup(identities)
        found = [index for index, place in enumerate(lookup.found) if place is not None]
        if not found:
            return
        shapes = [array.shape[1:] for array in next(iter(self._shards.values()))]
        out = [np.empty((len(found), *shape), np.float32) for shape in shapes]
        self.gather(lookup, out, range(len(found)))
        old = list(self._shards)
        self.add([identities[index] for index in found], out)
        for name in old:
            self._remove_shard(name)

    def _remove_shard(self, name):
        # The manifest first: the shard is then no longer seen, whatever is left of it.
        for path in [os.path.join(self.directory, f"{name}.json")] + sorted(
                glob.glob(os.path.join(self.directory, f"{name}.*.npy"))):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


# -- the cache folder as a whole ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EntryInfo:
    """One entry as ``keras-notes-cache list`` shows it."""

    name: str
    path: str
    key: dict
    images: int
    bytes: int
    used: float  # seconds since the epoch


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def list_entries(cache_dir=None):
    """Every entry under the cache folder, most recently used first."""
    root = resolve_cache_dir(cache_dir)
    entries = []
    for path in sorted(glob.glob(os.path.join(root, "*", "key.json"))):
        directory = os.path.dirname(path)
        try:
            with open(path, encoding="utf-8") as file:
                key = json.load(file)
        except (OSError, ValueError):
            key = {}
        images = set()
        for manifest in glob.glob(os.path.join(directory, "*.json")):
            if os.path.basename(manifest) != "key.json":
                try:
                    with open(manifest, encoding="utf-8") as file:
                        images.update(json.load(file)["images"])
                except (OSError, ValueError, KeyError):
                    pass
        used_file = os.path.join(directory, "used")
        used = os.stat(used_file).st_mtime if os.path.exists(used_file) else os.stat(path).st_mtime
        entries.append(EntryInfo(os.path.basename(directory), directory, key, len(images),
                                 folder_bytes(directory), used))
    return sorted(entries, key=lambda entry: -entry.used)


def remove_entry(path):
    """Remove an entry folder: renamed first, so that no run reads it half-deleted."""
    doomed = f"{path}.removing-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def evict(cache_dir, limit_gib, keep=()):
    """Remove least recently used entries until the folder holds at most ``limit_gib``; -> the removed entries.

    Entries whose folder is in ``keep`` (the run's own) are never removed.
    """
    entries = list_entries(cache_dir)
    total = sum(entry.bytes for entry in entries)
    removed = []
    for entry in sorted(entries, key=lambda entry: entry.used):
        if total <= limit_gib * GIB:
            break
        if entry.path in keep:
            continue
        remove_entry(entry.path)
        total -= entry.bytes
        removed.append(entry)
    return removed

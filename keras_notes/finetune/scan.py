"""Walk an image folder (one sub-folder per class) and check every file once, up front.

Each file is checked by ``imagefile.check_image`` (usable? which decoder? which
EXIF orientation?), on several threads, before training, so that the ``tf.data``
pipeline never meets a file it cannot decode, and every file left out is reported
with a reason. This module decides which files are seen and what class each has:

- Hidden entries (name starting with ".") and files in the top folder are not
  used and are reported. Symlinks are followed; broken ones are reported.
  Class folders may hold sub-folders, walked recursively as
  ``keras.utils.image_dataset_from_directory`` does.
- Usable files are sorted by class, then by path relative to the class folder.
"""

import dataclasses
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.exif import UPRIGHT
from keras_notes.finetune.imagefile import MAX_PIXELS, check_image

# Threads overlap file reads and the decoders (TF's and Pillow's release the GIL):
# 4,000 small images took 1.24 s on 1 thread and 0.59 s on 2 (2 cores).
DEFAULT_WORKERS = min(8, (os.cpu_count() or 1) * 2)


def format_skipped(skipped, limit=None):
    """``(path, reason)`` pairs as lines ``path: reason``, the first ``limit`` if given, then a count of the rest."""
    shown = skipped if limit is None else skipped[:limit]
    lines = [f"{path}: {reason}" for path, reason in shown]
    if len(shown) < len(skipped):
        lines.append(f"... and {len(skipped) - len(shown)} more")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """The usable images of a class folder, in a deterministic order.

    ``paths[i]`` has label ``labels[i]``, an index into ``class_names``, and
    ``needs_pil[i]`` is True when it must be read with ``load_image_rgb``
    rather than ``tf.io.decode_image``; ``orientation[i]`` is its EXIF
    orientation (1 when it has none). Paths are sorted by class, then by
    path relative to the class folder. ``skipped`` holds ``(path, reason)`` for
    every file (or hidden folder) seen and not used, so files seen = used + skipped;
    ``notes`` holds ``(path, note)`` for used files with something to say (a damaged
    EXIF block, ignored). ``deferred[i]`` is True for a JPEG whose pixels were not
    decoded yet (``defer_jpeg=True``): whoever decodes it first must judge it.
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    needs_pil: tuple[bool, ...] = ()
    directory: str = ""
    orientation: tuple[int, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()
    deferred: tuple[bool, ...] = ()

    def counts(self):
        """Return ``{class_name: number of usable images}`` in class order."""
        totals = [0] * len(self.class_names)
        for label in self.labels:
            totals[label] += 1
        return dict(zip(self.class_names, totals))

    def format_skipped(self, limit=None):
        """Return one line per skipped file, ``path: reason`` (the first ``limit`` if given)."""
        return format_skipped(self.skipped, limit)

    def report(self, limit=20):
        """Return a printable summary: images per class, then the skipped files, then the notes."""
        counts = ", ".join(f"{name}: {count}" for name, count in self.counts().items())
        turned = sum(value != UPRIGHT for value in self.orientation)
        lines = [
            f"{len(self.paths)} images in {len(self.class_names)} classes ({counts}); "
            f"{len(self.skipped)} skipped; {sum(self.needs_pil)} decoded with Pillow; "
            f"{turned} turned upright by their EXIF orientation"
        ]
        if self.skipped:
            lines.append(self.format_skipped(limit))
        if self.notes:
            lines.append(format_skipped(self.notes, limit))
        return "\n".join(lines)


def _list_files(folder, skipped, visited):
    """Return the files under ``folder``, recursively; record hidden and odd entries in ``skipped``."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        skipped.append((folder, f"cannot list folder ({error.strerror})"))
        return []
    files = []
    for entry in entries:
        if entry.name.startswith("."):
            skipped.append((entry.path, "hidden folder" if entry.is_dir() else "hidden file"))
        elif entry.is_dir():  # Follows a symlink to a folder.
            info = entry.stat()
            key = (info.st_dev, info.st_ino)
            if key in visited:
                skipped.append((entry.path, "folder already scanned (symlink loop)"))
                continue
            visited.add(key)
            files.extend(_list_files(entry.path, skipped, visited))
        else:
            # Regular files, symlinks to files, broken symlinks and other oddities
            # all go to check_image, which names what is wrong with each.
            files.append(entry.path)
    return files


def _class_folders(directory, skipped):
    """Return the sorted class folder names; record hidden entries and top-level files."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    folders = []
    for entry in entries:
        if entry.name.startswith("."):
            skipped.append((entry.path, "hidden folder" if entry.is_dir() else "hidden file"))
        elif entry.is_dir():
            folders.append(entry.name)
        else:
            skipped.append((entry.path, "not in a class folder"))
    return folders


def _resolve_class_names(directory, folders, class_names):
    """Return the classes: the sorted folders, or ``class_names`` when they match the folders."""
    if class_names is None:
        return tuple(folders)
    class_names = tuple(class_names)
    repeated = sorted({name for name in class_names if class_names.count(name) > 1})
    missing = [name for name in class_names if name not in folders]
    unexpected = [name for name in folders if name not in class_names]
    if repeated or missing or unexpected:
        raise KerasNotesError(
            f"class folders in {directory!r} do not match the expected classes: "
            f"missing {missing}, unexpected {unexpected}" + (f", repeated {repeated}" if repeated else "")
        )
    return class_names


def check_images(paths, *, max_pixels=MAX_PIXELS, workers=None, exif=True, decode_jpeg=True):
    """``check_image`` for each of ``paths``, on ``workers`` threads; -> the ``ImageCheck`` list, in order."""
    with warnings.catch_warnings():
        # Sizes between Pillow's limit and twice it only warn; max_pixels decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(workers or DEFAULT_WORKERS) as pool:
            return list(pool.map(lambda path: check_image(path, max_pixels, exif, decode_jpeg), paths))


def _remembered_checks(files, directory, memo_dir, max_pixels, workers, exif, decode_jpeg):
    """``check_images`` of ``files``, reusing the checks a memo (``scan_memo``) holds for unchanged files."""
    from keras_notes.finetune import scan_memo

    path = scan_memo.memo_path(memo_dir, directory, max_pixels=max_pixels, exif=exif, decode_jpeg=decode_jpeg)
    memo = scan_memo.load(path)
    names = [os.path.relpath(file, directory) for file in files]
    stamps = [scan_memo.stamp(file) for file in files]
    verdicts = [None] * len(files)
    for index, (name, stamp) in enumerate(zip(names, stamps)):
        known = memo.get(name)
        if stamp is not None and known is not None and known[:2] == stamp:
            verdicts[index] = known[2]
    todo = [index for index, verdict in enumerate(verdicts) if verdict is None]
    for index, verdict in zip(todo, check_images([files[index] for index in todo], max_pixels=max_pixels,
                                                 workers=workers, exif=exif, decode_jpeg=decode_jpeg)):
        verdicts[index] = verdict
    if todo or len(memo) != len(files):
        scan_memo.save(path, {name: (*stamp, verdict) for name, stamp, verdict in zip(names, stamps, verdicts)
                              if stamp is not None})
    return verdicts


def scan_image_folder(directory, class_names=None, *, max_pixels=MAX_PIXELS, workers=None, exif=True,
                      defer_jpeg=False, memo_dir=None):
    """Scan ``directory`` (one sub-folder per class) and return a ``ScanResult``.

    ``class_names`` fixes the classes and their order (for a validation folder
    or a resumed run); the folder must then hold exactly those sub-folders.
    Every file is checked with ``check_image`` on ``workers`` threads; ``exif=False``
    reads no orientation tag (every ``orientation`` is 1). ``defer_jpeg=True`` reads
    JPEGs' headers only and marks them ``deferred`` (``check_image(decode_jpeg=False)``).
    ``memo_dir``: reuse the checks of files unchanged since an earlier scan (``scan_memo``).
    Raises ``KerasNotesError`` for a missing or empty folder, fewer than 2
    classes, class folders that differ from ``class_names``, or a class with no
    usable image.
    """
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise KerasNotesError(f"image folder not found: {directory!r}")
    if not os.path.isdir(directory):
        raise KerasNotesError(f"image folder is not a directory: {directory!r}")
    skipped = []
    try:
        folders = _class_folders(directory, skipped)
    except OSError as error:
        raise KerasNotesError(f"cannot list image folder {directory!r}: {error.strerror}") from None
    if not folders and not skipped:
        raise KerasNotesError(f"image folder is empty: {directory!r}")
    class_names = _resolve_class_names(directory, folders, class_names)
    if len(class_names) < 2:
        raise KerasNotesError(
            f"need at least 2 class folders in {directory!r}, found {len(class_names)}: {list(class_names)}"
        )

    files, labels, skipped_in = [], [], [[] for _ in class_names]
    for label, name in enumerate(class_names):
        class_dir = os.path.join(directory, name)
        info = os.stat(class_dir)
        found = _list_files(class_dir, skipped_in[label], {(info.st_dev, info.st_ino)})
        files.extend(sorted(found, key=lambda path: os.path.relpath(path, class_dir)))
        labels.extend([label] * len(found))
    if memo_dir is None:
        verdicts = check_images(files, max_pixels=max_pixels, workers=workers, exif=exif, decode_jpeg=not defer_jpeg)
    else:
        verdicts = _remembered_checks(files, directory, memo_dir, max_pixels, workers, exif, not defer_jpeg)

    used = [i for i, verdict in enumerate(verdicts) if verdict.reason is None]
    for path, label, verdict in zip(files, labels, verdicts):
        if verdict.reason is not None:
            skipped_in[label].append((path, verdict.reason))
    for reasons in skipped_in:
        skipped.extend(sorted(reasons))
    counts = [0] * len(class_names)
    for i in used:
        counts[labels[i]] += 1
    empty = [f"{name!r} ({len(skipped_in[label])} files skipped)"
             for label, name in enumerate(class_names) if counts[label] == 0]
    if empty:
        raise KerasNotesError(f"class folders with no usable images in {directory!r}: {', '.join(empty)}")
    return ScanResult(
        paths=tuple(files[i] for i in used),
        labels=tuple(labels[i] for i in used),
        class_names=class_names,
        skipped=tuple(skipped),
        needs_pil=tuple(verdicts[i].needs_pil for i in used),
        directory=directory,
        orientation=tuple(verdicts[i].orientation for i in used),
        notes=tuple((files[i], verdicts[i].note) for i in used if verdicts[i].note is not None),
        deferred=tuple(verdicts[i].deferred for i in used),
    )

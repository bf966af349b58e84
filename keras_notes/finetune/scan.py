"""Walk an image folder (one sub-folder per class) and check every file once, up front.

The check runs before training so that the ``tf.data`` pipeline, which decodes
with ``tf.io.decode_image(data, channels=3, expand_animations=False)``, never
meets a file it cannot decode, and every file left out is reported with a
reason. Decisions, measured with TensorFlow 2.21 and Pillow 13:

- Content decides, not the extension (TF and Pillow both sniff it): a BMP named
  ``.jpg`` is used; a ``.txt`` is "not an image (.txt)".
- TF decodes these as Pillow does (alpha dropped): JPEG in L, RGB and CMYK; PNG
  in L, LA, RGB, RGBA, P, 1-bit and 16-bit (as ``value >> 8``); BMP with 24 or
  32 bits per pixel, uncompressed, of the exact size TF expects. Every other
  file Pillow reads (TIFF, PPM, WebP, GIF, other BMPs) is flagged ``needs_pil``
  and must be read with ``load_image_rgb``.
- Damage: JPEGs are decoded by TF itself at 1/8 scale; PNGs have every chunk's
  CRC checked and are decoded when small; files for Pillow are decoded.
- Images above ``max_pixels`` (Pillow's decompression-bomb limit by default)
  are skipped, judged from the header alone.
- Hidden entries (name starting with ".") and files in the top folder are not
  used and are reported. Symlinks are followed; broken ones are reported.
  Class folders may hold sub-folders, walked recursively as
  ``keras.utils.image_dataset_from_directory`` does.
"""

import contextlib
import dataclasses
import os
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_notes.errors import KerasNotesError

# Pillow's default decompression-bomb limit (0.25 GiB as 8-bit RGB); larger images are skipped.
MAX_PIXELS = 89_478_485
# Files other than JPEG (always decoded at 1/8 scale) are fully decoded up to this
# size (1 MB of RGBA). Above it PNGs only have their CRCs checked (a full decode of
# a 1,024 x 1,024 PNG took 37 ms against 4 ms for the CRCs), and files for Pillow
# are decoded one at a time.
SMALL_PIXELS = 512 * 512
_LARGE_DECODE = threading.Lock()
# The raster formats Pillow may open (those this Pillow build has); limiting them keeps
# text files out of Pillow's text-based readers (XBM, XPM) and out of EPS/PDF handlers.
# Pillow's JPEG reader also opens camera MPO files, reporting format "MPO".
Image.init()
IMAGE_FORMATS = tuple(
    name for name in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "AVIF") if name in Image.OPEN
)
# Formats ``tf.io.decode_image`` reads correctly in every variant (BMP is checked per file).
# TF refuses TIFF and PPM, and fails on animated WebP, so those go to Pillow too.
# GIF is not among them: TF decodes every frame and fails on a flaw in any of them
# (a colour index outside the palette, a missing trailer), where Pillow reads the first.
TF_FORMATS = frozenset({"JPEG", "MPO", "PNG"})
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .bmp .dib .webp .tif .tiff .ppm .pgm .pbm .pnm"
    " .heic .heif .avif".split()
)
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
    rather than ``tf.io.decode_image``. Paths are sorted by class, then by
    path relative to the class folder. ``skipped`` holds ``(path, reason)`` for
    every file (or hidden folder) seen and not used, so files seen = used + skipped.
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    needs_pil: tuple[bool, ...] = ()
    directory: str = ""

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
        """Return a printable summary: images per class, then the skipped files."""
        counts = ", ".join(f"{name}: {count}" for name, count in self.counts().items())
        lines = [
            f"{len(self.paths)} images in {len(self.class_names)} classes ({counts}); "
            f"{len(self.skipped)} skipped; {sum(self.needs_pil)} decoded with Pillow"
        ]
        if self.skipped:
            lines.append(self.format_skipped(limit))
        return "\n".join(lines)


def _short(error):
    """Return an exception's message on one line, at most 80 characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _not_image_reason(path, head):
    """Say why Pillow could not identify ``path``, given its first bytes."""
    extension = os.path.splitext(path)[1].lower()
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIC/AVIF image: not supported, convert it to JPEG or PNG"
    if extension in IMAGE_EXTENSIONS:
        return f"cannot identify image file ({extension})"
    return f"not an image ({extension or os.path.basename(path)})"


def _format_name(head):
    """Name the format from a file's first bytes, for messages about damaged headers."""
    signatures = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF"}
    found = [name for signature, name in signatures.items() if head.startswith(signature)]
    return found[0] if found else "WEBP" if head[8:12] == b"WEBP" else "image"


def _damage_reason(name, error):
    """Return "truncated NAME" or "corrupt NAME (message)" for a decoding error."""
    if "truncat" in str(error).lower():
        return f"truncated {name}"
    return f"corrupt {name} ({_short(error)})"


def _bmp_needs_pil(head, file_size):
    """True unless TF's BMP decoder reads this file right.

    TF decodes only 24 and 32 bits per pixel without compression, and only when
    the file size is exactly ``offset + row_bytes * |height|`` (measured: one
    byte more or less fails), where rows are padded to 4 bytes.
    """
    if len(head) < 34 or int.from_bytes(head[14:18], "little") < 40:
        return True  # OS/2 headers and short files: let Pillow handle them.
    offset = int.from_bytes(head[10:14], "little")
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = int.from_bytes(head[22:26], "little", signed=True)
    bits = int.from_bytes(head[28:30], "little")
    compression = int.from_bytes(head[30:34], "little")
    row_bytes = (bits * abs(width) + 31) // 32 * 4
    return bits not in (24, 32) or compression != 0 or file_size != offset + row_bytes * abs(height)


def _check_pixels(image, file, needs_pil):
    """Decode enough of an opened image to be sure the pipeline can read it; raise if not."""
    pixels = image.width * image.height
    if image.format in ("JPEG", "MPO"):
        # TF's own decoder is the judge, since Pillow accepts some damaged JPEGs
        # that libjpeg in TF refuses (a corrupt segment length that runs past the
        # end). At 1/8 scale it still reads every entropy-coded byte, with 1/64 of
        # the memory. TF is imported here, on first use, as it takes about 4 s.
        import tensorflow as tf

        file.seek(0)
        try:
            tf.io.decode_jpeg(file.read(), ratio=8)
        except tf.errors.OpError:
            image.load()  # Raises "image file is truncated" when Pillow sees that.
            raise OSError("TensorFlow's JPEG decoder refuses it") from None
    elif image.format == "PNG":
        # verify() checks every chunk's CRC, which libpng (used by TF) enforces and
        # Pillow's decoder skips; it stops after the IEND chunk's type, so read IEND's
        # CRC too: TF refuses a PNG cut even 1 byte short. verify() leaves the image
        # unusable, so reopen to decode the small ones.
        image.verify()
        if file.read(4) != b"\xaeB`\x82":
            raise OSError("truncated PNG: IEND chunk incomplete")
        if pixels <= SMALL_PIXELS:
            file.seek(0)
            with Image.open(file, formats=("PNG",)) as again:
                again.load()
    elif pixels <= SMALL_PIXELS or needs_pil:
        # Files for load_image_rgb must decode and convert; a large one is decoded
        # one at a time so that the threads never hold several in memory.
        with _LARGE_DECODE if pixels > SMALL_PIXELS else contextlib.nullcontext():
            image.load()
            _to_rgb(image)
    # What is left, a large BMP for TF, was checked from its size in _bmp_needs_pil.


def check_image(path, max_pixels=MAX_PIXELS):
    """Check one file; return ``(reason, needs_pil)`` with ``reason`` None when usable."""
    try:
        info = os.stat(path)  # Follows symlinks.
    except FileNotFoundError:
        return ("broken symlink" if os.path.islink(path) else "file not found"), False
    except OSError as error:
        return f"cannot read file ({error.strerror})", False
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file", False  # A FIFO would block the reader.
    if info.st_size == 0:
        return "zero-byte file", False
    try:
        file = open(path, "rb")
    except OSError as error:
        return f"cannot read file ({error.strerror})", False
    with file:
        head = file.read(64)
        file.seek(0)
        try:
            image = Image.open(file, formats=IMAGE_FORMATS)
        except UnidentifiedImageError:
            return _not_image_reason(path, head), False
        except Image.DecompressionBombError:
            return f"too large (over Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS:,} px)", False
        except Exception as error:  # Pillow raises many types for a damaged header.
            return _damage_reason(_format_name(head), error), False
        with image:
            name = "JPEG" if image.format == "MPO" else image.format
            width, height = image.size
            if width * height > max_pixels:
                return f"too large ({width}x{height} = {width * height:,} px > {max_pixels:,} px)", False
            if name == "BMP":
                needs_pil = _bmp_needs_pil(head, info.st_size)
            else:
                needs_pil = name not in TF_FORMATS
            try:
                _check_pixels(image, file, needs_pil)
            except Exception as error:  # Truncation is OSError; bad CRC is SyntaxError; others vary.
                return _damage_reason(name, error), False
    return None, needs_pil


def _to_rgb(image):
    """Convert a Pillow image in any mode to RGB, as ``tf.io.decode_image`` would.

    16-bit grey (I;16, or I as Pillow opens a 16-bit PGM) keeps the high byte,
    ``value >> 8``, as TF's PNG decoder does; Pillow's ``convert("RGB")`` would
    clip it to 255. Mode F is clipped to 0-255. Alpha is dropped, as TF does.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image).astype(np.int64)  # (h, w), 0-65535
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def load_image_rgb(path, image_size=None):
    """Read any image this module accepts as a uint8 RGB array.

    Returns ``(image_size, image_size, 3)`` (or ``(h, w, 3)`` for a pair
    ``image_size=(h, w)``), resized with Pillow's antialiased bilinear filter;
    with ``image_size=None`` it returns the full ``(height, width, 3)`` image
    so that the caller can resize exactly as its TensorFlow path does.
    The first frame of an animation is used and EXIF orientation is ignored,
    matching ``tf.io.decode_image(..., expand_animations=False)``.
    """
    with Image.open(path) as image:
        if image_size is not None:
            height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
            # For JPEG, decode at the smallest 1/2^k scale still at least this size.
            image.draft(image.mode, (width, height))
            image = _to_rgb(image).resize((width, height), Image.BILINEAR)
        else:
            image = _to_rgb(image)
        return np.asarray(image, dtype=np.uint8)


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


def scan_image_folder(directory, class_names=None, *, max_pixels=MAX_PIXELS, workers=None):
    """Scan ``directory`` (one sub-folder per class) and return a ``ScanResult``.

    ``class_names`` fixes the classes and their order (for a validation folder
    or a resumed run); the folder must then hold exactly those sub-folders.
    Every file is checked with ``check_image`` on ``workers`` threads.
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
    with warnings.catch_warnings():
        # Sizes between Pillow's limit and twice it only warn; max_pixels decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(workers or DEFAULT_WORKERS) as pool:
            verdicts = list(pool.map(lambda path: check_image(path, max_pixels), files))

    used = [i for i, (reason, _) in enumerate(verdicts) if reason is None]
    for path, label, (reason, _) in zip(files, labels, verdicts):
        if reason is not None:
            skipped_in[label].append((path, reason))
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
        needs_pil=tuple(verdicts[i][1] for i in used),
        directory=directory,
    )

"""One image file: can the pipeline read it, which decoder does, and which way up it is.

``check_image`` opens a file once and answers all three, so that the ``tf.data``
pipeline, which decodes with ``tf.io.decode_image(data, channels=3,
expand_animations=False)`` (JPEGs with ``tf.io.decode_jpeg`` at a reduced scale),
never meets a file it cannot decode. Decisions, measured with TensorFlow 2.21 and
Pillow 13:

- Content decides, not the extension (TF and Pillow both sniff it): a BMP named
  ``.jpg`` is used; a ``.txt`` is "not an image (.txt)".
- TF decodes these as Pillow does (alpha dropped): JPEG in L, RGB and CMYK; PNG
  in L, LA, RGB, RGBA, P, 1-bit and 16-bit (as ``value >> 8``); BMP with 24 or
  32 bits per pixel, uncompressed, of the exact size TF expects. Every other
  file Pillow reads (TIFF, PPM, WebP, GIF, other BMPs) is flagged ``needs_pil``
  and must be read with ``load_image_rgb``.
- Damage: JPEGs are decoded by TF itself at 1/8 scale; PNGs have every chunk's
  CRC checked and are decoded when small; files for Pillow are decoded.
  ``decode_jpeg=False`` reads a JPEG's header only and marks it ``deferred``: a
  caller that decodes every file anyway (the run's frozen pass) judges it then,
  instead of paying for a second decode here.
- Images above ``max_pixels`` (Pillow's decompression-bomb limit by default)
  are skipped, judged from the header alone.
- The EXIF orientation tag is read from the header (``exif.read_orientation``); a
  damaged EXIF block leaves the image usable, upright as stored, with a note.
"""

import contextlib
import dataclasses
import os
import stat
import threading

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_notes.finetune.exif import UPRIGHT, read_orientation

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


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """What ``check_image`` found: ``reason`` is None when the file is usable.

    ``needs_pil``: read with ``load_image_rgb`` rather than TensorFlow. ``orientation``:
    the EXIF tag (1-8, 1 when absent or ignored), applied after decoding. ``note``: a
    remark on a usable file (a damaged EXIF block), for the scan's report.
    ``deferred``: a JPEG whose header was read but whose pixels were not decoded yet.
    """

    reason: str = None
    needs_pil: bool = False
    orientation: int = UPRIGHT
    note: str = None
    deferred: bool = False


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


def _check_pixels(image, file, needs_pil, decode_jpeg=True):
    """Decode enough of an opened image to be sure the pipeline can read it; raise if not.

    -> True when the check was deferred (a JPEG with ``decode_jpeg=False``).
    """
    pixels = image.width * image.height
    if image.format in ("JPEG", "MPO") and not decode_jpeg:
        return True
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
    return False


def check_image(path, max_pixels=MAX_PIXELS, exif=True, decode_jpeg=True):
    """Check one file; -> ``ImageCheck`` (``reason`` None when usable).

    ``exif=False`` leaves the orientation at 1 without reading the tag. ``decode_jpeg=False``
    checks a JPEG's header only and returns it ``deferred`` (see the module docstring).
    """
    try:
        info = os.stat(path)  # Follows symlinks.
    except FileNotFoundError:
        return ImageCheck("broken symlink" if os.path.islink(path) else "file not found")
    except OSError as error:
        return ImageCheck(f"cannot read file ({error.strerror})")
    if not stat.S_ISREG(info.st_mode):
        return ImageCheck("not a regular file")  # A FIFO would block the reader.
    if info.st_size == 0:
        return ImageCheck("zero-byte file")
    try:
        file = open(path, "rb")
    except OSError as error:
        return ImageCheck(f"cannot read file ({error.strerror})")
    with file:
        head = file.read(64)
        file.seek(0)
        try:
            image = Image.open(file, formats=IMAGE_FORMATS)
        except UnidentifiedImageError:
            return ImageCheck(_not_image_reason(path, head))
        except Image.DecompressionBombError:
            return ImageCheck(f"too large (over Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS:,} px)")
        except Exception as error:  # Pillow raises many types for a damaged header.
            return ImageCheck(_damage_reason(_format_name(head), error))
        with image:
            name = "JPEG" if image.format == "MPO" else image.format
            width, height = image.size
            if width * height > max_pixels:
                return ImageCheck(f"too large ({width}x{height} = {width * height:,} px > {max_pixels:,} px)")
            if name == "BMP":
                needs_pil = _bmp_needs_pil(head, info.st_size)
            else:
                needs_pil = name not in TF_FORMATS
            # Before the pixel check: a PNG's verify() leaves the image unusable.
            orientation, note = read_orientation(image) if exif else (UPRIGHT, None)
            try:
                deferred = _check_pixels(image, file, needs_pil, decode_jpeg)
            except Exception as error:  # Truncation is OSError; bad CRC is SyntaxError; others vary.
                return ImageCheck(_damage_reason(name, error))
    return ImageCheck(None, needs_pil, orientation, note, deferred)


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
    The first frame of an animation is used and EXIF orientation is not applied,
    matching ``tf.io.decode_image(..., expand_animations=False)``: the pipeline turns
    both kinds the same way afterwards (``exif.orient``).
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



"""Tests for keras_notes.finetune.scan and .imagefile: every bad file is generated here, in tmp_path.

Pixel checks compare against an independent computation (NumPy on the arrays
the test wrote, or the file format's own arithmetic), never against the code
under test.
"""

import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.imagefile import check_image, load_image_rgb
from keras_notes.finetune.scan import ScanResult, scan_image_folder

DIGITS = Path(__file__).resolve().parent.parent / "data" / "digits"
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _same_random_images_in_any_order():
    """Reseed before each test so that its images do not depend on which tests ran first."""
    global RNG
    RNG = np.random.default_rng(0)


def _rgb(height=24, width=32):
    """A random (height, width, 3) uint8 image."""
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(path, array=None, fmt=None, mode=None, **options):
    """Write an image (random RGB unless given) to ``path`` and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(_rgb() if array is None else array)
    if mode:
        image = image.convert(mode)
    image.save(path, fmt, **options)
    return path


def _png16(path, values):
    """Write a 16-bit PNG by hand (grey for (h, w), RGB for (h, w, 3)), independent of Pillow."""
    values = np.asarray(values, dtype=np.uint16)
    height, width = values.shape[:2]
    color_type = 0 if values.ndim == 2 else 2
    rows = values.reshape(height, -1).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return Path(path)


def _good_class(root, name, count=2):
    """A class folder holding ``count`` valid PNGs."""
    for index in range(count):
        _save(root / name / f"good_{index}.png")


def _reasons(result):
    """``{file name: reason}`` for the skipped entries."""
    return {os.path.basename(path): reason for path, reason in result.skipped}


@pytest.fixture(scope="module")
def tf_decode():
    """Decode a file as the training pipeline does."""
    tf = pytest.importorskip("tensorflow")

    def decode(path):
        data = tf.io.read_file(str(path))
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()

    return decode


# The real sample folder.


def test_digits_sample_folder_is_used_whole():
    result = scan_image_folder(DIGITS)
    expected = {name: len(os.listdir(DIGITS / name)) for name in sorted(os.listdir(DIGITS))}
    assert result.class_names == tuple(str(digit) for digit in range(10))
    assert result.counts() == expected
    assert sum(expected.values()) == len(result.paths) == 1797
    assert result.skipped == ()
    assert not any(result.needs_pil)
    assert result.paths == tuple(sorted(result.paths, key=lambda p: (int(Path(p).parent.name), Path(p).name)))


# Bad files: each is skipped with its reason, and the good files are still used.


def _scan_with(tmp_path, name, make):
    """Scan a two-class folder where class ``a`` also holds the file ``make(path)`` writes."""
    _good_class(tmp_path, "a")
    _good_class(tmp_path, "b")
    make(tmp_path / "a" / name)
    return scan_image_folder(tmp_path)


@pytest.mark.parametrize("kept", [0.05, 0.8])
def test_truncated_jpeg_is_skipped(tmp_path, kept):
    # Keeping 5% cuts into the header (its tables); 80% cuts the compressed data, as
    # an interrupted download does.
    data = _save(tmp_path / "whole.jpg", _rgb(96, 128)).read_bytes()
    assert 0.05 * len(data) < data.index(b"\xff\xda") < 0.8 * len(data)  # where the data starts
    result = _scan_with(tmp_path / "set", "cut.jpg", lambda p: p.write_bytes(data[: int(kept * len(data))]))
    assert _reasons(result) == {"cut.jpg": "truncated JPEG"}
    assert len(result.paths) == 4


@pytest.mark.parametrize("cut", [1, 12, 500])
def test_truncated_png_is_skipped(tmp_path, cut):
    # Cut 1 byte: only the IEND chunk's CRC is lost, which Pillow ignores and TF refuses.
    data = _save(tmp_path / "whole.png").read_bytes()
    result = _scan_with(tmp_path / "set", "cut.png", lambda p: p.write_bytes(data[:-cut]))
    assert _reasons(result) == {"cut.png": "truncated PNG"}


def test_jpeg_that_only_pillow_accepts_is_skipped(tmp_path):
    # A comment marker (FF FE) inside the entropy-coded data: Pillow decodes the
    # file, but libjpeg in TF reads the "comment length" past the end and fails.
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([xx * 2, yy * 2, xx + yy], axis=-1).astype(np.uint8)
    data = bytearray(_save(tmp_path / "whole.jpg", smooth).read_bytes())
    middle = (data.index(b"\xff\xda") + len(data)) // 2  # halfway through the scan data
    data[middle : middle + 2] = b"\xff\xfe"
    Image.open(io.BytesIO(bytes(data))).load()  # Pillow alone would accept it.
    result = _scan_with(tmp_path / "set", "stray_marker.jpg", lambda p: p.write_bytes(bytes(data)))
    assert _reasons(result) == {"stray_marker.jpg": "corrupt JPEG (TensorFlow's JPEG decoder refuses it)"}


def test_png_with_a_corrupt_byte_is_skipped(tmp_path):
    data = bytearray(_save(tmp_path / "whole.png").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside IDAT: its CRC no longer matches
    result = _scan_with(tmp_path / "set", "flip.png", lambda p: p.write_bytes(bytes(data)))
    assert _reasons(result)["flip.png"].startswith("corrupt PNG (")


def test_random_bytes_named_jpg_are_skipped(tmp_path):
    result = _scan_with(tmp_path, "noise.jpg", lambda p: p.write_bytes(RNG.bytes(2000)))
    assert _reasons(result) == {"noise.jpg": "cannot identify image file (.jpg)"}


def test_zero_byte_file_is_skipped(tmp_path):
    result = _scan_with(tmp_path, "empty.png", lambda p: p.write_bytes(b""))
    assert _reasons(result) == {"empty.png": "zero-byte file"}


def test_non_image_files_are_skipped(tmp_path):
    _good_class(tmp_path, "a")
    _good_class(tmp_path, "b")
    (tmp_path / "a" / "notes.txt").write_text("a text file\n")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + RNG.bytes(500))
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + RNG.bytes(100))
    (tmp_path / "b" / "header.txt").write_text("#define width 8\n#define height 8\n")  # XBM-like text
    assert _reasons(scan_image_folder(tmp_path)) == {
        "notes.txt": "not an image (.txt)",
        "Thumbs.db": "not an image (.db)",
        ".DS_Store": "hidden file",
        "header.txt": "not an image (.txt)",
    }


def test_heic_photo_is_skipped_with_advice(tmp_path):
    heic = b"\x00\x00\x00\x18ftypheic" + bytes(200)  # the ISO-BMFF box an iPhone photo starts with
    result = _scan_with(tmp_path, "IMG_0001.HEIC", lambda p: p.write_bytes(heic))
    assert _reasons(result) == {"IMG_0001.HEIC": "HEIC/AVIF image: not supported, convert it to JPEG or PNG"}


def test_fifo_is_skipped_without_blocking(tmp_path):
    result = _scan_with(tmp_path, "pipe.png", os.mkfifo)
    assert _reasons(result) == {"pipe.png": "not a regular file"}


# Huge images: judged from the header alone, never decoded.


def _png_header_only(path, width, height):
    """A PNG whose IHDR claims ``width x height`` with a tiny, wrong IDAT: only the header is valid."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)))


@pytest.mark.parametrize("width, height", [(10_000, 9_000), (20_000, 20_000)])
def test_huge_image_is_skipped_from_its_header(tmp_path, width, height):
    # 90 Mpx is over the default limit of 89,478,485 px; 400 Mpx is over twice it,
    # where Pillow itself refuses to open the file.
    result = _scan_with(tmp_path, "huge.png", lambda p: _png_header_only(p, width, height))
    assert _reasons(result)["huge.png"].startswith("too large (")


def test_large_png_is_checked_without_a_full_decode(tmp_path):
    # 1,000 x 800 px is over SMALL_PIXELS (512 x 512): the checksums alone judge it.
    yy, xx = np.mgrid[0:800, 0:1000]
    smooth = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    data = _save(tmp_path / "large.png", smooth).read_bytes()
    _good_class(tmp_path / "set", "b")
    (tmp_path / "set" / "a").mkdir()
    (tmp_path / "set" / "a" / "large.png").write_bytes(data)
    (tmp_path / "set" / "a" / "large_cut.png").write_bytes(data[:-1])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "set" / "a" / "large_flipped.png").write_bytes(bytes(flipped))
    result = scan_image_folder(tmp_path / "set")
    assert result.counts() == {"a": 1, "b": 2}
    reasons = _reasons(result)
    assert reasons["large_cut.png"] == "truncated PNG"
    assert reasons["large_flipped.png"].startswith("corrupt PNG (")


def test_max_pixels_sets_the_limit(tmp_path):
    _good_class(tmp_path, "b")
    _save(tmp_path / "a" / "small.png", _rgb(10, 10))
    _save(tmp_path / "a" / "big.jpg", _rgb(300, 400))
    result = scan_image_folder(tmp_path, max_pixels=300 * 400 - 1)
    assert _reasons(result) == {"big.jpg": f"too large (400x300 = {300 * 400:,} px > {300 * 400 - 1:,} px)"}
    assert len(scan_image_folder(tmp_path, max_pixels=300 * 400).paths) == 4


# Files that are odd but usable: each is used, and decodes to the right RGB pixels.


def test_bmp_named_jpg_is_used_and_tf_decodes_it(tmp_path, tf_decode):
    pixels = _rgb()
    result = _scan_with(tmp_path, "really_a_bmp.jpg", lambda p: _save(p, pixels, "BMP"))
    assert result.skipped == ()
    index = result.paths.index(str(tmp_path / "a" / "really_a_bmp.jpg"))
    assert result.needs_pil[index] is False
    np.testing.assert_array_equal(tf_decode(result.paths[index]), pixels)


def _palette_image(height=24, width=32, colors=16):
    """A palette image and its RGB pixels, computed by indexing the palette with NumPy."""
    indices = RNG.integers(0, colors, (height, width), dtype=np.uint8)
    palette = RNG.integers(0, 256, (colors, 3), dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.flatten().tolist())
    return image, palette[indices]


def _cmyk(height=24, width=32):
    """A CMYK array and its RGB by Pillow's documented rule: (255 - C) * (255 - K) / 255, rounded."""
    cmyk = RNG.integers(0, 256, (height, width, 4), dtype=np.uint8).astype(np.int64)
    rgb = np.round((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255).astype(np.uint8)
    return cmyk.astype(np.uint8), rgb


def _mode_cases(folder):
    """Write one file per mode; return ``{name: (expected RGB, uses TF, lossy)}``.

    Lossless files must match exactly. For JPEGs the expectation is computed
    from Pillow's decode of the same file (Pillow's accurate integer IDCT), so
    ``load_image_rgb`` matches to within 1 (the CMYK formula's rounding), while
    ``tf.io.decode_image`` uses libjpeg's fast integer IDCT and differs by a few
    levels (measured: up to 6 on an RGB JPEG of noise; 0 with
    ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")``).
    """
    cases = {}
    grey = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
    _save(folder / "grey.png", grey)
    cases["grey.png"] = (np.repeat(grey[..., None], 3, axis=2), True, False)
    rgba = RNG.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    _save(folder / "rgba.png", rgba)
    cases["rgba.png"] = (rgba[..., :3], True, False)  # alpha dropped, not composited
    grey_alpha = Image.fromarray(rgba[..., :2].copy().reshape(24, 32, 2), "LA")
    grey_alpha.save(folder / "la.png")
    cases["la.png"] = (np.repeat(rgba[..., :1], 3, axis=2), True, False)
    image, rgb = _palette_image()
    image.save(folder / "palette.png")
    cases["palette.png"] = (rgb, True, False)
    image, rgb = _palette_image()
    image.save(folder / "palette.bmp")  # TF would decode the indices as grey
    cases["palette.bmp"] = (rgb, False, False)
    image, rgb = _palette_image()
    image.save(folder / "palette.gif")
    cases["palette.gif"] = (rgb, False, False)
    bits = RNG.integers(0, 2, (24, 32)).astype(bool)
    Image.fromarray(bits).save(folder / "one_bit.bmp")  # TF refuses 1-bit BMP
    cases["one_bit.bmp"] = (np.repeat(bits[..., None] * np.uint8(255), 3, axis=2), False, False)
    grey16 = RNG.integers(0, 65536, (24, 32), dtype=np.uint16)
    _png16(folder / "grey16.png", grey16)
    cases["grey16.png"] = (np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2), True, False)
    Image.fromarray(grey16).save(folder / "grey16.tif")  # Pillow mode I;16
    cases["grey16.tif"] = cases["grey16.png"][:1] + (False, False)
    (folder / "grey16.pgm").write_bytes(b"P5 32 24 65535\n" + grey16.astype(">u2").tobytes())  # Pillow mode I
    cases["grey16.pgm"] = cases["grey16.png"][:1] + (False, False)
    rgb16 = RNG.integers(0, 65536, (24, 32, 3), dtype=np.uint16)
    _png16(folder / "rgb16.png", rgb16)
    cases["rgb16.png"] = ((rgb16 >> 8).astype(np.uint8), True, False)
    cmyk, rgb = _cmyk()
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.tif")  # lossless CMYK
    cases["cmyk.tif"] = (rgb, False, False)
    # A photo-like (smooth) CMYK JPEG: noise would only measure the two IDCTs.
    yy, xx = np.mgrid[0:24, 0:32]
    smooth = np.stack([xx * 7, yy * 9, 255 - xx * 4 - yy * 3, (xx + yy) * 3], axis=-1).astype(np.uint8)
    Image.fromarray(smooth, "CMYK").save(folder / "cmyk.jpg", quality=95)
    decoded = np.asarray(Image.open(folder / "cmyk.jpg")).astype(np.int64)  # Pillow's CMYK samples
    rgb = np.round((255 - decoded[..., :3]) * (255 - decoded[..., 3:]) / 255).astype(np.uint8)
    cases["cmyk.jpg"] = (rgb, True, True)
    _save(folder / "grey.jpg", (yy * 10 + xx * 2).astype(np.uint8))
    cases["grey.jpg"] = (np.repeat(np.asarray(Image.open(folder / "grey.jpg"))[..., None], 3, axis=2), True, True)
    pixels = _rgb()
    _save(folder / "lossless.webp", pixels, lossless=True)
    cases["lossless.webp"] = (pixels, False, False)
    return cases


def test_every_mode_is_used_and_decodes_to_the_right_rgb(tmp_path, tf_decode):
    _good_class(tmp_path, "b")
    cases = _mode_cases(tmp_path / "a")
    result = scan_image_folder(tmp_path)
    assert result.skipped == ()
    routes = dict(zip(result.paths, result.needs_pil))
    for name, (expected, uses_tf, lossy) in cases.items():
        path = str(tmp_path / "a" / name)
        assert routes[path] is (not uses_tf), name
        loaded = load_image_rgb(path)
        assert loaded.dtype == np.uint8 and loaded.shape == expected.shape, name
        assert np.abs(loaded.astype(int) - expected).max() <= (1 if lossy else 0), name
        if uses_tf:
            difference = np.abs(tf_decode(path).astype(int) - expected)
            # A wrong conversion (CMYK read as RGB, or inverted) is off by about 100 on average.
            assert difference.max() <= (8 if lossy else 0) and difference.mean() < 2, (name, difference.max())


def test_load_image_rgb_resizes(tmp_path):
    path = _save(tmp_path / "x.jpg", _rgb(120, 90))
    assert load_image_rgb(path, 32).shape == (32, 32, 3)
    assert load_image_rgb(path, (20, 40)).shape == (20, 40, 3)
    assert load_image_rgb(path).shape == (120, 90, 3)
    # A flat image stays flat through the resize: every pixel (10, 200, 30).
    flat = _save(tmp_path / "flat.png", np.full((50, 70, 3), (10, 200, 30), np.uint8))
    np.testing.assert_array_equal(load_image_rgb(flat, 16), np.full((16, 16, 3), (10, 200, 30), np.uint8))


def test_unusual_names_work(tmp_path, tf_decode):
    pixels = _rgb()
    _save(tmp_path / "chat noir" / "été 1.png", pixels)
    _save(tmp_path / "猫" / "写真 (2).jpg")
    result = scan_image_folder(tmp_path)
    assert result.class_names == ("chat noir", "猫")
    assert result.skipped == () and result.counts() == {"chat noir": 1, "猫": 1}
    np.testing.assert_array_equal(tf_decode(result.paths[0]), pixels)


def test_symlinks_good_broken_and_looping(tmp_path):
    _good_class(tmp_path, "b")
    target = _save(tmp_path / "elsewhere" / "real.png")
    (tmp_path / "data" / "a").mkdir(parents=True)
    os.symlink(target, tmp_path / "data" / "a" / "link.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "data" / "a" / "dangling.png")
    os.symlink(tmp_path / "data" / "a", tmp_path / "data" / "a" / "loop")
    os.symlink(tmp_path / "b", tmp_path / "data" / "b")  # a whole class folder as a link
    result = scan_image_folder(tmp_path / "data")
    assert result.paths[0] == str(tmp_path / "data" / "a" / "link.png")
    assert result.counts() == {"a": 1, "b": 2}
    assert _reasons(result) == {"dangling.png": "broken symlink", "loop": "folder already scanned (symlink loop)"}


def test_hidden_entries_and_top_level_files_are_reported(tmp_path):
    _good_class(tmp_path, "a")
    _good_class(tmp_path, "b")
    _save(tmp_path / "a" / ".hidden.png")
    _save(tmp_path / "a" / ".ipynb_checkpoints" / "copy.png")
    _save(tmp_path / ".git" / "blob.png")
    _save(tmp_path / "stray.png")
    (tmp_path / "labels.csv").write_text("file,label\n")
    assert _reasons(scan_image_folder(tmp_path)) == {
        ".hidden.png": "hidden file",
        ".ipynb_checkpoints": "hidden folder",
        ".git": "hidden folder",
        "stray.png": "not in a class folder",
        "labels.csv": "not in a class folder",
    }


def test_files_seen_equal_used_plus_skipped(tmp_path):
    _good_class(tmp_path, "a", 3)
    _good_class(tmp_path, "b", 2)
    _save(tmp_path / "b" / "nested" / "deeper.png")
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"x")
    _save(tmp_path / "top.png")
    data = _save(tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "b" / "cut.jpg").write_bytes(data[:100])
    os.remove(tmp_path / "whole.jpg")
    seen = {os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names}
    result = scan_image_folder(tmp_path)
    assert len(seen) == 11 == len(result.paths) + len(result.skipped)
    assert seen == set(result.paths) | {path for path, _ in result.skipped}
    assert result.counts() == {"a": 3, "b": 3}


def test_order_is_deterministic_and_thread_count_does_not_matter(tmp_path):
    for name in ("z.png", "a.png", "m/b.png", "B.png"):
        _save(tmp_path / "cats" / name)
    _save(tmp_path / "ants" / "x.png")
    one = scan_image_folder(tmp_path, workers=1)
    assert one == scan_image_folder(tmp_path, workers=4)
    assert one.labels == (0, 1, 1, 1, 1)
    assert [os.path.relpath(p, tmp_path) for p in one.paths] == [
        "ants/x.png", "cats/B.png", "cats/a.png", "cats/m/b.png", "cats/z.png"
    ]


def test_class_names_fix_the_order(tmp_path):
    _good_class(tmp_path, "cat", 1)
    _good_class(tmp_path, "dog", 2)
    result = scan_image_folder(tmp_path, class_names=["dog", "cat"])
    assert result.class_names == ("dog", "cat")
    assert result.labels == (0, 0, 1)
    assert result.counts() == {"dog": 2, "cat": 1}


@pytest.mark.parametrize(
    "given, message",
    [
        (["cat", "dog", "bird"], "missing ['bird'], unexpected []"),
        (["cat"], "missing [], unexpected ['dog']"),
    ],
)
def test_class_names_must_match_the_folders(tmp_path, given, message):
    _good_class(tmp_path, "cat", 1)
    _good_class(tmp_path, "dog", 1)
    with pytest.raises(KerasNotesError, match=re.escape(f"in {str(tmp_path)!r} do not match the expected classes: {message}")):
        scan_image_folder(tmp_path, class_names=given)


# Unusable folders: one-line errors that name the value.


def test_missing_folder(tmp_path):
    with pytest.raises(KerasNotesError, match=r"image folder not found: '.*nowhere'$"):
        scan_image_folder(tmp_path / "nowhere")


def test_not_a_directory(tmp_path):
    _save(tmp_path / "one.png")
    with pytest.raises(KerasNotesError, match=r"not a directory: '.*one\.png'$"):
        scan_image_folder(tmp_path / "one.png")


def test_empty_folder(tmp_path):
    with pytest.raises(KerasNotesError, match="image folder is empty"):
        scan_image_folder(tmp_path)


def test_images_without_class_folders(tmp_path):
    _save(tmp_path / "one.png")
    with pytest.raises(KerasNotesError, match=r"need at least 2 class folders .* found 0: \[\]"):
        scan_image_folder(tmp_path)


def test_single_class(tmp_path):
    _good_class(tmp_path, "only")
    with pytest.raises(KerasNotesError, match=r"found 1: \['only'\]"):
        scan_image_folder(tmp_path)


def test_class_without_usable_images(tmp_path):
    _good_class(tmp_path, "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    _good_class(tmp_path, "c")
    (tmp_path / "d").mkdir()
    with pytest.raises(KerasNotesError, match=r"no usable images .*'b' \(2 files skipped\), 'd' \(0 files skipped\)"):
        scan_image_folder(tmp_path)


# Reporting.


def test_report_lists_counts_and_skipped_files(tmp_path):
    result = _scan_with(tmp_path, "notes.txt", lambda p: p.write_text("x"))
    text = result.report()
    assert text.splitlines()[0] == ("4 images in 2 classes (a: 2, b: 2); 1 skipped; 0 decoded with Pillow; "
                                    "0 turned upright by their EXIF orientation")
    assert f"{tmp_path / 'a' / 'notes.txt'}: not an image (.txt)" in text
    many = ScanResult(("x",), (0,), ("a", "b"), tuple((f"f{i}", "zero-byte file") for i in range(5)), (False,))
    assert many.format_skipped(limit=2).splitlines() == ["f0: zero-byte file", "f1: zero-byte file", "... and 3 more"]


# The scan's promise to the pipeline: whatever it accepts, the pipeline's decoder reads.


def test_accepted_damaged_files_always_decode(tmp_path, tf_decode):
    """Cut and corrupt a JPEG, PNG, BMP and GIF many ways; every accepted file must decode."""
    sources = {}
    for fmt, mode in (("jpg", "RGB"), ("png", "RGB"), ("bmp", "RGB"), ("gif", "P")):
        sources[fmt] = _save(tmp_path / f"source.{fmt}", _rgb(48, 40), mode=mode).read_bytes()
    accepted = rejected = 0
    for fmt, data in sources.items():
        variants = [data[:cut] for cut in np.linspace(20, len(data) - 1, 12).astype(int)]
        variants += [data[:-k] for k in (1, 2, 4)] + [data + b"trailing bytes"]
        for position in np.linspace(60, len(data) - 1, 8).astype(int):
            flipped = bytearray(data)
            flipped[position] ^= 0x5A
            variants.append(bytes(flipped))
        for index, variant in enumerate(variants):
            path = tmp_path / f"v{index}.{fmt}"
            path.write_bytes(variant)
            check = check_image(path)
            if check.reason is not None:
                rejected += 1
                continue
            accepted += 1
            image = load_image_rgb(path) if check.needs_pil else tf_decode(path)
            assert image.shape == (48, 40, 3), (fmt, index)
    assert accepted > 10 and rejected > 10, (accepted, rejected)

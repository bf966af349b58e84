"""A cached run's frozen pass judges the JPEGs: the scan reads their headers only.

Each JPEG used to be decoded twice, by the scan's check and by the pass. Now a cached
run scans JPEGs from their headers (``load_splits(defer_jpeg=True)``) and the pass
drops and reports those it cannot decode. What must not change is what the run uses:
the skipped files, their reasons and the split are compared with a full scan of the
same folder (an independent computation: the scan that decodes every JPEG up front).
"""

import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from finetune_images import tiny_config

from keras_notes.finetune import data
from keras_notes.finetune.imagefile import check_image
from keras_notes.finetune.scan import scan_image_folder


def _jpeg_bytes(pixels, quality=90):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _photo(rng, label, height=48, width=64):
    pixels = rng.integers(0, 60, (height, width, 3))
    pixels[..., label] += 150
    return pixels.astype(np.uint8)


def _stray_marker(pixels):
    """A JPEG that Pillow decodes and TensorFlow refuses: a comment marker inside the scan data."""
    data_ = bytearray(_jpeg_bytes(pixels))
    middle = (data_.index(b"\xff\xda") + len(data_)) // 2
    data_[middle:middle + 2] = b"\xff\xfe"
    return bytes(data_)


def _folder(root, per_class=8, damaged=True):
    """Two classes of JPEGs (and one PNG); with ``damaged``, a truncated and a corrupt JPEG in class ``a``."""
    rng = np.random.default_rng(0)
    for label, name in enumerate("ab"):
        os.makedirs(root / name)
        for index in range(per_class):
            (root / name / f"{index:02d}.jpg").write_bytes(_jpeg_bytes(_photo(rng, label)))
    Image.fromarray(_photo(rng, 1)).save(root / "b" / "png.png")
    if damaged:
        whole = _jpeg_bytes(_photo(rng, 0))
        (root / "a" / "03_cut.jpg").write_bytes(whole[:int(0.8 * len(whole))])
        (root / "a" / "05_marker.jpg").write_bytes(_stray_marker(_photo(rng, 0)))
    return os.fspath(root)


def _rows(files):
    return list(zip(files.paths, files.labels, files.needs_pil, files.orientation))


def test_header_only_check_defers_a_damaged_jpeg_and_the_full_check_names_it(tmp_path):
    folder = _folder(tmp_path / "set")
    cut = os.path.join(folder, "a", "03_cut.jpg")
    assert check_image(cut).reason == "truncated JPEG"
    deferred = check_image(cut, decode_jpeg=False)
    assert (deferred.reason, deferred.deferred) == (None, True)
    png = check_image(os.path.join(folder, "b", "png.png"), decode_jpeg=False)
    assert (png.reason, png.deferred) == (None, False)  # only JPEGs wait for the pass
    scan = scan_image_folder(folder, defer_jpeg=True)
    assert scan.skipped == ()
    assert sum(scan.deferred) == len(scan.paths) - 1


def test_without_files_splits_as_a_scan_without_them(tmp_path):
    folder = _folder(tmp_path / "set")
    damaged = (os.path.join(folder, "a", "03_cut.jpg"), os.path.join(folder, "a", "05_marker.jpg"))
    deferred = data.load_splits(folder, val_split=0.25, seed=3, defer_jpeg=True)
    dropped = data.without_files(deferred, [(path, "reason") for path in damaged], 0.25, 3)
    # Independently: move the two files out, and split what a plain scan sees.
    for path in damaged:
        shutil.move(path, tmp_path)
    expected = data.load_splits(folder, val_split=0.25, seed=3)
    assert _rows(dropped.train) == _rows(expected.train)
    assert _rows(dropped.val) == _rows(expected.val)
    assert not any(dropped.train.deferred + dropped.val.deferred)


def test_check_deferred_finds_what_the_full_scan_skips(tmp_path):
    folder = _folder(tmp_path / "set")
    full = data.load_splits(folder, val_split=0.25, seed=3)
    checked, damaged = data.check_deferred(data.load_splits(folder, val_split=0.25, seed=3, defer_jpeg=True),
                                           0.25, 3)
    assert sorted(damaged) == sorted(full.skipped) == [
        (os.path.join(folder, "a", "03_cut.jpg"), "truncated JPEG"),
        (os.path.join(folder, "a", "05_marker.jpg"), "corrupt JPEG (TensorFlow's JPEG decoder refuses it)")]
    assert _rows(checked.train) == _rows(full.train) and _rows(checked.val) == _rows(full.val)


def test_judging_pass_leaves_out_undecodable_files_and_keeps_the_rest_exact(tmp_path):
    import keras

    from keras_notes.finetune.cache import PASS_BATCH_SIZE, extract_features, extract_judged

    folder = _folder(tmp_path / "set")
    splits = data.load_splits(folder, val_split=0.25, seed=0, defer_jpeg=True)
    files = splits.train + splits.val
    inputs = keras.Input((32, 32, 3))
    extractor = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    arrays, failed = extract_judged(extractor, files, 32)
    assert sorted(files.paths[i] for i in failed) == [os.path.join(folder, "a", name)
                                                      for name in ("03_cut.jpg", "05_marker.jpg")]
    good = files.subset([i for i in range(len(files)) if i not in failed])
    expected = extract_features(extractor, data.make_eval_dataset(good, 32, PASS_BATCH_SIZE), len(good))
    assert np.array_equal(np.delete(arrays[0], failed, axis=0), expected)


@pytest.mark.parametrize("changes", [{}, {"augment": ("flip",)}, {"freeze_base": False}],
                         ids=["cached pass judges", "uncached scan decodes", "nothing frozen: checked first"])
def test_run_skips_and_splits_as_with_a_full_scan(tmp_path, changes, capsys):
    from keras_notes.finetune import runio
    from keras_notes.finetune.train import finetune_one_machine

    folder = _folder(tmp_path / "set")
    result = finetune_one_machine(tiny_config(folder, tmp_path / "run", val_split=0.25, **changes))
    full = data.load_splits(folder, val_split=0.25, seed=result.config.seed)
    skipped = json.loads((tmp_path / "run" / runio.SKIPPED_FILE).read_text())
    assert sorted(map(tuple, skipped)) == sorted(full.skipped)
    split = json.loads((tmp_path / "run" / runio.SPLIT_FILE).read_text())
    relative = [[os.path.relpath(path, folder), label] for path, label in zip(full.train.paths, full.train.labels)]
    assert [row[:2] for row in split["train"]] == relative
    val = [[os.path.relpath(path, folder), label] for path, label in zip(full.val.paths, full.val.labels)]
    assert [row[:2] for row in split["val"]] == val
    out = capsys.readouterr().out
    assert "skipped " + os.path.join(folder, "a", "03_cut.jpg") + ": truncated JPEG" in out
    # Augmented (never cached), the scan decodes every JPEG itself, as before; otherwise the
    # pass finds them, or, when nothing is frozen, the check that runs before training.
    found_later = "data: 2 more files skipped, undecodable; now 13 training and 4 validation images" in out
    assert found_later == ("augment" not in changes)


def test_clean_folder_run_equals_a_run_on_fully_scanned_files(tmp_path, monkeypatch):
    """On a folder with nothing damaged, deferring changes nothing the run computes."""
    from keras_notes.finetune import train

    folder = _folder(tmp_path / "set", damaged=False)
    deferred = train.finetune_one_machine(tiny_config(folder, tmp_path / "deferred", epochs=2))
    original = train.load_splits
    monkeypatch.setattr(train, "load_splits",
                        lambda *args, **kwargs: original(*args, **{**kwargs, "defer_jpeg": False}))
    full = train.finetune_one_machine(tiny_config(folder, tmp_path / "full", epochs=2))
    assert [row["loss"] for row in deferred.history] == [row["loss"] for row in full.history]
    assert deferred.evaluation == full.evaluation

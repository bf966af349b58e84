"""The scan memo: a re-scan reuses the checks of unchanged files and checks changed ones again.

Compared with a scan that keeps no memo, which checks every file itself.
"""

import os

import numpy as np
from PIL import Image

from keras_notes.finetune import scan as scan_module
from keras_notes.finetune.scan import scan_image_folder


def _folder(root):
    rng = np.random.default_rng(0)
    for label, name in enumerate("ab"):
        os.makedirs(root / name)
        for index in range(4):
            pixels = rng.integers(0, 255, (24, 32, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.{'jpg' if index % 2 else 'png'}")
    (root / "a" / "notes.txt").write_text("not an image")
    tagged = Image.fromarray(rng.integers(0, 255, (24, 32, 3)).astype(np.uint8))
    exif = tagged.getexif()
    exif[0x0112] = 6
    tagged.save(root / "b" / "turned.jpg", exif=exif)
    return root


def _counting(monkeypatch):
    checked = []
    original = scan_module.check_image

    def counting(path, *args, **kwargs):
        checked.append(os.path.basename(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(scan_module, "check_image", counting)
    return checked


def test_memo_scan_equals_a_full_scan_and_checks_only_changed_files(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "set")
    memo = str(tmp_path / "memo")
    for defer in (False, True):
        assert scan_image_folder(folder, memo_dir=memo, defer_jpeg=defer) == scan_image_folder(folder,
                                                                                             defer_jpeg=defer)
    full = scan_image_folder(folder)
    checked = _counting(monkeypatch)
    again = scan_image_folder(folder, memo_dir=memo)
    assert checked == []
    assert again == full
    assert again.orientation[again.paths.index(os.path.join(folder, "b", "turned.jpg"))] == 6
    # A file cut short (new size) is checked again, and now skipped; the others are not.
    data = (folder / "a" / "1.jpg").read_bytes()
    (folder / "a" / "1.jpg").write_bytes(data[:len(data) // 2])
    changed = scan_image_folder(folder, memo_dir=memo)
    assert checked == ["1.jpg"]
    assert dict(changed.skipped)[os.path.join(folder, "a", "1.jpg")] == "truncated JPEG"
    checked.clear()
    remembered = scan_image_folder(folder, memo_dir=memo)
    assert checked == []
    assert remembered == changed == scan_image_folder(folder)

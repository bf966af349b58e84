"""``--mode photos``, ``--decode-scale`` and ``--frozen-pass`` on small generated photos."""

import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from keras_notes_benchmarks import decode_scale, frozen_pass, race
from keras_notes_benchmarks.config import BenchmarkConfig
from keras_notes_benchmarks.photo_folder import photo_folder


def test_the_photo_folder_stores_every_third_photo_sideways_and_is_generated_once(tmp_path):
    folder = photo_folder(tmp_path, images=9, classes=3, width=64, height=48, workers=1, say=lambda line: None)
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
    assert len(paths) == 9 and sorted(os.listdir(folder)) == ["class_0", "class_1", "class_2"]
    tags = {}
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (64, 48)  # every pixel stream is landscape, as a phone stores it
            tags[os.path.basename(path)] = image.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(image).size
            assert upright == ((48, 64) if tags[os.path.basename(path)] in (6, 8) else (64, 48))
    # Photos 2, 5, 8 (every third) carry tags 6, 8, 3 in turn; the rest none.
    assert tags == {"0000.jpg": 1, "0001.jpg": 1, "0002.jpg": 6, "0003.jpg": 1, "0004.jpg": 1, "0005.jpg": 8,
                    "0006.jpg": 1, "0007.jpg": 1, "0008.jpg": 3}
    stamp = os.stat(paths[0]).st_mtime_ns
    assert photo_folder(tmp_path, images=9, classes=3, width=64, height=48, workers=1, say=None) == folder
    assert os.stat(paths[0]).st_mtime_ns == stamp  # reused, not written again
    assert photo_folder(tmp_path, images=6, classes=3, width=64, height=48, workers=1, say=lambda line: None) != folder


def _frozen_result(onnx_cpu_ms, difference):
    rows = [{"engine": "tensorflow", "batch": 32, "wall_ms": 20.0, "cpu_ms": 10.0},
            {"engine": "tensorflow", "batch": 64, "wall_ms": 21.0, "cpu_ms": 10.5},
            {"engine": "onnxruntime", "batch": 32, "wall_ms": 19.0, "cpu_ms": onnx_cpu_ms},
            {"engine": "onnxruntime", "batch": 64, "wall_ms": 19.0, "cpu_ms": onnx_cpu_ms + 1}]
    differences = {"tensorflow batch 32": 0.0, "tensorflow batch 64": 0.0, "onnxruntime batch 32": difference,
                   "onnxruntime batch 64": difference}
    return {"rows": rows, "differences": differences, "features_max": 1.0, "load": (7.0, 8.0), "images": 64}


def test_an_engine_qualifies_only_when_13_times_faster_and_within_1e4():
    # 10.0 / 8.0 = 1.25x: too little; 10.0 / 7.5 = 1.33x within 1e-5: qualifies; 1.33x but off by 1e-3: not.
    assert "1.25x less CPU time" in frozen_pass.format_frozen_pass(_frozen_result(8.0, 1e-5), cores=2)
    assert "does not qualify" in frozen_pass.format_frozen_pass(_frozen_result(8.0, 1e-5), cores=2)
    assert "; qualifies" in frozen_pass.format_frozen_pass(_frozen_result(7.5, 1e-5), cores=2)
    assert "does not qualify" in frozen_pass.format_frozen_pass(_frozen_result(7.5, 1e-3), cores=2)
    table = frozen_pass.format_frozen_pass(_frozen_result(8.0, 1e-5), cores=2)
    assert "TensorFlow: least CPU time at batch 32 (10.00 ms an image)" in table
    assert "5.00" in table  # 10 ms of CPU over 2 cores


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory):
    """6 photos of 320 x 240 px: decoded at 1/4 (80 x 60) for a 32 px target."""
    return photo_folder(tmp_path_factory.mktemp("photos"), images=6, width=320, height=240, workers=1,
                        say=lambda line: None)


def test_decode_scale_measures_times_pixels_and_agreement(small_photos):
    import keras

    from keras_notes.finetune.models import build_model

    files = decode_scale._files(small_photos)
    assert sorted(files.orientation) == [1, 1, 1, 1, 6, 8]
    times = decode_scale.decode_times(files, 32, repeats=1)
    assert set(times) == {"decode_jpeg whole", "decode_jpeg 1/8", "decode_image whole", "decode_image reduced"}
    assert all(wall > 0 and cpu >= 0 for wall, cpu in times.values())
    pixels = decode_scale.pixel_differences(files, 32)
    assert 0 < pixels["mean"] <= pixels["p99"] <= pixels["max"] <= 255
    keras.utils.set_random_seed(0)
    reduced, whole = decode_scale.predictions(build_model("mobilenet", 2, weights=None, image_size=32), files)
    assert reduced.shape == whole.shape == (6, 2)
    labels, val = np.asarray(files.labels), np.array([True, False] * 3)
    result = decode_scale.agreement((reduced, whole), labels, val)
    agree = np.argmax(reduced, 1) == np.argmax(whole, 1)
    assert (result["agreement"], result["disagreements"]) == (agree.mean(), 6 - agree.sum())
    assert result["val_accuracy"][1] == np.mean(np.argmax(whole, 1)[val] == labels[val])


@pytest.mark.slow
def test_the_photos_race_marks_the_first_epoch_and_measures_the_pass(small_photos, tmp_path):
    config = BenchmarkConfig(mode="photos", images=6, classes=2, photo_width=320, photo_height=240, image_size=32,
                             epochs=2, batch_size=2, val_split=0.34, repeats=1, warmup=False,
                             photo_cache=os.path.dirname(os.path.dirname(small_photos)))
    summary = race.run_benchmark(config, say=lambda line: None)
    assert [run["arm"] for run in summary["runs"]] == ["reference", "package"]
    for run in summary["runs"]:
        assert 0 < run["epoch1_seconds"] < run["train_seconds"] <= run["seconds"]  # 2 epochs: the first ends first
    text = race.format_summary(summary, "photos")
    assert "epoch 1 s" in text.splitlines()[0] and "ratio to the end of epoch 1 (baseline / package):" in text
    assert "% of the pass" in text and "decoding every photo whole" in text and "on one thread" in text

"""Exporting a run: every format round-trips through export and predict, the gate fails a bad int8 file.

The run is made here rather than by ``finetune``: a keras.applications base takes 17 s per
LiteRT conversion on this machine, a classifier of five layers about 1 s, and the export
code does not care which layers it converts. The tiny model has what matters for the
formats: the package's ``ImagePreprocessing`` layer, a strided convolution, a depthwise
convolution with batch norm and ReLU6 (MobileNet's block), pooling and a softmax head. The
run folder is written by the package's own functions (``runio.write_start``,
``runio.save_model``, ``evaluate.evaluation_report``), so it is what a finished run holds.
"""

import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from finetune_images import CLASS_NAMES, make_image_folder
from keras_notes.cli import export as export_cli
from keras_notes.cli import predict as predict_cli
from keras_notes.deploy import engines
from keras_notes.finetune import runio
from keras_notes.finetune.data import FileList
from keras_notes.finetune.export import RECIPES, export_run
from keras_notes.finetune.fidelity import FidelityGateFailed
from keras_notes.finetune.runfiles import run_files

SIZE = 32
FLOAT32 = [("saved_model", "none"), ("litert", "none"), ("onnx", "none")]


def _tiny_classifier(num_classes):
    import keras

    from keras_notes.layers import ImagePreprocessing

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = ImagePreprocessing("tf")(inputs)  # 0-255 -> [-1, 1], as MobileNet's
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)  # (batch, 15, 15, 8)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=False)(x)  # (batch, 13, 13, 8)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)  # (batch, 8)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _pixels(paths):
    """``(n, 32, 32, 3)`` float32 raw 0-255, read by PIL: independent of the package's decoder."""
    return np.stack([np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) for path in paths])


def _started_run(root):
    """``(run folder, splits)``: 12 images per class under ``root/images``, and the files a run writes at its start."""
    from keras_notes.finetune.config import FinetuneConfig
    from keras_notes.finetune.data import load_splits

    images = make_image_folder(root / "images", per_class=12, size=SIZE)
    run = root / "run"
    run.mkdir()
    # arch is a placeholder: the export reads only the folder, seed and split from config.json.
    config = FinetuneConfig(images, arch="mobilenet", weights=None, image_size=SIZE, val_split=0.25, seed=0,
                            output=str(run)).resolve()
    splits = load_splits(images, val_split=0.25, seed=0)
    runio.write_start(str(run), config, splits)
    return run, splits


def make_run(root):
    """A finished run folder for the tiny classifier on 12 images per class (9 validation images)."""
    import keras

    from keras_notes.finetune.evaluate import evaluation_report

    run, splits = _started_run(root)
    model = _tiny_classifier(len(splits.class_names))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    # 20 epochs of 3 steps: every validation image right (the classes differ by colour).
    model.fit(_pixels(splits.train.paths), np.asarray(splits.train.labels), epochs=20, batch_size=9, verbose=0)
    runio.save_model(model, str(run / runio.MODEL_FILE))
    predicted = model.predict(_pixels(splits.val.paths), verbose=0).argmax(axis=1)
    runio.write_json(run / runio.EVALUATION_FILE, evaluation_report(splits.val.labels, predicted, splits.class_names))
    return run, splits


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The run, its splits, and the report of exporting it in every format and quantisation."""
    root = tmp_path_factory.mktemp("export")
    run, splits = make_run(root)
    report = export_run(str(run), formats=["all"], quantize=["all"], latency_runs=0, allow_drop=True,
                        say=lambda message: None)
    return run, splits, report


def _predict_json(capsys, model_path, paths):
    assert predict_cli.main([str(model_path), *paths, "--top-k", "3", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [result["path"] for result in results] == list(paths)
    names = list(CLASS_NAMES)
    probabilities = np.zeros((len(paths), len(names)))
    for row, result in enumerate(results):
        for entry in result["predictions"]:
            probabilities[row, names.index(entry["label"])] = entry["probability"]
    return probabilities  # (images, classes), in class order


@pytest.mark.slow
def test_every_format_is_written_with_its_class_names_and_reported(exported):
    run, splits, report = exported
    rows = {(row["format"], row["quantize"]): row for row in report["artifacts"]}
    assert set(rows) == {("keras", "none"), *RECIPES}  # 1 reference + 6 files
    for (fmt, quantize), recipe in RECIPES.items():
        path = run / "export" / recipe.filename
        assert path.exists(), path
        assert runio.read_json(engines.class_names_path(str(path))) == list(CLASS_NAMES)
        assert rows[fmt, quantize]["bytes"] > 0
    assert report["validation"] == {"images": 9, "files": f"the file lists recorded in {runio.SPLIT_FILE}"}
    assert report["calibration_images"] == len(splits.train) == 27  # fewer than 200: all of them
    assert runio.read_json(run / "export" / "report.json") == json.loads(json.dumps(report))


@pytest.mark.slow
def test_report_numbers_match_a_recomputation_from_the_files(exported):
    run, splits, report = exported
    images = _pixels(splits.val.paths)
    labels = np.asarray(splits.val.labels)
    reference = engines.load_engine(str(run)).predict(images)
    for row in report["artifacts"]:
        probabilities = engines.load_engine(row["path"]).predict(images)
        assert row["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
        assert row["top1_agreement"] == pytest.approx(np.mean(probabilities.argmax(1) == reference.argmax(1)))
        assert row["max_abs_prob_diff"] == pytest.approx(np.abs(probabilities - reference).max(), abs=1e-6)
    assert report["artifacts"][0]["accuracy"] == runio.read_json(run / runio.EVALUATION_FILE)["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", list(RECIPES))
def test_predict_on_each_exported_file_matches_model_keras(exported, capsys, fmt, quantize):
    import keras

    run, splits, _ = exported
    paths = list(splits.val.paths)
    expected = keras.saving.load_model(run / runio.MODEL_FILE).predict(_pixels(paths), verbose=0)  # (9, 3)
    got = _predict_json(capsys, run / "export" / RECIPES[fmt, quantize].filename, paths)
    # float32 files compute the same function in another order: measured max |difference| 2.4e-7
    # here, 1.5e-6 on VGG16's LiteRT file and 1.1e-5 on MobileNet's; 1e-4 is the promise.
    # Measured on this model: float16 weights 8.7e-5; dynamic range 2.4e-7 (the converter keeps
    # tensors under 1,024 values in float, and this model has none larger); int8 4.6e-3, with
    # output steps of 1/256. Bounds at several times those.
    tolerance = {"none": 1e-4, "float16": 1e-3, "dynamic": 1e-3, "int8": 0.02}[quantize]
    np.testing.assert_allclose(got, expected, atol=tolerance)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.slow
def test_int8_calibrated_on_one_black_image_fails_the_gate(exported, tmp_path):
    run, splits, report = exported
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(black)
    one_black = FileList((str(black),), (0,), (False,))
    output = tmp_path / "bad"
    with pytest.raises(FidelityGateFailed, match=r"FIDELITY GATE FAILED: model_int8.tflite \(litert int8\)"):
        export_run(str(run), formats=["litert"], quantize=["int8"], output=str(output), latency_runs=0,
                   calibration_files=one_black, say=lambda message: None)
    bad = runio.read_json(output / "report.json")
    assert bad["passed"] is False and bad["artifacts"][1]["gate"] == "FAILED"
    # The same export calibrated on the run's training images kept every prediction.
    good = {(row["format"], row["quantize"]): row for row in report["artifacts"]}["litert", "int8"]
    assert good["gate"] == "ok" and good["top1_agreement"] == 1.0
    assert bad["artifacts"][1]["accuracy"] < good["accuracy"] - 0.3  # 9 images: at least 3 more wrong


@pytest.mark.slow
def test_the_gate_exits_1_and_allow_drop_exits_0(exported, tmp_path, capsys, monkeypatch):
    run, _, _ = exported
    from keras_notes.finetune import fidelity

    monkeypatch.setitem(fidelity.MAX_DROP, "none", -1.0)  # a limit nothing meets: the gate must fail
    argv = [str(run), "--format", "onnx", "--latency-runs", "0", "--output", str(tmp_path / "out")]
    assert export_cli.main(argv) == 1
    assert "FIDELITY GATE FAILED: model.onnx (onnx none)" in capsys.readouterr().err
    assert export_cli.main(argv + ["--allow-drop"]) == 0


def test_an_older_run_is_re_split_from_its_config_to_the_same_files(tmp_path):
    run, splits = _run_folder_without_training(tmp_path)
    recorded = run_files(str(run))
    os.remove(run / runio.SPLIT_FILE)
    re_derived = run_files(str(run))
    assert re_derived.val == recorded.val == splits.val and re_derived.train == recorded.train == splits.train
    assert "re-split from config.json (seed 0, val_split 0.25)" in re_derived.source


def test_a_moved_image_folder_is_named_with_data(tmp_path):
    run, splits = _run_folder_without_training(tmp_path)
    shutil.move(tmp_path / "images", tmp_path / "moved")
    with pytest.raises(ValueError, match="validation images are missing under .*pass --data DIR"):
        run_files(str(run)).present_val()
    found = run_files(str(run), data_dir=str(tmp_path / "moved"))
    assert found.present_val().paths == tuple(p.replace(str(tmp_path / "images"), str(tmp_path / "moved"))
                                              for p in splits.val.paths)


def _run_folder_without_training(tmp_path):
    """A run folder with every file a finished run has, and a model file that is never loaded."""
    run, splits = _started_run(tmp_path)
    (run / runio.MODEL_FILE).write_text("never loaded: every check here fails or passes before")
    runio.write_json(run / runio.EVALUATION_FILE, {"accuracy": 1.0, "num_images": len(splits.val)})
    return run, splits


def _one_line_exit_2(argv, capsys):
    assert export_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_requests_are_one_line_and_exit_2(tmp_path, capsys):
    run, _ = _run_folder_without_training(tmp_path)
    (tmp_path / "empty").mkdir()
    err = _one_line_exit_2([str(tmp_path / "empty")], capsys)
    assert "is not a finished run: config.json, class_names.json, model.keras, evaluation.json missing" in err
    assert "unknown format ['tflite']" in _one_line_exit_2([str(run), "--format", "tflite"], capsys)
    assert "unknown quantize ['int4']" in _one_line_exit_2([str(run), "--quantize", "int4"], capsys)
    assert "quantize applies to the litert format only" in _one_line_exit_2(
        [str(run), "--format", "onnx", "--quantize", "int8"], capsys)
    (tmp_path / "afile").write_text("x")
    err = _one_line_exit_2([str(run), "--output", str(tmp_path / "afile" / "export")], capsys)
    assert f"cannot write the export folder '{tmp_path / 'afile' / 'export'}': Not a directory" in err


def test_int8_without_the_training_images_offers_data(tmp_path, capsys):
    run, splits = _run_folder_without_training(tmp_path)
    for path in splits.train.paths:  # the validation images stay: only calibration lacks its images
        os.remove(path)
    err = _one_line_exit_2([str(run), "--quantize", "int8"], capsys)
    assert "27 of the run's 27 training images (int8 calibrates on them) are missing under" in err
    assert "pass --data DIR" in err


def test_a_missing_export_package_is_one_line_naming_it_and_the_pip_command(tmp_path, capsys, monkeypatch):
    run, _ = _run_folder_without_training(tmp_path)
    # As without the export extra: Python's import system now finds no tf2onnx (a None entry
    # in sys.modules makes both ``import`` and ``importlib.util.find_spec`` fail).
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    err = _one_line_exit_2([str(run), "--format", "onnx"], capsys)
    assert "error: tf2onnx is not installed (module 'tf2onnx' not found); install the export extra: " \
           "pip install 'keras_notes[export]'" in err
    assert not (run / "export").exists()  # refused before anything was written


def test_the_run_folder_names_are_the_ones_the_engines_use():
    assert (engines.MODEL_FILE, engines.CLASS_NAMES_FILE) == (runio.MODEL_FILE, runio.CLASS_NAMES_FILE)


@pytest.mark.slow
def test_latency_is_timed_in_a_fresh_process(exported):
    from keras_notes.deploy.latency import measure_in_fresh_process

    run, _, _ = exported
    path = run / "export" / "model.tflite"
    one, default = measure_in_fresh_process(path, 1, runs=5), measure_in_fresh_process(path, None, runs=5)
    assert 0 < one < 1000 and 0 < default < 1000  # ms for a five-layer model at 32 px


def test_tensorflow_engines_refuse_a_thread_count_once_tensorflow_runs(tmp_path):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # starts TensorFlow's runtime in this process
    if tf.config.threading.get_intra_op_parallelism_threads() == 1:
        pytest.skip("this process already runs TensorFlow on 1 thread")
    os.makedirs(tmp_path / "model")
    (tmp_path / "model" / engines.SAVED_MODEL_FILE).write_bytes(b"")
    with pytest.raises(ValueError, match="threads=1 needs a fresh process"):
        engines.load_engine(str(tmp_path / "model"), threads=1)

"""Predicting with a saved run: the command line against the model's own output."""

import csv
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from finetune_images import make_image_folder
from keras_notes.cli import predict as cli
from keras_notes.finetune import runio
from keras_notes.finetune.config import FinetuneConfig
from keras_notes.finetune.run import finetune


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run on tiny images (head trained on a frozen random MobileNet base, one epoch)."""
    root = tmp_path_factory.mktemp("predict")
    images = make_image_folder(root / "images", per_class=4)
    finetune(FinetuneConfig(images, arch="mobilenet", weights=None, freeze_base=True, image_size=32,
                            batch_size=4, epochs=1, output=str(root / "run"), verbose=0))
    return root


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)  # raw 0-255, as the model takes


@pytest.mark.slow
def test_top_1_is_the_models_argmax_and_probabilities_sum_to_1(run, capsys):
    folder = run / "images" / "dog"
    paths = sorted(str(folder / name) for name in os.listdir(folder))
    assert cli.main([str(run / "run"), *paths, "--top-k", "3", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)

    model = keras.saving.load_model(run / "run" / runio.MODEL_FILE)
    expected = model.predict(np.stack([_pixels(path) for path in paths]), verbose=0)  # (4, 3)
    class_names = ["cat", "dog", "eel"]
    assert [result["path"] for result in results] == paths
    for result, row in zip(results, expected):
        labels = [entry["label"] for entry in result["predictions"]]
        probabilities = [entry["probability"] for entry in result["predictions"]]
        assert labels[0] == class_names[int(np.argmax(row))]
        assert sorted(labels) == class_names  # top 3 of 3 classes: all of them, best first
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(probabilities, np.sort(row)[::-1], atol=1e-5)


@pytest.mark.slow
def test_folders_are_searched_and_csv_goes_to_a_file(run, tmp_path):
    (run / "images" / "notes.txt").write_text("not an image")
    output = tmp_path / "predictions.csv"
    assert cli.main([str(run / "run"), str(run / "images"), "--top-k", "2", "--output", str(output)]) == 0
    rows = list(csv.reader(io.StringIO(output.read_text())))
    assert rows[0] == ["path", "label_1", "probability_1", "label_2", "probability_2"]
    assert len(rows) == 1 + 3 * 4  # every PNG of the three class folders, and not the .txt
    assert all(0.0 <= float(row[2]) <= 1.0 and float(row[2]) >= float(row[4]) for row in rows[1:])


def test_a_folder_without_a_model_is_one_line_and_exit_2(tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert cli.main([str(tmp_path), str(image)]) == 2
    err = capsys.readouterr().err
    assert "no trained model in" in err and "model.keras is missing" in err and err.count("\n") == 1


@pytest.mark.slow
def test_bad_inputs_are_one_line_and_exit_2(run, capsys):
    assert cli.main([str(run / "run"), str(run / "missing.png")]) == 2
    assert "no such image or folder" in capsys.readouterr().err
    assert cli.main([str(run / "run"), str(run / "images" / "cat" / "000.png"), "--top-k", "0"]) == 2
    assert "top_k must be a positive integer; received top_k=0" in capsys.readouterr().err


@pytest.mark.slow
def test_script_in_a_fresh_process_loads_the_model_with_safe_mode(run):
    # A new interpreter has imported nothing of the package: loading must register the
    # package's layer itself, with Keras's safe_mode left on.
    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "predict.py")
    image = str(run / "images" / "eel" / "000.png")
    completed = subprocess.run([sys.executable, script, str(run / "run"), image, "--top-k", "1"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    header, row = completed.stdout.splitlines()
    assert header == "path,label_1,probability_1" and row.startswith(image + ",")

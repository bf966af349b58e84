"""The explain_params command: table, totals, exit statuses."""

import os
import pathlib
import subprocess
import sys

import keras
import pytest

from keras_notes import notes_models
from keras_notes.cli import explain_params

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "explain_params.py"


def test_notes_cnn_table_and_totals(capsys):
    assert explain_params.main(["cnn_example"]) == 0
    out = capsys.readouterr().out
    assert "3*3*3*2 + 2 = 56" in out
    assert "1200*2 + 2 = 2,402" in out
    assert f"formulas: {56 + 57 + 2402:,} parameters (trainable {56 + 57 + 2402:,}, non-trainable 0)" in out
    assert "every layer's formula agrees with Keras" in out


def test_batch_norm_split_is_printed(capsys):
    assert explain_params.main(["in17"]) == 0
    out = capsys.readouterr().out
    assert "4*1 = 4 (2*1 non-trainable)" in out
    assert f"(trainable {710 - 2:,}, non-trainable {2*1})" in out


def test_vgg16_prints_138_357_544_with_no_disagreement(capsys):
    assert explain_params.main(["vgg16", "--totals-only"]) == 0
    out = capsys.readouterr().out
    assert "formulas: 138,357,544 parameters" in out
    assert "keras:    138,357,544 parameters" in out
    assert "disagrees" not in out


def test_application_options_and_underscored_names(capsys):
    assert explain_params.main(["mobilenet", "--no-top", "--image-size", "64", "--totals-only"]) == 0
    assert "formulas: 3,228,864 parameters" in capsys.readouterr().out
    model = explain_params.build_model("mobilenet_v2", include_top=False, image_size=32)
    assert model.input_shape == (None, 32, 32, 3)
    keras.backend.clear_session()


@pytest.mark.parametrize("argv, message", [
    (["no_such_model"], "unknown model 'no_such_model'"),
    (["in7", "--no-top"], "apply to keras.applications models only"),
    (["vgg16", "--no-top", "--image-size", "0"], "--image-size must be a positive"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, capsys):
    assert explain_params.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "\n" not in err and "Traceback" not in err


def test_disagreement_and_unknown_layers_exit_1():
    model = notes_models.dense_example()
    model.get_layer("hidden").units = 4  # configuration no longer matches the weights
    text, status = explain_params.render(model)
    assert status == 1
    assert "1 layer(s) where the formula disagrees with Keras: hidden" in text
    assert "DISAGREES" in text

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],))

        def call(self, inputs):
            return inputs * self.scale

    model = keras.Sequential([keras.Input((3,)), Scale(name="scale")])
    text, status = explain_params.render(model)
    assert status == 1
    assert "1 layer(s) with no formula: scale" in text


def test_script_shim_runs():
    result = subprocess.run([sys.executable, str(SCRIPT), "dense_example"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    assert f"formulas: {(2*3 + 3) + (3*2 + 2)} parameters" in result.stdout

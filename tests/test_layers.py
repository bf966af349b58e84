"""ImagePreprocessing: each mode against NumPy, and loading a saved model after ``import keras_notes``."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_notes.layers import PREPROCESSING_MODES, ImagePreprocessing

# keras.applications' ImageNet statistics, as published with the weights (RGB order).
CAFFE_MEANS_BGR = np.array([103.939, 116.779, 123.68])
TORCH_MEAN, TORCH_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

EXPECTED = {
    "caffe": lambda x: x[..., ::-1] - CAFFE_MEANS_BGR,  # RGB -> BGR, then minus the BGR means
    "tf": lambda x: x / 127.5 - 1.0,  # [0, 255] -> [-1, 1]
    "torch": lambda x: (x / 255.0 - TORCH_MEAN) / TORCH_STD,
    "none": lambda x: x,
}


@pytest.mark.parametrize("mode", PREPROCESSING_MODES)
def test_each_mode_matches_numpy(mode):
    assert set(EXPECTED) == set(PREPROCESSING_MODES)  # a new mode needs its arithmetic here
    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3))
    output = np.asarray(ImagePreprocessing(mode)(images.astype("float32")), dtype=np.float64)
    assert output.shape == images.shape
    # float32 on 0-255 values, on both backends: measured max |diff| 1.6e-5 (caffe), 7.3e-6
    # (none: the float32 cast itself), under 6e-7 (tf, torch). A wrong channel order or
    # constant is off by more than 1.
    np.testing.assert_allclose(output, EXPECTED[mode](images), rtol=0, atol=1e-4)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown preprocessing mode 'caffee'"):
        ImagePreprocessing("caffee")


def save_tiny_model(folder):
    """A model.keras holding ImagePreprocessing, the images and the outputs it gave on them."""
    import keras

    inputs = keras.Input((8, 8, 3))
    x = ImagePreprocessing("caffe", name="preprocessing")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="predictions")(x))
    paths = folder / "model.keras", folder / "images.npy", folder / "outputs.npy"
    model.save(paths[0])
    images = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    np.save(paths[1], images)
    np.save(paths[2], np.asarray(model(images)))
    return paths


def with_module_path(model_path, module, copy):
    """A copy of the .keras file whose ImagePreprocessing entry names ``module``: files saved
    before the layer moved to keras_notes.layers name keras_notes.finetune.layers."""
    with zipfile.ZipFile(model_path) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                entries = [layer for layer in config["config"]["layers"]
                           if layer["class_name"] == "ImagePreprocessing"]
                assert [entry["module"] for entry in entries] == ["keras_notes.layers"]
                entries[0]["module"] = module
                data = json.dumps(config).encode()
            target.writestr(item, data)
    return copy


# A fresh interpreter, which has never registered the layer: load_model fails with Keras
# alone (so the check after it can fail), then works after `import keras_notes`, on the
# file as saved and on one naming the layer's old module.
LOAD = """
import sys
import keras, numpy as np
model_path, old_path, images, outputs = sys.argv[1:]
try:
    keras.models.load_model(model_path)
    print("loaded without keras_notes")
except TypeError as error:
    print("refused", "Could not locate class 'ImagePreprocessing'" in str(error))
import keras_notes
for path in (model_path, old_path):
    model = keras.models.load_model(path)  # safe_mode on, Keras's default
    assert type(model.get_layer("preprocessing")).__name__ == "ImagePreprocessing"
    np.testing.assert_allclose(np.asarray(model(np.load(images))), np.load(outputs), rtol=0, atol=1e-6)
    print("loaded", path == old_path)
"""


def test_load_model_works_after_a_plain_import_keras_notes(tmp_path):
    model_path, images, outputs = save_tiny_model(tmp_path)
    old_path = with_module_path(model_path, "keras_notes.finetune.layers", tmp_path / "old.keras")
    result = subprocess.run([sys.executable, "-c", LOAD, *map(str, (model_path, old_path, images, outputs))],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    # Keras finds a custom layer by its registered name, keras_notes>ImagePreprocessing, before
    # its module path: that is why the file naming the old module loads too.
    assert result.stdout.splitlines() == ["refused True", "loaded False", "loaded True"]

"""Weights resolution: the offline ImageNet error, local weights files, refusals.

ImageNet weights cannot be downloaded here, so the ImageNet test checks the failure
for real, in a child process whose Keras cache is an empty temporary folder and
whose HTTPS proxy is a closed local port: the test cannot pass by finding a cached
file, and behaves the same on a machine that is online.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.archs import ARCHS
from keras_notes.finetune.models import BASE_LAYER_NAME, build_model
from keras_notes.finetune.weights import imagenet_file_name, load_base, resolve_weights

# The files keras.applications 3.15 downloads, spelled out by hand from its source
# (keras/src/applications/*.py), independently of the table in weights.py.
EXPECTED_FILES = [
    # (what is built, arch, include_top, image_size, file name)
    ("build_model", "vgg16", False, 32, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("build_model", "mobilenet", False, 32, "mobilenet_1_0_224_tf_no_top.h5"),  # 32 px: Keras falls back to 224
    ("build_model", "mobilenet", False, 128, "mobilenet_1_0_128_tf_no_top.h5"),
    ("build_model", "mobilenet_v2", False, 32, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    ("build_model", "resnet50", False, 32, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("build_model", "efficientnetb0", False, 32, "efficientnetb0_notop.h5"),
    ("course_vgg16", "vgg16", True, 224, "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    ("course_mobilenet", "mobilenet", True, 224, "mobilenet_1_0_224_tf.h5"),
]

CHILD = """
import json, sys
from keras_notes.finetune import models
cases = json.loads(sys.argv[1])
for builder, arch, include_top, size, _ in cases:
    try:
        if builder == "build_model":
            models.build_model(arch, 2, weights="imagenet", image_size=size)
        else:
            getattr(models, builder)(weights="imagenet")
        print(json.dumps({"arch": arch, "error": None}))
    except Exception as error:
        print(json.dumps({"arch": arch, "type": type(error).__name__, "error": str(error)}))
"""


@pytest.mark.slow
def test_offline_imagenet_error_names_the_exact_file(tmp_path):
    keras_home = tmp_path / "keras_home"
    env = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "all_proxy")}
    closed_port = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    env.update(KERAS_HOME=str(keras_home), https_proxy=closed_port, HTTPS_PROXY=closed_port,
               http_proxy=closed_port, HTTP_PROXY=closed_port, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(EXPECTED_FILES)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(EXPECTED_FILES), result.stdout

    models_dir = os.path.join(str(keras_home), "models")
    for (builder, arch, include_top, size, file_name), report in zip(EXPECTED_FILES, reports):
        message = report["error"]
        assert message is not None, f"{builder} {arch}: built with ImageNet weights, offline?"
        assert report["type"] == "KerasNotesError", report
        assert "\n" not in message
        assert f"place {file_name} at {os.path.join(models_dir, file_name)} " in message
        assert "pass a local weights file" in message
        # The package's own table agrees with what Keras tried to download.
        assert imagenet_file_name(arch, include_top=include_top, image_size=size) == file_name
    assert not os.listdir(models_dir)  # nothing half-downloaded left in the cache
    # The one-line error stands alone: Keras's "Downloading data from ..." is held back offline.
    assert "Downloading data from" not in result.stdout, result.stdout


def test_resolve_weights_cases(tmp_path, monkeypatch):
    path = tmp_path / "base.weights.h5"
    path.write_bytes(b"")
    assert resolve_weights("mobilenet", "imagenet") == "imagenet"
    assert resolve_weights("mobilenet", None) is None
    assert resolve_weights("mobilenet", "none") is None  # the command line's spelling
    assert resolve_weights("mobilenet", "None") is None
    assert resolve_weights("mobilenet", path) == str(path)
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("mobilenet", "base.weights.h5") == str(path)  # made absolute


@pytest.mark.parametrize("weights, words", [
    ("missing.weights.h5", "weights file not found"),
    ("base.keras", "path to a local .h5 / .weights.h5 file"),
    (3, "received weights=3"),
])
def test_resolve_weights_refusals_name_the_value(weights, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KerasNotesError, match=words) as caught:
        resolve_weights("mobilenet", weights)
    assert repr(weights) in str(caught.value)


def test_unknown_arch_is_refused_first():
    with pytest.raises(KerasNotesError, match="unknown arch 'vgg19'"):
        resolve_weights("vgg19", "imagenet")


def _perturbed_base(arch, size=32, seed=0):
    """A randomly initialised base whose every weight (moving statistics too) is shifted by noise."""
    base = load_base(arch, None, image_size=size)
    rng = np.random.default_rng(seed)
    for weight in base.weights:
        noise = rng.normal(size=weight.shape).astype("float32")
        weight.assign(weight.numpy() + (np.abs(noise) if "variance" in weight.path else noise))
    return base


def _save(base, path):
    if path.endswith(".weights.h5"):
        base.save_weights(path)
    else:  # the legacy HDF5 format, as keras.applications' own ImageNet files are
        base.save(path)
    return path


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_build_model_loads_a_local_weights_file(suffix, tmp_path):
    source = _perturbed_base("mobilenet")
    path = _save(source, str(tmp_path / f"mobilenet_base{suffix}"))

    # Built at 64 px: a convolutional base's weights do not depend on the image size.
    model = build_model("mobilenet", 3, weights=path, image_size=64)
    base = model.get_layer(BASE_LAYER_NAME)
    assert len(base.weights) == len(source.weights) == 135  # 27 conv + 27 batch norm * 4
    for loaded, saved in zip(base.weights, source.weights):
        assert loaded.path.split("/")[-2:] == saved.path.split("/")[-2:]
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    assert not base.trainable  # pretrained weights: frozen by default


def test_a_weights_file_of_another_arch_is_refused_in_one_line(tmp_path):
    path = _save(load_base("mobilenet", None, image_size=32), str(tmp_path / "mobilenet_base.weights.h5"))
    with pytest.raises(KerasNotesError) as caught:
        build_model("mobilenet_v2", 3, weights=path, image_size=32)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"weights file {path} cannot be loaded into arch 'mobilenet_v2'")
    assert "shape" in message  # Keras's own reason, kept: a (1, 1, 32, 16) kernel received (1, 1, 32, 64)


def test_a_legacy_h5_file_of_another_arch_is_refused(tmp_path):
    path = _save(load_base("mobilenet", None, image_size=32), str(tmp_path / "mobilenet_base.h5"))
    with pytest.raises(KerasNotesError, match=r"cannot be loaded into arch 'vgg16'.*Layer count mismatch"):
        build_model("vgg16", 3, weights=path, image_size=32)


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not an HDF5 file")
    with pytest.raises(KerasNotesError, match="cannot be loaded into arch 'mobilenet'"):
        build_model("mobilenet", 3, weights=str(path), image_size=32)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_registered_arch_has_an_imagenet_file_name(arch):
    assert imagenet_file_name(arch).endswith(".h5")
    assert imagenet_file_name(arch, include_top=True) != imagenet_file_name(arch)


def test_none_and_its_command_line_spelling_give_random_weights():
    # Two random initialisations differ; their shapes agree.
    first, second = load_base("mobilenet", None, image_size=32), load_base("mobilenet", "none", image_size=32)
    assert isinstance(first, keras.Model)
    kernel_1, kernel_2 = first.get_layer("conv1").kernel.numpy(), second.get_layer("conv1").kernel.numpy()
    assert kernel_1.shape == kernel_2.shape == (3, 3, 3, 32)
    assert not np.array_equal(kernel_1, kernel_2)

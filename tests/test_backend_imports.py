"""On the JAX backend, the notes' builders, the parameter engine and the backprop check
run without importing TensorFlow (fine-tuning, which needs tf.distribute, is not imported).
The package imports no Keras itself, yet registers its layer when Keras comes after it, and
a model holding that layer saves and loads."""

import os
import subprocess
import sys

import pytest

# Each step prints whether TensorFlow has been imported so far, or the value it checks; a
# failure names the step.
CODE = """
import importlib.util, sys
def report(step, value=None):
    print(step, "tensorflow" in sys.modules if value is None else value, flush=True)

import keras_notes
report("package-imports-keras", "keras" in sys.modules)
importlib.util.find_spec("keras")  # a look without an import, as keras_notes.deploy makes
import keras
# Nothing has imported keras_notes.layers yet: only the package's finder can have.
report("registered-by-import-keras",
       keras.saving.get_registered_object("keras_notes>ImagePreprocessing") is not None)
from keras_notes import notes_models, params
from keras_notes.experiments import backprop
report("import")
for name, build in notes_models.MODELS.items():
    model = build()
    assert params.count_params(model) == params.keras_counts(model), name
report("build+count")
result = backprop.compare_gradients(backprop.BackpropConfig(batch=8))
assert max(row[4] for row in result["rows"]) < 1e-10, result["rows"]
report("backprop")
print("backend", keras.backend.backend())

# Last, as it may import TensorFlow: Keras's own model.save checks whether TensorFlow is
# installed (serialization_lib), on any backend. A saved ImagePreprocessing loads on JAX.
import numpy as np
inputs = keras.Input((8, 8, 3))
x = keras_notes.ImagePreprocessing("caffe", name="preprocessing")(inputs)
model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
images = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
model.save(sys.argv[1])
loaded = keras.models.load_model(sys.argv[1])
np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), rtol=0, atol=1e-6)
print("save+load", "ok")
"""


def test_jax_backend_never_imports_tensorflow(tmp_path):
    pytest.importorskip("jax")
    # Unoptimised XLA, as in CI's JAX pass: these ops are tiny, and compiling them is the cost.
    env = {"XLA_FLAGS": "--xla_backend_optimization_level=0", **os.environ, "KERAS_BACKEND": "jax",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", CODE, str(tmp_path / "model.keras")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    # Before params stopped calling layer.get_config() (whose serialisation imports
    # TensorFlow whenever it is installed), this read "build+count True".
    steps = dict(line.split() for line in result.stdout.splitlines())
    assert steps == {"package-imports-keras": "False", "registered-by-import-keras": "True",
                     "import": "False", "build+count": "False", "backprop": "False", "backend": "jax",
                     "save+load": "ok"}


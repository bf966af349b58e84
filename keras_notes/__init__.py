"""keras_notes: a deep-learning course's notes as runnable Keras 3 code.

Modules, one concern each:

- ``keras_notes.notes_models``: the notes' models as builders, and their registry.
- ``keras_notes.params``: parameter counts from first principles.
- ``keras_notes.experiments``: runnable versions of the notes' claims.
- ``keras_notes.layers``: ``ImagePreprocessing``, the one custom layer a saved model holds.
- ``keras_notes.losses``: the sparse cross-entropy with label smoothing that Keras lacks.
- ``keras_notes.saving_memo``: Keras's per-layer saving work done once (a Keras 3.15 cache that misses).
- ``keras_notes.finetune``: fine-tuning keras.applications bases on an image folder.
- ``keras_notes.deploy``: running exported files (LiteRT, ONNX, SavedModel) without Keras.

After ``import keras_notes``, ``keras.saving.load_model("runs/x/model.keras")`` works:
``ImagePreprocessing`` is registered as soon as Keras is imported, before or after this
package (``keras_notes.registration``). The package itself imports neither Keras nor
TensorFlow, so that ``import keras_notes`` stays cheap.
"""

from keras_notes.errors import KerasNotesError
from keras_notes.registration import register_with_keras

register_with_keras()

__all__ = ["ImagePreprocessing", "KerasNotesError"]
__version__ = "0.1.0"


def __getattr__(name):
    # keras_notes.ImagePreprocessing imports Keras only when asked for.
    if name == "ImagePreprocessing":
        from keras_notes.layers import ImagePreprocessing

        return ImagePreprocessing
    raise AttributeError(f"module 'keras_notes' has no attribute {name!r}")

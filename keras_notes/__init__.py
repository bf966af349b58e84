"""keras_notes: a deep-learning course's notes as runnable Keras 3 code.

Modules, one concern each:

- ``keras_notes.notes_models``: the notes' models as builders, and their registry.
- ``keras_notes.params``: parameter counts from first principles.
- ``keras_notes.experiments``: runnable versions of the notes' claims.
- ``keras_notes.layers``: ``ImagePreprocessing``, the one custom layer a saved model holds.
- ``keras_notes.finetune``: fine-tuning keras.applications bases on an image folder.

``import keras_notes`` imports Keras and registers ``ImagePreprocessing``, so that
``keras.saving.load_model("runs/x/model.keras")`` works after it. On the TensorFlow
backend that imports TensorFlow (about 5 s); on JAX it does not. Fine-tuning, which
needs TensorFlow on any backend, is imported only with ``keras_notes.finetune``.
"""

from keras_notes.startup import import_keras_quietly

import_keras_quietly()  # before any other import of Keras, so TensorFlow's start-up lines stay filtered

from keras_notes.errors import KerasNotesError  # noqa: E402
from keras_notes.layers import ImagePreprocessing  # noqa: E402 -- registers it for load_model

__all__ = ["ImagePreprocessing", "KerasNotesError"]
__version__ = "0.1.0"

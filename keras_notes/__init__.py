"""keras_notes: a deep-learning course's notes as runnable Keras 3 code.

Modules, one concern each:

- ``keras_notes.notes_models``: the notes' models as builders, and their registry.
- ``keras_notes.params``: parameter counts from first principles.
- ``keras_notes.experiments``: runnable versions of the notes' claims.
- ``keras_notes.finetune``: fine-tuning keras.applications bases on an image folder.

Heavy modules (TensorFlow) are imported by the submodules, not here, so that
``import keras_notes`` stays cheap.
"""

from keras_notes.errors import KerasNotesError

__all__ = ["KerasNotesError"]
__version__ = "0.1.0"

"""The package's one custom layer: ImageNet preprocessing inside the model.

A ``Lambda`` would do the same arithmetic but cannot be loaded with Keras's
``safe_mode`` on; a registered layer can. After ``import keras_notes`` this module is
imported as soon as Keras is (``keras_notes.registration``), so the registration, as
``keras_notes>ImagePreprocessing`` (the name every saved ``model.keras`` refers to), is
done before a user can call ``keras.saving.load_model``. It needs only Keras, on any backend.
"""

import keras
from keras.applications import imagenet_utils

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")


@keras.saving.register_keras_serializable(package="keras_notes")
class ImagePreprocessing(keras.layers.Layer):
    """Raw 0-255 RGB images -> what a keras.applications base expects.

    ``mode`` is one of ``PREPROCESSING_MODES``; see ``keras_notes.finetune.archs``.
    Shape is unchanged: (batch, height, width, 3) -> (batch, height, width, 3).
    """

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; choose from {PREPROCESSING_MODES}")
        self.mode = mode

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "none":
            return images
        return imagenet_utils.preprocess_input(images, data_format="channels_last", mode=self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

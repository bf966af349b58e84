"""Fine-tuning models: a keras.applications base, frozen, under a new classifier head.

``build_model`` is the package's general builder; the course's two fine-tuned
models live beside it.
"""

import keras

from keras_notes.finetune.archs import get_arch
from keras_notes.finetune.layers import ImagePreprocessing

BASE_LAYER_NAME = "base"  # the nested keras.applications model inside every build_model model


def build_model(arch, num_classes, weights="imagenet", image_size=None, dropout=0.2, freeze_base=None):
    """A classifier that takes raw 0-255 RGB images: preprocessing -> base -> head.

    Layers, for MobileNet at 224 px and 10 classes::

        image          (batch, 224, 224, 3)   raw 0-255 RGB
        preprocessing  (batch, 224, 224, 3)   the arch's own preprocess_input, inside the model
        base           (batch, 7, 7, 1024)    keras.applications, include_top=False
        pool           (batch, 1024)          global average pooling
        dropout        (batch, 1024)
        predictions    (batch, 10)            Dense(num_classes, softmax): 1024*10 + 10 = 10,250

    ``weights`` is ``"imagenet"``, ``None`` (random) or a path to a local weights file
    for the base. ``freeze_base`` defaults to ``True`` with pretrained weights and to
    ``False`` with ``weights=None`` (a random base has nothing worth freezing).

    The base is always called with ``training=False``, so its batch-norm layers run in
    inference mode even once unfrozen (the keras.io fine-tuning guide's advice).
    """
    from keras_notes.errors import KerasNotesError

    spec = get_arch(arch)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise KerasNotesError(f"num_classes must be an integer of at least 2; received num_classes={num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise KerasNotesError(f"dropout must be in [0, 1); received dropout={dropout!r}")
    size = spec.default_image_size if image_size is None else image_size
    if freeze_base is None:
        freeze_base = weights is not None

    base = spec.base(weights=weights, image_size=size)
    base.name = BASE_LAYER_NAME
    base.trainable = not freeze_base

    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    x = base(x, training=False)  # (batch, h, w, c)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (batch, h, w, c) -> (batch, c)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    # float32 output even under a mixed precision policy, so softmax and the loss stay stable.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{arch}_finetune")

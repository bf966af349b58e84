"""``--mode phase1``: the keras.io transfer-learning recipe against the package's phase 1.

The reference arm is the keras.io "Transfer learning & fine-tuning" recipe (and the
TensorFlow MobileNetV2 tutorial's): ``image_dataset_from_directory`` -> the frozen base
called with ``training=False`` -> GlobalAveragePooling -> Dropout -> Dense, ``model.fit``;
every image goes through the whole base on every step of every epoch. The package arm is
``finetune(FinetuneConfig(...))`` with its defaults (the frozen part runs once), and it
does more than training: it also scans the folder, evaluates, saves the model and plots.
Both are timed from the start to the end of training.
"""

import time

from keras_notes_benchmarks.arms import Mode, package_arm
from keras_notes_benchmarks.common import HEAD_LR, keras_io_head


def reference_arm(config, output, marks, callbacks=()):
    """The keras.io recipe on ``config.data_dir``; -> (validation accuracy, training images).

    ``callbacks`` go to ``fit`` (``photos`` marks the end of the first epoch with one).
    """
    import keras
    import tensorflow as tf

    from keras_notes.finetune.archs import get_arch
    from keras_notes.layers import ImagePreprocessing
    from keras_notes.finetune.train import compile_model
    from keras_notes.finetune.weights import load_base

    keras.utils.set_random_seed(config.seed)
    size = (config.image_size, config.image_size)
    train, val = keras.utils.image_dataset_from_directory(
        config.data_dir, validation_split=config.val_split, subset="both", seed=config.seed, image_size=size,
        batch_size=config.batch_size)
    classes, train_images = len(train.class_names), len(train.file_paths)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    spec = get_arch(config.arch)
    base = load_base(config.arch, config.base_weights, image_size=config.image_size)
    base.trainable = False
    inputs = keras.Input((*size, 3))
    x = ImagePreprocessing(spec.preprocessing)(inputs)  # the arch's preprocess_input, as in the guide
    x = base(x, training=False)  # (batch, 7, 7, 1024) at 224 px
    x = keras.layers.GlobalAveragePooling2D()(x)  # -> (batch, 1024)
    model = keras.Model(inputs, keras_io_head(x, classes))
    compile_model(model, HEAD_LR)
    history = model.fit(train, validation_data=val, epochs=config.epochs, verbose=0, callbacks=list(callbacks))
    marks["trained"] = marks["timed_end"] = time.perf_counter()
    return history.history["val_accuracy"][-1], train_images


MODE = Mode(
    arms={"reference": reference_arm, "package": package_arm},
    help="the keras.io recipe against the package",
    headline=lambda config: "phase 1: keras.io recipe vs package",
    timed="trained s",
    span="start to the end of training",
    ratio="ratio to the end of training",
)

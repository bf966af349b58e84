"""Tiny image folders for the fine-tuning tests, generated in a test's tmp_path.

Class ``c`` of ``n`` has its ``c``-th colour channel bright and the others dark, plus
seeded noise, so that even a few steps on a random base can tell the classes apart.
"""

import os

import numpy as np
from PIL import Image

CLASS_NAMES = ("cat", "dog", "eel")


def make_image_folder(root, per_class=6, size=32, class_names=CLASS_NAMES, seed=0):
    """Write ``per_class`` RGB PNGs of ``size`` px per class under ``root``; return ``root`` as str."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(class_names):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3))
            pixels[..., label % 3] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(root, name, f"{index:03d}.png"))
    return os.fspath(root)


def tiny_config(images, output, **changes):
    """A ``FinetuneConfig`` for a quick run: MobileNet at 32 px, random weights, frozen base, silent;
    ``changes`` override any field."""
    from keras_notes.finetune.config import FinetuneConfig

    values = dict(arch="mobilenet", weights=None, freeze_base=True, image_size=32, batch_size=4, epochs=1,
                  output=str(output), verbose=0)
    values.update(changes)
    return FinetuneConfig(images, **values)


def calibrated_base_weights(images, path, size=32, batch_size=4, seed=0):
    """Save a MobileNet base "pretrained" for ``images`` to ``path``; return ``path`` as str.

    Random weights (seeded, so that the base does not depend on the tests run before)
    whose batch-norm statistics are set to the real ones on the training split: with
    Keras's fresh statistics (mean 0, variance 1) the activations of a random base fade
    through its 27 batch-norm layers and every image comes out the same.
    """
    import keras

    from keras_notes.finetune.data import load_splits, make_dataset
    from keras_notes.finetune.models import build_model, recalibrate_batch_norm

    keras.utils.set_random_seed(seed)
    model = build_model("mobilenet", 3, weights=None, image_size=size)  # only the base is saved
    splits = load_splits(images, val_split=0.2, seed=0)
    recalibrate_batch_norm(model, make_dataset(splits.train, size, batch_size))
    model.get_layer("base").save_weights(os.fspath(path))
    return os.fspath(path)

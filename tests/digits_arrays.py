"""The data/digits sample as NumPy arrays, for the model tests.

Read straight from the PNGs with PIL so that the model tests do not depend on the
package's own data pipeline (which has its own tests).
"""

import os

import numpy as np
from PIL import Image

DIGITS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "digits")


def load_digits(classes=range(10), size=32):
    """(images, labels): float32 (n, size, size, 3) in 0-255, and int labels 0..len(classes)-1.

    Labels are re-numbered in the order of ``classes``, so digits 5-9 become 0-4.
    """
    images, labels = [], []
    for label, digit in enumerate(classes):
        folder = os.path.join(DIGITS_DIR, str(digit))
        for name in sorted(os.listdir(folder)):
            image = Image.open(os.path.join(folder, name)).convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            images.append(np.asarray(image, dtype="float32"))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype="int64")


def split(images, labels, n_train, n_val, seed):
    """A seeded shuffle cut into (x_train, y_train, x_val, y_val) of the given sizes."""
    if n_train + n_val > len(images):
        raise ValueError(f"asked for {n_train} + {n_val} images; there are {len(images)}")
    order = np.random.default_rng(seed).permutation(len(images))
    train, val = order[:n_train], order[n_train:n_train + n_val]
    return images[train], labels[train], images[val], labels[val]

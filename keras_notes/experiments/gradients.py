"""Vanishing and exploding gradients, measured: per-layer gradient norms of a deep dense net.

For each (activation, kernel initializer) pair we build ``depth`` Dense layers of the
same width (the last one a linear 10-class head), push one fixed batch of Gaussian
inputs through, take softmax cross-entropy against fixed random labels, and record
``||dL/dkernel||`` for every layer with ``tf.GradientTape``.

Two corrections to the notes come out of the numbers:

- The notes say the *weights* of early layers "become very small". What vanishes or
  explodes is the *gradient* with respect to those weights: the chain rule multiplies
  one factor per layer (``kernel^T`` times the activation's derivative), so the product
  shrinks or grows geometrically with depth.
- The notes' ``var(weights) = 1/n`` is LeCun initialization. Keras's ``glorot_uniform``
  (Xavier) uses ``2/(fan_in + fan_out)``; ``he_normal`` uses ``2/fan_in`` for ReLU.
  Glorot keeps tanh stable, but a sigmoid's derivative is at most 1/4, so with Glorot
  a 20-layer sigmoid net still loses about 0.25 per layer: see ``initializer_variances``
  and the table printed by ``scripts/gradients.py``.

Everything runs in float64 so that the smallest gradients (around 1e-30) are numbers,
not float32 underflow to exactly zero.
"""

from dataclasses import dataclass

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.fields import option

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def _initializer(name):
    import keras

    # name -> a fresh Keras initializer (a new object per layer, so each layer draws its own values)
    makers = {
        "normal(1)": lambda: keras.initializers.RandomNormal(stddev=1.0),  # the notes' "mean 0, sd 1"
        "normal(0.01)": lambda: keras.initializers.RandomNormal(stddev=0.01),
        "glorot_uniform": keras.initializers.GlorotUniform,  # var = 2/(fan_in+fan_out), Keras's default
        "he_normal": keras.initializers.HeNormal,  # var = 2/fan_in, for ReLU
        "lecun_normal": keras.initializers.LecunNormal,  # var = 1/fan_in, the notes' formula
        "glorot_normal": keras.initializers.GlorotNormal,
    }
    if name not in makers:
        raise KerasNotesError(f"unknown initializer {name!r}; choose from {sorted(makers)}")
    return makers[name]()


INITIALIZERS = ("normal(1)", "normal(0.01)", "glorot_uniform", "he_normal")


@dataclass(frozen=True)
class GradientConfig:
    # Deep enough for sigmoid's 0.25^19 ~ 4e-12 to show.
    depth: int = option(20, "Dense layers, head included")
    width: int = option(64, "units per hidden layer, and input features")
    # One fixed batch; the norms barely move with more samples.
    batch: int = option(128, "samples in the fixed batch")
    classes: int = 10  # the linear head's outputs; cross-entropy's gradient w.r.t. logits is bounded
    seed: int = option(0, "weights, inputs and labels seed")

    def __post_init__(self):
        for name, low in (("depth", 2), ("width", 1), ("batch", 1), ("classes", 2)):
            if getattr(self, name) < low:
                raise KerasNotesError(f"{name} must be at least {low}; received {name}={getattr(self, name)!r}")


def build_deep_model(activation, initializer, config=GradientConfig()):
    """``depth - 1`` Dense(width, activation) layers and a linear Dense(classes) head, float64.

    Parameters: ``(depth - 1) * (width*width + width) + (width*classes + classes)``;
    for the defaults 19 * 4,160 + 650 = 79,690.
    """
    import keras

    if activation not in ACTIVATIONS:
        raise KerasNotesError(f"unknown activation {activation!r}; choose from {list(ACTIVATIONS)}")
    layers = [keras.Input(shape=(config.width,), dtype="float64")]
    for i in range(config.depth - 1):
        layers.append(keras.layers.Dense(config.width, activation=activation, dtype="float64",
                                         kernel_initializer=_initializer(initializer), name=f"dense_{i + 1}"))
    layers.append(keras.layers.Dense(config.classes, dtype="float64", kernel_initializer=_initializer(initializer),
                                     name=f"dense_{config.depth}_head"))
    return keras.Sequential(layers, name=f"deep_{activation}")


def layer_gradient_norms(activation, initializer, config=GradientConfig()):
    """Return ``(norms, loss)``: ``norms[i] = ||dL/dkernel_i||`` (Frobenius), layer 1 first."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)  # the initializers draw from Keras's global seed
    rng = np.random.default_rng(config.seed)
    x = rng.normal(size=(config.batch, config.width))  # (batch, width), unit-variance inputs
    y = rng.integers(0, config.classes, size=config.batch)  # (batch,) random labels: a fixed loss
    model = build_deep_model(activation, initializer, config)
    kernels = [layer.kernel for layer in model.layers]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x))
    grads = tape.gradient(loss, kernels)
    return np.array([float(tf.norm(g)) for g in grads]), float(loss)


def _verdict(norms):
    ratio = norms[0] / norms[-1]
    if ratio < 1e-2:
        shape = "vanishes toward the input"
    elif ratio > 1e2:
        shape = "explodes toward the input"
    else:
        shape = "even across layers"
    if norms.max() < 1e-6:
        shape += "; every layer tiny"
    elif norms.min() > 1e6:
        shape += "; every layer huge"
    return shape


def gradient_study(config=GradientConfig(), activations=ACTIVATIONS, initializers=INITIALIZERS):
    """Per-layer gradient norms for every (activation, initializer) pair.

    Returns a list of dicts with keys ``activation``, ``initializer``, ``norms`` (array of
    ``depth`` values, layer 1 first), ``ratio`` (first layer / last layer), ``median``,
    ``loss`` and ``verdict`` (a few words: thresholds 1e-2 / 1e2 on the ratio, and
    "every layer tiny / huge" when even the largest norm is below 1e-6 or the smallest above 1e6).
    """
    results = []
    for activation in activations:
        for initializer in initializers:
            norms, loss = layer_gradient_norms(activation, initializer, config)
            results.append({"activation": activation, "initializer": initializer, "norms": norms,
                            "ratio": float(norms[0] / norms[-1]), "median": float(np.median(norms)),
                            "loss": loss, "verdict": _verdict(norms)})
    return results


def initializer_variances(fan_in=256, fan_out=64, seed=0,
                          initializers=("normal(1)", "normal(0.01)", "lecun_normal", "glorot_uniform",
                                        "glorot_normal", "he_normal")):
    """Empirical variance of a ``(fan_in, fan_out)`` kernel drawn by each initializer, next to
    the three textbook targets. Unequal fans tell ``1/fan_in`` from ``2/(fan_in+fan_out)``.

    Returns rows ``(initializer, empirical_var, 1/fan_in, 2/(fan_in+fan_out), 2/fan_in, closest)``
    where ``closest`` names the target nearest to the empirical variance on a log scale.
    """
    import keras

    keras.utils.set_random_seed(seed)
    targets = {"1/fan_in": 1.0 / fan_in, "2/(fan_in+fan_out)": 2.0 / (fan_in + fan_out), "2/fan_in": 2.0 / fan_in}
    rows = []
    for name in initializers:
        kernel = keras.ops.convert_to_numpy(_initializer(name)(shape=(fan_in, fan_out), dtype="float64"))
        variance = float(kernel.var())
        closest = min(targets, key=lambda k: abs(np.log(variance / targets[k])))
        if abs(np.log(variance / targets[closest])) > np.log(1.2):
            closest = "none"  # more than 20% from every target
        rows.append((name, variance, *targets.values(), closest))
    return rows

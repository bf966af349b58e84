"""Backpropagation by hand: a NumPy forward and backward pass for a small dense classifier.

The network is the notes' kind of model: dense layers with ReLU, a softmax output and
categorical cross-entropy averaged over the batch. The NumPy code is the reference
that the tests check against ``tf.GradientTape`` on a float64 Keras model holding the
same weights, and one NumPy SGD step against ``keras.optimizers.SGD``.

The notes say the backward pass "continues until we reach the input layer where we do
not modify anything". The correct form: the loss *does* have a gradient with respect
to the inputs (``backward`` returns it), but the inputs are data, not parameters, so no
optimizer ever updates them. Only kernels and biases are trainable.
"""

from dataclasses import dataclass

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.fields import option

# Five input features and two ReLU layers of 16 and 32 units, as in the notes' In[7];
# three classes rather than two so the softmax is not a disguised sigmoid.
DEFAULT_SIZES = (5, 16, 32, 3)


@dataclass(frozen=True)
class BackpropConfig:
    sizes: tuple = DEFAULT_SIZES  # layer widths, input first, classes last
    batch: int = option(32, "samples in the (single) batch")  # a small batch keeps the float64 comparison instant
    # Large enough that the loss visibly falls in a few steps
    learning_rate: float = option(0.5, "SGD learning rate")
    steps: int = option(25, "full-batch SGD steps to plot")  # for the NumPy-vs-Keras training curve
    seed: int = option(0, "weights and data seed")

    def __post_init__(self):
        if len(self.sizes) < 2 or any(int(n) < 1 for n in self.sizes):
            raise KerasNotesError(f"sizes needs at least two positive widths; received sizes={self.sizes!r}")
        for name in ("batch", "steps"):
            if getattr(self, name) < 1:
                raise KerasNotesError(f"{name} must be at least 1; received {name}={getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise KerasNotesError(f"learning_rate must be positive; received learning_rate={self.learning_rate!r}")


# --- the network in NumPy -------------------------------------------------------------

def init_params(sizes, seed=0):
    """Glorot-uniform kernels and zero biases (Keras's ``Dense`` defaults), as float64.

    Returns ``[(kernel, bias), ...]`` with kernel ``(n_in, n_out)`` and bias ``(n_out,)``.
    """
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))  # uniform(-l, l) has variance l^2/3 = 2/(n_in+n_out)
        params.append((rng.uniform(-limit, limit, size=(n_in, n_out)), np.zeros(n_out)))
    return params


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)  # shifting by a constant changes nothing but avoids overflow
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, x):
    """Return ``(probs, cache)``; ``cache[i] = (a_in, z)`` is layer i's input and pre-activation."""
    cache = []
    a = x  # (batch, n_0)
    for i, (kernel, bias) in enumerate(params):
        z = a @ kernel + bias  # (batch, n_i) @ (n_i, n_{i+1}) + (n_{i+1},) -> (batch, n_{i+1})
        cache.append((a, z))
        a = np.maximum(z, 0.0) if i < len(params) - 1 else softmax(z)
    return a, cache  # probs: (batch, classes)


def cross_entropy(probs, y):
    """Mean over the batch of ``-sum(y * log p)``; ``y`` is one-hot ``(batch, classes)``."""
    return float(-np.mean(np.sum(y * np.log(probs), axis=1)))


def backward(params, cache, probs, y):
    """Return ``(grads, input_grad)``: ``grads[i] = (dL/dkernel, dL/dbias)``, and dL/dx.

    Walks the layers from the output back to the input, applying the chain rule once
    per layer. ``input_grad`` exists and is generally non-zero; it is simply not used
    for an update, because the inputs are not parameters.
    """
    batch = y.shape[0]
    # Softmax followed by cross-entropy has the famously simple joint derivative p - y;
    # the 1/batch comes from averaging the loss over the batch.
    dz = (probs - y) / batch  # (batch, classes)
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        a_in, _ = cache[i]
        kernel, _ = params[i]
        # (n_in, batch) @ (batch, n_out) -> (n_in, n_out); the bias sees every sample once.
        grads[i] = (a_in.T @ dz, dz.sum(axis=0))
        da = dz @ kernel.T  # (batch, n_out) @ (n_out, n_in) -> (batch, n_in)
        if i > 0:
            dz = da * (cache[i - 1][1] > 0)  # ReLU passes the gradient only where z > 0
    return grads, da  # da is now dL/dx: (batch, n_0)


def sgd_step(params, grads, learning_rate):
    """Plain SGD: ``w <- w - learning_rate * dL/dw`` for every kernel and bias."""
    return [(k - learning_rate * gk, b - learning_rate * gb) for (k, b), (gk, gb) in zip(params, grads)]


def make_data(sizes, batch, seed=0):
    """Gaussian inputs ``(batch, n_0)`` and one-hot labels from a random linear teacher,
    so that there is something learnable and the loss can fall."""
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(batch, sizes[0]))
    labels = np.argmax(x @ rng.normal(size=(sizes[0], sizes[-1])), axis=1)
    return x, np.eye(sizes[-1])[labels]


# --- the same network in Keras -------------------------------------------------------

def keras_model(params):
    """A float64 ``keras.Sequential`` holding exactly ``params`` (ReLU hidden layers, softmax out)."""
    import keras

    layers = [keras.Input(shape=(params[0][0].shape[0],), dtype="float64")]
    for i, (kernel, _) in enumerate(params):
        last = i == len(params) - 1
        layers.append(keras.layers.Dense(kernel.shape[1], activation="softmax" if last else "relu",
                                         dtype="float64", name="output" if last else f"hidden_{i + 1}"))
    model = keras.Sequential(layers, name="backprop_mlp")
    model.set_weights([w for pair in params for w in pair])
    return model


def keras_loss():
    import keras

    # dtype float64: a Loss otherwise casts predictions to floatx (float32) first.
    return keras.losses.CategoricalCrossentropy(dtype="float64")


def tensorflow_gradients(model, x, y):
    """``(loss, [dL/dvariable...], dL/dx)`` from ``tf.GradientTape``, as NumPy arrays."""
    import tensorflow as tf

    x = tf.constant(x, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)  # x is a constant, not a variable: the tape must be told to track it
        loss = keras_loss()(y, model(x))
    variable_grads, input_grad = tape.gradient(loss, [model.trainable_variables, x])
    return float(loss), [g.numpy() for g in variable_grads], input_grad.numpy()


def compare_gradients(config=BackpropConfig()):
    """NumPy vs ``tf.GradientTape`` on the same weights and batch.

    Returns a dict: ``rows`` (one per kernel, bias and the input: name, shape, NumPy
    norm, TF norm, max abs diff, trainable), ``loss_numpy``, ``loss_tf``,
    ``sgd_max_abs_diff`` (weights after one NumPy SGD step vs one ``keras.optimizers.SGD``
    step applied with the TF gradients) and ``trainable_count``.
    """
    import keras

    params = init_params(config.sizes, config.seed)
    x, y = make_data(config.sizes, config.batch, config.seed)
    probs, cache = forward(params, x)
    grads, input_grad = backward(params, cache, probs, y)

    model = keras_model(params)
    loss_tf, tf_grads, tf_input_grad = tensorflow_gradients(model, x, y)

    rows = []
    numpy_grads = [g for pair in grads for g in pair]  # same order as model.trainable_variables
    for variable, g_np, g_tf in zip(model.trainable_variables, numpy_grads, tf_grads):
        rows.append((variable.path, tuple(g_np.shape), float(np.linalg.norm(g_np)),
                     float(np.linalg.norm(g_tf)), float(np.max(np.abs(g_np - g_tf))), True))
    rows.append(("input x", tuple(input_grad.shape), float(np.linalg.norm(input_grad)),
                 float(np.linalg.norm(tf_input_grad)), float(np.max(np.abs(input_grad - tf_input_grad))),
                 False))

    # One SGD step on each side with the same learning rate.
    stepped = sgd_step(params, grads, config.learning_rate)
    optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate)
    optimizer.apply_gradients(zip(tf_grads, model.trainable_variables))
    sgd_diff = max(float(np.max(np.abs(a - b))) for a, b in
                   zip([w for pair in stepped for w in pair], model.get_weights()))

    return {"rows": rows, "loss_numpy": cross_entropy(probs, y), "loss_tf": loss_tf,
            "sgd_max_abs_diff": sgd_diff, "trainable_count": len(model.trainable_variables)}


def training_curves(config=BackpropConfig()):
    """Full-batch SGD for ``config.steps`` steps, in NumPy and with ``model.fit``.

    Returns ``(numpy_losses, keras_losses)``, each the loss *before* each step (that is
    what ``fit`` reports when an epoch is one batch), as float64 arrays.
    """
    import keras

    params = init_params(config.sizes, config.seed)
    x, y = make_data(config.sizes, config.batch, config.seed)

    numpy_losses = []
    for _ in range(config.steps):
        probs, cache = forward(params, x)
        numpy_losses.append(cross_entropy(probs, y))
        grads, _ = backward(params, cache, probs, y)
        params = sgd_step(params, grads, config.learning_rate)

    model = keras_model(init_params(config.sizes, config.seed))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate), loss=keras_loss())
    # One batch per epoch and no shuffling: each epoch is exactly one full-batch SGD step.
    history = model.fit(x, y, batch_size=config.batch, epochs=config.steps, shuffle=False, verbose=0)
    return np.array(numpy_losses), np.array(history.history["loss"], dtype=np.float64)

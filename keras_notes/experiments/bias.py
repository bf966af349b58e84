"""The bias as a threshold, with real Keras ``Dense`` layers whose weights are set by hand.

A ReLU neuron computes ``relu(w . x + b)``. The notes' two examples:

- A weighted sum of -0.35 gives ``relu(-0.35) = 0``: the neuron does not fire. With a
  bias of +1 the pre-activation is 0.65 and ``relu(0.65) = 0.65``.
- To fire "only when the output is more than 5", use a bias of -5. Precisely: with
  kernel 1 and bias -5 the neuron outputs 0 for ``x <= 5`` and ``x - 5`` above, not ``x``.
  In general the neuron switches on where ``w . x = -b``; the bias alone is the
  threshold only when the kernel is 1.

The notes' picture with the original inputs and weights is not available, so the
-0.35 comes from three inputs and weights chosen here to reproduce it.
"""

import numpy as np

from keras_notes.errors import KerasNotesError

# 0.5*0.2 + 0.25*(-0.6) + 1.0*(-0.3) = 0.1 - 0.15 - 0.3 = -0.35, the notes' weighted sum.
NOTES_INPUTS = (0.5, 0.25, 1.0)
NOTES_WEIGHTS = (0.2, -0.6, -0.3)


def relu_neuron(kernel, bias):
    """A built ``Dense(1, activation="relu")`` holding ``kernel`` (one weight per input) and ``bias``."""
    import keras

    kernel = np.asarray(kernel, dtype="float32").reshape(-1, 1)  # (inputs, 1 unit)
    layer = keras.layers.Dense(1, activation="relu", name="neuron")
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel, np.array([bias], dtype="float32")])
    return layer


def neuron_outputs(kernel, bias, inputs):
    """``relu(inputs @ kernel + bias)`` computed by a Keras ``Dense`` layer; inputs ``(n, features)``.

    Returns a float array of shape ``(n,)``.
    """
    import keras

    inputs = np.asarray(inputs, dtype="float32")
    if inputs.ndim != 2:
        raise KerasNotesError(f"inputs must be 2-D (samples, features); received shape {inputs.shape}")
    outputs = relu_neuron(kernel, bias)(inputs)  # (n, features) -> (n, 1)
    return keras.ops.convert_to_numpy(outputs)[:, 0].astype(float)


def notes_example(biases=(0.0, 1.0)):
    """The notes' -0.35 neuron without and with a bias.

    Returns rows ``(bias, weighted_sum, pre_activation, keras_output)``; the weighted sum
    and pre-activation are NumPy arithmetic, the output comes from the ``Dense`` layer.
    """
    x = np.array([NOTES_INPUTS])  # (1 sample, 3 features)
    weighted_sum = float(x[0] @ np.array(NOTES_WEIGHTS))
    return [(float(b), weighted_sum, weighted_sum + b, float(neuron_outputs(NOTES_WEIGHTS, b, x)[0]))
            for b in biases]


def activation_curves(biases=(-5.0, -2.0, 0.0, 1.0, 3.0), inputs=np.linspace(-4.0, 10.0, 141), kernel=1.0):
    """One single-input ReLU neuron per bias, evaluated over ``inputs``.

    Returns ``(inputs, {bias: outputs})``; each neuron switches on at ``x = -bias/kernel``.
    """
    if kernel == 0:
        raise KerasNotesError("kernel must be non-zero for the neuron to depend on its input; received kernel=0")
    inputs = np.asarray(inputs, dtype=float)
    column = inputs.reshape(-1, 1)  # (n,) -> (n samples, 1 feature)
    return inputs, {float(b): neuron_outputs([kernel], b, column) for b in biases}


def threshold_rows(bias=-5.0, inputs=range(11)):
    """The "fire only above 5" neuron (kernel 1, bias -5) over inputs 0..10.

    Returns rows ``(x, keras_output, fires)`` where ``fires`` is ``output > 0``.
    """
    xs, curves = activation_curves(biases=(bias,), inputs=list(inputs))
    return [(float(x), float(y), bool(y > 0)) for x, y in zip(xs, curves[float(bias)])]

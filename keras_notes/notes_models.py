"""The course notes' models as builders, and the registry that names them.

Every builder returns an uncompiled ``keras.Sequential`` that starts from
``keras.Input(shape)`` (Keras 3 warns when a layer is given ``input_shape=``, as
the notes do). Defaults reproduce the notes exactly; keyword arguments let the
same shapes serve other experiments. Each docstring carries the parameter
arithmetic for the defaults, the way the notes work it out by hand.

    >>> from keras_notes import notes_models
    >>> notes_models.get("cnn_example")().count_params()
    2515
"""

import keras

from keras_notes.errors import KerasNotesError


def in7(input_shape=(1, 5), units=(16, 32), num_classes=2, activation="relu",
        kernel_initializer="glorot_uniform", output_activation="softmax"):
    """Notes cell "In [7]": Dense(16) -> Dense(32, glorot_uniform) -> Dense(2, softmax) on input (1, 5).

    Dense acts on the last axis only, so the length-1 axis rides along and the
    output is (None, 1, 2), not (None, 2). Parameters (``inputs*units + units``):

    - hidden1: 5*16 + 16 = 96
    - hidden2: 16*32 + 32 = 544
    - output:  32*2 + 2 = 66
    - total: 96 + 544 + 66 = 706, all trainable.

    ``kernel_initializer`` applies to the second layer, as in the notes (it is
    also Keras's default for every Dense layer).
    """
    return keras.Sequential([
        keras.Input(shape=input_shape, name="features"),
        keras.layers.Dense(units[0], activation=activation, name="hidden1"),
        keras.layers.Dense(units[1], activation=activation,
                           kernel_initializer=kernel_initializer, name="hidden2"),
        keras.layers.Dense(num_classes, activation=output_activation, name="output"),
    ], name="in7")


def in10(input_shape=(1,), units=(16, 32), num_classes=2, activation="relu", l2=0.01,
         output_activation="sigmoid"):
    """Notes cell "In [10]": Dense(16) -> Dense(32, L2(0.01)) -> Dense(2, sigmoid) on input (1,).

    The L2 penalty sits on the second layer's kernel only (regularizers are set
    per layer); Keras adds ``l2 * sum(kernel**2)`` to the loss. Parameters:

    - hidden1: 1*16 + 16 = 32
    - hidden2: 16*32 + 32 = 544
    - output:  32*2 + 2 = 66
    - total: 32 + 544 + 66 = 642, all trainable.

    The notes' two sigmoid outputs are two independent probabilities, not a
    distribution over two classes (they need not sum to 1).
    """
    return keras.Sequential([
        keras.Input(shape=input_shape, name="features"),
        keras.layers.Dense(units[0], activation=activation, name="hidden1"),
        keras.layers.Dense(units[1], activation=activation,
                           kernel_regularizer=keras.regularizers.L2(l2), name="hidden2"),
        keras.layers.Dense(num_classes, activation=output_activation, name="output"),
    ], name="in10")


def in17(input_shape=(1, 5), units=(16, 32), num_classes=2, activation="relu", bn_axis=1,
         output_activation="softmax"):
    """Notes cell "In [17]": Dense(16) -> Dense(32) -> BatchNormalization(axis=1) -> Dense(2, softmax).

    On input (1, 5) the hidden activations are (None, 1, 32), so the notes'
    ``axis=1`` is the length-1 axis: batch norm keeps ONE gamma, beta, moving
    mean and moving variance and normalises all 32 features together. Pass
    ``bn_axis=-1`` for the per-feature normalisation the notes intend. Parameters:

    - hidden1: 5*16 + 16 = 96
    - hidden2: 16*32 + 32 = 544
    - batch_norm (axis=1): 4*1 = 4, of which 2*1 (moving mean, variance) non-trainable
      (with ``bn_axis=-1``: 4*32 = 128, of which 2*32 non-trainable)
    - output: 32*2 + 2 = 66
    - total: 96 + 544 + 4 + 66 = 710 (708 trainable, 2 non-trainable);
      with ``bn_axis=-1``: 834 (770 trainable, 64 non-trainable).
    """
    return keras.Sequential([
        keras.Input(shape=input_shape, name="features"),
        keras.layers.Dense(units[0], activation=activation, name="hidden1"),
        keras.layers.Dense(units[1], activation=activation, name="hidden2"),
        keras.layers.BatchNormalization(axis=bn_axis, name="batch_norm"),
        keras.layers.Dense(num_classes, activation=output_activation, name="output"),
    ], name="in17")


def dense_example(inputs=2, hidden=3, outputs=2, activation="relu", output_activation="softmax"):
    """The notes' worked dense example: 2 inputs -> Dense(3) -> Dense(2).

    The notes give no activations; relu and softmax are this package's choice
    and do not change the count. Parameters (``inputs*outputs + biases``):

    - input layer: 0
    - hidden: 2*3 + 3 = 9
    - output: 3*2 + 2 = 8
    - total: 9 + 8 = 17, all trainable.
    """
    return keras.Sequential([
        keras.Input(shape=(inputs,), name="features"),
        keras.layers.Dense(hidden, activation=activation, name="hidden"),
        keras.layers.Dense(outputs, activation=output_activation, name="output"),
    ], name="dense_example")


def cnn_example(input_shape=(20, 20, 3), filters=(2, 3), kernel_size=3, padding="same",
                num_classes=2, activation="relu", output_activation="softmax"):
    """The notes' worked CNN example: 20x20x3 image -> Conv2D(2, 3x3) -> Conv2D(3, 3x3) -> Flatten -> Dense(2).

    Zero ("same") padding keeps 20x20, so Flatten sees 20*20*3 = 1200 values,
    where 3 is conv2's filter count. Parameters (``k*k*c_in*filters + filters``):

    - conv1: 3*3*3*2 + 2 = 56
    - conv2: 3*3*2*3 + 3 = 57
    - flatten: 0
    - output: (20*20*3)*2 + 2 = 2402
    - total: 56 + 57 + 2402 = 2515, all trainable.

    The notes' total line reads "45 + 57 + 2402 = 2515": 45 is not conv1's
    count (they computed 56 two lines earlier) and 45 + 57 + 2402 is 2504; the
    2515 is right because the true terms are 56 + 57 + 2402. The activations
    are this package's choice (the notes give none); they do not change counts.
    """
    return keras.Sequential([
        keras.Input(shape=input_shape, name="image"),
        keras.layers.Conv2D(filters[0], kernel_size, padding=padding, activation=activation,
                            name="conv1"),
        keras.layers.Conv2D(filters[1], kernel_size, padding=padding, activation=activation,
                            name="conv2"),
        # (batch, 20, 20, 3) -> (batch, 1200): Dense would otherwise act per pixel.
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(num_classes, activation=output_activation, name="output"),
    ], name="cnn_example")


# The one registry: the command line, the docs and the tests all iterate over it.
MODELS = {
    "in7": in7,
    "in10": in10,
    "in17": in17,
    "dense_example": dense_example,
    "cnn_example": cnn_example,
}


def get(name):
    """Return the builder registered as ``name`` (call it to build the model)."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise KerasNotesError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None

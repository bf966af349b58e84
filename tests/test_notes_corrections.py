"""Where the notes are wrong or surprising, shown in Keras 3. One test per README item.

Each test states what the notes say, then checks what Keras actually does
against an independent computation (hand arithmetic or NumPy).
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_notes import notes_models, params

EPSILON = 1e-3  # BatchNormalization's default epsilon


def test_1_cnn_total_adds_45_for_a_layer_computed_as_56():
    # Notes: conv1 "3 * (3*3 * 2) + 2 = 56", then "total = 45 + 57 + 2402 = 2515".
    # The notes' sum as written, 45 + 57 + 2402, is 2504; Keras counts conv1 as 56, so 2515.
    counts = {row.name: row.count for row in params.explain(notes_models.cnn_example())}
    assert counts["conv1"] == 3 * (3*3 * 2) + 2
    assert counts["conv1"] + counts["conv2"] + counts["output"] == 56 + 57 + 2402
    assert notes_models.cnn_example().count_params() == 56 + 57 + 2402


def test_2_batch_norm_mean_and_variance_are_not_trainable():
    # Notes: "all these parameters are trainable (m, s, g, b)".
    bn = notes_models.in17().get_layer("batch_norm")
    assert [w.name for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    # They are running averages updated by the forward pass itself, with no optimizer:
    # moving = 0.99*moving + 0.01*batch statistic (momentum 0.99, population variance).
    bn = keras.layers.BatchNormalization()
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 4)).astype("float32")
    bn(x, training=True)
    # Measured: equal to the last bit on TensorFlow, max relative difference 1.5e-7 on JAX
    # (float32 round-off); rtol 1e-5 leaves room for other float32 reduction orders.
    np.testing.assert_allclose(bn.moving_mean, 0.99*0.0 + 0.01*x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, 0.99*1.0 + 0.01*x.var(axis=0), rtol=1e-5)


def test_3_glorot_uniform_is_not_var_1_over_n():
    # Notes: "var(weights) = 1/n ... This initialization is called xavier initialization",
    # with weights drawn from a normal distribution. 1/n is LeCun's rule; Keras's
    # glorot_uniform (Dense's default, as the notes' comment says) is uniform on
    # [-limit, limit], limit = sqrt(6/(fan_in+fan_out)), so variance 2/(fan_in+fan_out).
    fan_in, fan_out = 256, 1024
    dense = keras.layers.Dense(fan_out)
    assert isinstance(dense.kernel_initializer, keras.initializers.GlorotUniform)
    dense.build((None, fan_in))
    kernel = np.asarray(dense.kernel, dtype=np.float64).ravel()
    glorot, lecun = 2 / (fan_in + fan_out), 1 / fan_in  # 0.0015625 vs 0.0039
    # 262,144 unseeded draws: the sample variance's relative standard error is
    # sqrt((kurtosis - 1) / n) = 0.17% for a uniform, sqrt(2 / n) = 0.28% for a normal, so
    # rel=0.02 is 7-11 standard errors (measured over 10 draws, TensorFlow and JAX: within
    # 0.32% for Glorot, 0.42% for LeCun); kurtosis's standard error, simulated, is 0.0023,
    # so abs=0.05 is about 20 of them while a normal's 3 is 500 away (measured 1.796-1.804).
    assert kernel.var() == pytest.approx(glorot, rel=0.02)
    assert kernel.var() < lecun / 2
    # The kernel is float32, and limit*u can round just past the limit: over 40 seeds,
    # 1-2 exceeded it by up to 2.6e-9 on both backends, under one float32 step there (7.5e-9).
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(kernel).max() <= limit + np.spacing(np.float32(limit))
    kurtosis = np.mean((kernel - kernel.mean())**4) / kernel.var()**2
    assert kurtosis == pytest.approx(1.8, abs=0.05)  # uniform: 1.8; a normal would give 3
    # The notes' rule exists in Keras under LeCun's name.
    lecun_kernel = np.asarray(keras.initializers.LecunNormal(seed=0)((fan_in, fan_out)))
    assert lecun_kernel.var() == pytest.approx(lecun, rel=0.02)


def test_4_batch_norm_axis_1_normalises_the_length_1_axis():
    # Notes In [17]: BatchNormalization(axis=1) after Dense(32) on input (1, 5).
    # The activations are (batch, 1, 32): axis 1 has length 1, so there is ONE mean
    # and variance over the batch and all 32 features together, not one per feature.
    bn = notes_models.in17().get_layer("batch_norm")
    assert bn.count_params() == 4*1
    x = np.random.default_rng(1).normal(np.arange(32.0), 1.0, size=(64, 1, 32)).astype("float32")
    y = np.asarray(bn(x, training=True))
    np.testing.assert_allclose(y, (x - x.mean()) / np.sqrt(x.var() + EPSILON), atol=1e-4)
    assert np.abs(y.mean(axis=(0, 1))).max() > 1.0  # features keep their own offsets
    # axis=-1 (bn_axis=-1) is the per-feature normalisation the notes describe.
    per_feature = notes_models.in17(bn_axis=-1).get_layer("batch_norm")
    y = np.asarray(per_feature(x, training=True))
    mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + EPSILON), atol=1e-4)


def test_5_input_shape_argument_warns_in_keras_3():
    # The notes' In [7] as written still builds the same model, with a warning.
    with pytest.warns(UserWarning, match="Do not pass an `input_shape`"):
        model = keras.Sequential([
            keras.layers.Dense(16, input_shape=(1, 5), activation="relu"),
            keras.layers.Dense(32, activation="relu", kernel_initializer="glorot_uniform"),
            keras.layers.Dense(2, activation="softmax"),
        ])
    assert model.count_params() == notes_models.in7().count_params() == 96 + 544 + 66


def test_6_notes_imports_work_but_keras_3_prints_no_backend_line():
    # Notes In [5]: "from keras.models import Sequential" printed "Using TensorFlow backend."
    # (Keras 2). Keras 3 still has the import paths and prints nothing.
    # The child inherits this process's environment, so it runs on the same backend
    # (KERAS_BACKEND=jax included), and Keras 2's line was "Using <Backend> backend.".
    code = ("from keras.models import Sequential\nfrom keras.layers import Dense, Activation, "
            "BatchNormalization\nfrom keras import regularizers\nimport keras\n"
            "assert Sequential is keras.Sequential\nprint(keras.backend.backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == keras.backend.backend()  # the one line the code prints
    assert not re.search(r"Using \w+ backend", result.stdout + result.stderr)


def test_7_dense_on_a_1x5_input_keeps_the_length_1_axis():
    # Input (1, 5): Dense acts on the last axis, so predictions are (n, 1, 2), not (n, 2).
    model = notes_models.in7()
    x = np.random.default_rng(2).normal(size=(3, 1, 5)).astype("float32")
    predictions = np.asarray(model(x))
    assert predictions.shape == (3, 1, 2)
    np.testing.assert_allclose(predictions.sum(axis=-1), 1.0, rtol=1e-5)  # softmax on the last axis


def test_8_standardising_divides_by_the_standard_deviation():
    # Notes: "z = (x-m)s" in one line, "(x-m)/s" in the next. Batch norm divides.
    x = np.random.default_rng(3).normal(5.0, 3.0, size=(256, 4)).astype("float32")
    y = np.asarray(keras.layers.BatchNormalization()(x, training=True))
    m, s = x.mean(axis=0), np.sqrt(x.var(axis=0) + EPSILON)
    np.testing.assert_allclose(y, (x - m) / s, atol=1e-4)
    assert not np.allclose(y, (x - m) * s, atol=1e-1)


def test_9_the_input_layer_has_no_parameters():
    # Notes: "Input layer = 0 input parameters". Right: keras.Input holds no weights,
    # and Keras 3's Sequential does not even list it among model.layers.
    model = notes_models.dense_example()
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
    inputs = keras.Input((2,))
    functional = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    assert type(functional.layers[0]).__name__ == "InputLayer"
    assert functional.layers[0].count_params() == 0
    assert functional.count_params() == 2*3 + 3


def test_10_the_dense_output_layer_has_no_filter():
    # Notes' CNN output layer: "size of filter = 3*3", "bias = no of filter =". A Dense
    # layer has a (inputs, units) kernel and one bias per unit (2 here), no filter.
    # "20*20*3": the 3 is conv2's filter count, and 20x20 holds only with zero padding.
    output = notes_models.cnn_example().get_layer("output")
    assert not hasattr(output, "kernel_size")
    assert (tuple(output.kernel.shape), tuple(output.bias.shape)) == ((20*20*3, 2), (2,))
    four_filters = notes_models.cnn_example(filters=(2, 4)).get_layer("output")
    assert four_filters.count_params() == 20*20*4*2 + 2
    valid = notes_models.cnn_example(padding="valid").get_layer("output")
    assert valid.count_params() == (20 - 2 - 2)*(20 - 2 - 2)*3*2 + 2


def test_11_keras_does_not_force_flatten_before_dense():
    # Notes: "we have to flatten the o/p" before a dense layer. Keras 3 does not
    # insist: without Flatten, Dense acts on each pixel's 3 channels separately.
    model = keras.Sequential([
        keras.Input((20, 20, 3)),
        keras.layers.Conv2D(2, 3, padding="same"),
        keras.layers.Conv2D(3, 3, padding="same"),
        keras.layers.Dense(2, name="output"),
    ])
    assert model.output_shape == (None, 20, 20, 2)
    assert model.get_layer("output").count_params() == 3*2 + 2


def test_12_two_sigmoid_outputs_are_not_a_distribution():
    # Notes In [10]: Dense(2, activation='sigmoid') for two classes. Each sigmoid is an
    # independent probability; only softmax makes the two sum to 1. The output biases are
    # set by hand, so the sums are known without a random seed (keras.utils.set_random_seed
    # also imports TensorFlow when it is installed, and CI runs this file under JAX too).
    x = np.linspace(-10, 10, 41, dtype="float32").reshape(-1, 1)
    sums = {}
    for activation in ("sigmoid", "softmax"):
        model = notes_models.in10(output_activation=activation)
        model.get_layer("output").bias.assign(np.array([2.0, 1.0], dtype="float32"))
        sums[activation] = np.asarray(model(x)).sum(axis=-1)
    # At x = 0 the hidden layers output relu(0*w + 0) = 0 (Dense biases start at zero), so the
    # outputs are the biases alone: sigmoid(2) + sigmoid(1) = 1.612, not 1.
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert sums["sigmoid"][20] == pytest.approx(sigmoid(2.0) + sigmoid(1.0), rel=1e-6)
    np.testing.assert_allclose(sums["softmax"], 1.0, rtol=1e-5)  # at every x, whatever the weights


def test_13_l2_penalty_is_l2_times_sum_of_squares_on_one_layer():
    # Notes: "regularizer set per layer basis". Keras adds 0.01 * sum(w**2) of that
    # layer's kernel to the loss: no 1/2, no division by the batch size, no bias term.
    model = notes_models.in10()
    assert len(model.losses) == 1
    kernel = np.asarray(model.get_layer("hidden2").kernel, dtype=np.float64)
    assert float(model.losses[0]) == pytest.approx(0.01 * np.sum(kernel**2), rel=1e-5)


def test_14_batch_norm_at_inference_uses_moving_statistics_not_the_batch():
    # Notes: batch norm "occurs per batch basis". Only in training: at inference Keras
    # uses the moving mean and variance (0 and 1 when fresh), so a batch is not standardised.
    x = np.random.default_rng(4).normal(5.0, 3.0, size=(256, 4)).astype("float32")
    y = np.asarray(keras.layers.BatchNormalization()(x, training=False))
    np.testing.assert_allclose(y, (x - 0.0) / np.sqrt(1.0 + EPSILON), rtol=1e-5)
    assert np.abs(y.mean(axis=0)).min() > 4.0

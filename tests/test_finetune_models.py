"""build_model, the course's two models, unfreeze, and batch norm for training from scratch.

Parameter counts are checked three ways: Keras's own count, the package's formula
engine (``keras_notes.params``, which works from layer configurations), and the
arithmetic written out here.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from digits_arrays import load_digits, split
from keras_notes.errors import KerasNotesError
from keras_notes.finetune.archs import ARCHS
from keras_notes.finetune.models import (BASE_LAYER_NAME, FROM_SCRATCH_BN_MOMENTUM, batch_norm_layers,
                                         build_model, course_mobilenet, course_vgg16, recalibrate_batch_norm,
                                         unfreeze)
from keras_notes.params import count_params


def keras_split(model):
    """(total, trainable, non_trainable) as Keras sees them."""
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
    return model.count_params(), trainable, model.count_params() - trainable


# --- the course's models -----------------------------------------------------------------------

def test_course_vgg16_matches_the_course():
    model = course_vgg16(num_classes=2, weights=None)

    vgg16_with_top = 138_357_544
    total = vgg16_with_top - (4096 * 1000 + 1000) + (4096 * 2 + 2)
    trainable = 4096 * 2 + 2
    assert total == 134_268_738  # the course's Keras 2 summary
    assert trainable == 8_194
    assert keras_split(model) == count_params(model) == (total, trainable, total - trainable)

    assert isinstance(model, keras.Sequential)
    assert model.outputs[0].shape == (None, 2)
    assert [layer.name for layer in model.layers][-3:] == ["fc1", "fc2", "predictions"]
    assert len(model.layers) == 22  # 13 conv + 5 pooling + flatten + fc1 + fc2 + the new Dense
    assert [layer.trainable for layer in model.layers] == [False] * 21 + [True]
    assert model.layers[-1].get_config()["activation"] == "softmax"


def test_course_mobilenet_matches_the_course():
    model = course_mobilenet(num_classes=10, weights=None)

    total = 4_253_864 - (1024 * 1000 + 1000) + (1024 * 10 + 10)
    trainable = (2 * 512                                          # conv_pw_10_bn (gamma, beta)
                 + 3 * 3 * 512 + 2 * 512 + 512 * 512 + 2 * 512        # block 11: dw, bn, pw, bn
                 + 3 * 3 * 512 + 2 * 512 + 512 * 1024 + 2 * 1024      # block 12
                 + 3 * 3 * 1024 + 2 * 1024 + 1024 * 1024 + 2 * 1024   # block 13
                 + 1024 * 10 + 10)                                    # the new Dense
    assert (total, trainable) == (3_239_114, 1_873_930)
    assert keras_split(model) == count_params(model) == (total, trainable, total - trainable)

    assert model.outputs[0].shape == (None, 10)
    names = [layer.name for layer in model.layers]
    assert names[-3:] == ["conv_pw_13_relu", "global_average_pooling2d", "dense"]
    assert not {"dropout", "conv_preds", "reshape_2", "predictions"} & set(names)
    assert model.get_layer("global_average_pooling2d").output.shape == (None, 1024)
    # The course's `for layer in model.layers[:-23]: layer.trainable = False`.
    first_trainable = [layer.trainable for layer in model.layers].index(True)
    assert names[first_trainable] == "conv_pw_10_bn"
    assert len(names) - first_trainable == 23
    assert all(layer.trainable for layer in model.layers[first_trainable:])


# --- build_model -------------------------------------------------------------------------------

FEATURES = {"vgg16": 512, "mobilenet": 1024, "mobilenet_v2": 1280, "resnet50": 2048, "efficientnetb0": 1280}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_build_model_layers_head_arithmetic_and_frozen_base(arch):
    assert set(FEATURES) == set(ARCHS)  # a new arch needs its feature width here
    model = build_model(arch, 3, weights=None, image_size=32, freeze_base=True)
    base = model.get_layer(BASE_LAYER_NAME)
    assert [layer.name for layer in model.layers] == ["image", "preprocessing", BASE_LAYER_NAME, "pool",
                                                      "dropout", "predictions"]
    assert model.outputs[0].shape == (None, 3)
    base_total, _, _ = count_params(base)
    head = FEATURES[arch] * 3 + 3
    assert model.count_params() == base_total + head
    assert keras_split(model) == (base_total + head, head, base_total)
    # A frozen base computes in training mode (what fit passes it) what it computes in inference.
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    features = model.get_layer("preprocessing")(images)
    np.testing.assert_array_equal(base(features, training=True), base(features, training=False))


def test_hidden_units_add_a_relu_dense_between_pool_and_dropout():
    plain = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True)
    model = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True, hidden_units=16)
    assert [layer.name for layer in model.layers] == ["image", "preprocessing", BASE_LAYER_NAME, "pool", "hidden",
                                                      "dropout", "predictions"]
    assert model.get_layer("hidden").activation is keras.activations.relu
    base_total, _, _ = count_params(model.get_layer(BASE_LAYER_NAME))
    head = (1024 * 16 + 16) + (16 * 3 + 3)  # hidden: inputs*units + units; predictions: 16*3 + 3
    assert head == 16_451
    assert model.count_params() == base_total + head
    assert keras_split(model) == (base_total + head, head, base_total)
    # hidden_units=0 is today's model: the same layers, the same count.
    default = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True, hidden_units=0)
    assert [layer.name for layer in default.layers] == [layer.name for layer in plain.layers]
    assert default.count_params() == plain.count_params() == base_total + 1024 * 3 + 3
    with pytest.raises(KerasNotesError, match="hidden_units=-1"):
        build_model("mobilenet", 2, weights=None, image_size=32, hidden_units=-1)


def test_from_scratch_base_trains_with_lower_batch_norm_momentum():
    model = build_model("mobilenet", 3, weights=None, image_size=32)
    assert model.get_layer(BASE_LAYER_NAME).trainable
    assert {layer.momentum for layer in batch_norm_layers(model)} == {FROM_SCRATCH_BN_MOMENTUM}

    frozen = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True)
    assert not frozen.get_layer(BASE_LAYER_NAME).trainable
    assert {layer.momentum for layer in batch_norm_layers(frozen)} == {0.99}  # Keras's default, untouched


def test_build_model_refusals():
    with pytest.raises(KerasNotesError, match="num_classes=1"):
        build_model("mobilenet", 1, weights=None, image_size=32)
    with pytest.raises(KerasNotesError, match="dropout=1.0"):
        build_model("mobilenet", 2, weights=None, image_size=32, dropout=1.0)
    with pytest.raises(KerasNotesError, match="image_size=16"):
        build_model("mobilenet", 2, weights=None, image_size=16)


# --- unfreeze, on a tiny model shaped like build_model's --------------------------------------

def tiny_model(base_trainable=False):
    """image (8, 8, 3) -> base [conv_a, bn_a, relu_a, conv_b, bn_b, relu_b] -> pool -> predictions.

    conv_a 3*3*3*4 + 4 = 112; bn_a 4*4 = 16; conv_b 3*3*4*6 + 6 = 222; bn_b 4*6 = 24;
    predictions 6*2 + 2 = 14.
    """
    base_input = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(base_input)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.ReLU(name="relu_b")(x)
    base = keras.Model(base_input, x, name=BASE_LAYER_NAME)
    base.trainable = base_trainable
    inputs = keras.Input((8, 8, 3), name="image")
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def trainable_count(model):
    return sum(math.prod(weight.shape) for weight in model.trainable_weights)


@pytest.mark.parametrize("kwargs, opened, trainable", [
    ({"top_n": 3}, 1, 222 + 14),               # relu_b, bn_b (kept frozen), conv_b
    ({"top_n": 1}, 0, 14),                     # relu_b has no weights
    ({"from_layer": "bn_a"}, 1, 222 + 14),     # bn_a stays frozen; conv_b opens
    ({"from_layer": "conv_a"}, 2, 112 + 222 + 14),
    ({}, 2, 112 + 222 + 14),                   # the whole base, batch norm aside
])
def test_unfreeze_opens_the_top_and_keeps_batch_norm_frozen(kwargs, opened, trainable):
    model = tiny_model()
    assert trainable_count(model) == 14
    assert unfreeze(model, **kwargs) == opened
    assert trainable_count(model) == trainable
    assert not any(layer.trainable for layer in batch_norm_layers(model))


def test_after_unfreeze_fit_moves_the_opened_layers_only():
    model = tiny_model()
    unfreeze(model, top_n=3)
    base = model.get_layer(BASE_LAYER_NAME)
    before = [(weight.path, weight.numpy().copy()) for weight in base.weights]
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(3.0, 2.0, (32, 8, 8, 3)).astype("float32"), rng.integers(0, 2, 32), epochs=2,
              batch_size=8, verbose=0)
    changed = {path for (path, value), weight in zip(before, base.weights)
               if not np.array_equal(value, weight.numpy())}
    assert changed == {"conv_b/kernel", "conv_b/bias"}  # batch norm: no gamma, beta or moving statistic moved


def test_unfreeze_refusals():
    model = tiny_model()
    with pytest.raises(KerasNotesError, match="not both"):
        unfreeze(model, top_n=1, from_layer="conv_b")
    for top_n in (0, 7, True, 2.0):
        with pytest.raises(KerasNotesError, match=f"received top_n={top_n!r}"):
            unfreeze(model, top_n=top_n)
    with pytest.raises(KerasNotesError, match="no layer named 'conv_z'"):
        unfreeze(model, from_layer="conv_z")
    with pytest.raises(KerasNotesError, match="no layer named 'base'"):
        unfreeze(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))


def test_keras_3_trains_a_trainable_nested_base_in_training_mode_despite_training_false():
    # The fact behind FROM_SCRATCH_BN_MOMENTUM (keras-team/keras#20285): build_model's
    # base(x, training=False) does not stop fit from updating a trainable base's batch norm.
    model = tiny_model(base_trainable=True)
    bn = model.get_layer(BASE_LAYER_NAME).get_layer("bn_a")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(np.full((8, 8, 8, 3), 5.0, "float32"), np.zeros(8, "int64"), verbose=0)
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)


# --- recalibrate_batch_norm --------------------------------------------------------------------

def bn_first_model():
    """A base whose first layer is batch norm, so its input is the data itself."""
    base_input = keras.Input((4, 4, 2))
    x = keras.layers.BatchNormalization(name="bn")(base_input)
    base = keras.Model(base_input, keras.layers.Conv2D(3, 1, name="conv")(x), name=BASE_LAYER_NAME)
    inputs = keras.Input((4, 4, 2))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(base(inputs, training=False)))


def test_recalibrate_sets_the_average_of_batch_statistics():
    rng = np.random.default_rng(0)
    images = rng.normal([2.0, -1.0], [3.0, 0.5], (40, 4, 4, 2)).astype("float32")
    batches = [images[0:16], images[16:32], images[32:40]]  # a dataset is used in its own order
    expected_mean = np.mean([batch.mean(axis=(0, 1, 2)) for batch in batches], axis=0)
    expected_variance = np.mean([batch.var(axis=(0, 1, 2)) for batch in batches], axis=0)

    model = bn_first_model()
    bn = model.get_layer(BASE_LAYER_NAME).get_layer("bn")
    conv_kernel = model.get_layer(BASE_LAYER_NAME).get_layer("conv").kernel.numpy().copy()
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros(40))).batch(16)
    assert recalibrate_batch_norm(model, data) == 1
    # Measured max relative difference: 1.2e-7 for the mean, 0.0 for the variance (float32).
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_variance, rtol=1e-5)
    assert bn.momentum == 0.99  # restored
    np.testing.assert_array_equal(model.get_layer(BASE_LAYER_NAME).get_layer("conv").kernel.numpy(), conv_kernel)


def test_recalibrate_shuffles_an_array_sorted_by_class():
    # Two "classes" far apart, sorted: batches cut in order would each hold one class and
    # see a variance of about 1; the population's is about 1 + 5**2 = 26.
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.normal(-5.0, 1.0, (64, 4, 4, 2)), rng.normal(5.0, 1.0, (64, 4, 4, 2))])
    images = images.astype("float32")
    model = bn_first_model()
    bn = model.get_layer(BASE_LAYER_NAME).get_layer("bn")
    assert recalibrate_batch_norm(model, images, batch_size=16) == 1
    # 8 equal batches: the mean of batch means is the mean (measured max |diff| 2.9e-6).
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), atol=1e-4)
    # A batch of 16 of the 128 images sees about (1 - 1/16) * 128/127 = 0.945 of the variance
    # between images, which is 25/26 of the whole. Measured ratios 0.966 and 0.968 (the
    # permutation is seeded); batches cut in class order would give 0.038.
    population_variance = images.var(axis=(0, 1, 2))
    assert np.all(np.abs(bn.moving_variance.numpy() / population_variance - 1) < 0.15)


def test_recalibrate_leaves_frozen_batch_norm_alone():
    model = bn_first_model()
    model.get_layer(BASE_LAYER_NAME).trainable = False
    assert recalibrate_batch_norm(model, np.ones((8, 4, 4, 2), "float32")) == 0
    np.testing.assert_array_equal(model.get_layer(BASE_LAYER_NAME).get_layer("bn").moving_mean.numpy(), 0.0)


# --- training MobileNet from scratch -----------------------------------------------------------

@pytest.mark.slow
def test_mobilenet_from_scratch_works_in_inference_mode():
    """MobileNet, random weights, 32 px digits: validation accuracy in inference mode well above chance.

    Measured with this configuration (800 training / 300 validation images, 5 epochs,
    Adam 1e-3, batch 32): validation accuracy 0.860, 0.873, 0.813 for seeds 0, 1, 2;
    with Keras's default batch-norm momentum (0.99) instead of FROM_SCRATCH_BN_MOMENTUM,
    0.100 for seed 0 (training accuracy 0.951 either way). Chance is 0.10. The threshold,
    0.5, is over 20 binomial standard deviations above chance on 300 images
    (sqrt(0.1*0.9/300) = 0.017) and 0.3 below the worst measured run with the fix.
    """
    images, labels = load_digits(range(10), size=32)
    x_train, y_train, x_val, y_val = split(images, labels, 800, 300, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model("mobilenet", 10, weights=None, image_size=32)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)
    train_accuracy = history.history["accuracy"][-1]
    val_accuracy = model.evaluate(x_val, y_val, verbose=0)[1]  # inference mode: moving statistics
    print(f"from scratch: train accuracy {train_accuracy:.3f}, validation accuracy {val_accuracy:.3f}")
    assert val_accuracy > 0.5

    # Put the moving statistics back where Keras starts them (mean 0, variance 1): the
    # model collapses to about chance; re-estimating them from the training images restores it.
    for layer in batch_norm_layers(model):
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
    reset_accuracy = model.evaluate(x_val, y_val, verbose=0)[1]
    assert recalibrate_batch_norm(model, x_train) == 27
    recalibrated_accuracy = model.evaluate(x_val, y_val, verbose=0)[1]
    print(f"moving statistics reset: {reset_accuracy:.3f}; recalibrated: {recalibrated_accuracy:.3f}")
    # Measured (seed 0): 0.087 after the reset, 0.857 recalibrated (0.860 before the reset).
    # Chance is 0.10 with a binomial standard deviation of 0.017 on 300 images: 0.3 is over
    # 10 of them above it, and 0.5 the same margin as the first check.
    assert reset_accuracy < 0.3
    assert recalibrated_accuracy > 0.5

"""Parameter arithmetic from first principles, against hand arithmetic and against Keras."""

import os

import keras
import pytest

from keras_notes import notes_models, params
from keras_notes.errors import KerasNotesError


def _agrees_with_keras(model):
    rows = params.explain(model)
    disagreeing = [(row.name, row.formula, row.keras_count) for row in rows if not row.agrees]
    assert disagreeing == []
    assert params.count_params(model) == params.keras_counts(model)
    return rows


@pytest.mark.parametrize("name", sorted(notes_models.MODELS))
def test_engine_equals_keras_on_every_notes_model(name):
    _agrees_with_keras(notes_models.get(name)())


def test_formulas_read_like_the_notes():
    rows = {row.name: row for row in params.explain(notes_models.in7())}
    assert rows["hidden1"].formula == "5*16 + 16 = 96"
    rows = {row.name: row for row in params.explain(notes_models.in17(bn_axis=-1))}
    assert rows["batch_norm"].formula == "4*32 = 128 (2*32 non-trainable)"
    assert (rows["batch_norm"].trainable_count, rows["batch_norm"].non_trainable_count) == (2*32, 2*32)
    rows = {row.name: row for row in params.explain(notes_models.cnn_example())}
    assert rows["conv1"].formula == "3*3*3*2 + 2 = 56"
    assert rows["output"].formula == "1200*2 + 2 = 2,402"
    assert rows["output"].output_shape == (None, 2)


# (layer, input shape, total by hand, non-trainable by hand)
SINGLE_LAYERS = {
    "dense_no_bias": (lambda: keras.layers.Dense(4, use_bias=False), (None, 5), 5*4, 0),
    "conv1d": (lambda: keras.layers.Conv1D(5, 3), (None, 10, 4), 3*4*5 + 5, 0),
    "conv2d_groups": (lambda: keras.layers.Conv2D(6, 3, groups=2), (None, 8, 8, 4),
                      3*3*(4//2)*6 + 6, 0),
    "conv2d_channels_first": (lambda: keras.layers.Conv2D(6, 3, data_format="channels_first"),
                              (None, 4, 8, 8), 3*3*4*6 + 6, 0),
    "conv3d": (lambda: keras.layers.Conv3D(2, (2, 3, 3)), (None, 4, 8, 8, 3), 2*3*3*3*2 + 2, 0),
    "conv2d_transpose": (lambda: keras.layers.Conv2DTranspose(4, 3), (None, 8, 8, 2),
                         3*3*2*4 + 4, 0),
    "depthwise2d_multiplier": (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
                               (None, 8, 8, 5), 3*3*5*2 + 5*2, 0),
    "depthwise1d": (lambda: keras.layers.DepthwiseConv1D(3, use_bias=False), (None, 10, 6), 3*6*1, 0),
    "separable2d": (lambda: keras.layers.SeparableConv2D(7, 3, depth_multiplier=2),
                    (None, 8, 8, 5), 3*3*5*2 + 5*2*7 + 7, 0),
    "separable1d": (lambda: keras.layers.SeparableConv1D(4, 3), (None, 10, 6), 3*6*1 + 6*1*4 + 4, 0),
    # gamma, beta trainable; moving mean and variance not.
    "batch_norm": (lambda: keras.layers.BatchNormalization(), (None, 10), 4*10, 2*10),
    "batch_norm_no_center": (lambda: keras.layers.BatchNormalization(center=False),
                             (None, 10), 3*10, 2*10),
    "batch_norm_neither": (lambda: keras.layers.BatchNormalization(center=False, scale=False),
                           (None, 6, 10), 2*10, 2*10),
    "batch_norm_renorm": (lambda: keras.layers.BatchNormalization(renorm=True), (None, 10),
                          (2 + 5)*10, 5*10),
    "layer_norm": (lambda: keras.layers.LayerNormalization(), (None, 6, 10), 2*10, 0),
    "layer_norm_two_axes": (lambda: keras.layers.LayerNormalization(axis=[1, 2]), (None, 6, 10),
                            2*(6*10), 0),
    "group_norm": (lambda: keras.layers.GroupNormalization(groups=2), (None, 8), 2*8, 0),
    "normalization_adapt": (lambda: keras.layers.Normalization(), (None, 3), 2*3 + 1, 2*3 + 1),
    "normalization_given": (lambda: keras.layers.Normalization(mean=0.5, variance=2.0),
                            (None, 3), 0, 0),
    "embedding": (lambda: keras.layers.Embedding(1000, 64), (None, 12), 1000*64, 0),
    "max_pooling": (lambda: keras.layers.MaxPooling2D(), (None, 8, 8, 3), 0, 0),
}


@pytest.mark.parametrize("case", sorted(SINGLE_LAYERS))
def test_single_layer_formula_matches_hand_arithmetic(case):
    make, input_shape, total, non_trainable = SINGLE_LAYERS[case]
    layer = make()
    layer.build(input_shape)
    row = params.explain_layer(layer)
    assert (row.count, row.non_trainable) == (total, non_trainable), row.formula
    assert f"= {total:,}" in row.formula or row.formula.split()[0] == f"{total:,}", row.formula
    assert row.keras_count == total  # Keras agrees with the hand arithmetic too


def test_groups_are_shown_in_the_formula():
    layer = keras.layers.Conv2D(6, 3, groups=2)
    layer.build((None, 8, 8, 4))
    assert params.explain_layer(layer).formula == "3*3*(4/2)*6 + 6 = 114"


class Scale(keras.layers.Layer):
    """A custom layer with one weight per feature: the engine has no rule for it."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale


class MyDense(keras.layers.Dense):
    """A subclass may add weights, so it is not counted as a Dense."""


@pytest.mark.parametrize("unknown", [Scale, lambda: MyDense(3), lambda: keras.layers.Dense(3, lora_rank=2)],
                         ids=["custom", "subclass", "lora"])
def test_layers_without_a_rule_are_reported_not_guessed(unknown):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="known"),
                              unknown()])
    rows = params.explain(model)
    assert rows[0].known and rows[0].count == 4*3 + 3
    assert not rows[1].known and rows[1].count is None
    assert rows[1].keras_count > 0  # Keras does count weights there: nothing was silently zeroed
    with pytest.raises(KerasNotesError, match="not covered"):
        params.count_params(model)


def test_counts_come_from_configuration_not_from_variables():
    # Changing the configured units after the weights exist changes the formula's
    # answer but not Keras's: the engine read units, not the kernel's size.
    model = notes_models.dense_example()
    model.get_layer("hidden").units = 4
    row = params.explain(model)[0]
    assert (row.count, row.keras_count) == (2*4 + 4, 2*3 + 3)
    assert not row.agrees


def test_frozen_layer_counts_as_non_trainable():
    model = notes_models.in17()
    model.get_layer("hidden2").trainable = False
    trainable = (5*16 + 16) + (4*1 - 2*1) + (32*2 + 2)
    non_trainable = (16*32 + 32) + 2*1
    assert params.count_params(model) == (trainable + non_trainable, trainable, non_trainable)
    assert params.count_params(model) == params.keras_counts(model)
    model.trainable = False
    assert params.count_params(model) == (trainable + non_trainable, 0, trainable + non_trainable)
    assert params.count_params(model) == params.keras_counts(model)


def test_nested_model_recurses_and_its_trainable_flag_propagates():
    base = notes_models.cnn_example()
    model = keras.Sequential([keras.Input((20, 20, 3)), base, keras.layers.Dense(5, name="head")])
    rows = params.explain(model)
    assert [row.name for row in rows] == ["cnn_example/conv1", "cnn_example/conv2",
                                          "cnn_example/flatten", "cnn_example/output", "head"]
    base_total = (3*3*3*2 + 2) + (3*3*2*3 + 3) + (1200*2 + 2)
    head = 2*5 + 5
    base.trainable = False
    assert params.count_params(model) == (base_total + head, head, base_total)
    assert params.count_params(model) == params.keras_counts(model)
    # Unfreezing one inner layer afterwards: Keras's optimizer trains it again, and so do we.
    base.get_layer("conv2").trainable = True
    conv2 = 3*3*2*3 + 3
    assert params.count_params(model) == (base_total + head, head + conv2, base_total - conv2)
    assert params.count_params(model) == params.keras_counts(model)


def test_functional_model_with_branches():
    inputs = keras.Input((8, 8, 3))
    left = keras.layers.Conv2D(4, 1, name="left")(inputs)
    right = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="right")(inputs)
    merged = keras.layers.Concatenate(name="merge")([left, right])
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(merged))
    expected = (1*1*3*4 + 4) + 3*3*3*4
    assert params.count_params(model) == (expected, expected, 0)
    _agrees_with_keras(model)


def test_unbuilt_model_is_a_clear_error():
    with pytest.raises(KerasNotesError, match="not built"):
        params.explain(keras.Sequential([keras.layers.Dense(2)]))


# --- keras.applications, built with weights=None ---------------------------------------

def _vgg16_by_hand(include_top):
    """VGG16 (configuration D of Simonyan & Zisserman): 13 3x3 convs, then three dense layers."""
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = sum(3*3*c_in*c_out + c_out for c_in, c_out in zip(channels, channels[1:]))
    top = (7*7*512*4096 + 4096) + (4096*4096 + 4096) + (4096*1000 + 1000)
    return convs + (top if include_top else 0)


def _mobilenet_by_hand(include_top):
    """MobileNet v1, alpha 1: bias-free convs each followed by batch norm (4*c, 2*c non-trainable)."""
    pairs = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512),
             *[(512, 512)] * 5, (512, 1024), (1024, 1024)]
    total = 3*3*3*32 + 4*32
    total += sum(3*3*c_in + 4*c_in + c_in*c_out + 4*c_out for c_in, c_out in pairs)
    non_trainable = 2*32 + sum(2*c_in + 2*c_out for c_in, c_out in pairs)
    if include_top:
        total += 1*1*1024*1000 + 1000  # the classifier is a 1x1 Conv2D with bias
    return total, total - non_trainable, non_trainable


@pytest.mark.parametrize("include_top", [True, False], ids=["top", "no_top"])
def test_vgg16(include_top):
    model = keras.applications.VGG16(weights=None, include_top=include_top)
    _agrees_with_keras(model)
    total = _vgg16_by_hand(include_top)
    assert params.count_params(model) == (total, total, 0)
    keras.backend.clear_session()


@pytest.mark.parametrize("include_top", [True, False], ids=["top", "no_top"])
def test_mobilenet(include_top):
    model = keras.applications.MobileNet(weights=None, include_top=include_top,
                                         input_shape=(128, 128, 3))
    _agrees_with_keras(model)
    assert params.count_params(model) == _mobilenet_by_hand(include_top)
    keras.backend.clear_session()


# One model per family covers every layer type keras.applications uses (LayerScale and a
# nested Sequential in ConvNeXt, Normalization in EfficientNet, scale-free BatchNorm in
# Inception, CustomScaleLayer in InceptionResNetV2, Cropping2D in NASNet, SeparableConv2D
# in Xception...). The larger members of each family repeat the same layers and take
# minutes together; set KERAS_NOTES_ALL_APPLICATIONS=1 to check them as well.
REPRESENTATIVES = {"ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0",
                   "InceptionResNetV2", "InceptionV3", "MobileNetV2", "MobileNetV3Small",
                   "NASNetMobile", "ResNet50", "ResNet50V2", "VGG19", "Xception"}
ALL_APPLICATIONS = sorted(name for name in dir(keras.applications)
                          if name[:1].isupper() and name not in {"VGG16", "MobileNet"})
_CHECK_ALL = os.environ.get("KERAS_NOTES_ALL_APPLICATIONS") == "1"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_APPLICATIONS if _CHECK_ALL else sorted(REPRESENTATIVES))
def test_application_agrees_with_keras(name):
    """Each family's representative by default; every application with KERAS_NOTES_ALL_APPLICATIONS=1."""
    model = getattr(keras.applications, name)(weights=None, include_top=False)
    rows = _agrees_with_keras(model)
    assert all(row.known for row in rows)
    keras.backend.clear_session()

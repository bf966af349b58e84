"""The notes' models: counts, splits and shapes against the notes' hand arithmetic."""

import warnings

import keras
import numpy as np
import pytest

from keras_notes import notes_models

# name -> (total, non-trainable, output shape), each count written as the notes' arithmetic.
EXPECTED = {
    "in7": ((5*16 + 16) + (16*32 + 32) + (32*2 + 2), 0, (None, 1, 2)),
    "in10": ((1*16 + 16) + (16*32 + 32) + (32*2 + 2), 0, (None, 2)),
    # BatchNormalization(axis=1) on (None, 1, 32): 4 parameters per entry of a length-1 axis,
    # the moving mean and variance (2*1) non-trainable.
    "in17": ((5*16 + 16) + (16*32 + 32) + 4*1 + (32*2 + 2), 2*1, (None, 1, 2)),
    "dense_example": ((2*3 + 3) + (3*2 + 2), 0, (None, 2)),
    "cnn_example": ((3*3*3*2 + 2) + (3*3*2*3 + 3) + (20*20*3*2 + 2), 0, (None, 2)),
}


def test_every_registered_builder_has_expected_numbers():
    # A new builder without numbers here fails this test instead of going untested.
    assert sorted(EXPECTED) == sorted(notes_models.MODELS)


@pytest.mark.parametrize("name", sorted(notes_models.MODELS))
def test_counts_split_and_output_shape(name):
    total, non_trainable, output_shape = EXPECTED[name]
    model = notes_models.get(name)()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert model.count_params() == total
    assert (trainable, total - trainable) == (total - non_trainable, non_trainable)
    assert model.output_shape == output_shape


@pytest.mark.parametrize("name", sorted(notes_models.MODELS))
def test_builders_start_from_input_name_layers_and_stay_uncompiled(name):
    with warnings.catch_warnings():
        # Passing input_shape= to a layer warns in Keras 3; the builders must not.
        warnings.simplefilter("error")
        model = notes_models.get(name)()
    assert isinstance(model, keras.Sequential)
    assert not model.compiled
    assert all(not layer.name.startswith(("dense", "conv2d", "batch_normalization"))
               for layer in model.layers), [layer.name for layer in model.layers]


def test_the_notes_values_are_the_defaults():
    in7 = notes_models.in7()
    assert [layer.units for layer in in7.layers] == [16, 32, 2]
    assert isinstance(in7.get_layer("hidden2").kernel_initializer, keras.initializers.GlorotUniform)
    assert in7.get_layer("output").activation is keras.activations.softmax
    in10 = notes_models.in10()
    regularizer = in10.get_layer("hidden2").kernel_regularizer
    assert isinstance(regularizer, keras.regularizers.L2)
    assert regularizer.l2 == pytest.approx(0.01)
    assert in10.get_layer("output").activation is keras.activations.sigmoid
    assert notes_models.in17().get_layer("batch_norm").axis == 1
    cnn = notes_models.cnn_example()
    assert [cnn.get_layer(n).kernel_size for n in ("conv1", "conv2")] == [(3, 3), (3, 3)]
    assert cnn.get_layer("conv1").padding == "same"


def test_keywords_change_the_model():
    # The per-feature batch norm the notes mean: 4*32, of which 2*32 non-trainable.
    in17 = notes_models.in17(bn_axis=-1)
    bn = in17.get_layer("batch_norm")
    assert bn.count_params() == 4*32
    assert sum(int(np.prod(w.shape)) for w in bn.non_trainable_weights) == 2*32
    assert in17.count_params() == (5*16 + 16) + (16*32 + 32) + 4*32 + (32*2 + 2)

    wider = notes_models.in7(input_shape=(10,), units=(8, 4), num_classes=3)
    assert wider.count_params() == (10*8 + 8) + (8*4 + 4) + (4*3 + 3)
    assert wider.output_shape == (None, 3)

    cnn = notes_models.cnn_example(input_shape=(12, 12, 1), filters=(4, 5), num_classes=10)
    assert cnn.count_params() == (3*3*1*4 + 4) + (3*3*4*5 + 5) + (12*12*5*10 + 10)

    assert notes_models.in10(l2=0.5).get_layer("hidden2").kernel_regularizer.l2 == pytest.approx(0.5)


def test_get_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'in8'; choose from \['cnn_example'"):
        notes_models.get("in8")

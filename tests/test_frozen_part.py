"""Cutting a model where its frozen part ends: the two parts compute the whole model."""

import numpy as np

from keras_notes.finetune.frozen_part import split_frozen
from keras_notes.finetune.models import build_model, first_trained_layer, unfreeze


def _compiled_model(arch="mobilenet", freeze_base=True, **build):
    model = build_model(arch, 3, weights=None, image_size=32, freeze_base=freeze_base, **build)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _pixels(seed=0, count=6):
    return np.random.default_rng(seed).uniform(0, 255, (count, 32, 32, 3)).astype(np.float32)


def _assert_split_computes_the_model(model, split):
    pixels = _pixels()
    kept = split.extractor.predict(pixels, verbose=0)
    np.testing.assert_allclose(split.trainable.predict(kept, verbose=0), model.predict(pixels, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_split_is_the_pool_in_phase_1_and_below_the_first_trained_layer_in_phase_2():
    model = _compiled_model()
    phase1 = split_frozen(model)
    assert phase1.boundary == (("pool", (1024,)),)
    assert [layer.name for layer in phase1.trainable.layers[1:]] == ["dropout", "predictions"]
    _assert_split_computes_the_model(model, phase1)

    # Phase 2's cut, known before unfreezing (phase 1 keeps it): the top 13 layers start with
    # conv_pad_12, which has no weights, so the first layer that trains is conv_dw_12.
    assert first_trained_layer(model, top_n=13) == first_trained_layer(model, from_layer="conv_dw_12") == "conv_dw_12"
    assert first_trained_layer(model, top_n=1) is None  # conv_pw_13_relu alone: nothing to train
    ahead = split_frozen(model, "conv_dw_12")
    unfreeze(model, from_layer="conv_dw_12")  # MobileNet's last two depthwise/pointwise blocks
    phase2 = split_frozen(model)
    assert ahead.boundary == phase2.boundary
    # The cut is below conv_dw_12: the output of its zero padding, 32 px / 16 = 2, padded to 3.
    assert phase2.boundary == (("conv_pad_12", (3, 3, 512)),)
    base = model.get_layer("base")
    trained = {weight.path for weight in phase2.trainable.trainable_weights}
    assert trained == {weight.path for weight in model.trainable_weights}  # the same variables train
    assert base.get_layer("conv_dw_12") in phase2.trainable.get_layer("trained_part_of_base").layers
    _assert_split_computes_the_model(model, phase2)


def test_split_keeps_both_tensors_where_the_cut_crosses_a_residual_branch():
    model = _compiled_model("resnet50")
    unfreeze(model, from_layer="conv5_block3_2_conv")  # inside the last block: its skip path crosses the cut
    split = split_frozen(model)
    assert sorted(name for name, _ in split.boundary) == ["conv5_block2_out", "conv5_block3_1_relu"]
    _assert_split_computes_the_model(model, split)


def test_nothing_is_kept_when_the_base_trains_from_its_first_layer_or_drops_units_below_the_cut():
    assert split_frozen(_compiled_model(freeze_base=False)) is None
    opened = _compiled_model()
    unfreeze(opened)  # the whole base
    assert split_frozen(opened) is None
    # EfficientNet trained from random weights keeps its stochastic-depth Dropout layers (rate > 0).
    scratch = _compiled_model("efficientnetb0", freeze_base=False)
    unfreeze(scratch, top_n=5)
    assert split_frozen(scratch) is None

"""Vanishing and exploding gradients, asserted with thresholds set from measurements.

Measured with ``GradientConfig()`` (20 Dense layers of 64, batch 128, float64) over
seeds 0-7; the ranges are quoted next to each threshold. The tests use seeds 0 and 1.
"""

import numpy as np
import pytest

from keras_notes.cli import gradients as cli
from keras_notes.experiments import gradients

SEEDS = [0, 1]


def study(activation, initializer, seed):
    norms, loss = gradients.layer_gradient_norms(activation, initializer, gradients.GradientConfig(seed=seed))
    assert norms.shape == (20,) and np.all(np.isfinite(norms)) and np.isfinite(loss)
    return norms


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_with_small_init_vanishes(seed):
    norms = study("sigmoid", "normal(0.01)", seed)
    # first/last measured 5.3e-33 .. 1.5e-32: each layer multiplies the gradient by about
    # sqrt(64 * 0.01**2) * sigmoid'(0) = 0.08 * 0.25 = 0.02, and 0.02**19 = 5e-33.
    assert norms[0] / norms[-1] < 1e-20
    assert np.all(np.diff(np.log(norms)) > 0)  # strictly growing from input to output


@pytest.mark.parametrize("seed", SEEDS)
def test_tanh_with_unit_normal_init_explodes(seed):
    norms = study("tanh", "normal(1)", seed)
    # first/last measured 6.9e5 .. 2.1e6: with sd 1 the pre-activations have sd ~8, and the
    # backward gain per layer, sqrt(64 * E[tanh'(z)^2]), is about 2 > 1.
    assert norms[0] / norms[-1] > 1e4


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_with_unit_normal_init_is_huge_in_every_layer(seed):
    norms = study("relu", "normal(1)", seed)
    # ReLU is scale-free, so a too-large init blows up activations forward and gradients
    # backward by the same factor: every layer is huge (median measured 2.9e14 .. 2.0e15)
    # while first/last stays modest (measured 0.14 .. 0.54).
    assert np.median(norms) > 1e10
    assert 1e-2 < norms[0] / norms[-1] < 1e2


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation, initializer", [("tanh", "glorot_uniform"), ("relu", "he_normal")])
def test_matched_initializers_keep_gradients_even(activation, initializer, seed):
    norms = study(activation, initializer, seed)
    # first/last measured: glorot+tanh 1.13 .. 1.90, he+relu 0.11 .. 1.62.
    assert 1e-2 < norms[0] / norms[-1] < 1e2
    # and no layer is far from order one (medians measured 0.13 .. 0.18 and 0.47 .. 8.8).
    assert 1e-2 < np.median(norms) < 1e2


@pytest.mark.parametrize("seed", SEEDS)
def test_glorot_does_not_rescue_sigmoid(seed):
    # The notes present Xavier as the fix. For sigmoid it is not: sigmoid'(z) <= 1/4, and
    # Glorot's variance keeps sqrt(fan * var) ~ 1, so about 0.24 per layer remains.
    # first/last measured 7.3e-13 .. 1.7e-12 (0.24**19 = 1.7e-12).
    norms = study("sigmoid", "glorot_uniform", seed)
    assert norms[0] / norms[-1] < 1e-8


def test_head_gradient_matches_numpy():
    # Independent check that the norms are of dL/dkernel: for the linear head,
    # dL/dW = a^T (softmax(z) - onehot(y)) / batch, computed here in NumPy.
    import keras

    config = gradients.GradientConfig(depth=4, width=8, batch=16, classes=3, seed=5)
    norms, _ = gradients.layer_gradient_norms("tanh", "glorot_uniform", config)
    keras.utils.set_random_seed(config.seed)  # rebuild the very same model and batch
    rng = np.random.default_rng(config.seed)
    x = rng.normal(size=(config.batch, config.width))
    y = rng.integers(0, config.classes, size=config.batch)
    model = gradients.build_deep_model("tanh", "glorot_uniform", config)
    a = x
    for layer in model.layers[:-1]:  # everything but the head: (16, 8) -> (16, 8)
        a = layer(a)
    a = keras.ops.convert_to_numpy(a)
    z = a @ model.layers[-1].kernel.numpy() + model.layers[-1].bias.numpy()  # (16, 3)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    head_grad = a.T @ (p - np.eye(config.classes)[y]) / config.batch  # (8, 3)
    assert norms[-1] == pytest.approx(np.linalg.norm(head_grad), rel=1e-10)  # float64; measured equal


def test_initializer_variances_match_their_formulas():
    rows = {row[0]: row for row in gradients.initializer_variances(fan_in=256, fan_out=64)}
    # 256*64 = 16,384 seeded draws: the sample variance's relative standard error is
    # sqrt(2/n) = 1.1% for a normal, 0.7% for a uniform; measured +1.3% (LeCun), +0.8%
    # (Glorot), -0.9% (He); rel=0.05 is 4.5 standard errors.
    assert rows["lecun_normal"][1] == pytest.approx(1 / 256, rel=0.05)  # the notes' "1/n"
    assert rows["glorot_uniform"][1] == pytest.approx(2 / (256 + 64), rel=0.05)
    assert rows["he_normal"][1] == pytest.approx(2 / 256, rel=0.05)
    assert rows["glorot_uniform"][5] == "2/(fan_in+fan_out)" and rows["lecun_normal"][5] == "1/fan_in"
    assert rows["normal(1)"][5] == "none"


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="'swish'"):
        gradients.build_deep_model("swish", "he_normal")
    with pytest.raises(ValueError, match="'xavier'"):
        gradients.layer_gradient_norms("relu", "xavier")


def test_cli_prints_table_and_writes_plot(tmp_path, capsys):
    output = tmp_path / "gradients.png"
    assert cli.main(["--depth", "6", "--width", "16", "--batch", "16", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "glorot_uniform" in printed and "first/last" in printed and "2/(fan_in+fan_out)" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_depth_exits_2(tmp_path, capsys):
    assert cli.main(["--depth", "1", "--output", str(tmp_path / "g.png")]) == 2
    assert "depth=1" in capsys.readouterr().err

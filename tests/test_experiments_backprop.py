"""The NumPy backward pass against the backend's autodiff, finite differences and keras.optimizers.SGD.

The autodiff side is ``tf.GradientTape`` under KERAS_BACKEND=tensorflow and ``jax.grad``
under KERAS_BACKEND=jax; CI runs this file under both.
"""

import keras
import numpy as np
import pytest

from keras_notes.cli import backprop as cli
from keras_notes.experiments import backprop

SIZES = (5, 16, 32, 3)


def numpy_and_autodiff(seed=0, batch=8):
    """Both sides on the same weights and batch. Call inside backprop.float64_scope()."""
    params = backprop.init_params(SIZES, seed)
    x, y = backprop.make_data(SIZES, batch, seed)
    probs, cache = backprop.forward(params, x)
    grads, input_grad = backprop.backward(params, cache, probs, y)
    model = backprop.keras_model(params)
    autodiff_side = backprop.autodiff_gradients(model, x, y)
    numpy_side = (backprop.cross_entropy(probs, y), grads, input_grad)
    return params, (x, y), numpy_side, autodiff_side, model


@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_gradients_match_autodiff(seed):
    with backprop.float64_scope():
        _, _, (loss_np, grads, input_grad), (loss_auto, auto_grads, auto_input_grad), model = \
            numpy_and_autodiff(seed)
    assert all(v.dtype == "float64" for v in model.trainable_variables)
    assert loss_np == pytest.approx(loss_auto, abs=1e-12)  # float64; measured |diff| 0 to 2.2e-16
    numpy_grads = [g for pair in grads for g in pair]
    assert len(numpy_grads) == len(auto_grads) == 6  # 3 Dense layers x (kernel, bias)
    for variable, g_np, g_auto in zip(model.trainable_variables, numpy_grads, auto_grads):
        assert g_np.shape == tuple(variable.shape)
        # float64 on both sides; measured max |diff| 4.2e-17 to 5.6e-17 (kernels and biases),
        # 1.0e-17 to 2.8e-17 (input), GradientTape and jax.grad alike; float32 gives 3e-8
        # (measured on JAX): 1e-10 fails if either side drops to float32.
        np.testing.assert_allclose(g_np, g_auto, rtol=0, atol=1e-10)
    np.testing.assert_allclose(input_grad, auto_input_grad, rtol=0, atol=1e-10)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="only JAX needs float64 switched on")
def test_jax_gradients_outside_the_float64_scope_are_refused():
    # Outside the scope JAX would silently compute in float32 and the 1e-10 comparison
    # above would fail for a reason that has nothing to do with backpropagation.
    with backprop.float64_scope():
        model = backprop.keras_model(backprop.init_params(SIZES, 0))
    x, y = backprop.make_data(SIZES, 8, 0)
    with pytest.raises(ValueError, match="float64_scope"):
        backprop.autodiff_gradients(model, x, y)


def test_backward_matches_central_differences():
    # A third, engine-free reference: (L(w + h) - L(w - h)) / 2h for a few single weights.
    sizes = (3, 4, 2)
    params = backprop.init_params(sizes, seed=3)
    x, y = backprop.make_data(sizes, 5, seed=3)
    probs, cache = backprop.forward(params, x)
    grads, _ = backprop.backward(params, cache, probs, y)
    h = 1e-6
    for layer, part, index in [(0, 0, (1, 2)), (0, 1, (3,)), (1, 0, (2, 1)), (1, 1, (0,))]:
        def loss_with(delta):
            shifted = [[k.copy(), b.copy()] for k, b in params]
            shifted[layer][part][index] += delta
            return backprop.cross_entropy(backprop.forward(shifted, x)[0], y)

        numeric = (loss_with(h) - loss_with(-h)) / (2 * h)
        # Error of the central difference: truncation ~h**2 = 1e-12, round-off ~eps * L / h
        # = 2.2e-16 * 0.67 / 1e-6 = 1.5e-10. Measured max |diff| over the four: 3.7e-11.
        assert grads[layer][part][index] == pytest.approx(numeric, abs=1e-8)


@pytest.mark.parametrize("learning_rate", [0.5, 0.1])
def test_one_sgd_step_matches_keras_sgd(learning_rate):
    with backprop.float64_scope():
        params, _, (_, grads, _), (_, auto_grads, _), model = numpy_and_autodiff()
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
        optimizer.apply_gradients(zip(auto_grads, model.trainable_variables))
        weights = model.get_weights()
    stepped = backprop.sgd_step(params, grads, learning_rate)
    for expected, actual in zip([w for pair in stepped for w in pair], weights):
        # Measured max |diff|: 6e-17 at lr=0.5 (exact in float32); at lr=0.1 Keras keeps the
        # learning rate as a float32 variable (0.1000000015), which shifts weights by 2.3e-10.
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-8)
    # The step really moved the weights (a no-op on both sides would also "match").
    assert max(np.abs(g).max() for pair in grads for g in pair) > 1e-3


def test_inputs_have_a_gradient_but_are_not_parameters():
    result = backprop.compare_gradients(backprop.BackpropConfig(batch=8))
    input_row = result["rows"][-1]
    assert input_row[0] == "input x" and input_row[5] is False
    assert input_row[2] > 1e-3  # dL/dx is not zero ...
    assert result["trainable_count"] == 6  # ... but only the 3 kernels and 3 biases are trainable
    assert all(row[5] for row in result["rows"][:-1])
    assert result["sgd_max_abs_diff"] < 1e-12


def test_training_curves_match_and_fall():
    numpy_losses, keras_losses = backprop.training_curves(backprop.BackpropConfig(steps=6))
    # fit logs the loss through a float32 Mean metric: measured max |diff| 5e-8.
    np.testing.assert_allclose(keras_losses, numpy_losses, rtol=0, atol=1e-6)
    assert numpy_losses[-1] < 0.8 * numpy_losses[0]  # measured 1.196 -> 0.687 in 6 steps


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="learning_rate=-1"):
        backprop.BackpropConfig(learning_rate=-1)


def test_cli_prints_table_and_writes_plot(tmp_path, capsys):
    output = tmp_path / "backprop.png"
    assert cli.main(["--steps", "3", "--batch", "8", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "input x" in printed and "max |diff|" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_value_exits_2(tmp_path, capsys):
    assert cli.main(["--steps", "0", "--output", str(tmp_path / "x.png")]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err

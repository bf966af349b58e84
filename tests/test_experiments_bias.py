"""The bias as a threshold: Keras Dense outputs against hand arithmetic."""

import numpy as np
import pytest

from keras_notes.cli import bias as cli
from keras_notes.experiments import bias


def test_notes_neuron_without_and_with_bias():
    (b0, sum0, z0, out0), (b1, sum1, z1, out1) = bias.notes_example(biases=(0.0, 1.0))
    assert sum0 == sum1 == pytest.approx(0.5 * 0.2 + 0.25 * -0.6 + 1.0 * -0.3)  # = -0.35
    assert sum0 == pytest.approx(-0.35)
    assert out0 == 0.0  # relu(-0.35) = 0: the neuron does not fire
    assert out1 == pytest.approx(0.65, abs=1e-6)  # relu(0.65) = 0.65 (float32 in the layer)


def test_fire_only_above_five():
    rows = bias.threshold_rows(bias=-5.0, inputs=range(11))
    assert [x for x, _, _ in rows] == list(range(11))
    for x, output, fires in rows:
        assert output == pytest.approx(max(0.0, x - 5.0), abs=1e-6)  # 0 up to 5, then x - 5
        assert fires == (x > 5)


def test_switch_on_point_is_minus_b_over_w():
    # With kernel 2 and bias -5 the neuron switches on at x = 2.5, not at 5.
    inputs, curves = bias.activation_curves(biases=(-5.0,), inputs=[2.0, 2.5, 3.0, 4.0], kernel=2.0)
    np.testing.assert_allclose(curves[-5.0], [0.0, 0.0, 2 * 3.0 - 5, 2 * 4.0 - 5], atol=1e-6)


def test_multi_input_dense_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    w, b = np.array([0.3, -1.2, 0.7]), -0.4
    np.testing.assert_allclose(bias.neuron_outputs(w, b, x), np.maximum(x @ w + b, 0.0), atol=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        bias.neuron_outputs([1.0], 0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="kernel=0"):
        bias.activation_curves(kernel=0.0)


def test_cli_prints_tables_and_writes_plot(tmp_path, capsys):
    output = tmp_path / "bias.png"
    assert cli.main(["--biases=-5,0,1", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "0.6500" in printed and "max(0, x - 5)" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_non_numeric_biases(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        cli.main(["--biases", "a,b", "--output", str(tmp_path / "b.png")])
    assert exit_info.value.code == 2
    assert "comma-separated numbers" in capsys.readouterr().err

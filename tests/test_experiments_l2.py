"""L2 regularization on the notes' In[10] model: the penalty against NumPy, and its effect."""

import numpy as np
import pytest

from keras_notes.cli import l2 as cli
from keras_notes.experiments import l2


def test_in10_parameter_count():
    model = l2.build_in10_model(0.01)
    # inputs*units + units per layer: (1*16 + 16) + (16*32 + 32) + (32*2 + 2) = 32 + 544 + 66
    assert model.count_params() == (1 * 16 + 16) + (16 * 32 + 32) + (32 * 2 + 2) == 642
    assert [layer.units for layer in model.layers] == [16, 32, 2]


def test_model_losses_is_l2_times_sum_of_squares():
    model = l2.build_in10_model(0.01)
    layer = model.get_layer(l2.REGULARIZED_LAYER)
    # Replace the initial kernel with known values so the check is not only about the init.
    kernel = np.random.default_rng(0).normal(size=(16, 32)).astype("float32")
    layer.kernel.assign(kernel)
    expected = 0.01 * np.sum(kernel.astype(np.float64) ** 2)  # no factor 1/2 in Keras's L2
    # Keras sums 512 float32 squares: measured relative difference 1.3e-9 from the float64 sum.
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-6)
    assert len(model.losses) == 1  # only the one regularized kernel contributes
    assert float(sum(l2.build_in10_model(0.0).losses)) == 0.0


def test_l2_ends_with_a_smaller_kernel_norm():
    config = l2.L2Config(epochs=30, seed=0)
    data = l2.make_data(config)
    plain, regularized = (l2.train_with_l2(strength, config, data) for strength in (0.0, 0.01))
    assert plain["weight_norms"][0] == pytest.approx(regularized["weight_norms"][0])  # same start
    assert len(plain["weight_norms"]) == config.epochs + 1
    # Measured final norms over seeds 0-4: without L2 5.5 .. 6.5, with 0.01 0.82 .. 1.5;
    # regularized/plain 0.15 .. 0.23.
    assert regularized["weight_norm"] < 0.5 * plain["weight_norm"]
    # float32 on both sides; measured relative difference 8.5e-8 (penalty 0.00965, norm 0.983).
    assert regularized["penalty"] == pytest.approx(0.01 * regularized["weight_norm"] ** 2, rel=1e-6)
    assert plain["penalty"] == 0.0
    assert np.isfinite([plain["val_loss"], regularized["val_loss"]]).all()


def test_bad_values_raise():
    with pytest.raises(ValueError, match="l2_strength=-0.1"):
        l2.build_in10_model(-0.1)
    with pytest.raises(ValueError, match="label_noise=0.5"):
        l2.L2Config(label_noise=0.5)


def test_cli_prints_table_and_writes_plot(tmp_path, capsys):
    output = tmp_path / "l2.png"
    assert cli.main(["--epochs", "3", "--strengths=0,0.01", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "||kernel|| of Dense(32)" in printed and "0.01" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_epochs_exits_2(tmp_path, capsys):
    assert cli.main(["--epochs", "0", "--output", str(tmp_path / "l2.png")]) == 2
    assert "epochs=0" in capsys.readouterr().err

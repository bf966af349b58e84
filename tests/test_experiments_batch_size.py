"""Batch size: throughput grows with the batch; at a fixed epoch budget big batches end higher."""

import numpy as np
import pytest

from keras_notes.cli import batch_size as cli
from keras_notes.experiments import batch_size

SMALL = batch_size.BatchSizeConfig(samples=256, val_samples=256, epochs=2)


@pytest.fixture(scope="module")
def sweep():
    return batch_size.batch_size_sweep((1, 4, 64), SMALL)


def test_in7_parameter_count():
    # inputs*units + units per layer: (5*16 + 16) + (16*32 + 32) + (32*2 + 2) = 96 + 544 + 66
    assert batch_size.build_model().count_params() == (5 * 16 + 16) + (16 * 32 + 32) + (32 * 2 + 2) == 706


def test_rows_for_each_batch_size_with_finite_losses(sweep):
    assert [row["batch_size"] for row in sweep] == [1, 4, 64]
    # updates = epochs * ceil(samples / batch): 2*256, 2*64, 2*4
    assert [row["updates"] for row in sweep] == [2 * 256, 2 * 64, 2 * 4]
    for row in sweep:
        assert np.isfinite([row["train_loss"], row["val_loss"], row["samples_per_second"]]).all()
        assert 0.0 <= row["val_accuracy"] <= 1.0


def test_throughput_grows_from_batch_1_to_64(sweep):
    # Measured batch-64 / batch-1 throughput (best step) with this config: 7x .. 48x over
    # four runs on a loaded 2-core machine. Timings swing, hence only 3x.
    assert sweep[2]["samples_per_second"] > 3 * sweep[0]["samples_per_second"]


def test_fixed_epoch_budget_leaves_big_batches_behind(sweep):
    # Same epochs and learning rate: 512 updates at batch 1 against 8 at batch 64.
    # Measured training loss here: batch 1 0.326, batch 64 0.699 (barely moved from ln 2 = 0.693).
    assert sweep[2]["train_loss"] > sweep[0]["train_loss"] + 0.1


def test_bad_values_raise():
    with pytest.raises(ValueError, match="batch_size=0"):
        batch_size.train_one(0, SMALL)
    with pytest.raises(ValueError, match="epochs=0"):
        batch_size.BatchSizeConfig(epochs=0)


def test_cli_prints_table_and_writes_plot(tmp_path, capsys):
    output = tmp_path / "batch_size.png"
    argv = ["--samples", "64", "--epochs", "2", "--batch-sizes", "4,16,64", "--output", str(output)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "samples/s" in printed and "updates" in printed and "updates per epoch" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_batch_size_exits_2(tmp_path, capsys):
    assert cli.main(["--batch-sizes", "0", "--epochs", "1", "--output", str(tmp_path / "b.png")]) == 2
    assert "batch_size=0" in capsys.readouterr().err

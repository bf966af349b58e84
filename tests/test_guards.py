"""Faults during a run: NaN loss, signals, a crash mid-write, and models that need unsafe loading."""

import json
import os
import signal

import h5py
import keras
import numpy as np
import pytest

from finetune_images import make_image_folder
from keras_notes.cli import finetune as finetune_cli
from keras_notes.errors import KerasNotesError
from keras_notes.cli import predict as predict_cli
from keras_notes.finetune import guards, runio, train
from keras_notes.finetune.config import FinetuneConfig

BATCH = 4


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=5)  # 3 classes: 12 train, 3 val


def _argv(images, run, *extra):
    return [images, "--arch", "mobilenet", "--weights", "none", "--freeze-base", "--image-size", "32",
            "--batch-size", str(BATCH), "--verbose", "0", "--output", str(run), *extra]


class AtBatch(keras.callbacks.Callback):
    """Calls ``action(model)`` once, at the end of batch ``batch`` of epoch ``epoch`` (0-based).

    ``begin=True``: at its start instead. A cached phase runs an epoch's steps in one call
    (``cache.cached_steps_per_execution``), and callbacks see that call's first batch begin
    and its last batch end only.
    """

    def __init__(self, epoch, batch, action, begin=False):
        super().__init__()
        self.at, self.action, self.begin, self._epoch = (epoch, batch), action, begin, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.begin and (self._epoch, batch) == self.at:
            self.action(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if not self.begin and (self._epoch, batch) == self.at:
            self.action(self.model)


def _inject(monkeypatch, callback):
    """Append ``callback`` to each phase's callbacks (after the guard, as a fault from outside)."""
    original = train.phase_callbacks
    monkeypatch.setattr(train, "phase_callbacks", lambda *args, **kwargs: original(*args, **kwargs) + [callback])


def _poison(model):
    kernel = model.get_layer("predictions").kernel
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def _backup(run):
    # One phase ran: its backup folder is phase1, or phase1-cached when the frozen part's
    # output was kept.
    (folder,) = (run / runio.CHECKPOINT_DIR).iterdir()
    epoch = json.loads((folder / "training_metadata.json").read_text())["epoch"]
    with h5py.File(folder / "latest.weights.h5", "r") as file:
        arrays = []
        file.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return epoch, arrays


@pytest.mark.slow
@pytest.mark.parametrize("cache", [False, True])
def test_nan_in_epoch_2_stops_with_one_line_and_keeps_epoch_1s_backup(images, tmp_path, monkeypatch, capsys, cache):
    run = tmp_path / "run"
    if cache:  # one call per epoch (3 steps): NaN weights before epoch 2's call, seen at its end
        _inject(monkeypatch, AtBatch(1, 0, _poison, begin=True))
        where = "batch 3"
    else:  # one step per call: NaN weights after epoch 2's first batch, seen after its second
        _inject(monkeypatch, AtBatch(1, 0, _poison))
        where = "batch 2"
    assert finetune_cli.main(_argv(images, run, "--epochs", "3", "--cache" if cache else "--no-cache")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f": loss became nan in epoch 2, {where}; training stopped and the checkpoint of epoch 1 is kept" in err
    epoch, arrays = _backup(run)
    assert epoch == 1  # the backup is epoch 1's, not overwritten by the NaN epoch
    assert all(np.isfinite(array).all() for array in arrays)
    assert [row["epoch"] for row in runio.read_history(run / runio.HISTORY_FILE)] == [0]
    assert not (run / runio.MODEL_FILE).exists()


@pytest.mark.slow
def test_nan_from_the_last_batchs_update_is_caught_by_validation(images, tmp_path, monkeypatch):
    run = tmp_path / "run"
    last_batch = 12 // BATCH - 1  # 12 training images in batches of 4: batches 0, 1, 2
    _inject(monkeypatch, AtBatch(0, last_batch, _poison))  # every training loss of epoch 1 stays finite
    with pytest.raises(guards.TrainingDiverged, match="val_loss became nan in epoch 1;"):
        train.finetune_one_machine(FinetuneConfig(images, arch="mobilenet", weights=None, freeze_base=True, image_size=32,
                                      batch_size=BATCH, epochs=2, output=str(run), verbose=0))
    assert not list((run / runio.CHECKPOINT_DIR).glob("*/latest.weights.h5"))  # nothing NaN saved


@pytest.mark.slow
def test_absurd_learning_rate_stops_with_one_line(images, tmp_path, capsys):
    # Adam moves each weight by about lr per step: at 1e30 the activations overflow float32
    # (largest 3.4e38) within a few steps. (At 1e6 the clipped cross-entropy stays finite.)
    run = tmp_path / "run"
    argv = _argv(images, run, "--epochs", "2", "--lr", "1e30")
    argv.remove("--freeze-base")
    assert finetune_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "became nan" in err and "received lr=1e+30" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("cache", [False, True])
def test_sigint_mid_epoch_stops_after_the_batch_and_keeps_the_last_epoch(images, tmp_path, monkeypatch, capsys,
                                                                          cache):
    # Uncached: after epoch 2's first batch. Cached: at the start of epoch 2's one call, which
    # the guard ends at its last batch, before the epoch is backed up.
    run = tmp_path / "run"
    _inject(monkeypatch, AtBatch(1, 0, lambda model: os.kill(os.getpid(), signal.SIGINT), begin=cache))
    before = signal.getsignal(signal.SIGINT)
    assert finetune_cli.main(_argv(images, run, "--epochs", "3", "--cache" if cache else "--no-cache")) == \
        128 + signal.SIGINT
    err = capsys.readouterr().err
    assert err.endswith(f": SIGINT: interrupted in epoch 2; epochs up to 1 are saved; "
                        f"resume with --resume --output {run}\n") and err.count("\n") == 1, err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert _backup(run)[0] == 1
    assert [row["epoch"] for row in runio.read_history(run / runio.HISTORY_FILE)] == [0]


def test_crash_while_the_backup_is_written_keeps_the_previous_one(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    backup = guards.AtomicBackupAndRestore(str(tmp_path), double_checkpoint=True)
    backup.set_model(model)
    backup.on_epoch_end(0)
    good = (tmp_path / "latest.weights.h5").read_bytes()
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 1

    def half_write(filepath, overwrite=True):
        with open(filepath, "wb") as file:
            file.write(good[: len(good) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", half_write)
    with pytest.raises(OSError, match="disk full"):
        backup.on_epoch_end(1)
    assert (tmp_path / "latest.weights.h5").read_bytes() == good
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["latest.weights.h5", "training_metadata.json"]  # no leftovers


def _backed_up_model(folder):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    backup = guards.AtomicBackupAndRestore(str(folder))
    backup.set_model(model)
    backup.on_epoch_end(0)
    return backup


@pytest.mark.parametrize("damage", ["truncated weights", "garbage weights", "cut metadata", "another model"])
def test_a_backup_that_cannot_be_read_stops_resume_with_one_line_naming_it(tmp_path, damage):
    _backed_up_model(tmp_path)
    weights, metadata = tmp_path / "latest.weights.h5", tmp_path / "training_metadata.json"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage weights":
        weights.write_bytes(b"not an h5 file" * 100)
    elif damage == "cut metadata":
        metadata.write_text('{"epoch": ')
    resumed = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3 if damage == "another model" else 1)])
    resumed.compile(optimizer="adam", loss="mse")
    backup = guards.AtomicBackupAndRestore(str(tmp_path))
    backup.set_model(resumed)
    with pytest.raises(KerasNotesError) as caught:
        backup.on_train_begin()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot resume from the backup in {str(tmp_path)!r}")


def test_an_intact_backup_still_resumes(tmp_path):
    saved = _backed_up_model(tmp_path)
    resumed = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    resumed.compile(optimizer="adam", loss="mse")
    backup = guards.AtomicBackupAndRestore(str(tmp_path))
    backup.set_model(resumed)
    backup.on_train_begin()
    assert resumed._initial_epoch == 1
    np.testing.assert_array_equal(resumed.get_weights()[0], saved.model.get_weights()[0])


def test_crash_while_model_keras_is_written_keeps_the_old_model(tmp_path, monkeypatch):
    path = tmp_path / runio.MODEL_FILE
    inputs = keras.Input((2,))
    old = keras.Model(inputs, keras.layers.Dense(1, name="old")(inputs))
    runio.save_model(old, path)
    good = path.read_bytes()

    def half_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(good[:100])
        raise OSError("killed")

    monkeypatch.setattr(keras.Model, "save", half_save)
    with pytest.raises(OSError, match="killed"):
        runio.save_model(keras.Model(inputs, keras.layers.Dense(1, name="new")(inputs)), path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == [runio.MODEL_FILE]
    monkeypatch.undo()
    assert keras.saving.load_model(path).layers[-1].name == "old"


def test_crash_while_class_names_are_written_keeps_the_old_list(tmp_path, monkeypatch):
    path = tmp_path / runio.CLASS_NAMES_FILE
    runio.write_json(path, ["cat", "dog"])
    real_fsync = os.fsync

    def crash(fd):  # the new text is in the temporary file, not yet renamed
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="killed"):
        runio.write_json(path, ["cat", "dog", "eel"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads(path.read_text()) == ["cat", "dog"] and os.listdir(tmp_path) == [runio.CLASS_NAMES_FILE]


@pytest.fixture
def lambda_run(tmp_path):
    """A run folder whose model.keras holds a Lambda layer (code stored in the file)."""
    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((32, 32, 3), name="image")
    scaled = keras.layers.Lambda(lambda x: x / 255.0, name="scale")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(scaled))
    keras.Model(inputs, outputs).save(run / runio.MODEL_FILE)
    runio.write_json(run / runio.CLASS_NAMES_FILE, ["cat", "dog"])
    images = make_image_folder(tmp_path / "images", per_class=1, class_names=("cat", "dog"))
    return run, images


def test_a_lambda_model_is_refused_unless_trusted(lambda_run, capsys):
    run, images = lambda_run
    assert predict_cli.main([str(run), images]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a Lambda layer" in err and "--unsafe-load" in err, err
    assert str(run / runio.MODEL_FILE) in err

    assert predict_cli.main([str(run), images, "--unsafe-load", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 and all(sum(p["probability"] for p in r["predictions"]) == pytest.approx(1)
                                     for r in results)


def test_messages_when_no_epoch_has_completed():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.5), loss="mse")
    guard = guards.TrainingGuard("runs/x")
    guard.set_model(model)
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": 0.3})  # finite: nothing happens
    with pytest.raises(guards.TrainingDiverged) as caught:
        guard.on_train_batch_end(1, {"loss": float("inf")})
    assert str(caught.value) == ("loss became inf in epoch 1, batch 2; training stopped and no epoch had "
                                 "completed, so there is no checkpoint; try a lower learning rate (received lr=0.5)")
    assert caught.value.exit_status == 1
    guard.signum = signal.SIGTERM
    with pytest.raises(guards.TrainingInterrupted) as caught:
        guard.on_test_batch_end(0)
    assert str(caught.value) == ("SIGTERM: interrupted in epoch 1; no epoch had completed; "
                                 "resume with --resume --output runs/x")
    assert caught.value.exit_status == 128 + 15

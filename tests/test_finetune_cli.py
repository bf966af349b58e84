"""The finetune command line: flags generated from the config, errors as one line, a whole run."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from finetune_images import make_image_folder
from keras_notes.cli import finetune as cli
from keras_notes.finetune import runio
from keras_notes.finetune.config import FinetuneConfig
from keras_notes.finetune.data import load_splits, make_dataset


def test_every_config_field_has_a_flag_with_its_default():
    parser = cli.build_parser()
    actions = {action.dest: action for action in parser._actions}
    for field in dataclasses.fields(FinetuneConfig):
        assert field.name in actions, field.name
        assert actions[field.name].help, field.name
        if field.name != "data_dir":
            assert actions[field.name].default == field.default, field.name


def test_parsed_values_have_the_config_types():
    config = cli.parse_args(["imgs", "--weights", "none", "--image-size", "48", "--augment", "flip", "zoom",
                             "--fine-tune-epochs", "2", "--unfreeze-top-n", "6", "--no-freeze-base",
                             "--verbose", "2"])
    assert config == FinetuneConfig("imgs", weights=None, image_size=48, augment=("flip", "zoom"),
                                    fine_tune_epochs=2, unfreeze_top_n=6, freeze_base=False, verbose=2)
    assert cli.parse_args(["imgs"]) == FinetuneConfig("imgs")


def test_paths_are_kept_as_strings(tmp_path):
    config = FinetuneConfig(tmp_path / "imgs", output=tmp_path / "run", weights=tmp_path / "base.weights.h5")
    assert config.data_dir == str(tmp_path / "imgs") and isinstance(config.output, str)
    json.dumps(config.to_dict())


def test_a_config_json_written_before_the_head_fields_still_loads():
    values = cli.parse_args(["imgs"]).resolve().to_dict()
    del values["hidden_units"], values["label_smoothing"]  # an older run folder's config.json
    config = FinetuneConfig.from_dict(values)
    assert (config.hidden_units, config.label_smoothing) == (0, 0.0)


def test_resolved_config_round_trips_through_json():
    config = cli.parse_args(["imgs", "--augment", "rotation", "--fine-tune-epochs", "1"]).resolve()
    assert config.image_size == 224 and config.freeze_base is True and config.fine_tune_lr == pytest.approx(1e-4)
    assert config.output.startswith("runs" + os.sep)
    assert FinetuneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("argv, message", [
    (["imgs", "--epochs", "0"], "epochs must be an integer of at least 1; received epochs=0"),
    (["imgs", "--image-size", "16"], "received image_size=16"),
    (["imgs", "--arch", "alexnet"], "unknown arch 'alexnet'"),
    (["imgs", "--val-split", "1.5"], "received val_split=1.5"),
    (["imgs", "--lr", "-1"], "received lr=-1.0"),
    (["imgs", "--dropout", "1"], "received dropout=1.0"),
    (["imgs", "--hidden-units", "-8"], "received hidden_units=-8"),
    (["imgs", "--label-smoothing", "-0.1"], "received label_smoothing=-0.1"),
    (["imgs", "--label-smoothing", "1"], "received label_smoothing=1.0"),
    (["imgs", "--resume"], "resume=True, output=None"),
    (["imgs", "--unfreeze-top-n", "4"], "fine_tune_epochs > 0"),
    (["imgs", "--fine-tune-epochs", "1", "--unfreeze-top-n", "4", "--unfreeze-from", "conv_pw_13"], "not both"),
    (["/no/such/folder"], "image folder not found: '/no/such/folder'"),
    (["imgs", "--weights", "/no/such/base.weights.h5"], "weights file not found"),
])
def test_bad_invocations_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "imgs", per_class=2)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_batch_that_does_not_split_among_replicas_is_refused(capsys, tmp_path, monkeypatch):
    class TwoReplicas:
        num_replicas_in_sync = 2

    monkeypatch.setattr("keras_notes.finetune.train.make_strategy", lambda name: TwoReplicas())
    images = make_image_folder(tmp_path / "imgs", per_class=2)
    assert cli.main([images, "--batch-size", "5", "--output", str(tmp_path / "run")]) == 2
    assert "multiple of the 2 replicas; received batch_size=5 (try 4)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


@pytest.mark.slow
def test_whole_command_line_run(tmp_path, capsys):
    images = make_image_folder(tmp_path / "imgs", per_class=5)
    run = tmp_path / "run"
    argv = [images, "--arch", "mobilenet", "--weights", "none", "--image-size", "32", "--batch-size", "4",
            "--epochs", "1", "--fine-tune-epochs", "1", "--unfreeze-top-n", "6", "--augment", "flip", "rotation",
            "zoom", "--output", str(run), "--verbose", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "weights=None: the base starts from random weights and is trained with the head" in out
    assert "validation accuracy" in out

    for name in (runio.MODEL_FILE, runio.CLASS_NAMES_FILE, runio.CONFIG_FILE, runio.SKIPPED_FILE,
                 runio.HISTORY_FILE, runio.EVALUATION_FILE, runio.CONFUSION_FILE, runio.CURVES_FILE):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert os.listdir(run / runio.LOG_DIR)
    assert sorted(os.listdir(run / runio.CHECKPOINT_DIR)) == ["phase1", "phase2"]
    assert not [name for name in os.listdir(run) if name.startswith(".")]  # no temporary left behind

    saved = FinetuneConfig.from_dict(runio.read_json(run / runio.CONFIG_FILE))
    # The resolved values, written out: the flags given, plus what resolving them must make of
    # the None defaults on a CPU-only machine with one device.
    expected = dict(data_dir=images, output=str(run), verbose=2, arch="mobilenet", weights=None, image_size=32,
                    batch_size=4, epochs=1, fine_tune_epochs=1, unfreeze_top_n=6,
                    augment=("flip", "rotation", "zoom"),
                    freeze_base=False,  # random weights: nothing in the base to keep
                    cache=False,  # augmentation changes the frozen part's input every epoch
                    strategy="default", precision="float32")  # no GPU
    assert saved.fine_tune_lr == pytest.approx(1e-4)  # lr / 10, lr at its default 1e-3
    for field in dataclasses.fields(FinetuneConfig):  # every other field keeps its declared default
        value = expected.get(field.name, field.default) if field.name != "fine_tune_lr" else saved.fine_tune_lr
        assert getattr(saved, field.name) == value, field.name
    assert runio.read_json(run / runio.CLASS_NAMES_FILE) == ["cat", "dog", "eel"]
    history = runio.read_history(run / runio.HISTORY_FILE)
    assert [row["epoch"] for row in history] == [0, 1]

    # model.keras loads with safe_mode on, and evaluation.json is what it scores on the validation split.
    model = keras.saving.load_model(run / runio.MODEL_FILE, safe_mode=True)
    val = load_splits(images, val_split=saved.val_split, seed=saved.seed).val
    predicted = np.argmax(model.predict(make_dataset(val, 32, 4), verbose=0), axis=1)
    evaluation = runio.read_json(run / runio.EVALUATION_FILE)
    assert evaluation["accuracy"] == pytest.approx(np.mean(predicted == np.asarray(val.labels)))
    assert np.sum(evaluation["confusion_matrix"]) == len(val) == 3  # round(5 * 0.2) = 1 per class

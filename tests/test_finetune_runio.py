"""The run folder: atomic writes, the history file, and the checks that guard --resume."""

import os

import pytest

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.config import FinetuneConfig


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "class_names.json"
    runio.write_json(path, ["a", "b"])
    runio.write_json(path, ["c", "d", "e"])
    assert runio.read_json(path) == ["c", "d", "e"]
    assert os.listdir(tmp_path) == ["class_names.json"]


def test_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    # A resumed run re-trained epoch 1 after a crash that logged it but did not back it up;
    # the last line was cut short by a second crash.
    path.write_text("epoch,loss\n0,2.0\n1,1.5\nepoch,loss\n1,1.25\n2,1.0\n3,")
    rows = runio.read_history(path)
    assert [(row["epoch"], row["loss"]) for row in rows] == [(0, 2.0), (1, 1.25), (2, 1.0), (3, "")]
    runio.write_history(path, rows[:3])
    assert path.read_text() == "epoch,loss\n0,2.0\n1,1.25\n2,1.0\n"


def test_new_run_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "model.keras").write_text("x")
    with pytest.raises(KerasNotesError, match="--resume"):
        runio.prepare_run_dir(tmp_path)


def test_resume_needs_an_earlier_run(tmp_path):
    with pytest.raises(KerasNotesError, match="nothing to resume"):
        runio.prepare_run_dir(tmp_path, resume=True)


def test_unwritable_run_folder_is_one_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KerasNotesError, match="cannot write the run folder"):
        runio.prepare_run_dir(blocker / "run")


def _earlier_run(run_dir, epochs=2, history_rows=2, **changes):
    config = FinetuneConfig("data", arch="vgg16", image_size=32, epochs=epochs, output=str(run_dir), **changes)
    runio.write_json(run_dir / runio.CONFIG_FILE, config.to_dict())
    runio.write_json(run_dir / runio.CLASS_NAMES_FILE, ["a", "b"])
    runio.write_history(run_dir / runio.HISTORY_FILE, [{"epoch": e, "loss": 1.0} for e in range(history_rows)])
    return config


def test_resume_refuses_other_arch_size_or_classes(tmp_path):
    config = _earlier_run(tmp_path)
    runio.check_resume(tmp_path, config, ["a", "b"])  # the same request is fine
    with pytest.raises(KerasNotesError, match="arch 'vgg16' -> 'mobilenet'"):
        runio.check_resume(tmp_path, FinetuneConfig("data", arch="mobilenet", image_size=32), ["a", "b"])
    with pytest.raises(KerasNotesError, match="image_size 32 -> 64"):
        runio.check_resume(tmp_path, FinetuneConfig("data", arch="vgg16", image_size=64), ["a", "b"])
    with pytest.raises(KerasNotesError, match=r"class names \['a', 'b'\] -> \['a', 'c'\]"):
        runio.check_resume(tmp_path, config, ["a", "c"])
    with pytest.raises(KerasNotesError, match="hidden_units 0 -> 64"):  # the head's weights would not fit
        runio.check_resume(tmp_path, FinetuneConfig("data", arch="vgg16", image_size=32, hidden_units=64),
                           ["a", "b"])
    # A run folder written before hidden_units existed reads as hidden_units=0 and resumes.
    values = runio.read_json(tmp_path / runio.CONFIG_FILE)
    del values["hidden_units"], values["label_smoothing"]
    runio.write_json(tmp_path / runio.CONFIG_FILE, values)
    runio.check_resume(tmp_path, config, ["a", "b"])


def test_resume_may_extend_phase_1_but_not_shrink_it(tmp_path):
    _earlier_run(tmp_path, epochs=2, history_rows=2)
    runio.check_resume(tmp_path, FinetuneConfig("data", arch="vgg16", image_size=32, epochs=4), ["a", "b"])
    with pytest.raises(KerasNotesError, match="2 epochs are already trained"):
        runio.check_resume(tmp_path, FinetuneConfig("data", arch="vgg16", image_size=32, epochs=1), ["a", "b"])


def test_resume_cannot_change_phase_1_once_phase_2_began(tmp_path):
    _earlier_run(tmp_path, epochs=2, history_rows=3, fine_tune_epochs=2)  # 2 + 1 epochs trained
    with pytest.raises(KerasNotesError, match="phase 2 has begun after 2 phase 1 epochs"):
        runio.check_resume(tmp_path, FinetuneConfig("data", arch="vgg16", image_size=32, epochs=3,
                                                    fine_tune_epochs=2), ["a", "b"])


def test_saved_model_is_the_uncompiled_whole_model_with_the_trained_weights(tmp_path):
    # save_model wraps the model's own graph in a new, uncompiled functional model. The file
    # must hold what rebuilding the model from its config held: the same config, no optimizer
    # (Adam's moments would triple it), the same weights; and the trained model stays compiled.
    import json
    import zipfile

    import keras
    import numpy as np

    from keras_notes.finetune.models import build_model
    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(0)
    model = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True, hidden_units=4)
    compile_model(model, 1e-3)
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0])
    model.fit(images, labels, epochs=1, verbose=0)  # Adam now has moments the file must not carry
    path = runio.save_model(model, str(tmp_path / runio.MODEL_FILE))

    rebuilt = keras.Model.from_config(model.get_config())  # the copy save_model used to write
    rebuilt.save(tmp_path / "rebuilt.keras")

    def saved_config(path):
        # Saving the model itself marks the dtype policy its layers share with a
        # "shared_object_id"; a rebuilt copy has one policy per layer. Nothing else may differ.
        def strip(value):
            if isinstance(value, dict):
                return {key: strip(item) for key, item in value.items() if key != "shared_object_id"}
            return [strip(item) for item in value] if isinstance(value, list) else value

        with zipfile.ZipFile(path) as archive:
            return strip(json.loads(archive.read("config.json")))

    assert saved_config(path) == saved_config(tmp_path / "rebuilt.keras")
    assert saved_config(path)["compile_config"] == {}  # not compiled: load_model compiles nothing
    os.remove(tmp_path / "rebuilt.keras")
    loaded = keras.saving.load_model(path)
    assert not loaded.compiled and getattr(loaded, "optimizer", None) is None
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    for mine, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=0, atol=0)
    assert model.compiled and model.optimizer.iterations.numpy() == 1
    assert os.listdir(tmp_path) == [runio.MODEL_FILE]

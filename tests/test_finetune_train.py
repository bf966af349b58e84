"""Two-phase training: what each phase may change, and resuming a run."""

import keras
import numpy as np
import pytest

from finetune_images import calibrated_base_weights, make_image_folder, tiny_config
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio, train
from keras_notes.finetune.archs import get_arch
from keras_notes.finetune.data import load_splits

BATCH = 4


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=5)


def _config(images, output, **changes):
    return tiny_config(images, output, **{"batch_size": BATCH, "epochs": 1, **changes})


def _steps_per_epoch(images):
    return len(load_splits(images, val_split=0.2, seed=1337).train) // BATCH  # 12 images -> 3


def _base_weights(model):
    return {weight.path: weight.numpy().copy() for weight in model.get_layer("base").weights}


def _head_weights(model):
    return [weight.numpy().copy() for weight in model.get_layer("predictions").weights]


@pytest.mark.slow
@pytest.mark.parametrize("cache", [False, True])
def test_phase_1_changes_only_the_head_and_phase_2_only_the_unfrozen_layers(images, tmp_path, monkeypatch, cache):
    # Uncached, phase 1 fits the whole model on images, so the frozen base (its batch norm in
    # inference mode) is what keeps its weights and moving statistics still. Cached, phase 1
    # fits the head alone on the base's kept outputs, and phase 2 the layers above its cut.
    # A base "pretrained" by the test: random MobileNet weights whose batch-norm statistics
    # are set to the real ones on these images (so that activations neither vanish nor
    # saturate the ReLU6s and gradients reach the unfrozen layers), saved to a local file.
    weights_file = calibrated_base_weights(images, tmp_path / "base.weights.h5", batch_size=BATCH)
    snapshots, heads, kept = [], [], []
    original = train.run_phase

    def recording_run_phase(model, *args, **kwargs):
        if not snapshots:
            snapshots.append(_base_weights(model))  # before any training
            heads.append(_head_weights(model))
        cached = original(model, *args, **kwargs)
        kept.append(cached is not None)
        snapshots.append(_base_weights(model))
        heads.append(_head_weights(model))
        return cached

    monkeypatch.setattr(train, "run_phase", recording_run_phase)
    result = train.finetune_one_machine(_config(images, tmp_path / "run", weights=weights_file, freeze_base=None,
                                                lr=1e-2, fine_tune_epochs=1, unfreeze_top_n=6, cache=cache))
    assert result.config.cache is cache and kept == [cache, cache]  # the path named is the path taken
    before, after_1, after_2 = snapshots
    for head_before, head_after in zip(heads[0], heads[1]):  # phase 1 trained: the head moved
        assert not np.array_equal(head_before, head_after)

    # The base built from the file holds exactly the file's weights.
    reference = get_arch("mobilenet").base(weights=weights_file, image_size=32)
    np.testing.assert_array_equal(reference.get_layer("conv1").kernel.numpy(),
                                  before["conv1/kernel"])

    moving = [path for path in before if "moving_" in path]
    assert len(moving) == 2 * 27  # MobileNet: 27 batch-norm layers, each a moving mean and variance
    for path in before:  # phase 1: nothing in the base moves, moving statistics included
        np.testing.assert_array_equal(before[path], after_1[path], err_msg=path)

    # Phase 2 unfroze the top 6 layers: conv_dw_13, its batch norm and ReLU, conv_pw_13,
    # its batch norm and ReLU. The two convolutions train; batch norm stays frozen.
    changed = {path for path in before if not np.array_equal(after_1[path], after_2[path])}
    assert changed == {"conv_dw_13/kernel", "conv_pw_13/kernel"}


def _record_optimizer_steps(monkeypatch):
    """Make train_phase append the optimizer's step count after each phase to the returned list."""
    steps = []
    original = train.train_phase

    def recording_train_phase(model, *args, **kwargs):
        history = original(model, *args, **kwargs)
        steps.append(int(model.optimizer.iterations.numpy()))
        return history

    monkeypatch.setattr(train, "train_phase", recording_train_phase)
    return steps


@pytest.mark.slow
def test_resume_extends_a_finished_run_with_its_optimizer_state(images, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train.finetune_one_machine(_config(images, run, epochs=1))
    steps = _record_optimizer_steps(monkeypatch)
    result = train.finetune_one_machine(_config(images, run, epochs=2, resume=True))
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert [row["epoch"] for row in runio.read_history(run / runio.HISTORY_FILE)] == [0, 1]
    # Adam counted the steps of both runs: its state came back with the backup.
    assert steps == [2 * _steps_per_epoch(images)]
    assert not keras.saving.load_model(run / runio.MODEL_FILE).compiled  # saved without optimizer state


class Interrupt(keras.callbacks.Callback):
    """Stops the run as a kill would, at the start of epoch ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt(f"interrupted at epoch {epoch}")


@pytest.mark.slow
def test_resume_after_an_interruption_continues_from_the_last_completed_epoch(images, tmp_path, monkeypatch):
    run = tmp_path / "run"
    original = train.phase_callbacks
    monkeypatch.setattr(train, "phase_callbacks", lambda *args, **kwargs: original(*args, **kwargs) + [Interrupt(2)])
    two_phases = dict(epochs=3, fine_tune_epochs=1, unfreeze_top_n=6)
    with pytest.raises(KeyboardInterrupt):
        train.finetune_one_machine(_config(images, run, **two_phases))
    first = runio.read_history(run / runio.HISTORY_FILE)
    assert [row["epoch"] for row in first] == [0, 1]
    assert not (run / runio.MODEL_FILE).exists()

    monkeypatch.setattr(train, "phase_callbacks", original)
    steps = _record_optimizer_steps(monkeypatch)
    result = train.finetune_one_machine(_config(images, run, resume=True, **two_phases))
    # Phase 1 picks up at epoch 2 (0-based); phase 2 then runs epoch 3 alone, not from epoch 2.
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3]
    assert [row["seconds"] for row in result.history[:2]] == [row["seconds"] for row in first]  # not re-run
    steps_per_epoch = _steps_per_epoch(images)
    assert steps == [3 * steps_per_epoch, 1 * steps_per_epoch]  # phase 2 recompiles: a new Adam


def test_resume_refuses_another_arch_before_training(images, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    runio.write_json(run / runio.CONFIG_FILE, _config(images, run).resolve().to_dict())
    runio.write_json(run / runio.CLASS_NAMES_FILE, ["cat", "dog", "eel"])
    with pytest.raises(KerasNotesError, match="arch 'mobilenet' -> 'vgg16'"):
        train.finetune_one_machine(_config(images, run, arch="vgg16", resume=True))
    with pytest.raises(KerasNotesError, match="class names"):
        runio.write_json(run / runio.CLASS_NAMES_FILE, ["cat", "dog", "fox"])
        train.finetune_one_machine(_config(images, run, resume=True))


def test_verbosity_follows_the_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert train.resolve_verbose("auto") == 1
    monkeypatch.setenv("CI", "true")
    assert train.resolve_verbose("auto") == 2
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert train.resolve_verbose("auto") == 2
    assert train.resolve_verbose(0) == 0


def _event_tags(folder):
    """``(subfolder, tag, step)`` of every summary the event files under ``folder`` hold."""
    import tensorflow as tf

    found = set()
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.add((path.parent.name, value.tag, event.step))
    return found


def test_epoch_tensorboard_writes_what_the_stock_callback_writes(tmp_path):
    # The stock callback calls summary.scalar for each batch's logs, which writes nothing at
    # update_freq="epoch"; the subclass skips those calls. Both fits must leave the same
    # summaries: the epoch scalars of both writers, the evaluation-vs-iterations ones and the graph.
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(24, 8)).astype("float32"), rng.integers(0, 2, 24)
    written = {}
    for name, board in (("stock", keras.callbacks.TensorBoard), ("epoch", train.EpochTensorBoard)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
        train.compile_model(model, 1e-2)
        model.fit(features, labels, validation_split=0.25, batch_size=6, epochs=2, verbose=0,
                  callbacks=[board(str(tmp_path / name))])
        written[name] = _event_tags(tmp_path / name)
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "evaluation_loss_vs_iterations"} <= \
        {tag for _, tag, _ in written["stock"]}
    assert written["epoch"] == written["stock"]


def test_epoch_tensorboard_still_logs_batches_when_asked(tmp_path):
    # At update_freq=1 the batch logs are written: the subclass must pass them through.
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    train.compile_model(model, 1e-2)
    model.fit(rng.normal(size=(12, 8)).astype("float32"), rng.integers(0, 2, 12), batch_size=6, epochs=1, verbose=0,
              callbacks=[train.EpochTensorBoard(str(tmp_path / "logs"), update_freq=1)])
    assert {("train", "batch_loss", 1), ("train", "batch_loss", 2)} <= _event_tags(tmp_path / "logs")

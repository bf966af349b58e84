"""Multi-worker training: batches and shards, the custom loop, and real workers on 127.0.0.1.

The TF_CONFIG bookkeeping is tested in ``test_cluster.py``, the launcher in
``test_launcher.py``. The slow tests here start real ``MultiWorkerMirroredStrategy`` workers (``tests/mw_worker.py``)
through the launcher and compare their weights with an independent computation: the
same model trained by Keras's own ``model.fit`` in this process on the same global
batches. Every subprocess runs under a timeout, and every address is 127.0.0.1.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import cluster
from keras_notes.finetune.multiworker_data import epoch_order, steps_per_epoch

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
WORKER = os.path.join(TESTS, "mw_worker.py")
LAUNCHER = os.path.join(REPO, "scripts", "launch_local_workers.py")
CLASSES, PER_CLASS, SIZE = 3, 18, 16
GLOBAL_BATCH, EPOCHS, LR = 8, 3, 0.05
RUN_TIMEOUT = 240  # seconds for one launcher run; two workers took 35-45 s on 2 busy cores


# --- the finetune driver's refusals and its evaluation ---------------------------------------

def test_multi_worker_finetune_needs_tf_config_and_an_output_folder(tmp_path, monkeypatch):
    from keras_notes.finetune.config import FinetuneConfig
    from keras_notes.finetune.multiworker_finetune import finetune_multi_worker

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KerasNotesError, match="TF_CONFIG"):
        finetune_multi_worker(FinetuneConfig(data_dir=str(tmp_path), output=str(tmp_path / "run")))
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster.make_tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)))
    with pytest.raises(KerasNotesError, match="needs --output"):  # runs/<timestamp> would differ per worker
        finetune_multi_worker(FinetuneConfig(data_dir=str(tmp_path)))
    # Refused before the strategy exists: the custom loop's steps use the plain sparse loss.
    with pytest.raises(KerasNotesError, match="does not apply label smoothing; .* received label_smoothing=0.1"):
        finetune_multi_worker(FinetuneConfig(data_dir=str(tmp_path), output=str(tmp_path / "run"),
                                             label_smoothing=0.1))


def test_the_evaluation_report_comes_from_the_summed_confusion_matrix():
    from keras_notes.finetune.evaluate import evaluation_report
    from keras_notes.finetune.multiworker_finetune import _report_from_confusion

    # 2 + 1 images of class 0 (one predicted as 1), 3 of class 1: accuracy 5/6.
    report = _report_from_confusion([[2, 1], [0, 3]], ("a", "b"))
    assert report == evaluation_report([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], ("a", "b"))
    assert report["confusion_matrix"] == [[2, 1], [0, 3]] and report["accuracy"] == pytest.approx(5 / 6)


# --- batches and shards ----------------------------------------------------------------------

def test_steps_per_epoch_drops_the_remainder():
    assert steps_per_epoch(42, 8) == 5  # 42 = 5 * 8 + 2: the last 2 of the epoch's order are dropped
    with pytest.raises(KerasNotesError, match="7 training images"):
        steps_per_epoch(7, 8)


def test_epoch_order_depends_only_on_seed_and_epoch():
    first = [epoch_order(42, 7, epoch) for epoch in range(3)]
    assert all(sorted(order) == list(range(42)) for order in first)
    assert not np.array_equal(first[0], first[1])  # a new order each epoch...
    assert all(np.array_equal(a, epoch_order(42, 7, e)) for e, a in enumerate(first))  # ...the same on resume
    assert np.array_equal(epoch_order(5, 7, 0, shuffle=False), np.arange(5))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes x 18 noisy 16x16 PNGs: class c has +60 in channel c over uniform noise in [0, 160)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images") / "digits"
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        os.makedirs(root / f"class{label}")
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 160, size=(SIZE, SIZE, 3))
            pixels[:, :, label] += 60
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{label}" / f"{i:02d}.png")
    return str(root)


@pytest.mark.slow
def test_worker_shards_form_the_single_process_global_batches(image_folder):
    """Two workers' k-th batches together are exactly positions [8k, 8k + 8) of the epoch's order."""
    import tensorflow as tf

    from keras_notes.finetune.data import FileList
    from keras_notes.finetune.multiworker_data import dataset_fn

    png = os.path.join(image_folder, "class0", "00.png")
    n = 21  # labels carry the position, so each batch shows which files it holds
    files = FileList((png,) * n, tuple(range(n)), (False,) * n)
    index = np.concatenate([np.arange(n), np.zeros(3, int)])  # padded to 24 = 3 global batches of 8
    weights = np.arange(24) < n
    batches = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
        dataset = dataset_fn(files, index, weights, 8, SIZE)(context)
        assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.OFF
        batches.append([(labels.numpy().tolist(), w.numpy().tolist()) for _, labels, w in dataset])
    assert [len(b) for b in batches] == [3, 3]  # the same number of steps on each worker
    for k in range(3):
        (labels0, w0), (labels1, w1) = batches[0][k], batches[1][k]
        assert len(labels0) == len(labels1) == 4  # per-replica batch = 8 / 2
        positions = [p for p, w in zip(labels0 + labels1, w0 + w1) if w]  # padding carries weight 0
        assert sorted(positions) == [p for p in range(8 * k, 8 * k + 8) if p < n]


# --- the loop in one process (default strategy) ----------------------------------------------

def train_here(image_folder, output, epochs, fine_tune_epochs=0, callbacks=(), freeze_conv=False):
    """``train_multi_worker`` in this process on the tiny model: -> (result, log lines)."""
    import keras

    from keras_notes.finetune.data import load_splits
    from keras_notes.finetune.multiworker import train_multi_worker

    sys.path.insert(0, TESTS)
    import mw_worker

    splits = load_splits(image_folder, val_split=mw_worker.VAL_SPLIT, seed=mw_worker.SEED)

    def build():
        model = mw_worker.build_tiny_model(CLASSES, SIZE)
        model.get_layer("conv").trainable = not freeze_conv
        return model

    def unfreeze(model):
        model.get_layer("conv").trainable = True

    lines = []
    result = train_multi_worker(build, splits.train, splits.val, CLASSES, SIZE, GLOBAL_BATCH, epochs, 0.01,
                                output, seed=mw_worker.SEED, fine_tune_epochs=fine_tune_epochs, fine_tune_lr=0.01,
                                unfreeze_fn=unfreeze, callbacks=callbacks, log=lines.append,
                                optimizer_fn=lambda rate: keras.optimizers.Adam(rate))
    return result, lines


@pytest.mark.slow
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(image_folder, tmp_path):
    """Train 1 epoch, then ask for 2 in the same folder: the second call restores epoch 1 (weights,
    Adam's moments, history) and trains epoch 2 on that epoch's order; the weights match a 2-epoch run."""
    import keras

    class Epochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ended = []

        def on_epoch_end(self, epoch, logs=None):
            self.ended.append((epoch, sorted(logs)))

    straight, _ = train_here(image_folder, tmp_path / "straight", 2)
    train_here(image_folder, tmp_path / "resumed", 1)
    seen = Epochs()
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))  # needs model.optimizer: the loop compiles
    resumed, lines = train_here(image_folder, tmp_path / "resumed", 2, callbacks=[seen, board])
    assert resumed.initial_epoch == 1 and lines[0].startswith("resuming from epoch 1 ")
    assert seen.ended == [(1, ["accuracy", "loss", "seconds", "val_accuracy", "val_loss"])]
    assert os.listdir(tmp_path / "logs" / "train") and os.listdir(tmp_path / "logs" / "validation")
    assert_same_weights(resumed.model.get_weights(), straight.model.get_weights(), atol=1e-6)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in straight.history]
    history_csv = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert len(history_csv) == 3 and history_csv[0].startswith("epoch,")
    assert resumed.confusion is not None and resumed.confusion.sum() == validation_count(image_folder)


@pytest.mark.slow
def test_phase_two_unfreezes_and_resumes_at_the_phase_boundary(image_folder, tmp_path):
    """Phase 1 leaves the frozen conv layer alone; phase 2 trains it with a new optimizer. A run stopped
    after phase 1 and resumed into phase 2 (phase 1's checkpoint, then the switch) matches an uninterrupted one."""
    straight, _ = train_here(image_folder, tmp_path / "straight", 1, fine_tune_epochs=1, freeze_conv=True)
    phase1, _ = train_here(image_folder, tmp_path / "resumed", 1, freeze_conv=True)
    conv_after_phase1 = phase1.model.get_layer("conv").get_weights()[0]
    resumed, lines = train_here(image_folder, tmp_path / "resumed", 1, fine_tune_epochs=1, freeze_conv=True)
    assert lines[0].startswith("resuming from epoch 1 ") and len(resumed.history) == 2
    import keras

    keras.utils.set_random_seed(7)
    sys.path.insert(0, TESTS)
    import mw_worker

    initial_conv = mw_worker.build_tiny_model(CLASSES, SIZE).get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(conv_after_phase1, initial_conv)  # frozen in phase 1
    assert np.abs(resumed.model.get_layer("conv").get_weights()[0] - initial_conv).max() > 1e-3  # trained in 2
    assert_same_weights(resumed.model.get_weights(), straight.model.get_weights(), atol=1e-6)


# --- real workers on 127.0.0.1 ---------------------------------------------------------------

def fit_reference(image_folder, optimizer="sgd", lr=LR, epochs=EPOCHS):
    """``(initial, final)`` weights of Keras's own ``model.fit`` on the same global batches and start.

    Each epoch fits the epoch's order (``epoch_order``, remainder dropped) with
    ``shuffle=False`` and ``batch_size=GLOBAL_BATCH``, so batch k is the union of the two
    workers' k-th batches. Images are decoded here with PIL, independently of the pipeline.
    """
    import keras
    from PIL import Image

    from keras_notes.finetune.data import load_splits

    sys.path.insert(0, TESTS)
    import mw_worker

    train = load_splits(image_folder, val_split=mw_worker.VAL_SPLIT, seed=mw_worker.SEED).train
    images = np.stack([np.asarray(Image.open(path).convert("RGB"), np.float32) for path in train.paths])
    labels = np.asarray(train.labels, np.int32)
    keras.utils.set_random_seed(mw_worker.SEED)
    model = mw_worker.build_tiny_model(CLASSES, SIZE)
    initial = model.get_weights()
    model.compile(mw_worker.make_optimizer(optimizer, lr), "sparse_categorical_crossentropy", jit_compile=False)
    steps = steps_per_epoch(len(labels), GLOBAL_BATCH)
    for epoch in range(epochs):
        order = epoch_order(len(labels), mw_worker.SEED, epoch)[:steps * GLOBAL_BATCH]
        model.fit(images[order], labels[order], batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return initial, model.get_weights()


def validation_count(image_folder):
    from keras_notes.finetune.data import load_splits

    sys.path.insert(0, TESTS)
    import mw_worker

    return len(load_splits(image_folder, val_split=mw_worker.VAL_SPLIT, seed=mw_worker.SEED).val)


def worker_args(image_folder, run, *extra, lr=LR):
    return [sys.executable, WORKER, image_folder, str(run / "out"), str(run / "results"),
            "--epochs", str(EPOCHS), "--batch", str(GLOBAL_BATCH), "--lr", str(lr), *extra]


def load_weights(run, worker):
    with np.load(run / "results" / f"weights-{worker}.npz") as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def assert_same_weights(actual, expected, atol=1e-5):
    assert [a.shape for a in actual] == [e.shape for e in expected]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=atol)


@pytest.fixture(scope="module")
def reference(image_folder):
    return fit_reference(image_folder)


@pytest.mark.slow
def test_two_workers_match_one_process_and_model_fit(image_folder, reference, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    launcher = subprocess.Popen([sys.executable, LAUNCHER, "-n", "2", "--max-restarts", "0", "--timeout",
                                 str(RUN_TIMEOUT), "--command", "--", *worker_args(image_folder, two)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = subprocess.run(worker_args(image_folder, one), env=env, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    output, _ = launcher.communicate(timeout=RUN_TIMEOUT + 30)
    assert single.returncode == 0, single.stdout + single.stderr
    assert launcher.returncode == 0, output

    workers = [load_weights(two, 0), load_weights(two, 1)]
    assert_same_weights(workers[1], workers[0], atol=0)  # mirrored replicas: identical
    assert_same_weights(workers[0], load_weights(one, 0))  # one process, same global batches
    initial, final = reference
    assert_same_weights(workers[0], final)  # Keras's fit, independently
    moved = max(np.abs(w - i).max() for w, i in zip(workers[0], initial))
    assert moved > 1e-2  # training did change the weights, so the comparison means something

    histories = [json.loads((two / "results" / f"history-{w}.json").read_text()) for w in (0, 1)]
    without_time = [[{k: v for k, v in row.items() if k != "seconds"} for row in h["history"]] for h in histories]
    assert without_time[0] == without_time[1] and len(without_time[0]) == EPOCHS
    assert np.asarray(histories[0]["confusion"]).sum() == validation_count(image_folder)  # each image once
    assert [h["is_chief"] for h in histories] == [True, False]
    # Only the chief wrote the run folder; worker 1's temporary folder is gone.
    assert sorted(os.listdir(two)) == ["out", "results"]
    assert sorted(os.listdir(two / "out")) == ["checkpoints", "history.csv", "model.keras"]
    assert sorted(os.listdir(two / "out" / "checkpoints" / "multi-worker")) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index", "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert len((two / "out" / "history.csv").read_text().splitlines()) == 1 + EPOCHS
    assert re.search(r"^\[worker 1\] epoch 3/3 - loss", output, re.MULTILINE)


@pytest.mark.slow
def test_a_killed_worker_restarts_with_its_group_and_the_run_finishes(image_folder, tmp_path):
    """Kill worker 1 once both workers have checkpointed epoch 1: the launcher restarts both, they resume
    at epoch 1, and the weights end where an uninterrupted run's do (Adam: its moments are restored too)."""
    run, lr = tmp_path / "killed", 0.01
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    command = [sys.executable, LAUNCHER, "-n", "2", "--max-restarts", "1", "--timeout", str(RUN_TIMEOUT),
               "--grace", "1", "--command", "--",
               *worker_args(image_folder, run, "--optimizer", "adam", "--sleep", "2", lr=lr)]
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, pids, seen = [], {}, {}

    def watch():
        for line in launcher.stdout:
            lines.append(line.rstrip("\n"))
            started = re.match(r"\[launcher\] worker (\d) started, pid (\d+)", line)
            if started:
                pids[int(started[1])] = int(started[2])
            logged = re.match(r"\[worker (\d)\] epoch 1/3", line)
            if logged and "killed" not in seen:
                seen[int(logged[1])] = True
                if 0 in seen and 1 in seen:
                    # Both have saved epoch 1 (worker 1 in its own temporary folder) and pause 2 s
                    # after logging it, so neither has begun epoch 2's collectives alone.
                    worker_checkpoints = run / ".out.worker-1.tmp" / "checkpoints" / "multi-worker"
                    seen["checkpoint"] = (worker_checkpoints / "ckpt-1.index").exists()
                    os.kill(pids[1], signal.SIGKILL)
                    seen["killed"] = True

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        launcher.wait(timeout=RUN_TIMEOUT + 30)
    finally:
        if launcher.poll() is None:  # the launcher's own --timeout should have ended it first
            launcher.kill()
            for pid in pids.values():  # workers run in sessions of their own
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    watcher.join(timeout=10)
    output = "\n".join(lines)
    assert launcher.returncode == 0, output
    assert seen.get("checkpoint") is True, output
    assert "[launcher] worker 1 was killed by signal 9; stopping the others" in lines
    assert "[launcher] restarting all 2 workers (restart 1 of at most 1)" in lines
    for worker in (0, 1):
        assert re.search(rf"^\[worker {worker}\] resuming from epoch 1 ", output, re.MULTILINE), output
        result = json.loads((run / "results" / f"history-{worker}.json").read_text())
        assert result["initial_epoch"] == 1
        assert len(result["history"]) == EPOCHS and all(np.isfinite(row["loss"]) for row in result["history"])
    assert len((run / "out" / "history.csv").read_text().splitlines()) == 1 + EPOCHS
    assert sorted(os.listdir(run)) == ["out", "results"]  # worker 1's temporary folder removed at the end

    workers = [load_weights(run, 0), load_weights(run, 1)]
    assert_same_weights(workers[1], workers[0], atol=0)
    assert_same_weights(workers[0], fit_reference(image_folder, "adam", lr)[1])  # as if never interrupted


@pytest.mark.slow
def test_the_finetune_command_on_two_local_workers_writes_one_run_folder(image_folder, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    command = [sys.executable, LAUNCHER, "-n", "2", "--max-restarts", "0", "--timeout", str(RUN_TIMEOUT), "--",
               image_folder, "--arch", "mobilenet", "--weights", "none", "--image-size", "32", "--epochs", "1",
               "--batch-size", "8", "--output", str(run)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT + 30)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert {"model.keras", "config.json", "class_names.json", "history.csv", "evaluation.json", "checkpoints",
            "confusion_matrix.png", "training_curves.png"} <= set(os.listdir(run))
    assert os.listdir(tmp_path) == ["run"]  # worker 1's temporary folder is gone
    assert json.loads((run / "config.json").read_text())["strategy"] == "multi-worker"
    from keras_notes.finetune.data import load_splits

    validation = len(load_splits(image_folder, val_split=0.2, seed=1337).val)  # the CLI's defaults
    assert json.loads((run / "evaluation.json").read_text())["num_images"] == validation
    assert "[worker 1] epoch 1/1 - loss" in finished.stdout

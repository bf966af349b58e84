"""Phase 1 on cached features: the same features, the same batches, the same trained model."""

import os

import keras
import numpy as np
import pytest

from finetune_images import make_image_folder, tiny_config
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import cache, runio
from keras_notes.finetune.data import FileList, load_splits, make_dataset, make_eval_dataset
from keras_notes.finetune.frozen_part import feature_extractor
from keras_notes.finetune.models import build_model, recalibrate_batch_norm
from keras_notes.finetune.run import finetune

BATCH = 4


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=8)


@pytest.fixture(scope="module")
def base_weights(images, tmp_path_factory):
    """A frozen base whose features tell the classes apart: random MobileNet weights with
    batch-norm statistics measured on these images (random ones leave the features near 0)."""
    path = str(tmp_path_factory.mktemp("weights") / "base.weights.h5")
    keras.utils.set_random_seed(0)  # the same base whatever ran before in this process
    model = build_model("mobilenet", 3, weights=None, image_size=32)
    recalibrate_batch_norm(model, make_dataset(load_splits(images, val_split=0.2, seed=0).train, 32, BATCH))
    model.get_layer("base").save_weights(path)
    return path


def _config(images, output, **changes):
    return tiny_config(images, output, **{"batch_size": BATCH, "epochs": 3, **changes})


def test_budget_defaults_to_half_the_available_memory(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8000000 kB\nMemAvailable:   4096000 kB\n")
    assert cache.resolve_budget(None, meminfo) == 4096000 / 1024 * 0.5  # kB -> MiB, half of it
    assert cache.resolve_budget(None, tmp_path / "missing") == cache.FALLBACK_BUDGET_MIB
    assert cache.resolve_budget(12, meminfo) == 12.0
    with pytest.raises(KerasNotesError, match="cache_budget=-1"):
        _config("data", "run", cache_budget=-1)


def test_cache_is_on_unless_augmentation_or_several_replicas():
    frozen = _config("data", "run").resolve()
    assert frozen.cache is True  # the default, as config.json records it
    assert _config("data", "run", augment=("flip",)).resolve().cache is False
    # An unfrozen base has nothing frozen in phase 1, but phase 2 may: split_frozen decides per phase.
    assert _config("data", "run", freeze_base=False).resolve().cache is True
    assert cache.resolve_cache(frozen) is True
    assert cache.resolve_cache(_config("data", "run", cache=False).resolve()) is False
    assert cache.resolve_cache(_config("data", "run", augment=("flip",)).resolve()) is False
    assert cache.resolve_cache(frozen, replicas=2) is False
    with pytest.raises(KerasNotesError, match="augmentation"):
        cache.resolve_cache(_config("data", "run", augment=("flip",), cache=True).resolve())


def test_features_are_the_mean_of_the_base_output_in_ram_and_on_disk(images, tmp_path):
    model = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True)
    splits = load_splits(images, val_split=0.2, seed=0)
    dataset = make_eval_dataset(splits.train, 32, 5)  # 5 does not divide 18: a short last batch
    extractor = feature_extractor(model)
    in_ram = cache.extract_features(extractor, dataset, len(splits.train))
    on_disk = cache.extract_features(extractor, dataset, len(splits.train), [str(tmp_path / "f.npy")])

    # Independently: the base's (n, 1, 1, 1024) output at 32 px, averaged over space in NumPy.
    pixels = np.concatenate([batch[0].numpy() for batch in dataset])
    base_out = model.get_layer("base")(model.get_layer("preprocessing")(pixels), training=False)
    expected = np.mean(keras.ops.convert_to_numpy(base_out), axis=(1, 2))
    assert in_ram.shape == (18, 1024)  # 6 of each 8 images per class train
    np.testing.assert_allclose(in_ram, expected, rtol=1e-5, atol=1e-6)
    assert isinstance(on_disk, np.memmap)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), in_ram)


@pytest.mark.parametrize("route", ["rows", "gather", "numpy"])
def test_feature_batches_come_in_the_order_of_the_image_batches(images, route, monkeypatch):
    splits = load_splits(images, val_split=0.2, seed=0)
    count = len(splits.train)
    # Labels 0..n-1 make every image's identity visible in the batches of the image pipeline.
    numbered = FileList(splits.train.paths, tuple(range(count)), splits.train.needs_pil)
    features = np.arange(count, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # row i holds i
    # Each route of feature_dataset: rows sliced by tf.data, indices gathered by tf.gather,
    # batches read by NumPy from a memory-mapped file.
    if route == "gather":
        monkeypatch.setattr(cache, "SLICE_ROWS_MIB", 0)
    stored = _memmap_copy(features) if route == "numpy" else features
    for kept in (stored, [stored, 2 * stored]):  # one kept tensor, and two (a tuple per batch)
        image_batches = make_dataset(numbered, 32, BATCH, training=True, seed=7)
        feature_batches = cache.feature_dataset(kept, numbered.labels, BATCH, training=True, seed=7)
        assert _route(feature_batches) == route
        for epoch in range(2):  # a new order each epoch, the same in both pipelines
            from_images = [labels.numpy().tolist() for _, labels in image_batches]
            from_features = []
            for rows, labels in feature_batches:
                if isinstance(rows, tuple):  # two kept tensors: the second's rows are twice the first's
                    np.testing.assert_array_equal(rows[1].numpy(), 2 * rows[0].numpy())
                    rows = rows[0]
                from_features.append((rows.numpy()[:, 0].astype(int).tolist(), labels.numpy().tolist()))
            assert len(from_images) == count // BATCH
            assert [labels for _, labels in from_features] == from_images
            assert [rows for rows, _ in from_features] == from_images  # row i is image i
    val = cache.feature_dataset(stored, numbered.labels, BATCH)  # in order, the last batch kept whole
    assert np.concatenate([labels.numpy() for _, labels in val]).tolist() == list(range(count))


def _route(dataset):
    """Which route ``feature_dataset`` took, read from the dataset's graph."""
    graph = dataset._as_serialized_graph().numpy()
    if b"PyFunc" in graph or b"EagerPyFunc" in graph:
        return "numpy"
    return "gather" if b"GatherV2" in graph else "rows"


def _memmap_copy(array):
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "copy.npy")
    copy = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    copy[:] = array
    return copy


@pytest.mark.slow
def test_cached_phase_1_trains_the_model_the_uncached_path_trains(images, base_weights, tmp_path):
    plain = finetune(_config(images, tmp_path / "plain", weights=base_weights, cache=False))
    cached = finetune(_config(images, tmp_path / "cached", weights=base_weights))
    assert len({row["loss"] for row in cached.history}) == 3  # the head trains: the loss moves each epoch
    # Both phases cached on disk (phase 2 at the cut below the 6 unfrozen layers, kept by phase 1).
    spilled = finetune(_config(images, tmp_path / "spilled", weights=base_weights, cache_budget=0, keep_cache=True, epochs=1,
                               fine_tune_epochs=1, unfreeze_top_n=6))
    assert runio.read_json(os.path.join(cached.run_dir, runio.CONFIG_FILE))["cache"] is True
    assert runio.read_json(os.path.join(plain.run_dir, runio.CONFIG_FILE))["cache"] is False

    _assert_same_training(plain, cached, images)
    assert keras.saving.load_model(os.path.join(cached.run_dir, runio.MODEL_FILE)).input_shape == (None, 32, 32, 3)

    # A budget of 0 MiB puts the features on disk; kept only when asked.
    # Phase 1's one pass kept phase 2's cut (file 0) and the pooled features (file 1).
    assert sorted(os.listdir(os.path.join(spilled.run_dir, cache.CACHE_DIR))) == ["phase1_0.npy", "phase1_1.npy"]
    assert not os.path.exists(os.path.join(cached.run_dir, cache.CACHE_DIR))
    np.testing.assert_allclose(spilled.history[0]["loss"], cached.history[0]["loss"], rtol=1e-5)
    assert [row["epoch"] for row in spilled.history] == [0, 1]


@pytest.mark.slow
def test_a_head_with_a_hidden_layer_trains_the_same_cached(images, base_weights, tmp_path):
    head = dict(weights=base_weights, hidden_units=8, label_smoothing=0.1)
    plain = finetune(_config(images, tmp_path / "plain", cache=False, **head))
    cached = finetune(_config(images, tmp_path / "cached", **head))
    assert len({row["loss"] for row in cached.history}) == 3
    _assert_same_training(plain, cached, images)
    model = keras.saving.load_model(os.path.join(cached.run_dir, runio.MODEL_FILE))
    assert model.get_layer("hidden").units == 8


# Tolerances: measured here (TF 2.21, 2 CPU cores), losses, accuracies, head weights and
# predictions were bitwise equal (difference 0.0; head weights of magnitude up to 0.15).
# The features are computed in inference batches instead of inside the training step,
# and another CPU's kernels may round differently, hence float32 round-off margins.
TRAJECTORY_RTOL, TRAJECTORY_ATOL = 1e-4, 1e-5
WEIGHT_ATOL = 1e-5
PREDICTION_ATOL = 1e-5


@pytest.mark.slow
def test_cached_phase_2_trains_the_model_the_uncached_path_trains(images, base_weights, tmp_path, capsys):
    two_phases = dict(weights=base_weights, epochs=1, fine_tune_epochs=2, unfreeze_top_n=6, fine_tune_lr=1e-2)
    plain = finetune(_config(images, tmp_path / "plain", cache=False, **two_phases))
    capsys.readouterr()
    cached = finetune(_config(images, tmp_path / "cached", **two_phases))
    said = capsys.readouterr().out
    assert "phase 2 trains on the output at conv_pw_12_relu (1, 1, 1024) kept by phase 1's pass" in said
    assert said.count("runs the frozen part once") == 1  # one pass over the images for both phases
    assert sorted(os.listdir(os.path.join(cached.run_dir, runio.CHECKPOINT_DIR))) == ["phase1-cached",
                                                                                       "phase2-cached"]
    _assert_same_training(plain, cached, images)
    start = build_model("mobilenet", 3, weights=base_weights, image_size=32)
    trained = keras.saving.load_model(os.path.join(cached.run_dir, runio.MODEL_FILE))
    for name in ("conv_dw_13", "conv_pw_13"):  # the two convolutions phase 2 trains, and they moved
        assert not np.allclose(trained.get_layer("base").get_layer(name).kernel.numpy(),
                               start.get_layer("base").get_layer(name).kernel.numpy())

    # A base trained from random weights in phase 1 changes there, so phase 2 makes its own pass.
    scratch = dict(two_phases, weights=None, freeze_base=False)
    plain = finetune(_config(images, tmp_path / "plain-scratch", cache=False, **scratch))
    capsys.readouterr()
    cached = finetune(_config(images, tmp_path / "cached-scratch", **scratch))
    said = capsys.readouterr().out
    assert "phase 1: nothing frozen to keep" in said
    assert "phase 2 runs the frozen part once and keeps its output at conv_pw_12_relu" in said
    _assert_same_training(plain, cached, images)


def _assert_same_training(plain, cached, images):
    """The same history, evaluation, trained weights and saved-model predictions."""
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([row[key] for row in cached.history], [row[key] for row in plain.history],
                                   rtol=TRAJECTORY_RTOL, atol=TRAJECTORY_ATOL, err_msg=key)
    assert cached.evaluation == plain.evaluation  # the cached run evaluates on the kept validation outputs
    plain_model = keras.saving.load_model(os.path.join(plain.run_dir, runio.MODEL_FILE))
    cached_model = keras.saving.load_model(os.path.join(cached.run_dir, runio.MODEL_FILE))
    for plain_weight, cached_weight in zip(plain_model.weights, cached_model.weights):
        np.testing.assert_allclose(cached_weight.numpy(), plain_weight.numpy(), atol=WEIGHT_ATOL,
                                   err_msg=plain_weight.path)
    pixels = np.concatenate([batch[0].numpy() for batch in make_eval_dataset(
        load_splits(images, val_split=0.2, seed=1337).val, 32, BATCH)])
    np.testing.assert_allclose(cached_model.predict(pixels, verbose=0), plain_model.predict(pixels, verbose=0),
                               atol=PREDICTION_ATOL)


def test_resume_of_a_cached_run_restores_the_head(images, tmp_path):
    run = tmp_path / "run"
    first = finetune(_config(images, run, epochs=1))
    assert os.path.isdir(os.path.join(run, runio.CHECKPOINT_DIR, "phase" + cache.backup_phase(1)))
    resumed = finetune(_config(images, run, epochs=2, resume=True))
    assert [row["epoch"] for row in resumed.history] == [0, 1]
    assert resumed.history[0]["seconds"] == first.history[0]["seconds"]  # epoch 0 was not re-run

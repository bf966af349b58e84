"""Phase 1 on cached features: the same features, the same batches, the same trained model."""

import os

import keras
import numpy as np
import pytest

from finetune_images import make_image_folder, tiny_config
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import cache, runio
from keras_notes.finetune.data import FileList, load_splits, make_dataset, make_eval_dataset
from keras_notes.finetune.models import build_model, recalibrate_batch_norm
from keras_notes.finetune.train import finetune

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


def test_cache_is_on_only_where_it_trains_the_same_model():
    frozen = _config("data", "run").resolve()
    assert frozen.cache is True  # the default, as config.json records it
    assert _config("data", "run", augment=("flip",)).resolve().cache is False
    assert _config("data", "run", freeze_base=False).resolve().cache is False
    assert cache.resolve_cache(frozen) is True
    assert cache.resolve_cache(_config("data", "run", cache=False).resolve()) is False
    assert cache.resolve_cache(_config("data", "run", augment=("flip",)).resolve()) is False
    assert cache.resolve_cache(_config("data", "run", freeze_base=False).resolve()) is False
    assert cache.resolve_cache(frozen, replicas=2) is False
    with pytest.raises(KerasNotesError, match="augmentation"):
        cache.resolve_cache(_config("data", "run", augment=("flip",), cache=True).resolve())


def test_features_are_the_mean_of_the_base_output_in_ram_and_on_disk(images, tmp_path):
    model = build_model("mobilenet", 3, weights=None, image_size=32, freeze_base=True)
    splits = load_splits(images, val_split=0.2, seed=0)
    dataset = make_eval_dataset(splits.train, 32, 5)  # 5 does not divide 18: a short last batch
    extractor = cache.feature_extractor(model)
    in_ram = cache.extract_features(extractor, dataset, len(splits.train))
    on_disk = cache.extract_features(extractor, dataset, len(splits.train), str(tmp_path / "f.npy"))

    # Independently: the base's (n, 1, 1, 1024) output at 32 px, averaged over space in NumPy.
    pixels = np.concatenate([batch[0].numpy() for batch in dataset])
    base_out = model.get_layer("base")(model.get_layer("preprocessing")(pixels), training=False)
    expected = np.mean(keras.ops.convert_to_numpy(base_out), axis=(1, 2))
    assert in_ram.shape == (18, 1024)  # 6 of each 8 images per class train
    np.testing.assert_allclose(in_ram, expected, rtol=1e-5, atol=1e-6)
    assert isinstance(on_disk, np.memmap)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), in_ram)


def test_feature_batches_come_in_the_order_of_the_image_batches(images):
    splits = load_splits(images, val_split=0.2, seed=0)
    count = len(splits.train)
    # Labels 0..n-1 make every image's identity visible in the batches of the image pipeline.
    numbered = FileList(splits.train.paths, tuple(range(count)), splits.train.needs_pil)
    features = np.arange(count, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # row i holds i
    for stored in (features, _memmap_copy(features)):
        image_batches = make_dataset(numbered, 32, BATCH, training=True, seed=7)
        feature_batches = cache.feature_dataset(stored, numbered.labels, BATCH, training=True, seed=7)
        for epoch in range(2):  # a new order each epoch, the same in both pipelines
            from_images = [labels.numpy().tolist() for _, labels in image_batches]
            from_features = [(rows.numpy()[:, 0].astype(int).tolist(), labels.numpy().tolist())
                             for rows, labels in feature_batches]
            assert len(from_images) == count // BATCH
            assert [labels for _, labels in from_features] == from_images
            assert [rows for rows, _ in from_features] == from_images  # row i is image i


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
    # Phase 2 (uncached: part of the base trains) carries on from a cached phase 1.
    spilled = finetune(_config(images, tmp_path / "spilled", weights=base_weights, cache_budget=0, keep_cache=True, epochs=1,
                               fine_tune_epochs=1, unfreeze_top_n=6))
    assert runio.read_json(os.path.join(cached.run_dir, runio.CONFIG_FILE))["cache"] is True
    assert runio.read_json(os.path.join(plain.run_dir, runio.CONFIG_FILE))["cache"] is False

    # The same trajectory, epoch by epoch.
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([row[key] for row in cached.history], [row[key] for row in plain.history],
                                   rtol=TRAJECTORY_RTOL, atol=TRAJECTORY_ATOL, err_msg=key)

    # The saved models take raw images and predict alike.
    plain_model = keras.saving.load_model(os.path.join(plain.run_dir, runio.MODEL_FILE))
    cached_model = keras.saving.load_model(os.path.join(cached.run_dir, runio.MODEL_FILE))
    assert cached_model.input_shape == (None, 32, 32, 3)
    np.testing.assert_allclose(cached_model.get_layer("predictions").get_weights()[0],
                               plain_model.get_layer("predictions").get_weights()[0], atol=WEIGHT_ATOL)
    pixels = np.concatenate([batch[0].numpy() for batch in make_eval_dataset(
        load_splits(images, val_split=0.2, seed=1337).val, 32, BATCH)])
    np.testing.assert_allclose(cached_model.predict(pixels, verbose=0), plain_model.predict(pixels, verbose=0),
                               atol=PREDICTION_ATOL)

    # A budget of 0 MiB puts the features on disk; kept only when asked.
    assert os.path.isfile(os.path.join(spilled.run_dir, cache.CACHE_DIR, "train_features.npy"))
    assert not os.path.exists(os.path.join(cached.run_dir, cache.CACHE_DIR))
    np.testing.assert_allclose(spilled.history[0]["loss"], cached.history[0]["loss"], rtol=1e-5)
    assert [row["epoch"] for row in spilled.history] == [0, 1]


# Tolerances: measured here (TF 2.21, 2 CPU cores), losses, accuracies, head weights and
# predictions were bitwise equal (difference 0.0; head weights of magnitude up to 0.15).
# The features are computed in inference batches instead of inside the training step,
# and another CPU's kernels may round differently, hence float32 round-off margins.
TRAJECTORY_RTOL, TRAJECTORY_ATOL = 1e-4, 1e-5
WEIGHT_ATOL = 1e-5
PREDICTION_ATOL = 1e-5


def test_resume_of_a_cached_run_restores_the_head(images, tmp_path):
    run = tmp_path / "run"
    first = finetune(_config(images, run, epochs=1))
    assert os.path.isdir(os.path.join(run, runio.CHECKPOINT_DIR, "phase" + cache.HEAD_BACKUP_PHASE))
    resumed = finetune(_config(images, run, epochs=2, resume=True))
    assert [row["epoch"] for row in resumed.history] == [0, 1]
    assert resumed.history[0]["seconds"] == first.history[0]["seconds"]  # epoch 0 was not re-run

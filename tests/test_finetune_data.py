"""The file-list split and the tf.data pipeline, checked against PIL and hand arithmetic."""

import os

import numpy as np
import pytest
from PIL import Image

from finetune_images import make_image_folder
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import data


def _files(counts):
    """A FileList with ``counts[c]`` files of class c."""
    labels = [label for label, count in enumerate(counts) for _ in range(count)]
    return data.FileList(tuple(f"f{i}.png" for i in range(len(labels))), tuple(labels), (False,) * len(labels))


def test_split_takes_round_n_times_fraction_of_each_class():
    files = _files([10, 7, 3])
    train, val = data.stratified_split(files, ["a", "b", "c"], 0.2, seed=0)
    # round(10 * 0.2) = 2, round(7 * 0.2) = round(1.4) = 1, round(3 * 0.2) = round(0.6) = 1
    assert val.counts(3) == [2, 1, 1]
    assert train.counts(3) == [8, 6, 2]
    assert sorted(train.paths + val.paths) == sorted(files.paths)
    assert not set(train.paths) & set(val.paths)


def test_split_is_seeded():
    files = _files([20, 20])
    first = data.stratified_split(files, ["a", "b"], 0.25, seed=1)[1].paths
    assert data.stratified_split(files, ["a", "b"], 0.25, seed=1)[1].paths == first
    assert data.stratified_split(files, ["a", "b"], 0.25, seed=2)[1].paths != first


def test_split_refuses_a_class_too_small_to_split():
    with pytest.raises(KerasNotesError, match="class 'b' has 1 image"):
        data.stratified_split(_files([5, 1]), ["a", "b"], 0.2, seed=0)



def test_load_splits_from_a_folder_and_from_a_val_dir(tmp_path):
    train_dir = make_image_folder(tmp_path / "train", per_class=5)
    splits = data.load_splits(train_dir, val_split=0.2, seed=0)
    assert splits.class_names == ("cat", "dog", "eel")
    assert splits.val.counts(3) == [1, 1, 1] and splits.train.counts(3) == [4, 4, 4]  # round(5 * 0.2) = 1
    val_dir = make_image_folder(tmp_path / "val", per_class=2, seed=1)
    splits = data.load_splits(train_dir, val_dir=val_dir)
    assert len(splits.train) == 15 and splits.val.counts(3) == [2, 2, 2]


def test_pipeline_gives_the_pixels_pil_reads(tmp_path):
    folder = make_image_folder(tmp_path, per_class=2, size=32)
    # A greyscale PNG must come out as three equal channels.
    grey = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    Image.fromarray(grey, mode="L").save(os.path.join(folder, "cat", "grey.png"))
    splits = data.load_splits(folder, val_split=0.5, seed=0)
    files = splits.train + splits.val
    images, labels = next(iter(data.make_dataset(files, 32, batch_size=len(files))))
    assert images.shape == (len(files), 32, 32, 3) and images.dtype == "float32"
    assert labels.dtype == "int32" and labels.numpy().tolist() == list(files.labels)
    for image, path in zip(images.numpy(), files.paths):
        expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)  # raw 0-255
        np.testing.assert_array_equal(image, expected)


def test_pipeline_resizes_and_routes_pil_only_formats(tmp_path):
    folder = make_image_folder(tmp_path, per_class=2, size=48)
    Image.fromarray(np.full((48, 48, 3), 200, np.uint8)).save(os.path.join(folder, "dog", "flat.tiff"))
    splits = data.load_splits(folder, val_split=0.5, seed=0)
    all_files = splits.train + splits.val
    index = [os.path.basename(path) for path in all_files.paths].index("flat.tiff")
    assert all_files.needs_pil[index]  # TensorFlow cannot decode TIFF; PIL does it
    images, _ = next(iter(data.make_dataset(all_files, 40, batch_size=len(all_files))))
    assert images.shape[1:] == (40, 40, 3)
    np.testing.assert_allclose(images[index].numpy(), 200.0)  # a flat image stays flat when resized


def test_training_pipeline_shuffles_each_epoch_and_augments_only_when_training(tmp_path):
    folder = make_image_folder(tmp_path, per_class=4)
    files = data.load_splits(folder, val_split=0.25, seed=0).train
    training = data.make_dataset(files, 32, batch_size=len(files), training=True, seed=3,
                                 augment=("flip", "rotation", "zoom"))
    first, second = [labels.numpy().tolist() for _, labels in training.repeat(2)]
    assert sorted(first) == sorted(files.labels) and first != second  # new order every epoch
    plain = next(iter(data.make_dataset(files, 32, batch_size=len(files))))[0].numpy()
    again = next(iter(data.make_dataset(files, 32, batch_size=len(files))))[0].numpy()
    np.testing.assert_array_equal(plain, again)  # evaluation data is deterministic
    augmented = next(iter(training))[0].numpy()
    assert augmented.shape == plain.shape and not np.allclose(np.sort(augmented.ravel()), np.sort(plain.ravel()))


def test_unknown_augmentation_is_refused():
    with pytest.raises(KerasNotesError, match="unknown augmentation"):
        data.make_augmentation(("blur",))


def test_training_drops_the_last_partial_batch_and_evaluation_keeps_it(tmp_path):
    files = data.load_splits(make_image_folder(tmp_path, per_class=5), val_split=0.2, seed=0).train  # 12 images
    training = [len(labels) for _, labels in data.make_dataset(files, 32, batch_size=5, training=True)]
    evaluation = [len(labels) for _, labels in data.make_dataset(files, 32, batch_size=5)]
    assert training == [5, 5]  # 12 // 5 full batches; 2 images wait for another epoch's order
    assert evaluation == [5, 5, 2]
    with pytest.raises(KerasNotesError, match="batch_size=13 is more than the 12 training images"):
        data.make_dataset(files, 32, batch_size=13, training=True)


def test_evaluation_pads_to_a_multiple_of_the_replicas_with_zero_weights(tmp_path):
    files = data.load_splits(make_image_folder(tmp_path, per_class=5), val_split=0.2, seed=0).val  # 3 images
    batches = list(data.make_eval_dataset(files, 32, batch_size=2, replicas=2))
    assert [len(labels) for _, labels, _ in batches] == [2, 2]  # 3 images + 1 pad: each batch splits 1 / 1
    weights = np.concatenate([weight.numpy() for _, _, weight in batches])
    assert weights.tolist() == [1.0, 1.0, 1.0, 0.0]
    labels = np.concatenate([label.numpy() for _, label, _ in batches])
    assert labels[:3].tolist() == list(files.labels)
    assert len(list(data.make_eval_dataset(files, 32, batch_size=2, replicas=1))) == 2  # 2 + 1, no padding


# Reduced-scale JPEG decoding.


def _photo_like(path, width=640, height=480, noise=3.0, seed=0):
    """A smooth picture (a 6 x 8 grid of colours, bicubically upsampled) plus grey noise, as a
    quality-90 JPEG with Pillow's default 4:2:0 chroma; -> ``str(path)``."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, (6, 8, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(colours).resize((width, height), Image.BICUBIC), np.float32)
    pixels = np.clip(field + rng.normal(0, noise, (height, width, 1)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return str(path)


# libjpeg's output at 1/r has sides ceil(side / r); the ratio is the largest r in 8, 4, 2
# with ceil(480 / r) (the short side) >= size, worked out by hand for each case.
@pytest.mark.parametrize("width, height, size, ratio", [
    (640, 480, 64, 4),  # 480 / 8 = 60 < 64; 480 / 4 = 120
    (640, 480, 60, 8),  # exactly 60
    (641, 481, 61, 8),  # ceil(481 / 8) = 61: rounding up counts
    (640, 480, 121, 2),  # 480 / 4 = 120 < 121
    (640, 480, 241, 1),  # 480 / 2 = 240 < 241: decoded whole
    (48, 40, 64, 1),  # smaller than the target: never reduced
])
def test_a_jpeg_is_decoded_at_the_largest_reduction_that_keeps_the_target(tmp_path, width, height, size, ratio):
    import tensorflow as tf

    contents = tf.io.read_file(_photo_like(tmp_path / "photo.jpg", width, height))
    expected = tf.io.decode_jpeg(contents, channels=3, ratio=ratio).numpy()
    assert expected.shape[:2] == (-(-height // ratio), -(-width // ratio))
    np.testing.assert_array_equal(data._decode_jpeg(contents, size).numpy(), expected)


@pytest.mark.parametrize("width, height, size", [(48, 40, 64), (640, 480, 481)])
def test_an_image_smaller_than_the_target_decodes_as_without_reduction(tmp_path, width, height, size):
    path = _photo_like(tmp_path / "small.jpg", width, height)
    np.testing.assert_array_equal(data.decode_image(path, False, size).numpy(),
                                  data.decode_image(path, False, size, reduce=False).numpy())


def test_reduced_decoding_stays_close_to_the_full_decode_and_aliases_less(tmp_path):
    path = _photo_like(tmp_path / "photo.jpg")  # 640 x 480 -> 64 px: decoded at 1/4, 160 x 120
    reduced = data.decode_image(path, False, 64).numpy()
    full = data.decode_image(path, False, 64, reduce=False).numpy()
    # Measured on 4 seeds of this picture: mean |difference| 1.56-1.57, max 7.5-9.0 (of 255).
    difference = np.abs(reduced - full)
    assert difference.mean() < 2.0 and difference.max() < 12
    # Against an area average of the full image (Pillow's box filter), the reduced decode is
    # the closer one: bilinear resizing of the whole image samples 2 x 2 of every 10 x 10 pixels,
    # the DCT reduction averages them first. Measured mean |difference| 0.54-0.55 against 1.64-1.66.
    with Image.open(path) as image:
        box = np.asarray(image.convert("RGB").resize((64, 64), Image.BOX), np.float32)
    assert np.abs(reduced - box).mean() < 0.5 * np.abs(full - box).mean()

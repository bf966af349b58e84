"""EXIF orientation: every read of an image shows it upright, as Pillow's ``exif_transpose`` does.

Exactness without a lossless JPEG tool: the pictures are made of 8 x 8 blocks of one
colour each, saved with 4:4:4 chroma (no subsampling). Such a block has only a DC
coefficient, and a rotation or flip of the picture moves whole blocks without
changing any of them, so the file stored sideways decodes (at any DCT scale) to
exactly the rotated pixels of the upright file. Any wrong turn moves a block of a
distinct colour and fails the equality.
"""

import numpy as np
import pytest
from PIL import Image, ImageOps

from finetune_images import tiny_config
from keras_notes.finetune.data import decode_image, image_dataset, load_splits, make_dataset
from keras_notes.finetune.exif import ORIENTATION_TAG, orient
from keras_notes.finetune.imagefile import check_image
from keras_notes.finetune.scan import scan_image_folder

BLOCK = 8
# How each orientation's file stores an upright picture (the inverse of the turn that
# shows it), written with NumPy from the EXIF specification's table, independently of
# exif.orient; test_the_stored_files_are_what_pillow_turns_upright checks it against Pillow.
STORED = {
    1: lambda x: x,
    2: lambda x: x[:, ::-1],  # mirrored left-right
    3: lambda x: x[::-1, ::-1],  # upside down
    4: lambda x: x[::-1],  # mirrored top-bottom
    5: lambda x: x.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda x: np.rot90(x, 1),  # shown by a quarter-turn clockwise, so stored a quarter-turn counter-clockwise
    7: lambda x: x[::-1, ::-1].transpose(1, 0, 2),  # mirrored along the other diagonal
    8: lambda x: np.rot90(x, -1),
}


def _blocky(rows, columns, seed=0, tint=None):
    """A ``(rows * 8, columns * 8, 3)`` uint8 picture of one-colour 8 x 8 blocks, all colours distinct."""
    rng = np.random.default_rng(seed)
    colours = rng.choice(256 ** 3, rows * columns, replace=False)
    blocks = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], -1).reshape(rows, columns, 3)
    if tint is not None:  # brighten one channel: a class signal for the training tests
        blocks[..., tint] = 128 + blocks[..., tint] // 2
    return np.repeat(np.repeat(blocks.astype(np.uint8), BLOCK, 0), BLOCK, 1)


def _exif(orientation):
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return exif


def _save(path, upright, orientation=None):
    """Store ``upright`` as a JPEG, sideways with the tag ``orientation`` if given; -> ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = upright if orientation is None else np.ascontiguousarray(STORED[orientation](upright))
    options = {} if orientation is None else {"exif": _exif(orientation)}
    Image.fromarray(stored).save(path, quality=90, subsampling=0, **options)
    return path


def _decoded(path, size, ignore_exif=False):
    check = check_image(path, exif=not ignore_exif)
    return decode_image(str(path), check.needs_pil, size, check.orientation).numpy()


def _pillow_upright(path):
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillows_exif_transpose_on_the_same_pixels(orientation):
    import tensorflow as tf

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)  # odd, non-square
    image = Image.fromarray(pixels)
    image.info["exif"] = _exif(orientation).tobytes()  # what exif_transpose reads (Image.getexif)
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(orient(tf.constant(pixels), orientation).numpy(), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_stored_files_are_what_pillow_turns_upright(tmp_path, orientation):
    upright = _blocky(12, 16)  # 96 x 128 px
    tagged = _save(tmp_path / "tagged.jpg", upright, orientation)
    plain = _save(tmp_path / "plain.jpg", upright)
    assert check_image(tagged).orientation == orientation
    np.testing.assert_array_equal(_pillow_upright(tagged), _pillow_upright(plain))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("size", [32, 96])  # 96 x 128 px decodes at 1/2 for 32 px, whole for 96
def test_a_tagged_file_decodes_exactly_as_the_upright_file(tmp_path, orientation, size):
    upright = _blocky(12, 16)
    tagged = _save(tmp_path / "tagged.jpg", upright, orientation)
    plain = _save(tmp_path / "plain.jpg", upright)
    np.testing.assert_array_equal(_decoded(tagged, size), _decoded(plain, size))
    if orientation in (5, 6, 7, 8):  # stored as 128 x 96: --ignore-exif sees it sideways
        assert not np.array_equal(_decoded(tagged, size, ignore_exif=True), _decoded(plain, size))


def test_pillow_decoded_files_are_turned_the_same_way(tmp_path):
    upright = _blocky(6, 8)
    Image.fromarray(upright).save(tmp_path / "plain.png")  # lossless, like the two below
    expected = decode_image(str(tmp_path / "plain.png"), False, 32).numpy()
    sideways = Image.fromarray(np.ascontiguousarray(STORED[6](upright)))
    webp, tiff = tmp_path / "tagged.webp", tmp_path / "tagged.tiff"  # both read by Pillow (needs_pil)
    sideways.save(webp, lossless=True, exif=_exif(6))
    sideways.save(tiff, exif=_exif(6))
    # WebP's tag is applied after decoding; Pillow's TIFF decoder applies the tag itself.
    assert (check_image(webp).needs_pil, check_image(webp).orientation) == (True, 6)
    assert (check_image(tiff).needs_pil, check_image(tiff).orientation) == (True, 1)
    for path in (webp, tiff):
        np.testing.assert_array_equal(_decoded(path, 32), expected)


def _damaged_exif(path, upright):
    """A JPEG tagged 6 whose EXIF block has a broken byte-order mark ("XX" for "MM")."""
    _save(path, upright, 6)
    data = bytearray(path.read_bytes())
    start = data.index(b"Exif\x00\x00") + 6
    data[start:start + 2] = b"XX"
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_exif_block_is_used_as_stored_and_reported(tmp_path):
    upright = _blocky(6, 8)  # 48 x 64 px
    damaged = _damaged_exif(tmp_path / "a" / "damaged.jpg", upright)
    _save(tmp_path / "a" / "ok.jpg", upright, 8)
    _save(tmp_path / "b" / "plain.jpg", upright)
    Image.fromarray(upright).save(tmp_path / "b" / "nine.jpg", quality=90, subsampling=0, exif=_exif(9))

    result = scan_image_folder(tmp_path)
    assert len(result.paths) == 4 and result.skipped == ()
    notes = dict(result.notes)
    assert "EXIF block unreadable" in notes[str(damaged)] and "orientation ignored" in notes[str(damaged)]
    assert "EXIF orientation 9 is not one of 1-8" in notes[str(tmp_path / "b" / "nine.jpg")]
    assert dict(zip(result.paths, result.orientation)) == {
        str(damaged): 1, str(tmp_path / "a" / "ok.jpg"): 8, str(tmp_path / "b" / "nine.jpg"): 1,
        str(tmp_path / "b" / "plain.jpg"): 1}
    report = result.report()
    assert "1 turned upright by their EXIF orientation" in report and f"{damaged}: EXIF block unreadable" in report
    # Used as stored: the pixels of the sideways file, untouched.
    stored = _save(tmp_path / "stored.jpg", np.ascontiguousarray(STORED[6](upright)))
    np.testing.assert_array_equal(_decoded(damaged, 32), _decoded(stored, 32))


def _folder_pair(root):
    """The same 8 pictures twice: ``upright/`` without tags, and ``tagged/`` stored sideways with
    orientations 1-4 in ``class_0`` and 5-8 in ``class_1``. -> the two folders."""
    for orientation in range(1, 9):
        label = (orientation - 1) // 4
        upright = _blocky(12, 16, seed=orientation, tint=label)  # 96 x 128 px: decoded at 1/2 for 32 px
        _save(root / "upright" / f"class_{label}" / f"{orientation}.jpg", upright)
        _save(root / "tagged" / f"class_{label}" / f"{orientation}.jpg", upright, orientation)
    return root / "upright", root / "tagged"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return _folder_pair(tmp_path_factory.mktemp("exif"))


@pytest.fixture(scope="module")
def model(folders):
    """A compiled MobileNet at 32 px whose outputs differ between images: random weights, with
    batch-norm statistics measured on the upright images (random ones leave the features near 0)."""
    import keras

    from keras_notes.finetune.models import build_model, get_base, recalibrate_batch_norm
    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(0)
    model = build_model("mobilenet", 2, weights=None, image_size=32, freeze_base=False)
    recalibrate_batch_norm(model, make_dataset(load_splits(folders[0], val_split=0.25).train, 32, 6))
    get_base(model).trainable = False  # phase 1 on a frozen base: what the cache keeps
    compile_model(model, 1e-3)
    return model


def _pipeline(folder, ignore_exif=False):
    """Every training batch (shuffled, seeded) and every validation image of ``folder``, as arrays."""
    splits = load_splits(folder, val_split=0.25, seed=0, ignore_exif=ignore_exif)
    train = [images.numpy() for images, _ in make_dataset(splits.train, 32, batch_size=2, training=True, seed=3)]
    return np.concatenate(train + [image.numpy()[None] for image, _ in image_dataset(splits.val, 32)])


def test_the_training_pipeline_sees_tagged_folders_upright(folders):
    upright, tagged = folders
    np.testing.assert_array_equal(_pipeline(tagged), _pipeline(upright))
    assert not np.array_equal(_pipeline(tagged, ignore_exif=True), _pipeline(upright))


def _kept(model, folder, tmp_path):
    """The frozen pass's kept features of ``folder``, as ``RunCache`` computes them for phase 1."""
    from keras_notes.finetune.cache import RunCache

    splits = load_splits(folder, val_split=0.25, seed=0)
    config = tiny_config(str(folder), tmp_path, cache=True, batch_size=2)  # 6 training images: 3 batches
    with RunCache(config, str(tmp_path), splits, say=lambda line: None) as kept:
        cached = kept.phase(model, 1, seed=0)
        return np.concatenate([features.numpy() for features, _ in cached.val]
                              + [features.numpy() for features, _ in cached.train])


@pytest.mark.slow
def test_the_cached_pass_keeps_the_same_features_for_tagged_files(model, folders, tmp_path):
    upright = _kept(model, folders[0], tmp_path / "a")
    np.testing.assert_array_equal(_kept(model, folders[1], tmp_path / "b"), upright)
    assert upright.shape == (8, 1024) and np.ptp(upright, axis=0).max() > 0  # features that differ per image


def _engine(model):
    from keras_notes.deploy.engines import keras_engine

    return keras_engine(model, ("class_0", "class_1"), "model.keras")


def _probabilities(model, paths, **options):
    from keras_notes.finetune.predict import predict_images

    return [[entry["probability"] for entry in result["predictions"]]
            for result in predict_images(_engine(model), paths, **options)]


@pytest.mark.slow
def test_predict_gives_identical_probabilities_for_tagged_and_upright_files(model, folders):
    paths = [sorted(str(path) for path in folder.rglob("*.jpg")) for folder in folders]
    upright = _probabilities(model, paths[0])
    assert _probabilities(model, paths[1]) == upright
    assert len({tuple(row) for row in upright}) == 8  # a different answer for each picture
    assert _probabilities(model, paths[1], ignore_exif=True) != upright


@pytest.mark.slow
def test_predict_says_when_it_ignores_a_damaged_exif_block(model, tmp_path):
    from keras_notes.finetune.predict import predict_images

    damaged = _damaged_exif(tmp_path / "damaged.jpg", _blocky(6, 8))
    lines = []
    [result] = predict_images(_engine(model), [str(damaged)], say=lines.append)
    assert result["path"] == str(damaged)
    assert lines == [f"note {damaged}: EXIF block unreadable (no tag could be read); orientation ignored"]


@pytest.mark.slow
def test_a_run_says_which_images_it_turned_and_which_tags_it_ignored(folders, tmp_path, capsys):
    import shutil

    from keras_notes.finetune import finetune

    images = tmp_path / "images"
    shutil.copytree(folders[1], images)
    damaged = _damaged_exif(images / "class_0" / "damaged.jpg", _blocky(12, 16))
    finetune(tiny_config(str(images), tmp_path / "run", val_split=0.25))
    out = capsys.readouterr().out
    assert "EXIF orientation: 7 images turned upright as they are displayed" in out  # tags 2-8
    assert f"  note {damaged}: EXIF block unreadable" in out


def test_the_orientation_report_counts_turned_images_and_caps_the_notes():
    from keras_notes.finetune.data import FileList, Splits

    train = FileList(("a", "b", "c"), (0, 1, 0), (False,) * 3, (6, 1, 3))
    val = FileList(("d",), (1,), (False,), (8,))
    notes = tuple((f"n{i}.jpg", "EXIF block damaged; orientation ignored") for i in range(4))
    lines = Splits(("x", "y"), train, val, (), notes).orientation_report(limit=2)
    assert lines[0].startswith("EXIF orientation: 3 images turned upright")  # 6, 3 and 8; 1 is as stored
    assert lines[1:] == ["  note n0.jpg: EXIF block damaged; orientation ignored",
                         "  note n1.jpg: EXIF block damaged; orientation ignored", "  note ... and 2 more"]
    assert Splits(("x", "y"), FileList(("a",), (0,), (False,)), val.subset([]), ()).orientation_report() == []

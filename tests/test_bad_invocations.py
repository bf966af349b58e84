"""Each bad invocation stops before training: exit status 2, one line naming the problem and the value."""

import os
import subprocess
import sys

import keras
import pytest

from finetune_images import make_image_folder
from keras_notes.cli import finetune as finetune_cli
from keras_notes.cli import predict as predict_cli
from keras_notes.finetune import runio
from keras_notes.finetune.config import FinetuneConfig

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "finetune.py")
TWO = ("cat", "dog")
BASE = ["--arch", "mobilenet", "--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "2",
        "--verbose", "0"]


def _one_line_exit_2(argv, capsys, main=finetune_cli.main):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.err.startswith(f"{os.path.basename(sys.argv[0])}: error: ")
    return captured.err


def _nothing_trained(run):
    """The run folder was never made, or holds no history, backup or model."""
    return not run.exists() or not ({runio.HISTORY_FILE, runio.CHECKPOINT_DIR, runio.MODEL_FILE}
                                    & set(os.listdir(run)))


def test_missing_folder(tmp_path, capsys):
    err = _one_line_exit_2([str(tmp_path / "nope"), *BASE, "--output", str(tmp_path / "run")], capsys)
    assert f"image folder not found: '{tmp_path / 'nope'}'" in err
    assert not (tmp_path / "run").exists()


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = _one_line_exit_2([str(tmp_path / "empty"), *BASE, "--output", str(tmp_path / "run")], capsys)
    assert f"image folder is empty: '{tmp_path / 'empty'}'" in err
    assert not (tmp_path / "run").exists()


def test_a_single_class(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=("cat",))
    err = _one_line_exit_2([images, *BASE, "--output", str(tmp_path / "run")], capsys)
    assert f"need at least 2 class folders in '{images}', found 1: ['cat']" in err


def test_a_class_folder_with_no_usable_images(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    (tmp_path / "images" / "eel").mkdir()
    (tmp_path / "images" / "eel" / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "eel" / "empty.jpg").write_bytes(b"")
    err = _one_line_exit_2([images, *BASE, "--output", str(tmp_path / "run")], capsys)
    assert f"class folders with no usable images in '{images}': 'eel' (2 files skipped)" in err


def test_too_few_images_for_the_validation_split(tmp_path, capsys):
    # Rule: each class needs at least 1 training and 1 validation image, so a class of 1
    # image cannot be split (with val_split 0.2 it would be missing from one of the sets).
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    for path in sorted((tmp_path / "images" / "dog").iterdir())[1:]:
        path.unlink()
    err = _one_line_exit_2([images, *BASE, "--val-split", "0.2", "--output", str(tmp_path / "run")], capsys)
    assert ("class 'dog' has 1 image(s), too few for val_split=0.2: each class needs at least 1 training "
            "and 1 validation image") in err
    assert _nothing_trained(tmp_path / "run")


@pytest.mark.parametrize("arch, size", [("mobilenet", 31), ("vgg16", 16), ("resnet50", 0)])
def test_image_size_below_32(arch, size, tmp_path, capsys):
    err = _one_line_exit_2(["images", "--arch", arch, "--image-size", str(size)], capsys)
    assert f"at least 32 pixels for {arch}; received image_size={size}" in err


def test_unknown_arch(capsys):
    err = _one_line_exit_2(["images", "--arch", "alexnet"], capsys)
    assert "unknown arch 'alexnet'; choose from ['efficientnetb0', 'mobilenet'" in err


def test_weights_file_that_does_not_fit_the_arch(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    inputs = keras.Input((4,))
    weights = tmp_path / "dense.weights.h5"
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save_weights(weights)
    argv = [images, *BASE, "--weights", str(weights), "--output", str(tmp_path / "run")]
    err = _one_line_exit_2(argv, capsys)
    assert f"weights file {weights} cannot be loaded into arch 'mobilenet'" in err
    assert _nothing_trained(tmp_path / "run")


def test_output_under_a_regular_file(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    (tmp_path / "afile").write_text("x")  # chmod would not stop root; a file as parent does
    err = _one_line_exit_2([images, *BASE, "--output", str(tmp_path / "afile" / "run")], capsys)
    assert f"cannot write the run folder '{tmp_path / 'afile' / 'run'}': Not a directory" in err


def test_output_that_is_an_existing_file(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    (tmp_path / "afile").write_text("x")
    err = _one_line_exit_2([images, *BASE, "--output", str(tmp_path / "afile")], capsys)
    assert f"cannot write the run folder '{tmp_path / 'afile'}': it is an existing file, not a folder" in err
    assert (tmp_path / "afile").read_text() == "x"


def _earlier_run(run, images, class_names):
    run.mkdir()
    config = FinetuneConfig(images, arch="mobilenet", weights=None, image_size=32, epochs=1, output=str(run))
    runio.write_json(run / runio.CONFIG_FILE, config.resolve().to_dict())
    runio.write_json(run / runio.CLASS_NAMES_FILE, list(class_names))


def test_resume_with_another_arch(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=TWO)
    _earlier_run(tmp_path / "run", images, TWO)
    argv = [images, *BASE, "--arch", "vgg16", "--output", str(tmp_path / "run"), "--resume"]
    err = _one_line_exit_2(argv, capsys)
    assert "the request differs from the earlier run in arch 'mobilenet' -> 'vgg16'" in err
    assert _nothing_trained(tmp_path / "run")


def test_resume_with_other_classes(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=("cat", "eel"))
    _earlier_run(tmp_path / "run", images, TWO)
    err = _one_line_exit_2([images, *BASE, "--output", str(tmp_path / "run"), "--resume"], capsys)
    assert "class names ['cat', 'dog'] -> ['cat', 'eel']" in err
    assert _nothing_trained(tmp_path / "run")


def test_predict_on_a_folder_without_a_model(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images", per_class=1, class_names=TWO)
    (tmp_path / "run").mkdir()
    err = _one_line_exit_2([str(tmp_path / "run"), images], capsys, main=predict_cli.main)
    assert f"no trained model in '{tmp_path / 'run'}': model.keras is missing" in err
    err = _one_line_exit_2([str(tmp_path / "nope"), images], capsys, main=predict_cli.main)
    assert f"no such model file or folder: '{tmp_path / 'nope'}'" in err


def test_script_in_a_fresh_process_exits_2_with_one_error_line(tmp_path):
    images = make_image_folder(tmp_path / "images", per_class=3, class_names=("cat",))
    result = subprocess.run([sys.executable, SCRIPT, images, *BASE, "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("finetune.py:")]
    assert ours == [f"finetune.py: error: need at least 2 class folders in '{images}', found 1: ['cat']"]
    assert result.stderr.splitlines()[-1] == ours[0] and "Traceback" not in result.stderr
    assert result.stdout == ""

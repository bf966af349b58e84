"""keras_notes.atomic: temporary names keep the suffixes Keras checks, and failures leave nothing."""

import os

import pytest

from keras_notes.atomic import atomic_path, temporary_path


@pytest.mark.parametrize("name, suffix", [("base.weights.h5", ".weights.h5"), ("model.keras", ".keras"),
                                          ("config.json", ".json"), ("plot.png", ".png")])
def test_temporary_name_is_hidden_beside_the_target_with_its_suffix(tmp_path, name, suffix):
    temporary = temporary_path(tmp_path / name)
    assert os.path.dirname(temporary) == str(tmp_path)
    assert os.path.basename(temporary).startswith(f".{name}.tmp-")
    assert temporary.endswith(suffix) and not temporary.endswith(f"{name}")


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "class_names.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["class_names.json"]


def test_a_folder_replaces_the_old_one_whole_and_a_failure_keeps_the_old_one(tmp_path):
    from keras_notes.atomic import atomic_directory

    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with atomic_directory(target) as temporary:
        os.makedirs(temporary)
        with open(os.path.join(temporary, "new.pb"), "w") as handle:
            handle.write("new")
        assert os.listdir(target) == ["old.pb"]  # nothing visible under the real name until the end
    assert os.listdir(target) == ["new.pb"] and os.listdir(tmp_path) == ["saved_model"]
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as temporary:
            os.makedirs(temporary)
            raise RuntimeError("killed mid-write")
    assert os.listdir(target) == ["new.pb"] and os.listdir(tmp_path) == ["saved_model"]

"""Keras's saving skip sets, memoized: the same sets, built once, and the same files saved."""

import zipfile

import keras
import numpy as np
import pytest
from keras.src.saving import saving_lib

from keras_notes.saving_memo import SKIPSET_TYPES, memoize_saving_skipsets


@pytest.fixture()
def fresh_keras_state():
    keras.backend.clear_session()  # Keras's global state, memo included, starts empty
    yield
    keras.backend.clear_session()


def _model(seed=3):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.BatchNormalization()(keras.layers.Dense(5, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.random.rand(8, 6), np.arange(8) % 2, epochs=1, verbose=0)  # optimizer and metrics hold state
    return model


def test_memoized_sets_are_kerass_own_and_built_once(fresh_keras_state):
    computed = {obj_type: saving_lib.get_attr_skipset(obj_type) for obj_type in SKIPSET_TYPES}
    assert memoize_saving_skipsets() == SKIPSET_TYPES
    for obj_type in SKIPSET_TYPES:
        first, second = saving_lib.get_attr_skipset(obj_type), saving_lib.get_attr_skipset(obj_type)
        assert first is second  # the memo, not a new Layer() dir()-ed each time
        assert first == computed[obj_type]
    assert memoize_saving_skipsets() == ()  # already there: nothing stored again


def test_with_the_memo_a_save_builds_no_throwaway_layers(fresh_keras_state, tmp_path, monkeypatch):
    model = _model()
    memoize_saving_skipsets()
    built = []
    original = keras.layers.Layer.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__init__", counting_init)
    model.save_weights(tmp_path / "w.weights.h5")
    model.save(tmp_path / "m.keras")
    assert built == []  # Keras 3.15 without the memo: a throwaway Layer() for each layer walked


def test_files_saved_and_loaded_with_the_memo_equal_those_without(fresh_keras_state, tmp_path):
    model = _model()
    model.save(tmp_path / "without.keras")
    model.save_weights(tmp_path / "without.weights.h5")
    memoize_saving_skipsets()
    model.save(tmp_path / "with.keras")
    model.save_weights(tmp_path / "with.weights.h5")

    def members(path):
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist() if name != "metadata.json"}

    without, with_memo = members(tmp_path / "without.keras"), members(tmp_path / "with.keras")
    assert without.keys() == with_memo.keys() and without["config.json"] == with_memo["config.json"]
    for saved in (with_memo, without):  # every variable, optimizer's included, in both
        assert "model.weights.h5" in saved
    reloaded = [keras.saving.load_model(tmp_path / name) for name in ("without.keras", "with.keras")]
    for left, right in zip(reloaded[0].weights + reloaded[0].optimizer.variables,
                           reloaded[1].weights + reloaded[1].optimizer.variables):
        np.testing.assert_array_equal(left.numpy(), right.numpy())
    loaded = _model(seed=4)  # other weights, until loaded
    loaded.load_weights(tmp_path / "with.weights.h5")
    for left, right in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(left.numpy(), right.numpy())

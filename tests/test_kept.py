"""The kept cache: a re-run on the same images reads the frozen part's outputs instead of computing them.

Each test has a cache folder of its own (conftest sets ``KERAS_NOTES_CACHE``). Results
are compared with a run that keeps nothing (``kept_cache=False``), which computes every
output itself: an independent computation of the same numbers.
"""

import multiprocessing
import os
import time

import numpy as np
import pytest
from PIL import Image

from finetune_images import make_image_folder, tiny_config

from keras_notes.finetune import kept


def _run(folder, output, **changes):
    from keras_notes.finetune.train import finetune_one_machine

    return finetune_one_machine(tiny_config(folder, output, **changes))


def _same(first, second):
    assert [row["loss"] for row in first.history] == [row["loss"] for row in second.history]
    assert [row["val_loss"] for row in first.history] == [row["val_loss"] for row in second.history]
    assert first.evaluation == second.evaluation


def _pass_sizes(monkeypatch):
    """Record how many images each frozen pass computes."""
    from keras_notes.finetune import cache

    sizes = []
    original = cache.extract_features

    def counting(extractor, dataset, count, paths=None):
        sizes.append(count)
        return original(extractor, dataset, count, paths)

    monkeypatch.setattr(cache, "extract_features", counting)
    return sizes


def _entries():
    return kept.list_entries()


def test_second_run_reads_every_output_and_trains_the_same(tmp_path, monkeypatch, capsys):
    folder = make_image_folder(tmp_path / "images")
    sizes = _pass_sizes(monkeypatch)
    first = _run(folder, tmp_path / "first", epochs=2)
    assert sizes == [18]
    second = _run(folder, tmp_path / "second", epochs=2)
    assert sizes == [18]  # the second run ran no pass
    assert "phase 1 reads the frozen part's output at pool (1024,)" in capsys.readouterr().out
    uncached = _run(folder, tmp_path / "none", epochs=2, kept_cache=False)
    _same(first, second)
    _same(first, uncached)
    assert [entry.images for entry in _entries()] == [18]


def test_another_lr_or_head_dropout_hits_the_same_entry(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "images")
    sizes = _pass_sizes(monkeypatch)
    _run(folder, tmp_path / "first")
    _run(folder, tmp_path / "lr", lr=3e-4, dropout=0.5)
    assert sizes == [18]
    assert len(_entries()) == 1


def test_changed_added_and_removed_images_are_computed_alone(tmp_path, monkeypatch, capsys):
    folder = make_image_folder(tmp_path / "images")
    sizes = _pass_sizes(monkeypatch)
    _run(folder, tmp_path / "first")
    changed = os.path.join(folder, "cat", "001.png")
    pixels = np.asarray(Image.open(changed)).copy()
    pixels[:8] = 255
    Image.fromarray(pixels).save(changed)
    Image.fromarray(pixels[::-1].copy()).save(os.path.join(folder, "dog", "new.png"))
    os.remove(os.path.join(folder, "eel", "002.png"))
    capsys.readouterr()
    second = _run(folder, tmp_path / "second")
    assert sizes == [18, 2]  # the changed image and the new one; the removed one is not asked for
    assert "16 found in the kept cache" in capsys.readouterr().out
    _same(second, _run(folder, tmp_path / "none", kept_cache=False))


@pytest.mark.parametrize("changes", [{"seed": 7}, {"image_size": 40}, {"ignore_exif": True}],
                         ids=["other weights (another random base)", "another size", "other decode options"])
def test_what_changes_the_outputs_gives_a_new_entry(tmp_path, monkeypatch, changes):
    folder = make_image_folder(tmp_path / "images")
    sizes = _pass_sizes(monkeypatch)
    _run(folder, tmp_path / "first")
    _run(folder, tmp_path / "second", **changes)
    assert sizes == [18, 18]
    assert len(_entries()) == 2


def test_another_weights_file_gives_a_new_entry(tmp_path, monkeypatch):
    import keras

    from keras_notes.finetune.models import build_model

    folder = make_image_folder(tmp_path / "images")
    files = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        path = str(tmp_path / f"base{seed}.weights.h5")
        build_model("mobilenet", 3, weights=None, image_size=32).get_layer("base").save_weights(path)
        files.append(path)
    sizes = _pass_sizes(monkeypatch)
    _run(folder, tmp_path / "a", weights=files[0])
    _run(folder, tmp_path / "b", weights=files[1])
    _run(folder, tmp_path / "c", weights=files[0])
    assert sizes == [18, 18]
    assert len(_entries()) == 2


def test_another_cut_gives_a_new_entry(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "images")
    sizes = _pass_sizes(monkeypatch)
    _run(folder, tmp_path / "a", fine_tune_epochs=1, unfreeze_top_n=6)
    _run(folder, tmp_path / "b", fine_tune_epochs=1, unfreeze_top_n=12)
    _run(folder, tmp_path / "c", fine_tune_epochs=1, unfreeze_top_n=6)
    assert sizes == [18, 18]  # one pass per run keeps both cuts; the third finds the first's
    assert len(_entries()) == 2


def test_no_kept_cache_keeps_nothing(tmp_path):
    _run(make_image_folder(tmp_path / "images"), tmp_path / "run", kept_cache=False)
    assert _entries() == []


def test_truncated_entry_file_is_dropped_and_recomputed(tmp_path, monkeypatch, capsys):
    folder = make_image_folder(tmp_path / "images")
    first = _run(folder, tmp_path / "first")
    (shard,) = [path for path in os.listdir(_entries()[0].path) if path.endswith(".0.npy")]
    path = os.path.join(_entries()[0].path, shard)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    sizes = _pass_sizes(monkeypatch)
    capsys.readouterr()
    second = _run(folder, tmp_path / "second")
    out = capsys.readouterr().out
    assert sizes == [18]
    assert f"kept cache: {path[:-len('.0.npy')]}.json could not be read" in out
    assert "dropped, its images are computed again" in out
    _same(first, second)


def test_weights_digest_sees_one_changed_value():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    before = kept.weights_digest(model)
    kernel = model.layers[0].kernel
    values = kernel.numpy()
    values[0, 0] = np.nextafter(values[0, 0], np.float32(np.inf))
    kernel.assign(values)
    assert kept.weights_digest(model) != before


def test_identity_changes_with_size_and_mtime_and_is_relative(tmp_path):
    path = tmp_path / "data" / "a" / "x.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 2_000_000_000))
    roots = (("", str(tmp_path / "data")),)
    assert kept.image_identities([str(path)], roots) == ["a/x.png|5|2000000000"]
    os.utime(path, ns=(1, 3_000_000_000))
    assert kept.image_identities([str(path)], roots) == ["a/x.png|5|3000000000"]
    path.write_bytes(b"123456")
    assert kept.image_identities([str(path)], roots)[0].startswith("a/x.png|6|")


# -- the entry API on its own: eviction and concurrent writers -------------------------------------


def _entry(cache_dir, name):
    return kept.Entry(cache_dir, {"format": kept.FORMAT, "test": name}, 1)


def _values(identities):
    """Each identity's row: a value only it has, so a misplaced row cannot pass."""
    return np.asarray([[float(int(identity.split("-")[1]))] * 16 for identity in identities],
                      np.float32).reshape(-1, 16)


def test_lru_eviction_keeps_the_recent_and_the_one_in_use(tmp_path):
    cache_dir = str(tmp_path / "cache")
    entries = [_entry(cache_dir, name) for name in "abcd"]
    for age, entry in enumerate(entries):
        identities = [f"img-{index}" for index in range(2000)]
        entry.add(identities, [_values(identities)])
        entry.touch()
        os.utime(os.path.join(entry.directory, "used"), (1000 + age, 1000 + age))  # a is the oldest
    size = kept.list_entries(cache_dir)[0].bytes
    # Room for two entries; a is the oldest but in use, so b and c go.
    removed = kept.evict(cache_dir, 2.5 * size / kept.GIB, keep=(entries[0].directory,))
    assert sorted(os.path.basename(entry.path) for entry in removed) == sorted(
        os.path.basename(entries[i].directory) for i in (1, 2))
    assert sorted(entry.path for entry in kept.list_entries(cache_dir)) == sorted(
        [entries[0].directory, entries[3].directory])


def _fill(cache_dir, worker, rounds):
    entry = _entry(cache_dir, "shared")
    for round_ in range(rounds):
        identities = [f"img-{index}" for index in range(worker * 50 + round_ * 7, worker * 50 + round_ * 7 + 300)]
        entry.add(identities, [_values(identities)])


def test_two_processes_filling_one_entry_never_show_a_half_written_shard(tmp_path):
    cache_dir = str(tmp_path / "cache")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_fill, args=(cache_dir, worker, 12)) for worker in (0, 1)]
    for writer in writers:
        writer.start()
    reader = _entry(cache_dir, "shared")
    wanted = [f"img-{index}" for index in range(420)]
    reads = 0
    while any(writer.is_alive() for writer in writers) or reads == 0:
        lookup = reader.lookup(wanted)
        assert lookup.dropped == []  # nothing half-written is ever seen
        found = [index for index, place in enumerate(lookup.found) if place is not None]
        out = [np.zeros((len(found), 16), np.float32)]
        reader.gather(lookup, out, range(len(found)))
        assert np.array_equal(out[0], _values([wanted[index] for index in found]))
        reads += 1
        time.sleep(0.01)
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    lookup = reader.lookup(wanted)
    assert lookup.missing == []
    reader.compact()
    assert len(reader._manifests()) == 1
    after = reader.lookup(wanted)
    out = [np.zeros((len(wanted), 16), np.float32)]
    reader.gather(after, out, range(len(wanted)))
    assert np.array_equal(out[0], _values(wanted))
    assert reads > 1


def test_cache_command_lists_and_clears(tmp_path, capsys):
    from keras_notes.cli.cache import main

    cache_dir = str(tmp_path / "cache")
    names = []
    for size in (32, 64):
        entry = kept.Entry(cache_dir, {"format": kept.FORMAT, "arch": "mobilenet", "image_size": size,
                                       "boundary": [["pool", [1024]]], "weights_source": "imagenet"}, 1)
        entry.add([f"img-{index}" for index in range(3)], [np.zeros((3, 1024), np.float32)])
        entry.touch()
        names.append(os.path.basename(entry.directory))
    assert main(["list", "--cache-dir", cache_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[-1].startswith(f"2 entries, 0.0 MiB in {cache_dir}")
    assert any(line.startswith(names[0]) and "mobilenet 32 px at pool (1024,), weights imagenet: 3 images"
               in line for line in lines)
    assert main(["clear", names[0], "--cache-dir", cache_dir]) == 0
    assert [entry.name for entry in kept.list_entries(cache_dir)] == [names[1]]
    assert main(["clear", "nosuchentry", "--cache-dir", cache_dir]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no kept-cache entry 'nosuchentry' in {cache_dir} "
                                                    f"(keras-notes-cache list shows them)")
    assert main(["clear", "--cache-dir", cache_dir]) == 0
    assert kept.list_entries(cache_dir) == []
    assert not [name for name in os.listdir(cache_dir) if not name.startswith(".")]

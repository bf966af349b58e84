"""The ``--mode`` races on a tiny setting: both arms run, alternate, and each times its own span."""

import statistics

import pytest

from keras_notes_benchmarks import race
from keras_notes_benchmarks.config import BenchmarkConfig


@pytest.mark.slow
def test_tiny_benchmark_runs_both_arms_alternately(capsys):
    config = BenchmarkConfig(images=24, classes=2, image_size=32, epochs=2, batch_size=4, repeats=2, warmup=False)
    summary = race.run_benchmark(config)
    runs = summary["runs"]
    assert [run["arm"] for run in runs] == ["reference", "package", "package", "reference"]
    for run in runs:
        # 24 images, 20% of each class to validation: 2 * (12 - round(2.4)) = 20 training images
        assert run["train_images"] == 20
        assert 0 < run["train_seconds"] <= run["seconds"] and run["peak_rss_mib"] > 100  # TensorFlow alone is hundreds of MiB
        assert 0 < run["timed_seconds"] <= run["seconds"]
        assert run["images_per_second"] == pytest.approx(20 * 2 / run["timed_seconds"])
        # 4 validation images (2 x round(12 x 0.2)): an accuracy is k/4.
        assert abs(4 * run["val_accuracy"] - round(4 * run["val_accuracy"])) < 1e-6
    reference = statistics.median(run["seconds"] for run in runs if run["arm"] == "reference")
    package = statistics.median(run["seconds"] for run in runs if run["arm"] == "package")
    assert summary["ratio"] == pytest.approx(reference / package)


@pytest.mark.slow
def test_phase2_and_augment_modes_time_their_own_span():
    tiny = dict(images=24, classes=2, image_size=32, epochs=1, batch_size=4, repeats=1, warmup=False)
    phase2 = race.run_benchmark(BenchmarkConfig(mode="phase2", fine_tune_epochs=2, **tiny))
    augment = race.run_benchmark(BenchmarkConfig(mode="augment", augment=("flip",), **tiny))
    assert [run["arm"] for run in phase2["runs"]] == ["streamed", "package"]
    assert [run["arm"] for run in augment["runs"]] == ["in-memory", "package"]
    for run in phase2["runs"]:  # phase 2 alone: less than the run, which also has phase 1
        assert 0 < run["timed_seconds"] < run["train_seconds"] <= run["seconds"]
        assert run["images_per_second"] == pytest.approx(20 * 2 / run["timed_seconds"])
    for run in augment["runs"]:
        assert 0 < run["timed_seconds"] < run["seconds"]


@pytest.mark.slow
def test_rerun_mode_reruns_on_kept_outputs_and_fails_on_a_miss(tmp_path):
    import os

    from keras_notes.errors import KerasNotesError
    from keras_notes_benchmarks import rerun
    from keras_notes_benchmarks.common import prepare

    tiny = dict(images=24, classes=2, image_size=32, epochs=1, batch_size=4, repeats=1)
    summary = race.run_benchmark(BenchmarkConfig(mode="rerun", **tiny))  # the warm-up's rerun fills its cache
    assert [run["arm"] for run in summary["runs"]] == ["first", "rerun"]
    # In this process: the arm fills its cache once, then refuses to time a rerun that misses.
    config = prepare(BenchmarkConfig(mode="rerun", **tiny), str(tmp_path))
    rerun.rerun_arm(config, str(tmp_path / "r0"), {})
    rerun.rerun_arm(config, str(tmp_path / "r1"), {})
    changed = os.path.join(config.data_dir, "class_0", "00000.png")
    os.utime(changed, ns=(0, 10 ** 9))
    with pytest.raises(KerasNotesError, match="the rerun computed 1 images: the kept cache in .* missed"):
        rerun.rerun_arm(config, str(tmp_path / "r2"), {})


@pytest.mark.slow
def test_sweep_mode_races_the_whole_sweep_against_the_reference_epochs():
    tiny = dict(images=24, classes=2, image_size=32, epochs=2, batch_size=4, repeats=1, warmup=False)
    summary = race.run_benchmark(BenchmarkConfig(mode="sweep", trials=2, reference_epochs=1, **tiny))
    reference, package = summary["runs"]
    assert (reference["arm"], package["arm"]) == ("reference", "package")
    # images/s counts the reference's epochs for both arms: 20 training images x 1 epoch.
    for run in summary["runs"]:
        assert run["train_images"] == 20
        assert 0 < run["timed_seconds"] <= run["seconds"]
        assert run["images_per_second"] == pytest.approx(20 * 1 / run["timed_seconds"])
    assert "details" not in reference
    assert "search" in package["details"] and "2 trials" in package["details"]

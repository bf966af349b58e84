"""The benchmark on a tiny setting: both arms run, alternate, and the summary is their medians."""

import statistics

import pytest

from keras_notes.cli import benchmark as cli
from keras_notes.finetune import benchmark
from keras_notes.finetune.scan import scan_image_folder


def test_generated_folder_has_the_asked_images_per_class(tmp_path):
    root = benchmark.make_benchmark_folder(tmp_path / "images", images=10, classes=2, size=32)
    scan = scan_image_folder(root)
    assert scan.class_names == ("class_0", "class_1")
    assert scan.counts() == {"class_0": 5, "class_1": 5}  # 10 images // 2 classes


def test_summary_takes_medians_and_the_ratio_of_median_times():
    runs = [{"arm": arm, "seconds": seconds, "train_seconds": seconds - 1, "images_per_second": 100 / seconds,
             "peak_rss_mib": 500 + seconds,
             "val_accuracy": 0.5} for arm, seconds in
            [("reference", 30.0), ("package", 4.0), ("package", 3.0), ("reference", 34.0), ("reference", 31.0),
             ("package", 5.0)]]
    summary = benchmark.summarize(runs)
    assert summary["arms"]["reference"]["seconds"] == 31.0  # median of 30, 34, 31
    assert summary["arms"]["package"]["seconds"] == 4.0  # median of 4, 3, 5
    assert summary["ratio"] == pytest.approx(31.0 / 4.0)
    assert summary["train_ratio"] == pytest.approx(30.0 / 3.0)  # medians of seconds - 1
    assert "7.75x" in benchmark.format_summary(summary)
    assert "10.00x" in benchmark.format_summary(summary)


def test_command_line_rejects_a_zero_count():
    with pytest.raises(ValueError, match="repeats=0"):
        cli.parse_args(["--repeats", "0"])
    assert cli.parse_args(["--no-warmup"]).warmup is False


@pytest.mark.slow
def test_tiny_benchmark_runs_both_arms_alternately(capsys):
    config = benchmark.BenchmarkConfig(images=24, classes=2, image_size=32, epochs=2, batch_size=4, repeats=2,
                                       warmup=False)
    summary = benchmark.run_benchmark(config)
    runs = summary["runs"]
    assert [run["arm"] for run in runs] == ["reference", "package", "package", "reference"]
    for run in runs:
        # 24 images, 20% of each class to validation: 2 * (12 - round(2.4)) = 20 training images
        assert run["train_images"] == 20
        assert 0 < run["train_seconds"] <= run["seconds"] and run["peak_rss_mib"] > 100  # TensorFlow alone is hundreds of MiB
        assert run["images_per_second"] == pytest.approx(20 * 2 / run["seconds"])
        assert 0.0 <= run["val_accuracy"] <= 1.0
    reference = statistics.median(run["seconds"] for run in runs if run["arm"] == "reference")
    package = statistics.median(run["seconds"] for run in runs if run["arm"] == "package")
    assert summary["ratio"] == pytest.approx(reference / package)

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
    runs = [{"arm": arm, "seconds": seconds, "timed_seconds": seconds - 1, "images_per_second": 100 / seconds,
             "peak_rss_mib": 500 + seconds, "val_accuracy": 0.5} for arm, seconds in
            [("reference", 30.0), ("package", 4.0), ("package", 3.0), ("reference", 34.0), ("reference", 31.0),
             ("package", 5.0)]]
    summary = benchmark.summarize(runs)
    assert summary["arms"]["reference"]["seconds"] == 31.0  # median of 30, 34, 31
    assert summary["arms"]["package"]["seconds"] == 4.0  # median of 4, 3, 5
    assert summary["ratio"] == pytest.approx(31.0 / 4.0)
    assert summary["timed_ratio"] == pytest.approx(30.0 / 3.0)  # medians of seconds - 1
    assert "7.75x" in benchmark.format_summary(summary)
    assert "10.00x" in benchmark.format_summary(summary)


def test_command_line_rejects_a_zero_count_and_an_unknown_mode(capsys):
    with pytest.raises(ValueError, match="repeats=0"):
        cli.parse_args(["--repeats", "0"])
    with pytest.raises(ValueError, match="growth"):
        cli.parse_args(["--growth", "1,8"])
    with pytest.raises(SystemExit) as stopped:  # argparse's own exit for a bad choice
        cli.main(["--mode", "phase3"])
    assert stopped.value.code == 2
    assert "invalid choice: 'phase3'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="accuracy-seeds=1"):
        cli.parse_args(["--accuracy-seeds", "1"])
    config, growth, cpu, seeds = cli.parse_args(["--no-warmup", "--mode", "augment", "--augment", "flip",
                                                 "--growth", "8,16"])
    assert (config.warmup, config.mode, config.augment, growth, cpu, seeds) == (
        False, "augment", ("flip",), (8, 16), False, None)


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
        assert 0 < run["timed_seconds"] <= run["seconds"]
        assert run["images_per_second"] == pytest.approx(20 * 2 / run["timed_seconds"])
        assert 0.0 <= run["val_accuracy"] <= 1.0
    reference = statistics.median(run["seconds"] for run in runs if run["arm"] == "reference")
    package = statistics.median(run["seconds"] for run in runs if run["arm"] == "package")
    assert summary["ratio"] == pytest.approx(reference / package)


@pytest.mark.slow
def test_phase2_and_augment_modes_time_their_own_span():
    tiny = dict(images=24, classes=2, image_size=32, epochs=1, batch_size=4, repeats=1, warmup=False)
    phase2 = benchmark.run_benchmark(benchmark.BenchmarkConfig(mode="phase2", fine_tune_epochs=2, **tiny))
    augment = benchmark.run_benchmark(benchmark.BenchmarkConfig(mode="augment", augment=("flip",), **tiny))
    assert [run["arm"] for run in phase2["runs"]] == ["streamed", "package"]
    assert [run["arm"] for run in augment["runs"]] == ["in-memory", "package"]
    for run in phase2["runs"]:  # phase 2 alone: less than the run, which also has phase 1
        assert 0 < run["timed_seconds"] < run["train_seconds"] <= run["seconds"]
        assert run["images_per_second"] == pytest.approx(20 * 2 / run["timed_seconds"])
    for run in augment["runs"]:
        assert 0 < run["timed_seconds"] < run["seconds"]


@pytest.mark.slow
def test_growth_runs_the_package_once_per_size(capsys):
    config = benchmark.BenchmarkConfig(classes=2, image_size=32, epochs=1, batch_size=4)
    results = benchmark.run_growth(config, (12, 24))
    assert [(result["images"], result["arm"]) for result in results] == [(12, "package"), (24, "package")]
    assert [result["train_images"] for result in results] == [10, 20]  # 20% of each class held out, rounded
    table = benchmark.format_growth(results)
    assert table.splitlines()[0].split()[:2] == ["images", "wall"]
    assert f"{results[1]['peak_rss_mib'] / results[0]['peak_rss_mib']:.2f}" in table


def test_cpu_choices_table_compares_each_setting_with_tensorflows_float32_default():
    rows = [{"precision": precision, "inter": inter, "intra": intra, "workload": workload,
             "images_per_second": (100.0 if workload == "frozen" else 20.0) * (1.5 if inter == 2 else 1.0)}
            for precision, inter, intra, workload in benchmark.cpu_settings()]
    assert len(rows) == 2 * (len(benchmark.PRECISION_CHOICES) + len(benchmark.THREAD_CHOICES) - 1)
    lines = benchmark.format_cpu_choices(rows).splitlines()
    assert lines[2].split() == ["float32", "0", "0", "100.0", "1.00", "20.0", "1.00"]
    assert ["float32", "2", "1", "150.0", "1.50", "30.0", "1.50"] in [line.split() for line in lines]


def test_a_step_measurement_trains_in_mixed_bfloat16():
    assert benchmark.step_rate("mobilenet", 32, 4, 1, precision="mixed_bfloat16", workload="full") > 0


def test_peak_memory_is_this_process_high_water_mark(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9000000 kB\nVmHWM:\t  2097152 kB\nVmRSS:\t 1048576 kB\n")
    assert benchmark.peak_rss_mib(status) == 2048.0  # VmHWM, in MiB
    assert benchmark.peak_rss_mib(tmp_path / "missing") > 0  # falls back to getrusage


def test_accuracy_spread_trains_both_splits_per_seed_and_summarises_them():
    config = benchmark.BenchmarkConfig(images=24, classes=2, image_size=32, epochs=2, batch_size=4)
    results = benchmark.accuracy_spread(config, range(2))
    assert {name: len(values) for name, values in results.items()} == {"package": 2, "keras.io": 2}
    assert all(0.0 <= value <= 1.0 for values in results.values() for value in values)
    summary = benchmark.format_accuracy_spread({"package": [0.5, 0.7], "keras.io": [0.6, 1.0]})
    # means 0.6 and 0.8; variances 0.02 and 0.08: standard error sqrt(0.02/2 + 0.08/2) = 0.224
    assert "+0.200, standard error 0.224" in summary

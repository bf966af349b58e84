"""The benchmark's shared pieces: generated images, peak memory, the mode registry, the command line."""

import pytest

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.scan import scan_image_folder
from keras_notes_benchmarks import cli, common, race
from keras_notes_benchmarks.config import BenchmarkConfig
from keras_notes_benchmarks.modes import MODES


def test_generated_folder_has_the_asked_images_per_class(tmp_path):
    root = common.make_benchmark_folder(tmp_path / "images", images=10, classes=2, size=32)
    scan = scan_image_folder(root)
    assert scan.class_names == ("class_0", "class_1")
    assert scan.counts() == {"class_0": 5, "class_1": 5}  # 10 images // 2 classes


def test_peak_memory_is_this_process_high_water_mark(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9000000 kB\nVmHWM:\t  2097152 kB\nVmRSS:\t 1048576 kB\n")
    assert common.peak_rss_mib(status) == 2048.0  # VmHWM, in MiB
    # Without the status file it falls back to getrusage, which for this process (started from
    # a small shell, not exec'd from a large parent) agrees with the kernel's own VmHWM.
    real = common.peak_rss_mib()
    assert common.peak_rss_mib(tmp_path / "missing") == pytest.approx(real, rel=0.1)


@pytest.mark.parametrize("name", list(MODES))
def test_every_mode_races_a_baseline_against_the_package(name):
    mode = MODES[name]
    # The summary's ratios are "baseline / package": the second arm is the package's (in the
    # rerun mode both are, and the second is the rerun).
    assert len(mode.arms) == 2 and list(mode.arms)[1] == ("rerun" if name == "rerun" else "package")
    assert isinstance(getattr(BenchmarkConfig(), mode.epochs_field), int)  # images/s counts these epochs
    assert f"{name}: {mode.help}" in BenchmarkConfig.__dataclass_fields__["mode"].metadata["help"]


def test_unknown_modes_and_arms_are_rejected_by_name():
    with pytest.raises(KerasNotesError, match="mode='phase3'"):
        BenchmarkConfig(mode="phase3")
    with pytest.raises(KerasNotesError, match="unknown arm 'reference' of mode 'phase2'"):
        race.run_arm("reference", BenchmarkConfig(mode="phase2"), "unused")


def test_headlines_are_the_readmes():
    # The first lines of the README's phase 1, phase 2 and augment runs, with their flags.
    assert race.headline(BenchmarkConfig()) == (
        "benchmark, phase 1: keras.io recipe vs package; mobilenet at 224 px, 10 phase 1 epochs, batch 32, "
        "512 generated images")
    assert race.headline(BenchmarkConfig(mode="phase2", epochs=1)) == (
        "benchmark, phase 2 from conv_dw_12, 5 epochs: streamed vs package; mobilenet at 224 px, 1 phase 1 epochs, "
        "batch 32, 512 generated images")
    assert race.headline(BenchmarkConfig(mode="augment", epochs=5, data_dir="photos")) == (
        "benchmark, augmentation ['flip', 'rotation', 'zoom']: images in RAM vs package; mobilenet at 224 px, "
        "5 phase 1 epochs, batch 32, folder photos")


def test_summary_takes_medians_and_the_ratio_of_median_times():
    runs = [{"arm": arm, "seconds": seconds, "timed_seconds": seconds - 1, "images_per_second": 100 / seconds,
             "peak_rss_mib": 500 + seconds, "val_accuracy": 0.5} for arm, seconds in
            [("reference", 30.0), ("package", 4.0), ("package", 3.0), ("reference", 34.0), ("reference", 31.0),
             ("package", 5.0)]]
    summary = race.summarize(runs)
    assert summary["arms"]["reference"]["seconds"] == 31.0  # median of 30, 34, 31
    assert summary["arms"]["package"]["seconds"] == 4.0  # median of 4, 3, 5
    assert summary["ratio"] == pytest.approx(31.0 / 4.0)
    assert summary["timed_ratio"] == pytest.approx(30.0 / 3.0)  # medians of seconds - 1
    text = race.format_summary(summary)
    assert "ratio to the end of training (baseline / package):   10.00x" in text  # the README's layout
    assert "ratio of whole runs (baseline / package):            7.75x" in text
    assert text.splitlines()[0].split()[:4] == ["arm", "runs", "trained", "s"]
    assert "ratio of phase 2 (baseline / package):" in race.format_summary(summary, "phase2")


def test_command_line_defaults_are_the_configs():
    assert cli.parse_args([]) == (BenchmarkConfig(), None, False, None, False, False)
    assert cli.parse_args(["--decode-scale"])[4:] == (True, False)
    assert cli.parse_args(["--frozen-pass"])[4:] == (False, True)
    config, *_ = cli.parse_args(["--data-dir", "photos", "--base-weights", "base.h5", "--arch", "resnet50",
                                 "--val-split", "0.25", "--unfreeze-from", "conv5_block3_1_conv"])
    assert (config.data_dir, config.base_weights, config.arch, config.val_split, config.unfreeze_from) == (
        "photos", "base.h5", "resnet50", 0.25, "conv5_block3_1_conv")


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
    config, growth, cpu, seeds, *_ = cli.parse_args(["--no-warmup", "--mode", "augment", "--augment", "flip",
                                                     "--growth", "8,16"])
    assert (config.warmup, config.mode, config.augment, growth, cpu, seeds) == (
        False, "augment", ("flip",), (8, 16), False, None)

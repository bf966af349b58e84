"""The race every ``--mode`` runs: its two arms, alternately, each in a child process; then medians.

Each run is a child process, so that each arm's peak resident memory is its own and
neither inherits the other's TensorFlow state; the clock starts after the child has
imported TensorFlow, which costs both arms the same seconds and is not part of either
recipe. The arms alternate, after a warm-up pair (one epoch each) that fills the page
cache with the images and lets the CPU clock settle; the table quotes medians.
Weights are random, the compute of ImageNet weights; the base's batch-norm statistics
are first measured on the images (``common.make_base_weights``), so that its features
carry the classes and the validation accuracies compare as real numbers. Both arms
load that same file.
"""

import dataclasses
import os
import statistics
import tempfile
import time

from keras_notes.errors import KerasNotesError
from keras_notes_benchmarks.common import peak_rss_mib, prepare, run_child
from keras_notes_benchmarks.modes import MODES


def run_arm_here(arm, config, output):
    """Run one arm of ``config.mode`` in this process; -> a result dict (seconds, images/s, peak RSS, accuracy)."""
    import keras  # noqa: F401 -- imported before the clock starts: the same cost for every arm
    import tensorflow  # noqa: F401

    import keras_notes.finetune.train  # noqa: F401

    mode = MODES[config.mode]
    marks = {}
    start = marks["timed_start"] = time.perf_counter()
    accuracy, train_images = mode.arms[arm](config, output, marks)
    seconds = time.perf_counter() - start
    timed = marks["timed_end"] - marks["timed_start"]
    result = {"arm": arm, "seconds": seconds, "train_seconds": marks["trained"] - start,
              "timed_seconds": timed, "images_per_second": train_images * getattr(config, mode.epochs_field) / timed,
              "peak_rss_mib": peak_rss_mib(),
              "val_accuracy": float(accuracy), "train_images": train_images}
    if "details" in marks:  # an arm's own breakdown of its time (sweep), printed with its run
        result["details"] = marks["details"]
    if "epoch1_end" in marks:  # an arm that marks the end of its first epoch (photos)
        result["epoch1_seconds"] = marks["epoch1_end"] - start
    return result


def run_arm(arm, config, output):
    """Run one arm in a child process (its own peak memory); -> its result dict."""
    arms = MODES[config.mode].arms
    if arm not in arms:
        raise KerasNotesError(f"unknown arm {arm!r} of mode {config.mode!r}; choose from {sorted(arms)}")
    return run_child("arm", {"arm": arm, "config": dataclasses.asdict(config), "output": output}, f"{arm} arm")


def run_benchmark(config, say=print):
    """Warm up, then run the mode's two arms alternately ``config.repeats`` times; -> a summary dict."""
    mode = MODES[config.mode]
    arms = tuple(mode.arms)
    with tempfile.TemporaryDirectory(prefix="keras-notes-benchmark-") as scratch:
        config = prepare(config, scratch, mode.make_folder)
        if config.warmup:
            warm = dataclasses.replace(config, epochs=1, fine_tune_epochs=1)
            for arm in arms:
                run_arm(arm, warm, os.path.join(scratch, f"warmup-{arm}"))
            say("warm-up done (one 1-epoch run of each arm, not counted)")
        runs = []
        for repeat in range(config.repeats):
            # Alternate which arm goes first, so that a slow spell of the machine hits both.
            for arm in (arms if repeat % 2 == 0 else arms[::-1]):
                result = run_arm(arm, config, os.path.join(scratch, f"{arm}-{repeat}"))
                say(f"  {arm:9} run {repeat + 1}: {result['timed_seconds']:.1f} s timed, {result['seconds']:.1f} s "
                    f"in all, {result['images_per_second']:.1f} images/s, val accuracy {result['val_accuracy']:.4f}"
                    + (f"; {result['details']}" if "details" in result else ""))
                runs.append(result)
        summary = summarize(runs, arms)
        if mode.after is not None:  # while the race's folder and base weights still exist
            summary["after"] = mode.after(config, say)
    return summary


SUMMARY_KEYS = ("timed_seconds", "seconds", "images_per_second", "peak_rss_mib", "val_accuracy")
OPTIONAL_KEYS = ("epoch1_seconds",)  # summarised when every run of an arm has it


def summarize(runs, arms=tuple(MODES["phase1"].arms)):
    """Medians per arm, and the ratios baseline / package of the median timed and whole-run seconds."""
    medians = {}
    for arm in arms:
        mine = [run for run in runs if run["arm"] == arm]
        keys = SUMMARY_KEYS + tuple(key for key in OPTIONAL_KEYS if mine and all(key in run for run in mine))
        medians[arm] = {key: statistics.median(run[key] for run in mine) for key in keys}
        medians[arm]["runs"] = len(mine)
    baseline, package = medians[arms[0]], medians[arms[1]]
    return {"arms": medians, "ratio": baseline["seconds"] / package["seconds"],
            "timed_ratio": baseline["timed_seconds"] / package["timed_seconds"], "runs": runs}


def headline(config):
    """The first line of a race: what is raced, on which model, schedule and images."""
    images = f"folder {config.data_dir}" if config.data_dir else f"{config.images} generated images"
    return (f"benchmark, {MODES[config.mode].headline(config)}; {config.arch} at {config.image_size} px, "
            f"{config.epochs} phase 1 epochs, batch {config.batch_size}, {images}")


def format_summary(summary, mode="phase1"):
    """The README table: one row per arm, medians, then the speed ratios."""
    from keras_notes.report import format_table

    words = MODES[mode]
    epoch1 = all("epoch1_seconds" in values for values in summary["arms"].values())
    rows = [[arm, values["runs"], f"{values['timed_seconds']:.1f}", f"{values['seconds']:.1f}",
             *([f"{values['epoch1_seconds']:.1f}"] if epoch1 else []),
             f"{values['images_per_second']:.1f}", f"{values['peak_rss_mib']:.0f}", f"{values['val_accuracy']:.4f}"]
            for arm, values in summary["arms"].items()]
    headers = ["arm", "runs", words.timed, "wall s", *(["epoch 1 s"] if epoch1 else []), "images/s",
               "peak RSS MiB", "val accuracy"]
    table = format_table(headers, rows, align="lr" + "r" * (len(headers) - 2))
    text = (f"{table}\n(medians; {words.timed}: {words.span}; wall s: the whole run after importing TensorFlow, for "
            f"the package with evaluation, saved model and plots; "
            + ("epoch 1 s: from the start to the end of the first epoch; " if epoch1 else "")
            + f"images/s: training images x epochs / {words.timed})\n\n"
            f"{words.ratio + ' (baseline / package):':<52} {summary['timed_ratio']:.2f}x\n"
            f"{'ratio of whole runs (baseline / package):':<52} {summary['ratio']:.2f}x")
    if epoch1:
        first = [values["epoch1_seconds"] for values in summary["arms"].values()]
        text += f"\n{'ratio to the end of epoch 1 (baseline / package):':<52} {first[0] / first[1]:.2f}x"
    return "\n".join([text, *summary.get("after", ())])

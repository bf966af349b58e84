"""``--cpu-choices``: training images/s for float32 against mixed_bfloat16, and for thread settings.

Each setting is one child process, because TensorFlow fixes its thread pools when it
starts. "frozen" is phase 1 streamed (the base forward, the head trained), "full" trains
the whole model (the base's backward pass included).
"""

import statistics
import time

import numpy as np

from keras_notes_benchmarks.common import run_child

PRECISION_CHOICES = ("float32", "mixed_bfloat16")
THREAD_CHOICES = ((0, 0), (1, 1), (1, 2), (2, 1), (2, 2))  # (inter-op, intra-op); 0 is TensorFlow's own choice
WORKLOADS = ("frozen", "full")


def step_rate(arch, image_size, batch_size, steps, precision="float32", workload="frozen", inter=0, intra=0):
    """Training images/s of ``workload`` on one in-memory batch, over ``steps`` steps after two untimed ones."""
    import tensorflow as tf

    # Only before TensorFlow starts (a fresh child): setting them later raises, even to the same value.
    if tf.config.threading.get_inter_op_parallelism_threads() != inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    if tf.config.threading.get_intra_op_parallelism_threads() != intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    import keras

    from keras_notes.finetune.models import build_model
    from keras_notes.finetune.strategy import precision_policy
    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model = build_model(arch, 2, weights=None, image_size=image_size, freeze_base=workload == "frozen")
        compile_model(model, 1e-4)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(np.float32)
    labels = rng.integers(0, 2, batch_size).astype(np.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # traces the step
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return batch_size * steps / (time.perf_counter() - start)


def cpu_settings():
    """Every (precision, inter, intra, workload) the CPU measurement runs, TensorFlow's defaults first."""
    settings = [(precision, 0, 0, workload) for precision in PRECISION_CHOICES for workload in WORKLOADS]
    settings += [("float32", inter, intra, workload) for inter, intra in THREAD_CHOICES[1:] for workload in WORKLOADS]
    return settings


def run_cpu_choices(config, steps=10, say=print):
    """Images/s of each ``cpu_settings`` entry, ``config.repeats`` times in alternating order; -> rows."""
    rates = {setting: [] for setting in cpu_settings()}
    for repeat in range(config.repeats):
        order = list(rates) if repeat % 2 == 0 else list(rates)[::-1]
        for precision, inter, intra, workload in order:
            arguments = {"arch": config.arch, "image_size": config.image_size, "batch_size": config.batch_size,
                         "steps": steps, "precision": precision, "workload": workload, "inter": inter,
                         "intra": intra}
            rate = run_child("step", arguments, f"{precision} {workload} threads {inter}x{intra}")["images_per_second"]
            rates[(precision, inter, intra, workload)].append(rate)
            say(f"  {precision:14} {workload:6} inter {inter} intra {intra}: {rate:.1f} images/s")
    return [{"precision": precision, "inter": inter, "intra": intra, "workload": workload,
             "images_per_second": statistics.median(values)}
            for (precision, inter, intra, workload), values in rates.items()]


def format_cpu_choices(rows):
    """One row per setting: images/s of each workload and its ratio to TensorFlow's float32 default."""
    from keras_notes.report import format_table

    rate = {(row["precision"], row["inter"], row["intra"], row["workload"]): row["images_per_second"]
            for row in rows}
    table = []
    for setting in dict.fromkeys(key[:3] for key in rate):  # in the rows' order, once each
        values = list(setting)
        for workload in WORKLOADS:
            value = rate[(*setting, workload)]
            values += [f"{value:.1f}", f"{value / rate[('float32', 0, 0, workload)]:.2f}"]
        table.append(values)
    return format_table(["precision", "inter", "intra", "frozen img/s", "ratio", "full img/s", "ratio"], table,
                        align="lrrrrrr")

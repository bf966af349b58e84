"""``--decode-scale``: large JPEGs decoded at reduced DCT scale against decoded whole.

On the photo folder (``photos``; or ``--data-dir``), three measurements:

- time: ``tf.io.decode_jpeg`` whole and at 1/8 (and the pipeline's ``decode_image``,
  which also turns and resizes, with and without the reduction), on the first
  ``DECODE_FILES`` photos, alternating, the median over photos of each photo's
  median of ``--repeats``; wall and CPU time of this process;
- pixels: mean, 99th percentile and max of |reduced - whole| over every pixel of every
  photo at ``--image-size``, and each decode's mean |difference| from an area average of
  the whole photo (Pillow's box filter), the closest to "what the photo looks like" at
  that size;
- predictions: the package trained on the folder (``finetune`` with its defaults, as
  the race's package arm runs it), then its top-1 class for every photo from both decodes.
"""

import os
import statistics
import tempfile
import time

import numpy as np

from keras_notes_benchmarks.common import prepare
from keras_notes_benchmarks.photos import make_folder

DECODE_FILES = 32  # photos timed one by one; the pixel and prediction checks use every photo


def _files(folder):
    from keras_notes.finetune.data import FileList
    from keras_notes.finetune.scan import scan_image_folder

    scan = scan_image_folder(folder)
    return FileList(scan.paths, scan.labels, scan.needs_pil, scan.orientation)


def decode_times(files, image_size, repeats):
    """``{arm: (wall ms, CPU ms)}`` per photo: medians over photos of each photo's median of ``repeats``."""
    import tensorflow as tf

    from keras_notes.finetune.data import decode_image

    whole = tf.function(lambda data: tf.io.decode_jpeg(data, channels=3))
    eighth = tf.function(lambda data: tf.io.decode_jpeg(data, channels=3, ratio=8))
    pipeline = tf.function(lambda path, turn, reduce: decode_image(path, False, image_size, turn, reduce))
    per_file = {}
    for path, turn in list(zip(files.paths, files.orientation))[:DECODE_FILES]:
        with open(path, "rb") as file:
            data = tf.constant(file.read())
        arms = {"decode_jpeg whole": lambda: whole(data), "decode_jpeg 1/8": lambda: eighth(data),
                "decode_image whole": lambda: pipeline(path, turn, False),
                "decode_image reduced": lambda: pipeline(path, turn, True)}
        samples = {name: [] for name in arms}
        for name, arm in arms.items():
            arm()  # traces
        for repeat in range(repeats):
            for name in (list(arms) if repeat % 2 == 0 else list(arms)[::-1]):
                start, start_cpu = time.perf_counter(), time.process_time()
                arms[name]().numpy()
                samples[name].append((1000 * (time.perf_counter() - start), 1000 * (time.process_time() - start_cpu)))
        for name, values in samples.items():
            per_file.setdefault(name, []).append(tuple(statistics.median(column) for column in zip(*values)))
    return {name: tuple(statistics.median(column) for column in zip(*values)) for name, values in per_file.items()}


def pixel_differences(files, image_size):
    """|reduced - whole| statistics at ``image_size`` over every photo, and each against an area average."""
    from PIL import Image, ImageOps

    from keras_notes.finetune.data import decode_image

    differences, reduced_box, whole_box = [], [], []
    for path, turn in zip(files.paths, files.orientation):
        reduced = decode_image(path, False, image_size, turn).numpy()
        whole = decode_image(path, False, image_size, turn, reduce=False).numpy()
        with Image.open(path) as image:
            box = np.asarray(ImageOps.exif_transpose(image).convert("RGB").resize((image_size, image_size), Image.BOX),
                             np.float32)
        differences.append(np.abs(reduced - whole))
        reduced_box.append(np.abs(reduced - box).mean())
        whole_box.append(np.abs(whole - box).mean())
    differences = np.stack(differences)
    return {"mean": float(differences.mean()), "p99": float(np.percentile(differences, 99)),
            "max": float(differences.max()), "reduced_vs_area": float(np.mean(reduced_box)),
            "whole_vs_area": float(np.mean(whole_box))}


def prediction_agreement(model, files, batch_size=32):
    """Top-1 agreement of ``model`` between the reduced and the whole decodes, and the largest |Δ probability|."""
    from keras_notes.finetune.data import image_dataset

    size = model.input_shape[1]
    probabilities = [model.predict(image_dataset(files, size, reduce=reduce).map(lambda image, label: image)
                                   .batch(batch_size), verbose=0) for reduce in (True, False)]
    top1 = [np.argmax(values, axis=1) for values in probabilities]
    return {"agreement": float(np.mean(top1[0] == top1[1])), "disagreements": int(np.sum(top1[0] != top1[1])),
            "max_probability_difference": float(np.abs(probabilities[0] - probabilities[1]).max())}


def measure_decode_scale(config, say=print):
    """All three measurements on the photo folder (or ``config.data_dir``); -> one dict."""
    from keras_notes.finetune.predict import load_run
    from keras_notes_benchmarks.race import run_arm

    with tempfile.TemporaryDirectory(prefix="keras-notes-decode-") as scratch:
        config = prepare(config, scratch, make_folder)
        files = _files(config.data_dir)
        say(f"timing {min(DECODE_FILES, len(files))} photos ...")
        times = decode_times(files, config.image_size, config.repeats)
        say("comparing pixels ...")
        pixels = pixel_differences(files, config.image_size)
        say("training the package on the folder, then predicting both decodes ...")
        run_dir = os.path.join(scratch, "run")
        run_arm("package", config, run_dir)
        model, _ = load_run(run_dir)
        agreement = prediction_agreement(model, files)
    return {"times": times, "pixels": pixels, "agreement": agreement, "images": len(files),
            "load": os.getloadavg()}


def format_decode_scale(result, image_size):
    """The three measurements as a table and two lines."""
    from keras_notes.report import format_table

    times = result["times"]
    rows = [[name, f"{wall:.1f}", f"{cpu:.1f}"] for name, (wall, cpu) in times.items()]
    table = format_table(["decode", "wall ms/photo", "CPU ms/photo"], rows, align="lrr")
    whole, reduced = times["decode_image whole"], times["decode_image reduced"]
    pixels, agreement = result["pixels"], result["agreement"]
    return "\n".join([
        table,
        f"reduced / whole, the pipeline's decode_image: {whole[0] / reduced[0]:.2f}x less wall time, "
        f"{whole[1] / reduced[1]:.2f}x less CPU time (load average {result['load'][0]:.1f} at the end)",
        f"pixels at {image_size} px, |reduced - whole| over {result['images']} photos: mean {pixels['mean']:.2f}, "
        f"99th percentile {pixels['p99']:.1f}, max {pixels['max']:.1f} (of 255)",
        f"  mean |difference| from an area average of the whole photo: reduced {pixels['reduced_vs_area']:.2f}, "
        f"whole {pixels['whole_vs_area']:.2f}",
        f"predictions of the trained package: top-1 agreement {agreement['agreement']:.4f} "
        f"({agreement['disagreements']} of {result['images']} differ), largest |difference in probability| "
        f"{agreement['max_probability_difference']:.4f}",
    ])

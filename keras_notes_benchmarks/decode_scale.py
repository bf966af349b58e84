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
- predictions: the package trained on the folder twice (``finetune`` with its defaults,
  as the race's package arm runs it), once on reduced and once on whole decodes; each
  model's top-1 class for every photo from both decodes, their agreement, and the
  accuracy of each on the run's validation photos. The base's weights are random (with measured batch-norm
  statistics), so the model is far less sure of itself than one on ImageNet weights; the
  mean top probability is printed to say how close to the boundary its answers are.
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
    # Paths and tags go in as tensors: a Python string would be a constant, and TensorFlow's
    # graph optimiser would read and decode the file once, when the function is traced.
    pipelines = {reduce: tf.function(lambda path, turn, reduce=reduce: decode_image(path, False, image_size, turn,
                                                                                    reduce))
                 for reduce in (False, True)}
    per_file = {}
    for path, turn in list(zip(files.paths, files.orientation))[:DECODE_FILES]:
        with open(path, "rb") as file:
            data = tf.constant(file.read())
        path, turn = tf.constant(path), tf.constant(turn, tf.int32)
        arms = {"decode_jpeg whole": lambda: whole(data), "decode_jpeg 1/8": lambda: eighth(data),
                "decode_image whole": lambda: pipelines[False](path, turn),
                "decode_image reduced": lambda: pipelines[True](path, turn)}
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


def predictions(model, files, batch_size=32):
    """``model``'s probabilities for ``files`` from the reduced and from the whole decodes: ``(reduced, whole)``."""
    from keras_notes.finetune.data import image_dataset

    size = model.input_shape[1]
    return tuple(model.predict(image_dataset(files, size, reduce=reduce).map(lambda image, label: image)
                               .batch(batch_size), verbose=0) for reduce in (True, False))


def agreement(probabilities, labels, val):
    """Top-1 agreement of a model between the two decodes, its largest |Δ probability|, and its accuracy
    on the validation photos (``val``, a boolean mask) from each decode."""
    top1 = [np.argmax(values, axis=1) for values in probabilities]
    return {"agreement": float(np.mean(top1[0] == top1[1])), "disagreements": int(np.sum(top1[0] != top1[1])),
            "max_probability_difference": float(np.abs(probabilities[0] - probabilities[1]).max()),
            "mean_top_probability": float(np.mean([values.max(axis=1).mean() for values in probabilities])),
            "val_accuracy": [float(np.mean(top[val] == labels[val])) for top in top1]}


def _trained_on(config, run_dir, whole):
    """The package trained on ``config.data_dir`` (``finetune``'s defaults), decoding JPEGs whole if ``whole``."""
    from keras_notes.finetune import data
    from keras_notes.finetune.predict import load_run
    from keras_notes_benchmarks.arms import package_arm

    ratios = data.JPEG_RATIOS
    data.JPEG_RATIOS = (1,) if whole else ratios  # no reduction to choose from: every JPEG decoded whole
    try:
        package_arm(config, run_dir, {})
    finally:
        data.JPEG_RATIOS = ratios
    return load_run(run_dir)[0]


def measure_decode_scale(config, say=print):
    """All three measurements on the photo folder (or ``config.data_dir``); -> one dict."""
    from keras_notes.finetune.data import load_splits

    with tempfile.TemporaryDirectory(prefix="keras-notes-decode-") as scratch:
        config = prepare(config, scratch, make_folder)
        files = _files(config.data_dir)
        say(f"timing {min(DECODE_FILES, len(files))} photos ...")
        times = decode_times(files, config.image_size, config.repeats)
        say("comparing pixels ...")
        pixels = pixel_differences(files, config.image_size)
        say("training the package on the folder twice (reduced and whole decodes), then predicting both ...")
        val = np.isin(np.asarray(files.paths),
                      load_splits(config.data_dir, val_split=config.val_split, seed=config.seed).val.paths)
        models = {}
        for name in ("reduced", "whole"):
            model = _trained_on(config, os.path.join(scratch, f"run-{name}"), whole=name == "whole")
            models[name] = agreement(predictions(model, files), np.asarray(files.labels), val)
    return {"times": times, "pixels": pixels, "models": models, "images": len(files), "val_images": int(val.sum()),
            "load": os.getloadavg()}


def format_decode_scale(result, image_size):
    """The three measurements as a table and two lines."""
    from keras_notes.report import format_table

    times = result["times"]
    rows = [[name, f"{wall:.1f}", f"{cpu:.1f}"] for name, (wall, cpu) in times.items()]
    table = format_table(["decode", "wall ms/photo", "CPU ms/photo"], rows, align="lrr")
    whole, reduced = times["decode_image whole"], times["decode_image reduced"]
    pixels = result["pixels"]
    lines = [
        table,
        f"reduced / whole, the pipeline's decode_image: {whole[0] / reduced[0]:.2f}x less wall time, "
        f"{whole[1] / reduced[1]:.2f}x less CPU time (load average {result['load'][0]:.1f} at the end)",
        f"pixels at {image_size} px, |reduced - whole| over {result['images']} photos: mean {pixels['mean']:.2f}, "
        f"99th percentile {pixels['p99']:.1f}, max {pixels['max']:.1f} (of 255)",
        f"  mean |difference| from an area average of the whole photo: reduced {pixels['reduced_vs_area']:.2f}, "
        f"whole {pixels['whole_vs_area']:.2f}",
    ]
    for name, values in result["models"].items():
        lines.append(
            f"package trained on {name} decodes: top-1 agreement between the decodes {values['agreement']:.4f} "
            f"({values['disagreements']} of {result['images']} photos differ), largest |difference in probability| "
            f"{values['max_probability_difference']:.3f}, mean top probability {values['mean_top_probability']:.3f}; "
            f"accuracy on the {result['val_images']} validation photos: {values['val_accuracy'][0]:.4f} from reduced, "
            f"{values['val_accuracy'][1]:.4f} from whole decodes")
    return "\n".join(lines)

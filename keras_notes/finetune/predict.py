"""Top-k predictions of a finished run's model, or of a file exported from it, on new images.

Output is CSV or JSON. Any engine of ``keras_notes.deploy.engines`` serves (model.keras,
SavedModel, LiteRT, ONNX). A Keras model is loaded with Keras's ``safe_mode`` left on:
``model.keras`` holds only registered layers (``ImagePreprocessing`` instead of a
``Lambda``), so nothing needs unsafe deserialisation. Images are checked, decoded, turned
upright by their EXIF orientation (unless the run was trained with ``ignore_exif``) and
resized by the same functions the training pipeline uses, so a file is seen exactly as it
was during validation.
"""

import csv
import io
import json
import os
import sys

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.imagefile import IMAGE_EXTENSIONS, check_image

FORMATS = ("csv", "json")


def load_run(run_dir, unsafe_load=False):
    """``(model, class_names)`` of the run in ``run_dir``; ``KerasNotesError`` if it holds no model.

    ``unsafe_load``: see ``keras_notes.deploy.engines.load_model_file``.
    """
    from keras_notes.deploy.engines import engine_kind, load_model_file, read_class_names

    run_dir = os.fspath(run_dir)
    if engine_kind(run_dir) != "keras":
        raise KerasNotesError(f"no trained model in {run_dir!r}: {runio.MODEL_FILE} is missing")
    model = load_model_file(os.path.join(run_dir, runio.MODEL_FILE), unsafe_load=unsafe_load)
    return model, read_class_names(run_dir, "keras")


def collect_images(inputs):
    """Image files named in ``inputs``: files as given, folders searched recursively (sorted)."""
    paths = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isfile(item):
            paths.append(item)
        elif os.path.isdir(item):
            found = []
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(name for name in dirs if not name.startswith("."))
                found.extend(os.path.join(root, name) for name in sorted(names)
                             if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
            if not found:
                raise KerasNotesError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {item!r}")
            paths.extend(found)
        else:
            raise KerasNotesError(f"no such image or folder: {item!r}")
    return paths


def run_ignores_exif(run_dir):
    """Whether the run in ``run_dir`` saw its images as stored, EXIF orientation not applied.

    Its ``config.json``'s ``ignore_exif``; a config without the key comes from before the
    orientation was read, when every run trained on the pixels as stored (True). With no
    run folder at all (an exported file on its own), orientation is applied (False).
    """
    path = os.path.join(os.fspath(run_dir), runio.CONFIG_FILE)
    return bool(os.path.isfile(path) and runio.read_json(path).get("ignore_exif", True))


def _run_folder(model_path):
    """The run folder behind ``model_path``: itself, or the run whose ``export/`` holds the file."""
    model_path = os.path.abspath(os.fspath(model_path))
    for folder in (model_path, os.path.dirname(model_path), os.path.dirname(os.path.dirname(model_path))):
        if os.path.isfile(os.path.join(folder, runio.CONFIG_FILE)):
            return folder
    return model_path


def _checked(path, ignore_exif):
    """``check_image`` of ``path``, as the training scan applies it; ``KerasNotesError`` if unusable.

    So a file is read by the same decoder, turned the same way, at prediction time as
    it would be in training.
    """
    check = check_image(path, exif=not ignore_exif)
    if check.reason is not None:
        raise KerasNotesError(f"cannot use image {path!r}: {check.reason}")
    return check


def predict_images(engine, paths, top_k=3, batch_size=32, ignore_exif=False, say=None):
    """One dict per image: ``{"path", "predictions": [{"label", "probability"}, ...]}``, best first.

    ``engine`` is a ``keras_notes.deploy.engines.Engine`` (a run's model.keras or an exported
    file). ``top_k`` is capped at the number of classes. Probabilities are the model's
    softmax outputs (each image's sum to 1 across all classes). ``ignore_exif``: use the
    pixels as stored. ``say`` receives a line for each file with a note (a damaged EXIF
    block, ignored); by default they go to stderr.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise KerasNotesError(f"top_k must be a positive integer; received top_k={top_k!r}")
    from keras_notes.finetune.data import FileList  # TensorFlow: only once there is something to predict

    say = say or (lambda line: print(line, file=sys.stderr))
    checks = [_checked(path, ignore_exif) for path in paths]
    for path, check in zip(paths, checks):
        if check.note is not None:
            say(f"note {path}: {check.note}")
    files = FileList(tuple(paths), (0,) * len(paths), tuple(check.needs_pil for check in checks),
                     tuple(check.orientation for check in checks))
    probabilities = predict_files(engine, files, batch_size)  # (images, classes)
    k = min(top_k, len(engine.class_names))
    results = []
    for path, row in zip(paths, probabilities):
        order = np.argsort(-row, kind="stable")[:k]
        results.append({"path": path, "predictions": [
            {"label": engine.class_names[i], "probability": float(row[i])} for i in order]})
    return results


def predict_files(engine, files, batch_size=32):
    """``(len(files), classes)`` probabilities of ``engine`` on ``files`` (a ``FileList``), in order.

    The images are decoded and resized by the training pipeline's own ``image_dataset``,
    batch by batch, so memory holds one batch of images whatever the number of files.
    """
    from keras_notes.finetune.data import image_dataset

    dataset = image_dataset(files, engine.image_size).map(lambda image, label: image).batch(batch_size)
    rows = [engine.predict(images) for images in dataset.as_numpy_iterator()]
    return np.concatenate(rows) if rows else np.zeros((0, len(engine.class_names)), np.float32)


def format_predictions(results, fmt="csv"):
    """``results`` as CSV (one row per image: path, label_1, probability_1, ...) or JSON."""
    if fmt == "json":
        return json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    if fmt != "csv":
        raise KerasNotesError(f"format must be one of {list(FORMATS)}; received format={fmt!r}")
    k = max((len(result["predictions"]) for result in results), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path"] + [name for rank in range(1, k + 1) for name in (f"label_{rank}", f"probability_{rank}")])
    for result in results:
        cells = [result["path"]]
        for entry in result["predictions"]:
            cells += [entry["label"], f"{entry['probability']:.6f}"]
        writer.writerow(cells)
    return buffer.getvalue()


def predict(model_path, inputs, top_k=3, fmt="csv", output=None, unsafe_load=False):
    """Predict every image in ``inputs``; write to ``output`` or return the text.

    ``model_path``: a run folder, or a file ``keras-notes-export`` wrote (.tflite, .onnx, a
    SavedModel folder), each with its class names beside it. ``unsafe_load``: see
    ``keras_notes.deploy.engines.load_model_file``; off by default. EXIF orientation is
    applied, or not, as the run's training applied it (``config.json``'s ``ignore_exif``).
    """
    from keras_notes.deploy.engines import load_engine

    if fmt not in FORMATS:
        raise KerasNotesError(f"format must be one of {list(FORMATS)}; received format={fmt!r}")
    paths = collect_images(inputs)  # a mistyped path fails before the model is loaded
    engine = load_engine(model_path, unsafe_load=unsafe_load)
    results = predict_images(engine, paths, top_k, ignore_exif=run_ignores_exif(_run_folder(model_path)))
    text = format_predictions(results, fmt)
    if output is not None:
        runio.write_text(output, text)
    return text

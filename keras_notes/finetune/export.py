"""Export a finished run's model to SavedModel, LiteRT (four quantisations) and ONNX, and check each file.

    export_run("runs/digits", formats=["litert"], quantize=["int8"])

writes, into ``<run>/export/`` (``ExportConfig.output``)::

    saved_model/                  tf.saved_model.load(path).serve(images); class_names.json inside
    model.tflite                  LiteRT, float32
    model_float16.tflite          LiteRT, float16 weights (dequantised to float32 when loaded)
    model_dynamic.tflite          LiteRT, int8 weights, float activations (dynamic range)
    model_int8.tflite             LiteRT, int8 throughout; uint8 image in, uint8 probabilities out
    model.onnx                    ONNX (tf2onnx), for onnxruntime
    <file>.class_names.json       the labels, beside each file
    report.json                   every file checked on the run's own validation images

Every file is written under a temporary name and renamed into place (``keras_notes.atomic``).
Each file takes what ``model.keras`` takes (raw 0-255 RGB, the preprocessing is inside) and
returns class probabilities; ``keras_notes.deploy.engines`` runs any of them.

The conversions run in this process. ``TFLiteConverter.convert`` keeps memory on every call
in TF 2.20/2.21 (tensorflow#122598). Measured on VGG16 (59 MB of weights, docs/export.md):
3 MB per call over 8 calls, and no growth beyond noise (1,311, 1,421, 1,306, 1,310 MiB
resident) across the four LiteRT conversions of one command, which then exits. A process
per conversion would cost a TensorFlow start-up (5-8 s) each to save a few MB.
"""

import dataclasses
import os
import time

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.deploy import engines
from keras_notes.finetune import fidelity, runio
from keras_notes.finetune.export_config import ExportConfig
from keras_notes.finetune.runfiles import run_files

REPORT_FILE = "report.json"
ONNX_PACKAGES = (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"))
LITERT_PACKAGES = (("ai_edge_litert", "ai-edge-litert"),)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One exported file: how to make it and what it needs installed (its extension picks the engine)."""

    format: str
    quantize: str
    filename: str
    requires: tuple  # (module, pip package) pairs, for making and for checking the file
    keras_format: str  # model.export(format=...)
    options: object = None  # representative dataset or None -> model.export keyword arguments (LiteRT)


def _litert_options(quantize):
    def options(representative):
        import tensorflow as tf

        builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: ai_edge_litert cannot run them
        if quantize == "none":
            return {"target_spec": {"supported_ops": builtins}}
        if quantize == "float16":
            return {"optimizations": [tf.lite.Optimize.DEFAULT],
                    "target_spec": {"supported_ops": builtins, "supported_types": [tf.float16]}}
        if quantize == "dynamic":
            return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_ops": builtins}}
        # int8: every op quantised (the converter fails rather than leave one in float), and
        # uint8 at both ends, which is what an image and a microcontroller's buffers are.
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative,
                "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
                "inference_input_type": tf.uint8, "inference_output_type": tf.uint8}

    return options


RECIPES = {
    ("saved_model", "none"): Recipe("saved_model", "none", "saved_model", (), "tf_saved_model"),
    **{("litert", q): Recipe("litert", q, "model.tflite" if q == "none" else f"model_{q}.tflite",
                             LITERT_PACKAGES, "litert", _litert_options(q))
       for q in ("none", "float16", "dynamic", "int8")},
    ("onnx", "none"): Recipe("onnx", "none", "model.onnx", ONNX_PACKAGES, "onnx"),
}


def select_recipes(config):
    """The ``Recipe``s ``config`` asks for, in ``RECIPES`` order (non-LiteRT formats are float32 only)."""
    return [recipe for (fmt, quantize), recipe in RECIPES.items()
            if fmt in config.format and (quantize in config.quantize or fmt != "litert")]


def export_run(run_dir, formats=("litert",), quantize=("none",), say=print, calibration_files=None, **options):
    """Export ``run_dir``'s model in ``formats`` (LiteRT in each of ``quantize``), check each file, write the report.

    ``options`` are the other ``ExportConfig`` fields (output, data, val_dir, calibration_images,
    allow_drop, latency_runs, batch_size). ``calibration_files`` (a ``data.FileList``) replaces
    the seeded sample of training images that calibrates int8. Returns the report (a dict, also
    written to ``report.json``); raises ``fidelity.FidelityGateFailed`` after writing everything
    if a file lost more accuracy than its gate allows, unless ``allow_drop``.
    """
    config = ExportConfig(run_dir, format=formats, quantize=quantize, **options)
    recipes = select_recipes(config)
    for recipe in recipes:  # a missing package fails before anything is loaded or written
        engines.check_installed(recipe.requires)
    files = run_files(config.run_dir, config.data, config.val_dir)
    val = files.present_val()
    if calibration_files is None and "int8" in [recipe.quantize for recipe in recipes]:
        calibration_files = calibration_sample(files.present_train(), config.calibration_images,
                                                runio.read_json(os.path.join(config.run_dir, runio.CONFIG_FILE))["seed"])
    output = _prepare_output(config.output_dir)

    from keras_notes.finetune.predict import predict_files

    class_names = tuple(runio.read_json(os.path.join(config.run_dir, runio.CLASS_NAMES_FILE)))
    model_path = os.path.join(config.run_dir, runio.MODEL_FILE)
    model = engines.load_model_file(model_path)
    reference_engine = engines.keras_engine(model, class_names, model_path)
    say(f"validation: {len(val)} images, {files.source}")
    reference = predict_files(reference_engine, val, config.batch_size)  # (n, classes)
    rows = [_row("keras", "none", model_path, fidelity.compare(reference, reference, val.labels), gated=False)]

    representative = None
    if calibration_files is not None:
        representative = representative_dataset(calibration_files, reference_engine.image_size)
    for recipe in recipes:
        path = os.path.join(output, recipe.filename)
        start = time.perf_counter()
        _export(model, recipe, path, class_names, representative)
        seconds = time.perf_counter() - start
        engine = engines.load_engine(path)
        probabilities = predict_files(engine, val, config.batch_size)
        rows.append(_row(recipe.format, recipe.quantize, path, fidelity.compare(reference, probabilities, val.labels),
                         export_seconds=seconds))
        say(f"exported {recipe.format} {recipe.quantize} -> {path} in {seconds:.1f} s; "
            f"accuracy {rows[-1]['accuracy']:.4f}")
    _time_all(rows, config.latency_runs, say)
    report = _report(config, files, val, rows, calibration_files)
    runio.write_json(os.path.join(output, REPORT_FILE), report)
    say("\n" + fidelity.format_report_table(rows))
    say(f"\nreport: {os.path.join(output, REPORT_FILE)}")
    failed = [row for row in rows if row["gate"] == "FAILED"]
    if failed and not config.allow_drop:
        raise fidelity.FidelityGateFailed(_gate_message(failed, rows[0]))
    return report


def _prepare_output(path):
    """Create the export folder; ``KerasNotesError`` in one line if it cannot be written."""
    return runio.writable_folder(path, "export folder")


def calibration_sample(train, count, seed):
    """``count`` training files (all of them if fewer), drawn without replacement by a generator seeded ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train), size=min(count, len(train)), replace=False)
    return train.subset(sorted(chosen.tolist()))


def representative_dataset(files, image_size):
    """The converter's ``representative_dataset``: each image as ``[(1, size, size, 3) float32]``, 0-255.

    Decoded once, by the training pipeline's ``image_dataset``, so calibration sees the
    images exactly as training and validation do.
    """
    from keras_notes.finetune.data import image_dataset

    images = np.stack([image for image, _ in image_dataset(files, image_size).as_numpy_iterator()])

    def representative():
        for image in images:
            yield [image[None]]

    representative.count = len(images)
    return representative


def _export(model, recipe, path, class_names, representative):
    """Write ``recipe``'s file at ``path`` atomically, and its class names beside it."""
    from keras_notes.atomic import atomic_directory, atomic_path

    if recipe.quantize == "int8" and representative is None:
        raise KerasNotesError("int8 needs calibration images; received none")
    options = {} if recipe.options is None else recipe.options(representative)
    if recipe.format == "saved_model":
        with atomic_directory(path) as temporary:
            _export_saved_model(model, temporary)
            runio.write_json(engines.class_names_path(temporary), list(class_names))
        return path
    with atomic_path(path) as temporary:
        model.export(temporary, format=recipe.keras_format, verbose=False, **options)
    runio.write_json(engines.class_names_path(path), list(class_names))
    return path


def _export_saved_model(model, path):
    """``model.export(path, format="tf_saved_model")`` without its second copy of every weight.

    Keras 3.15's exporter tracks the model (its Keras variables) and also the tf.Variables the
    endpoint captures, and the checkpoint stores both (keras-team/keras#23553): VGG16's
    SavedModel held 115 MB of variables for 59 MB of weights. An ``ExportArchive`` with the
    endpoint alone keeps only what ``serve`` uses (57.5 MB, the same outputs to the last bit).
    """
    import functools

    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                         input_signature=[tf.TensorSpec(model.input_shape, tf.float32, name=model.inputs[0].name)])
    archive.write_out(path, verbose=False)


def _row(fmt, quantize, path, metrics, export_seconds=None, gated=True):
    """One line of the report; ``gated=False`` for model.keras itself, the reference."""
    row = {"format": fmt, "quantize": quantize, "path": path, "bytes": _size(path), **metrics,
           "export_seconds": export_seconds, "max_drop_points": None, "gate": "reference"}
    if gated:
        passed, row["max_drop_points"] = fidelity.gate(row)
        row["gate"] = "ok" if passed else "FAILED"
    return row


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _time_all(rows, runs, say):
    """Median batch-1 latency of each file on 1 thread and on the engine's default threads (fresh processes)."""
    from keras_notes.deploy.latency import measure_in_fresh_process

    for row in rows:
        row["latency_ms_1_thread"] = row["latency_ms_default"] = None
        if runs:
            row["latency_ms_1_thread"] = measure_in_fresh_process(row["path"], 1, runs)
            row["latency_ms_default"] = measure_in_fresh_process(row["path"], None, runs)
            say(f"timed {row['format']} {row['quantize']}: {row['latency_ms_1_thread']:.2f} ms on 1 thread, "
                f"{row['latency_ms_default']:.2f} ms on the default threads")


def _report(config, files, val, rows, calibration_files):
    return {
        "run_dir": config.run_dir,
        "config": {**dataclasses.asdict(config), "format": list(config.format), "quantize": list(config.quantize)},
        "validation": {"images": len(val), "files": files.source},
        "calibration_images": None if calibration_files is None else len(calibration_files),
        "latency": {"runs": config.latency_runs, "batch": 1, "cpu_count": os.cpu_count(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "artifacts": rows,
        "passed": all(row["gate"] != "FAILED" for row in rows),
    }


def _gate_message(failed, reference):
    parts = [f"{os.path.basename(row['path'])} ({row['format']} {row['quantize']}) accuracy {row['accuracy']:.4f} is "
             f"{-row['accuracy_delta'] * 100:.2f} points below model.keras's {reference['accuracy']:.4f} "
             f"(limit {row['max_drop_points']:g})" for row in failed]
    return "FIDELITY GATE FAILED: " + "; ".join(parts) + "; the files are written, pass --allow-drop to accept them"

"""``--frozen-pass``: the frozen base's pass (images -> pooled features) by batch size and engine.

The pass that ``cache.RunCache`` runs once per phase: MobileNet at 224 px with a frozen
base, on in-memory images, so that decoding is not in it. Engines: TensorFlow (the
traced ``extractor(images, training=False)``, as ``cache.extract_features`` runs it) and,
when ``onnxruntime`` and ``tf2onnx`` are installed, the same function converted to ONNX.
Each (engine, batch size) processes the same ``--images`` images once per repeat, in
alternating order; the table gives medians of wall time and of this process's CPU time
(user + system) per image. On a CPU shared with other jobs the wall time measures this
process's share of the cores; the CPU time measures the work, and CPU time / cores is
what the wall time would be on idle cores if both were kept busy.

The base's batch-norm statistics are first measured on the images, so the features are
of order 1 and the engines' outputs compare meaningfully (random statistics leave them
near 1e-19).
"""

import os
import statistics
import time

import numpy as np

BATCH_SIZES = (32, 64, 128, 256)
ADOPT_SPEEDUP = 1.3  # an engine is worth a dependency only if this much faster ...
ADOPT_TOLERANCE = 1e-4  # ... with outputs equal to TensorFlow's within this


def _extractor(config, images):
    import keras

    from keras_notes.finetune.frozen_part import feature_extractor
    from keras_notes.finetune.models import build_model, get_base, recalibrate_batch_norm

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.arch, 2, weights=None, image_size=config.image_size, freeze_base=False)
    recalibrate_batch_norm(model, images[:64], batch_size=32)
    get_base(model).trainable = False
    return feature_extractor(model)


def _engines(extractor, image_size):
    """``{name: run(images, batch) -> features}``: TensorFlow, and onnxruntime when it is installed."""
    import tensorflow as tf

    forward = tf.function(lambda images: extractor(images, training=False), reduce_retracing=True)

    def run_tensorflow(images, batch):
        return np.concatenate([forward(images[start:start + batch]).numpy() for start in range(0, len(images), batch)])

    engines = {"tensorflow": run_tensorflow}
    try:
        import onnxruntime
        import tf2onnx
    except ImportError:
        return engines
    spec = (tf.TensorSpec((None, image_size, image_size, 3), tf.float32, name="images"),)
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda images: extractor(images, training=False)),
                                             input_signature=spec, opset=17)
    options = onnxruntime.SessionOptions()
    # No busy-waiting between operations: on a shared CPU it takes cores from other jobs and
    # counts as this process's CPU time without doing work.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run_onnxruntime(images, batch):
        return np.concatenate([session.run(None, {name: images[start:start + batch]})[0]
                               for start in range(0, len(images), batch)])

    engines["onnxruntime"] = run_onnxruntime
    return engines


def measure_frozen_pass(config, batch_sizes=BATCH_SIZES, say=print):
    """Medians per (engine, batch size) of wall and CPU ms per image; -> ``{"rows", "differences", "load"}``."""
    images = np.random.default_rng(config.seed).uniform(
        0, 255, (config.images, config.image_size, config.image_size, 3)).astype(np.float32)
    extractor = _extractor(config, images)
    engines = _engines(extractor, config.image_size)
    reference = engines["tensorflow"](images, batch_sizes[0])
    differences = {f"{name} batch {batch}": float(np.abs(run(images, batch) - reference).max())
                   for name, run in engines.items() for batch in batch_sizes}  # also traces every shape
    settings = [(name, batch) for name in engines for batch in batch_sizes]
    wall, cpu = ({setting: [] for setting in settings} for _ in range(2))
    loads = []
    for repeat in range(config.repeats):
        for name, batch in (settings if repeat % 2 == 0 else settings[::-1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            engines[name](images, batch)
            wall[(name, batch)].append(1000 * (time.perf_counter() - start) / len(images))
            cpu[(name, batch)].append(1000 * (time.process_time() - start_cpu) / len(images))
            loads.append(os.getloadavg()[0])
            say(f"  {name:11} batch {batch:3}: {wall[(name, batch)][-1]:6.2f} ms wall, "
                f"{cpu[(name, batch)][-1]:6.2f} ms CPU an image (load {loads[-1]:.1f})")
    rows = [{"engine": name, "batch": batch, "wall_ms": statistics.median(wall[(name, batch)]),
             "cpu_ms": statistics.median(cpu[(name, batch)])} for name, batch in settings]
    return {"rows": rows, "differences": differences, "features_max": float(np.abs(reference).max()),
            "load": (min(loads), max(loads)), "images": len(images)}


def format_frozen_pass(result, cores=None):
    """The table, then which batch and engine are fastest and whether the other engine qualifies."""
    from keras_notes.report import format_table

    cores = cores or os.cpu_count() or 1
    rows = result["rows"]
    baseline = {row["batch"]: row for row in rows if row["engine"] == "tensorflow"}
    table = format_table(
        ["engine", "batch", "wall ms/image", "CPU ms/image", f"CPU / {cores} cores", "CPU vs TF same batch"],
        [[row["engine"], row["batch"], f"{row['wall_ms']:.2f}", f"{row['cpu_ms']:.2f}",
          f"{row['cpu_ms'] / cores:.2f}", f"{baseline[row['batch']]['cpu_ms'] / row['cpu_ms']:.2f}x"]
         for row in rows], align="lrrrrr")
    best_tf = min(baseline.values(), key=lambda row: row["cpu_ms"])
    lines = [table, f"(medians; load average {result['load'][0]:.1f}-{result['load'][1]:.1f} during the runs; "
                    f"{result['images']} images; features up to {result['features_max']:.3g})",
             f"TensorFlow: least CPU time at batch {best_tf['batch']} ({best_tf['cpu_ms']:.2f} ms an image)"]
    for engine in sorted({row["engine"] for row in rows} - {"tensorflow"}):
        best = min((row for row in rows if row["engine"] == engine), key=lambda row: row["cpu_ms"])
        speedup = best_tf["cpu_ms"] / best["cpu_ms"]
        wall = min(baseline.values(), key=lambda row: row["wall_ms"])["wall_ms"] / best["wall_ms"]
        worst = max(value for key, value in result["differences"].items() if key.startswith(engine))
        verdict = ("qualifies" if speedup >= ADOPT_SPEEDUP and worst <= ADOPT_TOLERANCE else "does not qualify")
        lines.append(f"{engine}: best at batch {best['batch']}, {speedup:.2f}x less CPU time and {wall:.2f}x the "
                     f"wall-time speed of TensorFlow's best; outputs within {worst:.1e}; {verdict} as an engine "
                     f"(needs >= {ADOPT_SPEEDUP}x and <= {ADOPT_TOLERANCE:g})")
    return "\n".join(lines)

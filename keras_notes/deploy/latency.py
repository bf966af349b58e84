"""Median batch-1 latency of a model file, each measurement in a fresh Python process.

A fresh process per (file, thread count) because TensorFlow fixes its thread pools once,
when its runtime starts: a process that has already run the model on every core cannot
then time it on one. The LiteRT and ONNX engines could change threads in-process, but
timing every engine the same way keeps the columns comparable, and a child that imports
neither TensorFlow nor the parent's datasets starts in about a second for those two.

The input is one seeded uniform 0-255 image: none of these models has a data-dependent
branch, so the content does not change the work done (int8 included: the same kernels run
on whatever values arrive).

    python -m keras_notes.deploy.latency MODEL --threads 1 --runs 50   -> {"median_ms": ..., ...} on stdout
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WARMUP_RUNS = 5  # the first calls build kernels and caches (TensorFlow traces its function)


def median_latency_ms(engine, runs, seed=0):
    """Median wall time of ``engine.predict`` on one image, in ms, over ``runs`` calls after a warm-up."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, (1, engine.image_size, engine.image_size, 3)).astype(np.float32)
    for _ in range(WARMUP_RUNS):
        engine.predict(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.predict(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def measure_in_fresh_process(path, threads, runs, timeout=900):
    """``median_latency_ms`` of the model at ``path`` with ``threads`` (None: the engine's default), timed
    in a child process; ``RuntimeError`` with the child's last words if it fails."""
    command = [sys.executable, "-m", "keras_notes.deploy.latency", os.fspath(path), "--runs", str(runs)]
    if threads is not None:
        command += ["--threads", str(threads)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"timing {path!r} failed: {completed.stderr.strip()[-800:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])["median_ms"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_notes.deploy.latency", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="run folder, .keras, SavedModel folder, .tflite or .onnx")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: the engine's own)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls after the warm-up")
    args = parser.parse_args(argv)
    from keras_notes.deploy.engines import load_engine

    engine = load_engine(args.model, threads=args.threads)
    print(json.dumps({"median_ms": median_latency_ms(engine, args.runs), "threads": args.threads,
                      "runs": args.runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

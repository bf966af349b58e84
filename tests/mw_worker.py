"""One worker of the multi-worker tests: train a tiny model with ``train_multi_worker``.

    TF_CONFIG=... python tests/mw_worker.py DATA_DIR OUTPUT_DIR RESULTS_DIR [--epochs 3] [--batch 8]

With ``TF_CONFIG`` set it joins the cluster under ``MultiWorkerMirroredStrategy``;
without, it trains alone under the default strategy. Either way it writes its final
weights to ``RESULTS_DIR/weights-<worker id>.npz`` and its history to
``RESULTS_DIR/history-<worker id>.json``, so a test can compare replicas and runs.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VAL_SPLIT = 0.25
SEED = 7


def build_tiny_model(num_classes, image_size):
    """(batch, s, s, 3) 0-255 -> rescale -> Conv2D(4, 3x3) -> (batch, s-2, s-2, 4) -> flatten -> Dense softmax.

    No dropout and no batch norm: the comparison with a single-process run and with
    ``model.fit`` is then deterministic arithmetic on the same batches.
    """
    import keras

    return keras.Sequential([
        keras.Input((image_size, image_size, 3), name="image"),
        keras.layers.Rescaling(1 / 255, name="rescale"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(num_classes, activation="softmax", name="predictions"),
    ], name="tiny")


def make_optimizer(name, lr):
    import keras

    return keras.optimizers.SGD(lr) if name == "sgd" else keras.optimizers.Adam(lr)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("output_dir")
    parser.add_argument("results_dir")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--lr", type=float, default=0.05)
    # SGD by default: its update is proportional to the gradient, so a gradient summed twice
    # (or not at all) across replicas shows in the weights; Adam would hide a constant factor.
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to pause after each epoch's log line")
    args = parser.parse_args(argv)

    from keras_notes.finetune.cluster import make_multi_worker_strategy, read_tf_config

    # The strategy first: TensorFlow configures collective ops once, before any other op.
    task = read_tf_config() if os.environ.get("TF_CONFIG") else None
    strategy = make_multi_worker_strategy() if task else None

    import numpy as np
    import tensorflow as tf

    from keras_notes.finetune.data import load_splits
    from keras_notes.finetune.multiworker import finish_multi_worker, train_multi_worker

    splits = load_splits(args.data_dir, val_split=VAL_SPLIT, seed=SEED)
    num_classes = len(splits.class_names)

    def log(message):
        print(message, flush=True)
        if args.sleep and message.startswith("epoch "):
            time.sleep(args.sleep)  # leaves a test time to kill a worker between epochs

    result = train_multi_worker(
        lambda: build_tiny_model(num_classes, args.image_size), splits.train, splits.val, num_classes,
        args.image_size, args.batch, args.epochs, args.lr, args.output_dir, seed=SEED, strategy=strategy,
        task=task, log=log, optimizer_fn=lambda rate: make_optimizer(args.optimizer, rate))
    worker_id = task.worker_id if task else 0
    os.makedirs(args.results_dir, exist_ok=True)
    np.savez(os.path.join(args.results_dir, f"weights-{worker_id}.npz"), *result.model.get_weights())
    with open(os.path.join(args.results_dir, f"history-{worker_id}.json"), "w") as handle:
        json.dump({"history": result.history, "initial_epoch": result.initial_epoch,
                   "confusion": None if result.confusion is None else result.confusion.tolist(),
                   "is_chief": result.is_chief}, handle)
    if result.is_chief:
        result.model.save(os.path.join(args.output_dir, "model.keras"))
    finish_multi_worker(strategy or tf.distribute.get_strategy(), result)
    print(f"done: worker {worker_id}, chief={result.is_chief}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

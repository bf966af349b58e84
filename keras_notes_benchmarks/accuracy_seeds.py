"""``--accuracy-seeds``: how much the phase 1 validation accuracy moves with the seed, for both splits.

The two phase-1 arms differ in how they split the images (per class against at random),
in whether the last partial batch trains, and in the head's random start, so their
accuracies differ by seed. Here the frozen base runs once over every image, then each
seed splits the kept features both ways and trains the same head on each.
"""

import contextlib
import io
import statistics
import tempfile

import numpy as np

from keras_notes_benchmarks.common import HEAD_LR, keras_io_head, prepare


def head_accuracy(features, labels, train_rows, val_rows, config, seed, drop_remainder):
    """Final validation accuracy of the keras.io head (``keras_io_head``, Adam 1e-3) trained on kept features."""
    import keras
    import tensorflow as tf

    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(features.shape[1:])
    head = keras.Model(inputs, keras_io_head(inputs, int(labels.max()) + 1))
    compile_model(head, HEAD_LR)
    train = (tf.data.Dataset.from_tensor_slices((features[train_rows], labels[train_rows]))
             .shuffle(len(train_rows), seed=seed).batch(config.batch_size, drop_remainder=drop_remainder))
    history = head.fit(train, validation_data=(features[val_rows], labels[val_rows]), epochs=config.epochs,
                       verbose=0, shuffle=False)  # the dataset shuffles itself
    return history.history["val_accuracy"][-1]


def accuracy_spread(config, seeds, say=print):
    """Validation accuracy over ``seeds``: the package's split and batching against keras.io's; -> lists."""
    import keras

    from keras_notes.finetune.cache import extract_features
    from keras_notes.finetune.data import load_splits, make_eval_dataset
    from keras_notes.finetune.frozen_part import feature_extractor
    from keras_notes.finetune.models import build_model

    results = {"package": [], "keras.io": []}
    with tempfile.TemporaryDirectory(prefix="keras-notes-accuracy-") as scratch:
        config = prepare(config, scratch)
        everything = load_splits(config.data_dir, val_split=config.val_split, seed=0)
        files = everything.train + everything.val
        model = build_model(config.arch, len(everything.class_names), weights=config.base_weights,
                            image_size=config.image_size, freeze_base=True)
        features = extract_features(feature_extractor(model),
                                    make_eval_dataset(files, config.image_size, config.batch_size), len(files))
        row = {path: index for index, path in enumerate(files.paths)}
        labels = np.asarray(files.labels, np.int32)
        for seed in seeds:
            split = load_splits(config.data_dir, val_split=config.val_split, seed=seed)
            with contextlib.redirect_stdout(io.StringIO()):  # "Found 512 files ..."
                train, val = keras.utils.image_dataset_from_directory(
                    config.data_dir, validation_split=config.val_split, subset="both", seed=seed,
                    image_size=(config.image_size, config.image_size), batch_size=config.batch_size)
            for name, paths, drop in (("package", (split.train.paths, split.val.paths), True),
                                      ("keras.io", (train.file_paths, val.file_paths), False)):
                train_rows, val_rows = ([row[path] for path in group] for group in paths)
                results[name].append(head_accuracy(features, labels, train_rows, val_rows, config, seed, drop))
            say(f"  seed {seed}: package split {results['package'][-1]:.4f}, "
                f"keras.io split {results['keras.io'][-1]:.4f}")
    return results


def format_accuracy_spread(results):
    """Mean, standard deviation and range of each split's accuracies, and the difference of the means."""
    from keras_notes.report import format_table

    rows = [[name, len(values), f"{statistics.mean(values):.3f}", f"{statistics.stdev(values):.3f}",
             f"{min(values):.3f}", f"{max(values):.3f}"] for name, values in results.items()]
    table = format_table(["split", "seeds", "mean", "sd", "min", "max"], rows, align="lrrrrr")
    package, reference = results["package"], results["keras.io"]
    error = (statistics.variance(package) / len(package) + statistics.variance(reference) / len(reference)) ** 0.5
    return (f"{table}\n\ndifference of the means (keras.io - package): "
            f"{statistics.mean(reference) - statistics.mean(package):+.3f}, standard error {error:.3f}")

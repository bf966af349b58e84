"""``--mode rerun``: a first run on a folder against a second run that changes only the learning rate.

The first arm starts from an empty kept cache of its own (``kept_cache`` on, a fresh
``cache_dir``), so it runs the frozen pass over every image and keeps the outputs. The
rerun arm changes ``--lr`` (a third of the first's) and shares one cache folder across its
runs, which the warm-up's rerun fills; every timed rerun must then find every image there,
and the arm fails if it computes any (a miss would time a first run). Both arms are whole
``finetune`` runs, timed from after the TensorFlow import to the end (evaluation, saved
model and plots included). The table's ratio is first / rerun: the issue's goal of a
rerun at most 10 % of the first is a ratio of at least 10.
"""

import os

from keras_notes.errors import KerasNotesError
from keras_notes_benchmarks.arms import Mode, package_arm
from keras_notes_benchmarks.common import HEAD_LR

RERUN_LR = HEAD_LR / 3


def first_arm(config, output, marks):
    """A first run: nothing kept yet (a cache folder of its own)."""
    return package_arm(config, output, marks, changes={"kept_cache": True, "cache_dir": f"{output}-kept"})


def rerun_arm(config, output, marks):
    """A second run at another learning rate, on outputs kept by an earlier run of this arm."""
    from keras_notes.finetune import cache

    shared = os.path.join(os.path.dirname(output), "kept-rerun")
    filled = os.path.isdir(shared)
    computed = []
    original = cache.extract_features, cache.extract_judged

    def counting_features(extractor, dataset, count, paths=None):
        computed.append(count)
        return original[0](extractor, dataset, count, paths)

    def counting_judged(extractor, files, image_size, paths=None):
        computed.append(len(files))
        return original[1](extractor, files, image_size, paths)

    cache.extract_features, cache.extract_judged = counting_features, counting_judged
    try:
        result = package_arm(config, output, marks, changes={"kept_cache": True, "cache_dir": shared,
                                                              "lr": RERUN_LR})
    finally:
        cache.extract_features, cache.extract_judged = original
    if filled and sum(computed):
        raise KerasNotesError(f"the rerun computed {sum(computed)} images: the kept cache in {shared} missed")
    return result


MODE = Mode(
    arms={"first": first_arm, "rerun": rerun_arm},
    help="a first run against a rerun that changes only --lr, on the outputs the kept cache holds",
    headline=lambda config: f"rerun: a first run vs a rerun at lr {RERUN_LR:g} on the kept outputs",
    timed="trained s",
    span="start to the end of training",
    ratio="ratio to the end of training",
)

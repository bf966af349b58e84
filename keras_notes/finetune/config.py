"""The fine-tuning run's configuration: one frozen dataclass, the single source of truth.

Every field is a ``keras_notes.fields.option``: its command-line help and parser sit
beside its default, and ``keras_notes/cli/finetune.py`` generates its flags from them
(``--arch``'s choices come from the registry in ``archs.py``), so the library and the
command line cannot drift apart. The resolved
configuration (``None`` defaults filled in) is written to the run folder as
``config.json`` and reads back with ``FinetuneConfig.from_dict``.
"""

import dataclasses
import datetime
import os

from keras_notes.errors import KerasNotesError
from keras_notes.fields import none_or, option
from keras_notes.finetune.archs import ARCHS, check_image_size, get_arch

STRATEGIES = ("auto", "default", "mirrored", "one-device", "multi-worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
AUGMENTATIONS = ("flip", "rotation", "zoom")
VERBOSITIES = ("auto", 0, 1, 2)


def _verbosity(text):
    return text if text == "auto" else int(text)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tuning run depends on. ``None`` means "work it out" (see ``resolve``)."""

    # Required: the folder with one sub-folder per class.
    data_dir: str = option(None, "image folder with one sub-folder per class", str, positional=True)
    # No separate validation folder by default: most users have one folder, so split it.
    val_dir: str = option(None, "separate validation folder with the same class sub-folders "
                                "(default: split --val-split off data_dir)", none_or(str))
    # 20% is the usual hold-out; the split is stratified per class and seeded, so reruns compare.
    val_split: float = option(0.2, "fraction of each class held out for validation (seeded, stratified)",
                              float)
    # MobileNet: 3.2M parameters in its base, the course's own fine-tuning model, fast on a CPU.
    # The choices come from the registry (an unknown name is refused in one line by get_arch).
    arch: str = option("mobilenet", f"base architecture: {', '.join(ARCHS)}", str, metavar="ARCH")
    # ImageNet weights are the point of fine-tuning; "none" trains from random weights,
    # anything else is a path to a local .h5 / .weights.h5 file for the base.
    weights: str = option("imagenet", "'imagenet', 'none' (random initialisation) or a path to a local "
                                      "weights file for the base", none_or(str))
    # None: frozen with pretrained weights, trained with random ones (nothing to keep in a random base).
    freeze_base: bool = option(None, "freeze the base during phase 1 (default: yes with pretrained "
                                     "weights, no with --weights none)")
    # None: the size the arch's ImageNet weights were trained at (224 for every registered base).
    image_size: int = option(None, "side of the square input in pixels, at least 32 (default: the "
                                   "arch's own, 224)", none_or(int))
    # 32: Keras's own default for fit; at 224 px a batch of VGG16 activations fits a laptop's
    # memory. It is the global batch, split evenly across replicas (32 / replicas each).
    batch_size: int = option(32, "global batch size; must divide evenly among the replicas", int)
    # 5 epochs of head training: a frozen base plus a new Dense head converges in a few epochs.
    epochs: int = option(5, "phase 1 epochs (the head, plus the base if it is not frozen)", int)
    # 1e-3: Adam's default, right for a freshly initialised head. A whole network trained from
    # random weights may need less: VGG16 on the digits collapsed to chance at 1e-3, not at 1e-4.
    lr: float = option(1e-3, "phase 1 learning rate (Adam)", float)
    # Phase 2 is off by default: it pays only once the head has converged, and costs a full
    # backward pass through the unfrozen layers.
    fine_tune_epochs: int = option(0, "phase 2 epochs with the top of the base unfrozen (0: no phase 2)",
                                   int)
    # None: lr / 10, so that the pretrained weights move gently (the keras.io guide's advice).
    fine_tune_lr: float = option(None, "phase 2 learning rate (default: lr / 10)", none_or(float))
    # None with unfreeze_from None: phase 2 unfreezes the whole base (the keras.io guide's recipe).
    unfreeze_top_n: int = option(None, "phase 2 unfreezes the top N layers of the base", none_or(int))
    unfreeze_from: str = option(None, "phase 2 unfreezes the base from this layer name upwards",
                                none_or(str))
    # 0.2: the keras.io fine-tuning guide's value for the new head.
    dropout: float = option(0.2, "dropout rate before the new Dense head", float)
    # 0: the keras.io guide's head, pool -> dropout -> predictions. A width adds a hidden
    # Dense(width, relu) before the dropout (pool -> hidden -> dropout -> predictions), so that
    # dropout still acts on what the softmax layer reads.
    hidden_units: int = option(0, "units of a hidden Dense(relu) layer in the head, before the dropout "
                                  "(0: no hidden layer)", int)
    # 0: plain cross-entropy on the labels. Smoothing trains on targets (1 - s) one-hot + s / classes.
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss, in [0, 1)", float)
    # False: a photo is seen the way it is displayed, turned by its EXIF orientation tag, in
    # training, evaluation and predict alike. True reads the pixels as stored, as tf.io.decode_jpeg
    # and image_dataset_from_directory do.
    ignore_exif: bool = option(False, "use the pixels as stored, ignoring EXIF orientation tags (as "
                                      "image_dataset_from_directory does)")
    # No augmentation by default: flips are wrong for digits and text, so the user opts in.
    augment: tuple = option((), "training-only augmentation layers: any of flip rotation zoom (default: none)",
                            str, nargs="*", choices=AUGMENTATIONS)
    # None: on whenever it gives the same training (no augmentation, one replica): the layers
    # below the first trained one then run once per phase instead of once per epoch (finetune/cache.py).
    cache: bool = option(None, "compute the frozen part of the model once per phase and train the rest on its "
                               "kept output (default: on without augmentation and with one replica)")
    # None: half of MemAvailable, so that the cache cannot take the memory TensorFlow needs.
    cache_budget: float = option(None, "MiB of RAM for the cached features; beyond it they go to a "
                                       "memory-mapped file in <run>/cache (default: half the available memory)",
                                 none_or(float))
    # False: a spilled cache is only a speed-up for one run, and can be large.
    keep_cache: bool = option(False, "keep <run>/cache after the run")
    # True: a re-run on the same images (another lr, dropout or head) skips the frozen pass (kept.py).
    kept_cache: bool = option(True, "keep the frozen part's outputs across runs in --cache-dir, so that a re-run "
                                    "on the same images computes only what changed")
    # None: $KERAS_NOTES_CACHE, else ~/.cache/keras_notes (resolved when used, not written resolved).
    cache_dir: str = option(None, "folder of the outputs kept across runs (default: $KERAS_NOTES_CACHE, else "
                                  "~/.cache/keras_notes)", none_or(str))
    # 10 GiB: MobileNet's pooled outputs take 4 KiB an image, so about 2.6 million images.
    cache_limit: float = option(10.0, "GiB the kept outputs may take; beyond it the least recently used "
                                      "entries are evicted", float)
    # "auto": several GPUs -> mirrored, one GPU -> that GPU, none -> the default strategy.
    strategy: str = option("auto", "tf.distribute strategy", str, choices=STRATEGIES)
    # "auto": mixed_float16 on GPUs of compute capability >= 7.0, float32 otherwise.
    precision: str = option("auto", "compute precision", str, choices=PRECISIONS)
    # None: runs/<timestamp>, so that runs never overwrite each other.
    output: str = option(None, "run folder (default: runs/<timestamp>)", none_or(str))
    # False: a new run, which refuses a folder that already holds files rather than overwrite it.
    resume: bool = option(False, "continue the run in --output from its last completed epoch")
    # A fixed seed: the split, the shuffling and the initialisation repeat from run to run.
    seed: int = option(1337, "seed for the split, shuffling, augmentation and initialisation", int)
    # "auto": progress bars at a terminal, one line per epoch under CI or a pipe.
    verbose: object = option("auto", "Keras verbosity: auto, 0, 1 (progress bar) or 2 (line per epoch)",
                             _verbosity)

    def __post_init__(self):
        for name in ("data_dir", "val_dir", "weights", "output", "cache_dir"):  # pathlib paths -> str, for config.json
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        if self.data_dir is None or not str(self.data_dir):
            raise KerasNotesError(f"data_dir is required; received data_dir={self.data_dir!r}")
        if self.val_dir is None and not 0.0 < self.val_split < 1.0:
            raise KerasNotesError(
                f"val_split must be between 0 and 1 (exclusive) when there is no val_dir; "
                f"received val_split={self.val_split!r}")
        get_arch(self.arch)
        if self.weights is not None and not isinstance(self.weights, str):
            raise KerasNotesError(f"weights must be 'imagenet', None or a path; received weights={self.weights!r}")
        if self.image_size is not None:
            check_image_size(self.arch, self.image_size)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("epochs", self.epochs, 1)
        _check_int("fine_tune_epochs", self.fine_tune_epochs, 0)
        _check_positive("lr", self.lr)
        if self.fine_tune_lr is not None:
            _check_positive("fine_tune_lr", self.fine_tune_lr)
        if self.unfreeze_top_n is not None:
            _check_int("unfreeze_top_n", self.unfreeze_top_n, 1)
        if self.unfreeze_top_n is not None and self.unfreeze_from is not None:
            raise KerasNotesError(
                f"give unfreeze_top_n or unfreeze_from, not both; received unfreeze_top_n="
                f"{self.unfreeze_top_n!r}, unfreeze_from={self.unfreeze_from!r}")
        if self.fine_tune_epochs == 0 and (self.unfreeze_top_n is not None or self.unfreeze_from is not None
                                           or self.fine_tune_lr is not None):
            raise KerasNotesError("unfreeze_top_n, unfreeze_from and fine_tune_lr apply to phase 2, which "
                                  "runs only with fine_tune_epochs > 0; received fine_tune_epochs=0")
        if not 0.0 <= self.dropout < 1.0:
            raise KerasNotesError(f"dropout must be in [0, 1); received dropout={self.dropout!r}")
        _check_int("hidden_units", self.hidden_units, 0)
        check_label_smoothing(self.label_smoothing)
        augment = tuple(self.augment)
        if any(name not in AUGMENTATIONS for name in augment) or len(set(augment)) != len(augment):
            raise KerasNotesError(f"augment takes distinct names from {AUGMENTATIONS}; received augment={augment!r}")
        object.__setattr__(self, "augment", augment)  # a JSON list reads back as the same tuple
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("verbose", self.verbose, VERBOSITIES)
        _check_int("seed", self.seed, 0)
        if self.cache_budget is not None and (isinstance(self.cache_budget, bool)
                                              or not isinstance(self.cache_budget, (int, float))
                                              or not self.cache_budget >= 0):
            raise KerasNotesError(f"cache_budget must be a number of MiB >= 0; "
                                  f"received cache_budget={self.cache_budget!r}")
        if isinstance(self.cache_limit, bool) or not isinstance(self.cache_limit, (int, float)) \
                or not self.cache_limit >= 0:
            raise KerasNotesError(f"cache_limit must be a number of GiB >= 0; received cache_limit={self.cache_limit!r}")
        if self.resume and self.output is None:
            raise KerasNotesError("resume needs the run folder to continue; received resume=True, output=None")

    @classmethod
    def from_dict(cls, values):
        """A config from ``config.json``'s contents; unknown keys are an error naming them."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KerasNotesError(f"unknown configuration keys {unknown}; known keys are {sorted(names)}")
        return cls(**values)

    def to_dict(self):
        """The fields as JSON-ready values (the augment tuple becomes a list)."""
        values = dataclasses.asdict(self)
        values["augment"] = list(self.augment)
        return values

    @property
    def phase2_lr(self):
        """Phase 2's learning rate: ``fine_tune_lr``, or ``lr / 10``."""
        return self.lr / 10 if self.fine_tune_lr is None else self.fine_tune_lr

    def resolve(self, now=None):
        """A copy with the ``None`` defaults that do not depend on the hardware filled in.

        ``image_size`` becomes the arch's default, ``freeze_base`` follows ``weights``,
        ``fine_tune_lr`` becomes ``lr / 10`` when phase 2 runs, ``output`` becomes
        ``runs/<timestamp>``, and ``val_split`` becomes 0 when a ``val_dir`` replaces it.
        The strategy and precision are resolved by ``keras_notes.finetune.strategy``.
        """
        now = now or datetime.datetime.now()
        changes = {}
        if self.image_size is None:
            changes["image_size"] = get_arch(self.arch).default_image_size
        if self.freeze_base is None:
            changes["freeze_base"] = self.weights is not None
        if self.cache is None:  # on where it trains the same model; more than one replica turns it off later
            changes["cache"] = not self.augment
        if self.fine_tune_epochs and self.fine_tune_lr is None:
            changes["fine_tune_lr"] = self.phase2_lr
        if self.output is None:
            changes["output"] = os.path.join("runs", now.strftime("%Y%m%d-%H%M%S"))
        if self.val_dir is not None:
            changes["val_split"] = 0.0
        return dataclasses.replace(self, **changes)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise KerasNotesError(f"{name} must be an integer of at least {minimum}; received {name}={value!r}")


def check_label_smoothing(value):
    """``KerasNotesError`` unless ``value`` is a number in [0, 1): 1 would make every target uniform."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise KerasNotesError(f"label_smoothing must be a number in [0, 1); received label_smoothing={value!r}")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise KerasNotesError(f"{name} must be a positive number; received {name}={value!r}")


def _check_choice(name, value, choices):
    if value not in choices or isinstance(value, bool):
        raise KerasNotesError(f"{name} must be one of {list(choices)}; received {name}={value!r}")

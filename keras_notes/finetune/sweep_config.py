"""The head sweep's configuration: the run's data and model fields, the trials, the search space.

The fields a sweep shares with a fine-tuning run (the folder, the split, the arch, the
weights, the batch, the seed, ...) are ``FinetuneConfig``'s own fields, help text and
parser included (``_shared``); the rest says how many trials, how they are searched,
and over which ranges. ``keras_notes/cli/sweep.py`` generates its flags from all of
them, as the fine-tuning CLI does from ``FinetuneConfig``. The base is always frozen:
a sweep trains heads on the frozen base's pooled output, computed once.
"""

import argparse
import dataclasses
import datetime
import math
import os

from keras_notes.errors import KerasNotesError
from keras_notes.fields import none_or, option
from keras_notes.finetune.config import FinetuneConfig, check_label_smoothing

# The KerasTuner classes a sweep can use, by name; each takes max_trials and seed.
# (Hyperband is left out: it decides its own number of trials and epochs, not --trials.)
TUNERS = {"random": "RandomSearch", "bayesian": "BayesianOptimization"}
BEST_DIR = "best"  # the winner's run folder, under the sweep folder


def _shared(name):
    """``FinetuneConfig``'s field ``name`` (default, help text and parser) as a field of this config."""
    field = {field.name: field for field in dataclasses.fields(FinetuneConfig)}[name]
    return dataclasses.field(default=field.default, metadata=dict(field.metadata))


def widths(text):
    """``"0,128,256"`` -> ``(0, 128, 256)``: the command line's ``--hidden-units``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; received {text!r}") from None


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Everything a head sweep depends on; ``finetune_config`` turns a trial's values into a run's config."""

    data_dir: str = _shared("data_dir")
    val_dir: str = _shared("val_dir")
    val_split: float = _shared("val_split")
    arch: str = _shared("arch")
    weights: str = _shared("weights")
    image_size: int = _shared("image_size")
    batch_size: int = _shared("batch_size")
    # 10 head epochs: what the budget names; a frozen base's head has converged by then.
    epochs: int = option(10, "head epochs of each trial, and of the winner's retraining", int)
    # 20 trials: the budget, about 5 draws for each of the 4 hyperparameters.
    trials: int = option(20, "trials (head configurations) to train", int)
    # "random": seeded random search, the baseline every tuner is measured against.
    tuner: str = option("random", f"KerasTuner search: {', '.join(TUNERS)}", str, choices=list(TUNERS))
    # 1e-4 to 1e-2, log-uniform: Adam's default 1e-3 in the middle, a decade either side.
    lr_min: float = option(1e-4, "smallest learning rate tried (the range is searched log-uniformly)", float)
    lr_max: float = option(1e-2, "largest learning rate tried", float)
    # 0 to 0.5: none up to the strongest dropout a small head usually takes.
    dropout_min: float = option(0.0, "smallest dropout rate tried", float)
    dropout_max: float = option(0.5, "largest dropout rate tried", float)
    # 0 (the keras.io head) and three widths below MobileNet's 1,024 pooled features.
    hidden_units: tuple = option((0, 128, 256, 512), "hidden Dense widths tried, comma-separated; 0 is no hidden "
                                                     "layer (default: 0,128,256,512)", widths)
    # 0 to 0.2: 0.1 is the usual value (Inception-v3's); beyond 0.2 it mostly blurs the targets.
    smoothing_min: float = option(0.0, "smallest label smoothing tried", float)
    smoothing_max: float = option(0.2, "largest label smoothing tried", float)
    ignore_exif: bool = _shared("ignore_exif")
    # The frozen pass's outputs are kept across runs: the winner's retraining, and a later
    # sweep or run on the same images, read them instead of running the base again.
    kept_cache: bool = _shared("kept_cache")
    cache_dir: str = _shared("cache_dir")
    cache_limit: float = _shared("cache_limit")
    # None: runs/sweep-<timestamp>, so that sweeps never overwrite each other.
    output: str = option(None, "sweep folder: trials.csv, sweep.json, the tuner's files, and best/, the winner's "
                               "run folder (default: runs/sweep-<timestamp>)", none_or(str))
    seed: int = option(1337, "seed for the split, the search, each trial's initialisation and the shuffling", int)
    verbose: object = _shared("verbose")

    def __post_init__(self):
        for name in ("data_dir", "val_dir", "weights", "output"):  # pathlib paths -> str, for sweep.json
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))  # a JSON list reads back the same
        self.finetune_config()  # the shared fields, validated as a run validates them
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise KerasNotesError(f"trials must be an integer of at least 1; received trials={self.trials!r}")
        if self.tuner not in TUNERS:
            raise KerasNotesError(f"unknown tuner {self.tuner!r}; choose from {sorted(TUNERS)}")
        for name in ("lr_min", "lr_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise KerasNotesError(f"{name} must be a positive number; received {name}={value!r}")
        _check_range("lr", self.lr_min, self.lr_max)
        for name in ("dropout_min", "dropout_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise KerasNotesError(f"{name} must be in [0, 1); received {name}={value!r}")
        _check_range("dropout", self.dropout_min, self.dropout_max)
        widths = self.hidden_units
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in widths) or len(
                set(widths)) != len(widths):
            raise KerasNotesError(f"hidden_units takes distinct integers of at least 0; received "
                                  f"hidden_units={widths!r}")
        for name in ("smoothing_min", "smoothing_max"):
            try:
                check_label_smoothing(getattr(self, name))
            except KerasNotesError:
                raise KerasNotesError(f"{name} must be a number in [0, 1); received "
                                      f"{name}={getattr(self, name)!r}") from None
        _check_range("smoothing", self.smoothing_min, self.smoothing_max)

    def finetune_config(self, **trial):
        """The fine-tuning run's config for this sweep's data and model, with a trial's ``lr``,
        ``dropout``, ``hidden_units`` and ``label_smoothing``; its ``output`` is ``<output>/best``."""
        shared = {name: getattr(self, name) for name in ("data_dir", "val_dir", "val_split", "arch", "weights",
                                                          "image_size", "batch_size", "epochs", "ignore_exif",
                                                          "kept_cache", "cache_dir", "cache_limit", "seed",
                                                          "verbose")}
        output = None if self.output is None else os.path.join(self.output, BEST_DIR)
        return FinetuneConfig(**shared, freeze_base=True, output=output, **trial)

    def search_space(self):
        """The ranges as ``sweep.json`` records them."""
        return {"lr": {"min": self.lr_min, "max": self.lr_max, "sampling": "log"},
                "dropout": {"min": self.dropout_min, "max": self.dropout_max},
                "hidden_units": list(self.hidden_units),
                "label_smoothing": {"min": self.smoothing_min, "max": self.smoothing_max}}

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values

    def resolve(self, now=None):
        """A copy with ``output`` set (``runs/sweep-<timestamp>``) and ``image_size`` the arch's own."""
        resolved = self.finetune_config().resolve()
        now = now or datetime.datetime.now()
        output = self.output or os.path.join("runs", now.strftime("sweep-%Y%m%d-%H%M%S"))
        return dataclasses.replace(self, image_size=resolved.image_size, output=output)


def _check_range(name, low, high):
    if low > high or (name == "lr" and not math.isfinite(high / low)):
        raise KerasNotesError(f"{name}_min must not exceed {name}_max; received {name}_min={low!r}, "
                              f"{name}_max={high!r}")

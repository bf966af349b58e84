"""``BenchmarkConfig``: one benchmark's data, model and schedule; every arm uses the same values."""

import dataclasses

from keras_notes.errors import KerasNotesError
from keras_notes_benchmarks.modes import MODES


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark: the data, the model and the schedule; both arms use the same values."""

    data_dir: str = None  # None: generate ``images`` images in a temporary folder
    images: int = 512  # generated images, split evenly over ``classes``
    classes: int = 2
    image_size: int = 224
    arch: str = "mobilenet"
    epochs: int = 10
    batch_size: int = 32
    val_split: float = 0.2
    repeats: int = 3  # timed runs of each arm, alternating
    warmup: bool = True
    seed: int = 1337
    mode: str = "phase1"  # a key of modes.MODES
    fine_tune_epochs: int = 5  # phase2 only
    unfreeze_from: str = "conv_dw_12"  # phase2 only; MobileNet's last two depthwise/pointwise blocks
    augment: tuple = ("flip", "rotation", "zoom")  # augment only
    base_weights: str = None  # None: measure the batch-norm statistics of a random base on the images

    def __post_init__(self):
        for name in ("images", "classes", "image_size", "epochs", "batch_size", "repeats", "fine_tune_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KerasNotesError(f"{name} must be an integer of at least 1; received {name}={value!r}")
        if self.mode not in MODES:
            raise KerasNotesError(f"mode must be one of {list(MODES)}; received mode={self.mode!r}")
        object.__setattr__(self, "augment", tuple(self.augment))  # a JSON list reads back as the same tuple

"""``BenchmarkConfig``: one benchmark's data, model and schedule; every arm uses the same values.

Every field is a ``keras_notes.fields.option``: ``keras-notes-benchmark`` generates its
flags from them (``cli``), and ``--mode``'s choices and help come from ``modes.MODES``.
"""

import dataclasses

from keras_notes.errors import KerasNotesError
from keras_notes.fields import option
from keras_notes.finetune.archs import ARCHS
from keras_notes.finetune.config import AUGMENTATIONS
from keras_notes_benchmarks.modes import MODES


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark: the data, the model and the schedule; both arms use the same values."""

    # None: generate ``images`` images in a temporary folder.
    data_dir: str = option(None, "image folder with one sub-folder per class; without it, --images images are "
                                 "generated", str)
    # 512 at 224 px: enough steps per epoch (13) for the timings to dwarf the start-up.
    images: int = option(512, "images to generate, split evenly over --classes")
    classes: int = option(2, "classes to generate")
    image_size: int = option(224, "side of the square input in pixels")
    arch: str = option("mobilenet", f"base architecture: {', '.join(ARCHS)}", str, metavar="ARCH")
    epochs: int = option(10, "phase 1 (head) epochs")
    batch_size: int = option(32, "batch size")
    val_split: float = option(0.2, "fraction held out for validation")
    # Timed runs of each arm, alternating: 3 is the fewest with a median.
    repeats: int = option(3, "timed runs of each arm")
    warmup: bool = option(True, "run each arm once for one epoch first, not counted")
    seed: int = option(1337, "seed for the data, the split and the initialisation")
    fine_tune_epochs: int = option(5, "phase 2 epochs (--mode phase2)")
    # conv_dw_12: MobileNet's last two depthwise/pointwise blocks, the README's phase 2 example.
    unfreeze_from: str = option("conv_dw_12", "phase 2 trains the base from this layer on (--mode phase2; "
                                              "default: %(default)s, where MobileNet's last two "
                                              "depthwise/pointwise blocks start)")
    # The budget: 20 trials of (--epochs) 10 head epochs against 3 epochs of the keras.io recipe.
    trials: int = option(20, "trials of the head sweep (--mode sweep)")
    reference_epochs: int = option(3, "epochs of the keras.io recipe raced against the sweep (--mode sweep)")
    # None: measure the batch-norm statistics of a random base on the images.
    base_weights: str = option(None, "weights file for the base; without it, a random base whose batch-norm "
                                     "statistics are measured on the images", str)
    # The race to run: a key of modes.MODES, whose records give the choices and their help.
    mode: str = option("phase1", "; ".join(f"{name}: {mode.help}" for name, mode in MODES.items()),
                       choices=list(MODES))
    augment: tuple = option(AUGMENTATIONS, "augmentation layers (--mode augment)", str, nargs="*",
                            choices=AUGMENTATIONS)
    # A phone's 12-megapixel landscape frame (4:3), as the photo benchmark's issue specifies.
    photo_width: int = option(4032, "width of the generated photos in pixels (--mode photos)")
    photo_height: int = option(3024, "height of the generated photos in pixels (--mode photos)")
    # None: $XDG_CACHE_HOME/keras-notes (~/.cache/keras-notes); the folder is generated once and reused.
    photo_cache: str = option(None, "folder that keeps the generated photos between runs (--mode photos; "
                                    "default: ~/.cache/keras-notes)", str)

    def __post_init__(self):
        for name in ("images", "classes", "image_size", "epochs", "batch_size", "repeats", "fine_tune_epochs",
                     "photo_width", "photo_height", "trials", "reference_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KerasNotesError(f"{name} must be an integer of at least 1; received {name}={value!r}")
        if self.mode not in MODES:
            raise KerasNotesError(f"mode must be one of {list(MODES)}; received mode={self.mode!r}")
        object.__setattr__(self, "augment", tuple(self.augment))  # a JSON list reads back as the same tuple

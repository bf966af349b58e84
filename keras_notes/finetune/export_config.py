"""The export command's configuration: one frozen dataclass, which the command line is generated from.

Each field's help text and parser sit beside its default (``keras_notes.fields.option``);
``keras_notes/cli/export.py`` turns them into flags with ``add_config_flags``.
"""

import dataclasses
import os

from keras_notes.errors import KerasNotesError
from keras_notes.fields import none_or, option

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")  # LiteRT's; the other formats stay float32
ALL = "all"


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What ``export_run`` exports, from which run, and how it checks each file."""

    # Required: a finished run folder of keras-notes-finetune (model.keras, evaluation.json, ...).
    run_dir: str = option(None, "finished run folder of keras-notes-finetune", str, positional=True)
    # LiteRT by default: the format for phones and boards, the reason most users export.
    # (No argparse choices: a wrong name is then the config's one-line error, not argparse's usage dump.)
    format: tuple = option(("litert",), "formats to export: saved_model litert onnx, or all", str, nargs="+")
    # No quantisation by default: a float32 file that predicts what model.keras predicts.
    quantize: tuple = option(("none",), "LiteRT quantisations: none float16 dynamic int8, or all", str,
                             nargs="+")
    # None: <run_dir>/export, beside the model it came from.
    output: str = option(None, "folder for the exported files and report.json (default: <run_dir>/export)",
                         none_or(str))
    # None: the folders the run recorded; name them again when they have moved.
    data: str = option(None, "the run's image folder, if it has moved since training (default: as recorded)",
                       none_or(str))
    val_dir: str = option(None, "the run's separate validation folder, if it had one and it has moved",
                          none_or(str))
    # 200: on the digits MobileNet, int8 accuracy (0.936-0.947) and agreement with model.keras
    # (0.98-0.997) did not improve from 10 to 1,000 calibration images, two samples each
    # (docs/export.md); 200 sits in the usual 100-300 and calibrated in seconds at 32 px.
    calibration_images: int = option(200, "training images (a seeded sample) that calibrate int8", int)
    # False: an artifact that loses more accuracy than its gate allows fails the command.
    allow_drop: bool = option(False, "keep going (exit 0) when an artifact fails the fidelity gate")
    # 50 timed calls: 2 s for the slowest file here (VGG16 under TensorFlow, ~40 ms a call), and a
    # median of 50 ignores the stalls a shared machine adds to a few of them.
    latency_runs: int = option(50, "batch-1 calls timed per artifact and thread count (0: no latency)", int)
    # 32: Keras's default batch; only the accuracy pass uses it.
    batch_size: int = option(32, "batch size of the validation pass", int)

    def __post_init__(self):
        for name in ("run_dir", "output", "data", "val_dir"):  # pathlib paths -> str, for report.json
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        if not self.run_dir:
            raise KerasNotesError(f"run_dir is required; received run_dir={self.run_dir!r}")
        object.__setattr__(self, "format", _choices("format", self.format, FORMATS))
        object.__setattr__(self, "quantize", _choices("quantize", self.quantize, QUANTIZATIONS))
        if "litert" not in self.format and self.quantize != ("none",):
            raise KerasNotesError(f"quantize applies to the litert format only; received format={list(self.format)}, "
                                  f"quantize={list(self.quantize)}")
        for name, minimum in (("calibration_images", 1), ("latency_runs", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise KerasNotesError(f"{name} must be an integer of at least {minimum}; received {name}={value!r}")

    @property
    def output_dir(self):
        return os.path.join(self.run_dir, "export") if self.output is None else self.output


def _choices(name, values, choices):
    """``values`` (a name or several) as a tuple in ``choices``' order, ``all`` expanded; unknown names raise."""
    values = (values,) if isinstance(values, str) else tuple(values)
    unknown = [value for value in values if value not in choices + (ALL,)]
    if unknown or not values:
        raise KerasNotesError(f"unknown {name} {unknown or values!r}; choose from {list(choices + (ALL,))}")
    return choices if ALL in values else tuple(choice for choice in choices if choice in values)

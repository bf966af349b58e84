"""Fine-tuning keras.applications bases on an image folder.

What a user imports::

    from keras_notes.finetune import FinetuneConfig, finetune, predict
    result = finetune(FinetuneConfig("data/digits", arch="vgg16", weights=None, image_size=32, epochs=5, lr=1e-4))
    print(predict(result.run_dir, ["data/digits/8"], top_k=2))

and the model builders ``build_model``, ``course_vgg16``, ``course_mobilenet`` and
``unfreeze``. (``predict`` here is the function; its module's other functions are
imported as ``from keras_notes.finetune.predict import load_run``.)

One module per concern:

- ``archs``: the registry of bases (name -> constructor, preprocessing, sizes).
- ``weights``: ``"imagenet"``, ``None`` or a local file, and the offline error.
- ``models``: ``build_model``, the course's two fine-tuned models, ``unfreeze``.
- ``scan``: walking an image folder and its class sub-folders, every file checked.
- ``imagefile``: one file: usable or not, which decoder reads it, its EXIF orientation.
- ``exif``: reading the orientation tag, and turning decoded pixels upright.
- ``data``: file lists to ``tf.data`` pipelines (reduced-scale JPEG decoding), splits, augmentation.
- ``config``: ``FinetuneConfig``, the frozen dataclass the CLI mirrors.
- ``strategy``: choosing a ``tf.distribute`` strategy and precision.
- ``run``: ``finetune(config)``, which picks one of the two training paths below.
- ``train``: the two training phases on ``fit``, on one machine.
- ``cluster``, ``multiworker``, ``multiworker_finetune``, ``launcher``: training on several
  machines with ``MultiWorkerMirroredStrategy`` and a custom loop, and a local launcher; the
  loop's input, replica steps and checkpoints are ``multiworker_data``, ``multiworker_steps``
  and ``multiworker_checkpoints``.
- ``results``: what both paths share at the end: the result, the report, batch-norm recalibration.
- ``frozen_part``: cutting the model where its frozen part ends (the part that runs once, the part that trains).
- ``cache``: each phase on the frozen part's output, computed once (phase 2's cut kept by phase 1's pass).
- ``guards``: stopping cleanly on a signal or a NaN loss; atomic backups.
- ``evaluate``: accuracy, per-class precision/recall/F1, confusion matrix, plots.
- ``figures``: a helper process that draws the run's two figures while the model is saved.
- ``runio``: the run folder, atomic writes, resume checks.
- ``predict``: top-k predictions from a saved run or a file exported from it.
- ``export``, ``export_config``: ``export_run``, a run's model to SavedModel, LiteRT and ONNX.
- ``runfiles``: a finished run's own training and validation files, found again.
- ``fidelity``: each exported file against ``model.keras``, and the gate.
- ``sweep``, ``sweep_config``, ``sweep_tuner``: ``keras-notes-sweep``, a seeded KerasTuner search of the
  head's hyperparameters on the frozen base's output, the winner retrained as a run.

Running exported files (``engines``, ``latency``) lives in ``keras_notes.deploy``, which
imports no TensorFlow.
"""

from keras_notes.finetune.config import FinetuneConfig
from keras_notes.finetune.predict import predict
from keras_notes.finetune.run import finetune

# The builders need Keras (and so TensorFlow); they are imported on first use, so that the
# command lines, which import this package for its config, answer --help at once.
_FROM_MODELS = ("build_model", "course_mobilenet", "course_vgg16", "unfreeze")

__all__ = ["FinetuneConfig", "build_model", "course_mobilenet", "course_vgg16", "finetune", "predict", "unfreeze"]


def __getattr__(name):
    if name in _FROM_MODELS:
        from keras_notes.finetune import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FROM_MODELS))

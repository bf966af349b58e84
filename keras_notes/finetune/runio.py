"""The run folder: its file names, atomic writes, and the checks that guard ``--resume``.

Every file is written to a temporary name in the same folder and then renamed over
the real name with ``os.replace``, which is atomic on one file system: a crash leaves
either the old file or the new one, never half of either.

A run folder::

    run.lock             held (fcntl.flock) by the run writing the folder, see lock.py
    config.json          the resolved FinetuneConfig
    class_names.json     ["class_a", "class_b", ...], index = label
    skipped_files.json   [[path, reason], ...] for every file the scan did not use
    split.json           the training and validation files, relative to their folders (see write_split)
    history.csv          one row per epoch, both phases (Keras's CSVLogger)
    logs/                TensorBoard
    checkpoints/phase1/  BackupAndRestore state (weights, optimizer, epoch) after each epoch
    checkpoints/phase2/
    model.keras          the final model (uncompiled), raw 0-255 RGB in, class probabilities out
    evaluation.json      validation accuracy, per-class precision/recall/F1, confusion matrix
    confusion_matrix.png
    training_curves.png
"""

import csv
import io
import json
import os

from keras_notes.atomic import atomic_path
from keras_notes.errors import KerasNotesError
from keras_notes.saving_memo import memoize_saving_skipsets

CONFIG_FILE = "config.json"
CLASS_NAMES_FILE = "class_names.json"
SKIPPED_FILE = "skipped_files.json"
SPLIT_FILE = "split.json"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.keras"
EVALUATION_FILE = "evaluation.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"


def write_text(path, text):
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    return path


def write_json(path, value):
    return write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def write_start(run_dir, config, splits):
    """What a run knows before training: ``config.json``, ``class_names.json``, ``skipped_files.json``,
    ``split.json``."""
    write_json(os.path.join(run_dir, CONFIG_FILE), config.to_dict())
    write_json(os.path.join(run_dir, CLASS_NAMES_FILE), list(splits.class_names))
    write_json(os.path.join(run_dir, SKIPPED_FILE), [list(entry) for entry in splits.skipped])
    write_split(os.path.join(run_dir, SPLIT_FILE), splits, config.data_dir, config.val_dir)


def write_split(path, splits, data_dir, val_dir=None):
    """Record which files trained and which validated, so that later checks use the same images.

    ``{"data_dir": abs, "val_dir": abs or null, "train": [[relative path, label, needs_pil, orientation], ...],
    "val": [...]}``: paths are relative to the folder they came from (validation files to
    ``val_dir`` when the run had one), so that a moved folder can be named again and the
    lists still apply. The folders are absolute so that the record holds from any directory.
    """
    val_root = data_dir if val_dir is None else val_dir

    def rows(files, root):
        return [[os.path.relpath(p, root), int(label), bool(pil), int(turn)]
                for p, label, pil, turn in zip(files.paths, files.labels, files.needs_pil, files.orientation)]

    return write_json(path, {"data_dir": os.path.abspath(data_dir),
                             "val_dir": None if val_dir is None else os.path.abspath(val_dir),
                             "train": rows(splits.train, data_dir), "val": rows(splits.val, val_root)})


def save_model(model, path):
    """Save ``model`` without its optimizer state to a temporary ``.keras`` name, then rename.

    A ``.keras`` file keeps the optimizer's variables when the model is compiled; Adam's
    two moments would triple the file (VGG16: 177 MB instead of 59 MB). The run folder's
    checkpoints already hold them for ``--resume``, so the saved model is an uncompiled
    model over the same layers: raw images in, probabilities out.
    """
    import keras

    # A new functional model on the model's own graph shares its layers and weights and has
    # no optimizer. keras.models.clone_model would compile the copy (and so build and save a
    # fresh optimizer); rebuilding from the config re-creates every variable (MobileNet: about
    # 1 s of a rerun on kept outputs).
    copy = keras.Model(model.input, model.output, name=model.name)  # input, output: the same nesting
    memoize_saving_skipsets()
    with atomic_path(path) as temporary:
        copy.save(temporary)
    return path


def read_history(path):
    """The rows of ``history.csv`` as dicts of floats (``epoch`` as int), one per epoch.

    A resumed run appends to the file, so an epoch that was logged but not backed up
    before a crash appears twice; the later row wins.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    by_epoch = {}
    for row in rows:
        try:
            epoch = int(row["epoch"])
        except (KeyError, TypeError, ValueError):
            continue  # a line cut short by a crash
        by_epoch[epoch] = {key: (epoch if key == "epoch" else _number(value)) for key, value in row.items()
                           if key is not None}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def write_history(path, rows):
    """Rewrite ``history.csv`` from ``rows`` (what ``read_history`` returns), atomically."""
    if not rows:
        return path
    keys = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def prepare_run_dir(path, resume=False, lock=False):
    """Create (or, with ``resume``, find) the run folder; ``KerasNotesError`` if unusable.

    A new run refuses a folder that already holds files, so that one run never
    overwrites another; ``resume`` requires the folder of an earlier run. With ``lock``
    this process takes the folder's ``run.lock`` (``lock.hold``), and a folder another
    live run holds is refused first, whatever else it holds.
    """
    from keras_notes.finetune import lock as run_lock

    path = os.fspath(path)
    if os.path.isdir(path) and run_lock.is_locked_elsewhere(path):
        run_lock.hold(path)  # raises, naming the process that holds it
    if resume:
        if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
            raise KerasNotesError(f"nothing to resume: {path!r} holds no {CONFIG_FILE} from an earlier run")
    elif os.path.isdir(path) and set(os.listdir(path)) - {run_lock.LOCK_FILE}:
        raise KerasNotesError(f"run folder already exists and is not empty: {path!r}; "
                              f"pass --resume to continue it or choose another --output")
    writable_folder(path, "run folder")
    return run_lock.hold(path) if lock else path


def writable_folder(path, what):
    """Create folder ``path`` and check it can be written; ``KerasNotesError`` in one line naming ``what`` if not."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise KerasNotesError(f"cannot write the {what} {path!r}: it is an existing file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as error:
        raise KerasNotesError(f"cannot write the {what} {path!r}: {error.strerror or error}") from None
    return path


def check_resume(run_dir, config, class_names):
    """Refuse to resume ``run_dir`` with a request that cannot continue it.

    The arch, the image size, the head's hidden width and the class names must match the earlier run (its
    weights would not fit otherwise). Phase 1's epoch count may grow, but cannot shrink
    below what was already trained, nor change once phase 2 has begun, because phase 2's
    epochs are numbered after phase 1's.
    """
    from keras_notes.finetune.config import FinetuneConfig

    previous = FinetuneConfig.from_dict(read_json(os.path.join(run_dir, CONFIG_FILE)))
    previous_names = read_json(os.path.join(run_dir, CLASS_NAMES_FILE))
    differences = []
    if previous.arch != config.arch:
        differences.append(f"arch {previous.arch!r} -> {config.arch!r}")
    if previous.image_size != config.image_size:
        differences.append(f"image_size {previous.image_size!r} -> {config.image_size!r}")
    if previous.hidden_units != config.hidden_units:  # the head's weights would not fit
        differences.append(f"hidden_units {previous.hidden_units!r} -> {config.hidden_units!r}")
    if list(previous_names) != list(class_names):
        differences.append(f"class names {list(previous_names)} -> {list(class_names)}")
    if differences:
        raise KerasNotesError(f"cannot resume {run_dir!r}: the request differs from the earlier run in "
                              + "; ".join(differences))
    done = len(read_history(os.path.join(run_dir, HISTORY_FILE)))
    phase2_started = done > previous.epochs or any(
        os.path.isdir(os.path.join(run_dir, CHECKPOINT_DIR, name)) for name in ("phase2", "phase2-cached"))
    if phase2_started and config.epochs != previous.epochs:
        raise KerasNotesError(f"cannot resume {run_dir!r} with epochs={config.epochs}: phase 2 has begun "
                              f"after {previous.epochs} phase 1 epochs; keep epochs={previous.epochs}")
    if config.epochs < min(done, previous.epochs):
        raise KerasNotesError(f"cannot resume {run_dir!r} with epochs={config.epochs}: "
                              f"{min(done, previous.epochs)} epochs are already trained")
    return previous

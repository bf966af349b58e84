"""A finished run's own training and validation images, found again after training.

A run records its files in ``split.json`` when it starts (``runio.write_split``). A run
from before that record existed is re-split from ``config.json``: the same scan of
``data_dir`` and the same seeded, stratified split (``data.load_splits``) give the same
files, as long as the folder holds what it held then; the validation count is checked
against ``evaluation.json`` to catch a folder that changed.

A moved folder is named again with ``data_dir`` (the folder the run trained on) and
``val_dir`` (its separate validation folder, if it had one); the recorded relative paths
are joined to the new folders.
"""

import dataclasses
import os

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.data import FileList

FINISHED_RUN_FILES = (runio.CONFIG_FILE, runio.CLASS_NAMES_FILE, runio.MODEL_FILE, runio.EVALUATION_FILE)


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The run's ``train`` and ``val`` ``FileList``s, and how they were found (``source``, one sentence)."""

    train: FileList
    val: FileList
    source: str
    data_dir: str  # the folder the training files are under
    val_dir: str = None  # the separate validation folder, or None when validation was split off data_dir

    def present_train(self):
        """``train``, or ``KerasNotesError`` if a file is missing (the folder moved: ``--data``).

        Only int8 needs them (its calibration sample), so the message says so."""
        return check_present(self.train, "training images (int8 calibrates on them)", self.data_dir, "--data")

    def present_val(self):
        """``val``, or ``KerasNotesError`` if a file is missing (``--val-dir`` or ``--data``)."""
        if self.val_dir is None:
            return check_present(self.val, "validation images", self.data_dir, "--data")
        return check_present(self.val, "validation images", self.val_dir, "--val-dir")


def check_finished_run(run_dir):
    """``KerasNotesError`` unless ``run_dir`` holds every file a finished run writes; -> its config as a dict."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise KerasNotesError(f"run folder does not exist: {run_dir!r}")
    missing = [name for name in FINISHED_RUN_FILES if not os.path.isfile(os.path.join(run_dir, name))]
    if missing:
        raise KerasNotesError(f"{run_dir!r} is not a finished run: {', '.join(missing)} missing "
                              f"(keras-notes-finetune writes {runio.EVALUATION_FILE} when a run ends)")
    return runio.read_json(os.path.join(run_dir, runio.CONFIG_FILE))


def run_files(run_dir, data_dir=None, val_dir=None):
    """The run's ``RunFiles``: from ``split.json``, or re-split from ``config.json``.

    ``data_dir`` / ``val_dir`` replace the folders the run recorded (for a moved folder).
    """
    run_dir = os.fspath(run_dir)
    config = check_finished_run(run_dir)
    split_path = os.path.join(run_dir, runio.SPLIT_FILE)
    if os.path.isfile(split_path):
        return _recorded(runio.read_json(split_path), data_dir, val_dir)
    return _re_derived(run_dir, config, data_dir, val_dir)


def _recorded(record, data_dir, val_dir):
    train_root = os.fspath(data_dir) if data_dir is not None else record["data_dir"]
    if record["val_dir"] is None:
        val_root = train_root
    else:
        val_root = os.fspath(val_dir) if val_dir is not None else record["val_dir"]

    def files(rows, root):
        # The EXIF orientation training applied; a record from before orientation was read has
        # none, and such a run trained on the pixels as stored (1, upright).
        return FileList(tuple(os.path.join(root, row[0]) for row in rows), tuple(int(row[1]) for row in rows),
                        tuple(bool(row[2]) for row in rows), tuple(int(row[3]) if len(row) > 3 else 1 for row in rows))

    return RunFiles(files(record["train"], train_root), files(record["val"], val_root),
                    f"the file lists recorded in {runio.SPLIT_FILE}", train_root,
                    None if record["val_dir"] is None else val_root)


def _re_derived(run_dir, config, data_dir, val_dir):
    from keras_notes.finetune.data import load_splits

    data_dir = os.fspath(data_dir) if data_dir is not None else config["data_dir"]
    val_dir = os.fspath(val_dir) if val_dir is not None else config.get("val_dir")
    for flag, folder in (("--data", data_dir), ("--val-dir", val_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise KerasNotesError(f"the run's image folder {folder!r} does not exist (moved?); pass {flag} DIR "
                                  f"to name where it is now")
    splits = load_splits(data_dir, val_dir, config["val_split"], config["seed"],
                         ignore_exif=config.get("ignore_exif", True))  # no key: a run from before EXIF was read
    expected = runio.read_json(os.path.join(run_dir, runio.EVALUATION_FILE)).get("num_images")
    if expected is not None and expected != len(splits.val):
        raise KerasNotesError(
            f"re-splitting {data_dir!r} as the run did (seed {config['seed']}, val_split {config['val_split']}) "
            f"gives {len(splits.val)} validation images, but the run validated on {expected}: the folder has "
            f"changed since training, so its validation images cannot be found again")
    how = (f"re-scanned from {runio.CONFIG_FILE}'s folders, the run predates {runio.SPLIT_FILE}"
           if val_dir is not None else
           f"re-split from {runio.CONFIG_FILE} (seed {config['seed']}, val_split {config['val_split']}); "
           f"the run predates {runio.SPLIT_FILE}")
    return RunFiles(splits.train, splits.val, how, data_dir, val_dir)


def check_present(files, what, root, flag="--data"):
    """``KerasNotesError`` if any of ``files`` is missing, naming how many, the first, and the flag that helps."""
    missing = [path for path in files.paths if not os.path.isfile(path)]
    if missing:
        raise KerasNotesError(f"{len(missing)} of the run's {len(files)} {what} are missing under {root!r} "
                              f"(first: {missing[0]!r}); the folder has moved? pass {flag} DIR to name "
                              f"where it is now")
    return files

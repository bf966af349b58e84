"""Where a base's weights come from: ImageNet through Keras's own cache, random, or a local file.

Three cases, as ``build_model(weights=...)`` takes them:

- ``"imagenet"``: keras.applications downloads the file once into ``$KERAS_HOME/models``
  (default ``~/.keras/models``) and reads it from there afterwards. The happy path is
  Keras's own; only a failed download is caught, and turned into one line naming the
  exact file to place in that folder (an offline machine can be given the file by hand).
- ``None`` (or the command-line spelling ``"none"``): random initialisation.
- a path to a local ``.h5`` / ``.weights.h5`` file, e.g. a base saved with
  ``model.get_layer("base").save_weights("base.weights.h5")``. A missing file, or one
  that does not fit the architecture, is refused with one line naming the value.
"""

import contextlib
import os
import re
import sys
import warnings

from keras_notes.errors import KerasNotesError
from keras_notes.saving_memo import memoize_saving_skipsets
from keras_notes.finetune.archs import get_arch

IMAGENET = "imagenet"
NONE_SPELLINGS = ("none",)  # what the command line passes for weights=None
WEIGHTS_SUFFIX = ".h5"  # both the legacy .h5 and Keras 3's .weights.h5 end so

# The file names keras.applications downloads, as Keras 3.15 spells them in
# keras/src/applications/{vgg16,mobilenet,mobilenet_v2,resnet,efficientnet}.py:
# (with the classifier top, without it). ``{rows}`` is the input size that MobileNet
# and MobileNetV2 have ImageNet weights for (see ``_imagenet_rows``).
IMAGENET_FILES = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
              "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet": ("mobilenet_1_0_{rows}_tf.h5",
                  "mobilenet_1_0_{rows}_tf_no_top.h5"),
    "mobilenet_v2": ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}.h5",
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"),
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnetb0": ("efficientnetb0.h5", "efficientnetb0_notop.h5"),
}
# MobileNet and MobileNetV2 ship weights for a few input sizes and fall back to the
# 224 px file for any other size (with a warning); the other bases have one file.
_IMAGENET_ROWS = {"mobilenet": (128, 160, 192, 224), "mobilenet_v2": (96, 128, 160, 192, 224)}

# keras.utils.get_file raises a bare Exception with this text when urlretrieve fails.
_URL_FETCH_FAILURE = re.compile(r"URL fetch failure on (\S+): (.*)", re.DOTALL)


def resolve_weights(arch_name, weights):
    """Check ``weights`` before anything is built: -> ``"imagenet"``, ``None`` or an absolute path.

    Nothing is downloaded or read here; ``load_base`` does that and turns Keras's
    failures into one-line ``KerasNotesError``s.
    """
    get_arch(arch_name)  # an unknown arch fails first, naming the choices
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise KerasNotesError(f"weights must be 'imagenet', None or a path to a local .h5 / .weights.h5 "
                              f"file; received weights={weights!r}")
    text = os.fspath(weights)
    if text == IMAGENET:
        return IMAGENET
    if text.lower() in NONE_SPELLINGS:
        return None
    if not text.endswith(WEIGHTS_SUFFIX):
        raise KerasNotesError(f"weights must be 'imagenet', 'none' or a path to a local .h5 / .weights.h5 "
                              f"file; received weights={weights!r}")
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isfile(path):
        raise KerasNotesError(f"weights file not found: {path} (received weights={weights!r})")
    return path


def load_base(arch_name, weights, image_size=None, include_top=False):
    """The keras.applications model for ``arch_name`` with ``weights`` resolved and loaded.

    ``"imagenet"`` goes through Keras's own download and cache untouched; if the download
    fails, ``KerasNotesError`` names the exact file to place in ``$KERAS_HOME/models``. A
    local file that does not fit the architecture gives ``KerasNotesError`` with its path.
    """
    spec = get_arch(arch_name)
    weights = resolve_weights(arch_name, weights)
    memoize_saving_skipsets()  # loading a weights file walks every layer
    # Keras warns once per unmatched sub-container before it raises on a file that does
    # not fit (over a hundred lines for MobileNet); hold the warnings back, show them only
    # if the base loads, and let the one-line error speak for a failure.
    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        try:
            with _held_download_notice(arch_name, weights, image_size, include_top):
                base = spec.base(weights=weights, image_size=image_size, include_top=include_top)
        except Exception as error:  # noqa: BLE001 -- re-raised below unless it is a known failure
            failure = _explain_failure(arch_name, weights, image_size, include_top, error)
            if failure is None:
                raise
        else:
            failure = None
    if failure is not None:
        raise failure from None
    for warning in held:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return base


class _HeldNotice:
    """``sys.stdout`` stand-in that holds Keras's "Downloading data from ..." line back until
    the download sends something else (its progress bar), then writes everything through.

    Offline, the download fails right after that line, and the one-line error should stand
    alone; online, the user sees the line and the progress as Keras prints them.
    """

    def __init__(self, stream):
        self.stream, self.held, self.passing = stream, [], False

    def write(self, text):
        if self.passing or not text.startswith("Downloading data from"):
            self.passing = True
            for line in self.held:
                self.stream.write(line)
            self.held = []
            return self.stream.write(text)
        self.held.append(text)
        return len(text)

    def __getattr__(self, name):  # flush, isatty, encoding, fileno: the real stream's
        return getattr(self.stream, name)


@contextlib.contextmanager
def _held_download_notice(arch_name, weights, image_size, include_top):
    """Around building an ImageNet base whose file is not cached yet: see ``_HeldNotice``."""
    cached = (weights != IMAGENET or arch_name not in IMAGENET_FILES
              or os.path.isfile(os.path.join(keras_models_dir(), imagenet_file_name(arch_name, include_top,
                                                                                    image_size))))
    if cached:
        yield
        return
    stream = sys.stdout
    sys.stdout = _HeldNotice(stream)
    try:
        yield
    finally:
        sys.stdout = stream


def _explain_failure(arch_name, weights, image_size, include_top, error):
    """A one-line KerasNotesError for a failed download or an unloadable file; None for anything else."""
    if weights == IMAGENET:
        origin = _failed_download_origin(error)
        if origin is None:
            return None
        return KerasNotesError(offline_message(arch_name, include_top, image_size, origin, error))
    if weights is not None and isinstance(error, (ValueError, OSError, KeyError)):
        reason = " ".join(str(error).split())[:300]  # one line; Keras's text can span many
        return KerasNotesError(f"weights file {weights} cannot be loaded into arch {arch_name!r} "
                               f"(include_top={include_top}): {reason}")
    return None


def imagenet_file_name(arch_name, include_top=False, image_size=None):
    """The file name keras.applications downloads for ``arch_name``'s ImageNet weights."""
    spec = get_arch(arch_name)
    if arch_name not in IMAGENET_FILES:
        raise KerasNotesError(f"no ImageNet file name recorded for arch {arch_name!r}; "
                              f"known: {sorted(IMAGENET_FILES)}")
    size = spec.default_image_size if image_size is None else image_size
    rows = size if size in _IMAGENET_ROWS.get(arch_name, ()) else 224
    return IMAGENET_FILES[arch_name][0 if include_top else 1].format(rows=rows)


def keras_models_dir():
    """The folder Keras's ``get_file(cache_subdir="models")`` reads and writes.

    Keras fixes ``$KERAS_HOME`` when it is imported (default ``~/.keras``) and falls
    back to ``/tmp/.keras`` when that is not writable; ask Keras itself where it looks.
    """
    try:
        from keras.src.backend.config import keras_home  # private, but it is what get_file uses
        home = keras_home()
    except ImportError:  # a Keras that moved it: the documented rule
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "models")


def offline_message(arch_name, include_top, image_size, origin, error):
    """One line: which file to place where, or what to pass instead."""
    # The URL Keras tried is the authority on the file name (Keras has already applied its
    # own size rules); the table is the fallback when the error did not carry the URL.
    file_name = os.path.basename(origin) if origin else imagenet_file_name(arch_name, include_top, image_size)
    target = os.path.join(keras_models_dir(), file_name)
    match = _URL_FETCH_FAILURE.search(str(error))
    reason = " ".join((match.group(2) if match else str(error)).split())[:200]
    reason = reason.removeprefix("None -- ")  # Keras prints a missing errno as "None -- "
    source = f" (download it from {origin} on a connected machine)" if origin else ""
    return (f"ImageNet weights for {arch_name} are not cached and could not be downloaded ({reason}): "
            f"place {file_name} at {target}{source}, or pass a local weights file "
            f"(weights=PATH, --weights PATH), or weights=None (--weights none) to train from scratch")


def _failed_download_origin(error):
    """The URL of a failed download (``""`` if it failed without naming one); None if not a download failure."""
    match = _URL_FETCH_FAILURE.search(str(error))
    if match:
        return match.group(1)
    import urllib.error

    if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return ""  # a network error raised before get_file could wrap it
    return None

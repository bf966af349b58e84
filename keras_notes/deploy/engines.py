"""One small interface over every way to run a trained classifier: Keras, SavedModel, LiteRT, ONNX.

``load_engine(path)`` picks the engine from what ``path`` is:

    a run folder (holds model.keras) or a .keras file   -> "keras"        (keras.saving.load_model)
    a folder holding saved_model.pb                     -> "saved_model"  (tf.saved_model.load(path).serve)
    a .tflite file                                      -> "litert"       (ai_edge_litert Interpreter)
    a .onnx file                                        -> "onnx"         (onnxruntime InferenceSession)

Every engine takes what ``model.keras`` takes, ``images (batch, size, size, 3)`` float32 raw
0-255 RGB, and returns ``(batch, classes)`` float32 probabilities; a full-integer LiteRT
model's uint8 input and output are quantised and dequantised here with the file's own
scale and zero point. The class names travel beside each exported file
(``class_names_path``), so an engine knows its labels without the run folder.

``threads``: ``None`` is the engine's own default (TensorFlow and ONNX Runtime use every
core, LiteRT decides per kernel); an integer fixes it. TensorFlow fixes its thread pools
for the whole process when it starts, so the two TensorFlow engines accept a thread count
only before anything has run (``keras_notes.deploy.latency`` measures them in a fresh
process for that reason).
"""

import dataclasses
import importlib.util
import json
import os

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.saving_memo import memoize_saving_skipsets

# The run folder's own names (keras_notes.finetune.runio), repeated here so that running an
# exported file imports neither TensorFlow nor the training package; a test keeps them equal.
MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"
CLASS_NAMES_SUFFIX = ".class_names.json"
SAVED_MODEL_FILE = "saved_model.pb"
# The packages each engine imports, and the pip package that provides each one.
REQUIRES = {
    "keras": (),
    "saved_model": (),
    "litert": (("ai_edge_litert", "ai-edge-litert"),),
    "onnx": (("onnxruntime", "onnxruntime"),),
}
EXTRA_INSTALL = "pip install 'keras_notes[export]'"


def check_installed(modules):
    """``KerasNotesError`` naming the first missing ``(module, pip package)`` and the install command."""
    for module, package in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # blocked by an import hook, or set to None in sys.modules
            found = False
        if not found:
            raise KerasNotesError(f"{package} is not installed (module {module!r} not found); "
                                  f"install the export extra: {EXTRA_INSTALL}")


def class_names_path(artifact):
    """Where the class names of ``artifact`` live: inside a folder, or ``<file>.class_names.json`` beside a file."""
    artifact = os.fspath(artifact)
    if os.path.isdir(artifact):
        return os.path.join(artifact, CLASS_NAMES_FILE)
    return artifact + CLASS_NAMES_SUFFIX


def engine_kind(path):
    """The engine ``path`` needs; ``KerasNotesError`` for anything else."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, MODEL_FILE)):
            return "keras"
        if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
            return "saved_model"
        raise KerasNotesError(f"no trained model in {path!r}: {MODEL_FILE} is missing (a run folder "
                              f"holds it), and so is {SAVED_MODEL_FILE} (a SavedModel folder holds that)")
    if not os.path.isfile(path):
        raise KerasNotesError(f"no such model file or folder: {path!r}")
    extension = os.path.splitext(path)[1].lower()
    kinds = {".keras": "keras", ".tflite": "litert", ".onnx": "onnx"}
    if extension not in kinds:
        raise KerasNotesError(f"cannot run {path!r}: expected a run folder, a SavedModel folder, or a "
                              f".keras, .tflite or .onnx file")
    return kinds[extension]


@dataclasses.dataclass
class Engine:
    """A loaded model: ``predict(images) -> probabilities``, with its input size and labels."""

    kind: str
    path: str
    image_size: int
    class_names: tuple
    _predict: object  # images (n, size, size, 3) float32 -> (n, classes) float32

    def predict(self, images):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise KerasNotesError(f"{self.path!r} takes (batch, {self.image_size}, {self.image_size}, 3) "
                                  f"images; received shape {images.shape}")
        return np.asarray(self._predict(images), dtype=np.float32)


def load_engine(path, threads=None, unsafe_load=False, class_names=None):
    """The ``Engine`` for ``path`` (see the module docstring); ``class_names`` overrides the stored ones."""
    path = os.fspath(path)
    kind = engine_kind(path)
    check_installed(REQUIRES[kind])
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise KerasNotesError(f"threads must be a positive integer or None; received threads={threads!r}")
    predict, image_size, outputs = _LOADERS[kind](path, threads, unsafe_load)
    if class_names is None:
        class_names = read_class_names(path, kind)
    if outputs != len(class_names):
        raise KerasNotesError(f"{path!r} has {outputs} outputs but its class names list {len(class_names)}")
    return Engine(kind, path, image_size, tuple(class_names), predict)


def keras_engine(model, class_names, path):
    """The "keras" ``Engine`` of an already loaded Keras ``model`` (saved at ``path``)."""
    predict = _keras_predict(model)
    return Engine("keras", os.fspath(path), model.input_shape[1], tuple(class_names), predict)


def _keras_predict(model):
    # predict_on_batch runs the compiled predict function: no per-call tf.data set-up.
    return lambda images: model.predict_on_batch(images)


def read_class_names(path, kind):
    """The class names stored for the model at ``path`` (a run's ``class_names.json``, or the file beside it)."""
    names_path = (os.path.join(path, CLASS_NAMES_FILE) if kind == "keras" and os.path.isdir(path)
                  else os.path.join(os.path.dirname(path), CLASS_NAMES_FILE) if kind == "keras"
                  else class_names_path(path))
    if not os.path.isfile(names_path):
        raise KerasNotesError(f"no class names for {path!r}: {names_path!r} is missing (keras-notes-export "
                              f"writes it beside every file it exports)")
    return tuple(read_json(names_path))


def load_model_file(model_path, unsafe_load=False):
    """The Keras model in ``model_path`` (uncompiled); ``KerasNotesError`` if Keras's safe_mode refuses it.

    ``unsafe_load=True`` turns Keras's ``safe_mode`` off, which lets a ``Lambda`` layer's
    stored Python code run: only for a file the user trusts. Without it such a file is
    refused with a one-line ``KerasNotesError`` saying so.
    """
    import keras  # this import registers ImagePreprocessing, which model.keras holds (keras_notes.registration)

    try:
        memoize_saving_skipsets()
        return keras.saving.load_model(model_path, compile=False, safe_mode=not unsafe_load)
    except ValueError as error:
        # Keras's safe_mode refusal ("Requested the deserialization of a `lambda` object ...").
        if unsafe_load or "safe_mode" not in str(error):
            raise
        raise KerasNotesError(
            f"refusing to load {model_path!r}: it holds a Lambda layer (Python code that would run on "
            f"loading), which Keras's safe_mode blocks; pass --unsafe-load only if you trust this file") from None


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _set_tensorflow_threads(threads):
    import tensorflow as tf

    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow refuses once its runtime has started; silently running on every core
        # would make a "1 thread" latency a lie.
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            raise KerasNotesError(f"TensorFlow has already started with its own thread pools; threads={threads} "
                                  f"needs a fresh process") from None


def _load_keras(path, threads, unsafe_load):
    _set_tensorflow_threads(threads)
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    model = load_model_file(model_path, unsafe_load=unsafe_load)
    return _keras_predict(model), model.input_shape[1], model.output_shape[-1]


def _load_saved_model(path, threads, unsafe_load):
    import tensorflow as tf

    _set_tensorflow_threads(threads)
    loaded = tf.saved_model.load(path)
    if not hasattr(loaded, "serve"):
        raise KerasNotesError(f"SavedModel {path!r} has no 'serve' endpoint (keras-notes-export writes one)")
    (spec,), _ = loaded.serve.concrete_functions[0].structured_input_signature  # (None, size, size, 3)
    outputs = loaded.serve.concrete_functions[0].structured_outputs.shape[-1]
    return (lambda images: loaded.serve(tf.constant(images)).numpy()), int(spec.shape[1]), int(outputs)


def _load_litert(path, threads, unsafe_load):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    batch = [int(source["shape"][0])]  # the batch the tensors are allocated for; resized on demand

    def predict(images):
        if images.shape[0] != batch[0]:
            interpreter.resize_tensor_input(source["index"], images.shape, strict=False)
            interpreter.allocate_tensors()
            batch[0] = images.shape[0]
        interpreter.set_tensor(source["index"], _quantise(images, source))
        interpreter.invoke()
        return _dequantise(interpreter.get_tensor(target["index"]), target)

    return predict, int(source["shape"][1]), int(target["shape"][-1])


def _quantise(images, detail):
    """Float images -> the input tensor's dtype: ``q = round(x / scale) + zero_point``, clipped."""
    if detail["dtype"] == np.float32:
        return images
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(images / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def _dequantise(values, detail):
    """The output tensor as float32: ``(q - zero_point) * scale`` for an integer tensor."""
    if values.dtype == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def _load_onnx(path, threads, unsafe_load):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    (source,), (target,) = session.get_inputs(), session.get_outputs()
    return ((lambda images: session.run([target.name], {source.name: images})[0]),
            int(source.shape[1]), int(target.shape[-1]))


_LOADERS = {"keras": _load_keras, "saved_model": _load_saved_model, "litert": _load_litert, "onnx": _load_onnx}

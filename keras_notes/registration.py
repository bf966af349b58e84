"""Registering the package's Keras layer once Keras is imported, without importing Keras.

``keras.saving.load_model`` finds ``ImagePreprocessing``, which every run's ``model.keras``
holds, only once the class is registered: once ``keras_notes.layers`` is imported. Importing
it from ``keras_notes/__init__.py`` would import Keras, and on the TensorFlow backend
TensorFlow, into every process that imports the package. That is 5 s of CPU, measured with
``time python -c "import keras_notes"``. It would be spent even by a ``--help`` or by a
LiteRT or ONNX prediction that never touches Keras.

So ``import keras_notes`` calls ``register_with_keras()``. If Keras is already imported, the
layer is imported at once. Otherwise a finder is put first on ``sys.meta_path``. It finds
``keras`` the way the other finders do, and it imports the layer right after Keras's own
``__init__`` has run. Either way the layer is registered before anyone can call
``load_model``.
"""

import importlib
import importlib.abc
import importlib.util
import sys

LAYERS_MODULE = "keras_notes.layers"


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds ``keras`` as usual and wraps its loader so that the layer is imported after it."""

    def __init__(self):
        self._finding = False  # True while asking the other finders, which call back here

    def find_spec(self, name, path=None, target=None):
        if name != "keras" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_keras = spec.loader.exec_module

        def exec_then_register(module):
            exec_keras(module)
            _remove_finder()
            importlib.import_module(LAYERS_MODULE)

        # A probe (importlib.util.find_spec("keras") without an import) gets this spec
        # too. It never runs the loader, so the finder stays for the real import.
        spec.loader.exec_module = exec_then_register
        return spec


def _remove_finder():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterKeras)]


def register_with_keras():
    """Import ``keras_notes.layers`` now if Keras is imported, else right after Keras is."""
    if "keras" in sys.modules:
        importlib.import_module(LAYERS_MODULE)
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())

"""Running a trained classifier outside Keras: the engines that load exported files, and their latency.

- ``engines``: ``load_engine(path)`` for a run folder, a SavedModel folder, a .tflite or an
  .onnx file; one ``predict(images) -> probabilities`` for all of them.
- ``latency``: median batch-1 latency of a file, each measurement in a fresh process.

Nothing here imports TensorFlow or the training package at import time: a LiteRT or ONNX
file then loads and runs in a process that never starts TensorFlow.
"""

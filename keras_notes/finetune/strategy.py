"""Which ``tf.distribute`` strategy and which compute precision a run uses.

``make_strategy(name)`` is the one factory over the ``STRATEGY_BUILDERS`` registry;
``"auto"`` picks by the hardware present:

- several GPUs -> ``MirroredStrategy`` over all of them (one replica per GPU);
- one GPU      -> ``OneDeviceStrategy`` on it;
- no GPU       -> the default strategy (no distribution, plain ``fit``).

``"mirrored"`` without GPUs mirrors over the logical CPU devices, which is how the
tests run the multi-replica code path on a CPU-only machine.

The model must be built *and* compiled inside ``strategy.scope()``, and the batch
size given to the data pipeline is the global batch: each of the
``strategy.num_replicas_in_sync`` replicas sees ``batch_size / replicas`` images.
"""

import contextlib
import functools

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.config import PRECISIONS

MIXED_PRECISION_MIN_CAPABILITY = (7, 0)  # Volta and later have tensor cores that run float16 fast


def _gpus():
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU")


def _default():
    import tensorflow as tf

    return tf.distribute.get_strategy()


# One instance per process: a second MirroredStrategy in the same process reuses the
# first one's collective instance keys, and its first all-reduce then fails with "Shape
# mismatch in the collective instance 100" (seen here with TF 2.21; tensorflow/tensorflow#62790).
# Reusing the instance lets a notebook or a test suite call finetune more than once.
@functools.cache
def _mirrored():
    import tensorflow as tf

    gpus = _gpus()
    devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)


@functools.cache
def _one_device():
    import tensorflow as tf

    gpus = _gpus()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def _auto():
    count = len(_gpus())
    if count > 1:
        return _mirrored()
    if count == 1:
        return _one_device()
    return _default()


def _multi_worker():
    # MultiWorkerMirroredStrategy reads TF_CONFIG; Keras 3's fit does not run under it, so
    # run.finetune hands such runs to the custom loop in multiworker_finetune.
    from keras_notes.finetune.cluster import make_multi_worker_strategy

    return make_multi_worker_strategy()


STRATEGY_BUILDERS = {
    "auto": _auto,
    "default": _default,
    "mirrored": _mirrored,
    "one-device": _one_device,
    "multi-worker": _multi_worker,
}
# tests/test_strategy.py checks that these keys are exactly config.STRATEGIES.


def make_strategy(name):
    """The ``tf.distribute.Strategy`` called ``name`` (one of ``STRATEGIES``)."""
    try:
        builder = STRATEGY_BUILDERS[name]
    except KeyError:
        raise KerasNotesError(f"unknown strategy {name!r}; choose from {sorted(STRATEGY_BUILDERS)}") from None
    return builder()


def strategy_name(strategy):
    """The registry name that describes ``strategy`` (``"default"``, ``"mirrored"``, ``"one-device"``)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi-worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one-device"
    return "default"


def strategy_devices(strategy):
    """The devices the replicas run on, e.g. ``("/job:localhost/replica:0/task:0/device:CPU:0",)``.

    The default strategy has no device list of its own; it runs where TensorFlow places
    ops by default, the first GPU if there is one, else the CPU.
    """
    try:
        return tuple(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy
        return ("/device:GPU:0",) if _gpus() else ("/device:CPU:0",)


def describe_strategy(strategy):
    """One line for the run's output, e.g. ``mirrored over 2 replica(s) (CPU:0, CPU:1)``."""
    names = ", ".join(device.rsplit("device:", 1)[-1] for device in strategy_devices(strategy))
    return f"{strategy_name(strategy)} over {strategy.num_replicas_in_sync} replica(s) ({names})"


def check_batch_size(batch_size, strategy):
    """Per-replica batch size; ``KerasNotesError`` if the global batch does not split evenly.

    An uneven split would give replicas different batch sizes, so the per-replica
    batch-norm and gradient statistics would not mean the same thing on each.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise KerasNotesError(
            f"batch_size is the global batch and must be a multiple of the {replicas} replicas; "
            f"received batch_size={batch_size} (try {max(replicas, batch_size // replicas * replicas)})")
    return batch_size // replicas


def _gpu_capabilities():
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def resolve_precision(name, strategy):
    """The precision for ``name`` in ``PRECISIONS``: ``"auto"`` resolved, a forced value as is.

    ``"auto"`` means mixed_float16 when the strategy runs on GPUs that all have
    compute capability >= 7.0, and float32 otherwise: a CPU emulates float16 slowly,
    and mixed_bfloat16, even on a CPU with AVX512_BF16, measured no faster than float32
    here (README, "CPU precision and threads"); ``--precision mixed_bfloat16`` forces it.
    """
    if name not in PRECISIONS:
        raise KerasNotesError(f"unknown precision {name!r}; choose from {list(PRECISIONS)}")
    if name != "auto":
        return name
    on_gpu = any("GPU" in device.upper() for device in strategy_devices(strategy))
    capabilities = _gpu_capabilities() if on_gpu else []
    if capabilities and all(capability >= MIXED_PRECISION_MIN_CAPABILITY for capability in capabilities):
        return "mixed_float16"
    return "float32"


@contextlib.contextmanager
def precision_policy(name):
    """Set Keras's global dtype policy to ``name`` while building a model, then restore it.

    The policy only matters when layers are created, so restoring it afterwards keeps
    later models in the same process (tests, notebooks) at their own precision. Under
    ``mixed_float16`` Keras's ``compile`` wraps the optimizer in a ``LossScaleOptimizer``.
    """
    import keras

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)

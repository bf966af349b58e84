"""TensorFlow's start-up lines, filtered out of stderr while TensorFlow is first imported.

TensorFlow 2.21 prints these before absl's logging reads any setting, so
``TF_CPP_MIN_LOG_LEVEL`` cannot hide them (measured: levels 2 and 3 print the same
lines); on a machine without a GPU they end with ``E0000 ... failed call to cuInit``,
which reads like a failure and is not one:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    To enable the following instructions: AVX2 AVX512F ..., in other operations, rebuild TensorFlow ...
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)

``import_tensorflow_quietly`` imports TensorFlow and probes its GPUs with the process's
stderr (file descriptor 2, which the C++ code writes to) sent to a temporary file, then
writes back every line that is not one of exactly these. Anything else TensorFlow says,
errors included, still reaches stderr; the cuInit line is dropped only when the machine
has no NVIDIA device node, where there is no GPU for it to have failed on. Set
``KERAS_NOTES_TF_STARTUP_LOG=1`` to see the lines as TensorFlow prints them.
"""

import contextlib
import os
import re
import sys
import tempfile

_TIMESTAMP = r"[IWE]\d{4} [\d:.]+\s+\d+ "
STARTUP_LINES = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(_TIMESTAMP + r"port\.cc:\d+\] oneDNN custom operations are on\."),
    re.compile(_TIMESTAMP + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.$"),
    re.compile(_TIMESTAMP + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU"),
    re.compile(r"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"),
)
NO_GPU_LINES = (re.compile(_TIMESTAMP + r"cuda_platform\.cc:\d+\] failed call to cuInit: "),)


def has_nvidia_device(dev="/dev"):
    """True when the machine has an NVIDIA device node (a GPU a failed cuInit would matter for)."""
    return os.path.exists(os.path.join(dev, "nvidiactl")) or os.path.exists(os.path.join(dev, "nvidia0"))


def startup_patterns():
    return STARTUP_LINES if has_nvidia_device() else STARTUP_LINES + NO_GPU_LINES


@contextlib.contextmanager
def filtered_stderr(patterns):
    """Send file descriptor 2 to a temporary file inside the block; write back the lines no pattern matches."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(pattern.match(line.rstrip("\n")) for pattern in patterns)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow_quietly():
    """Import TensorFlow (and so Keras's TensorFlow backend) without its start-up lines; -> the module.

    A no-op filter when TensorFlow is already imported or ``KERAS_NOTES_TF_STARTUP_LOG`` is set.
    Listing the GPUs runs CUDA's probe (the cuInit line) inside the filter; it does not
    start TensorFlow's runtime, so logical devices and multi-worker strategies can still be set up.
    """
    if "tensorflow" in sys.modules or os.environ.get("KERAS_NOTES_TF_STARTUP_LOG"):
        import tensorflow

        return tensorflow
    with filtered_stderr(startup_patterns()):
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")
    return tensorflow

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

Every command line runs inside ``quiet_tensorflow_startup`` (``cli._common.user_errors_exit_2``):
the process's stderr (file descriptor 2, which the C++ code writes to) passes through a
filter that drops exactly these lines and lets every other one through as it is written.
Anything else TensorFlow says, errors included, still reaches stderr; the cuInit line is
dropped only when the machine has no NVIDIA device node, where there is no GPU for it to
have failed on. Set ``KERAS_NOTES_TF_STARTUP_LOG=1`` to see the lines as TensorFlow prints them.
"""

import contextlib
import os
import re
import sys
import threading

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
    """Inside the block, pass every line written to file descriptor 2 through unless a pattern matches it.

    The descriptor goes to a pipe that a thread reads line by line, so lines reach the real
    stderr as they are written (a long run's warnings are not held back), and child
    processes, which inherit the descriptor, are filtered too.
    """
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                if not any(pattern.match(text) for pattern in patterns):
                    os.write(real, line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end in this process: the thread reads to its end
        # A child still holding the pipe (a worker left running) must not hang the exit.
        thread.join(timeout=10)
        if not thread.is_alive():
            os.close(real)


def quiet_tensorflow_startup():
    """``filtered_stderr`` of TensorFlow's start-up lines, for a command line's whole run.

    Nothing is filtered when TensorFlow is already imported (its start-up lines are behind
    it) or ``KERAS_NOTES_TF_STARTUP_LOG`` is set.
    """
    if "tensorflow" in sys.modules or os.environ.get("KERAS_NOTES_TF_STARTUP_LOG"):
        return contextlib.nullcontext()
    return filtered_stderr(startup_patterns())

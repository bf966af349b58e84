"""TensorFlow's start-up lines are filtered from stderr; every other line still gets through."""

import os
import subprocess
import sys

from keras_notes import startup

# The lines TensorFlow 2.21 printed on this machine (no GPU), copied from a real run.
REAL_STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796218452.011760   15822 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796218452.012111   15822 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796218452.204954   15822 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796218476.290309   16546 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""
OTHER = "E0000 00:00:1796218476.290309   16546 some_kernel.cc:12] a real error\nTraceback (most recent call last):\n"


def test_the_filter_drops_exactly_the_start_up_lines(capfd):
    patterns = startup.STARTUP_LINES + startup.NO_GPU_LINES
    with startup.filtered_stderr(patterns):
        os.write(2, (REAL_STARTUP + OTHER).encode())
    assert capfd.readouterr().err == OTHER


def test_with_a_gpu_the_cuinit_failure_is_kept(capfd):
    with startup.filtered_stderr(startup.STARTUP_LINES):
        os.write(2, REAL_STARTUP.encode())
    assert capfd.readouterr().err == REAL_STARTUP.splitlines(keepends=True)[-1]


def test_a_gpu_is_recognised_by_its_device_node(tmp_path):
    assert not startup.has_nvidia_device(str(tmp_path))
    (tmp_path / "nvidiactl").write_text("")
    assert startup.has_nvidia_device(str(tmp_path))


def _import_stderr(code, **env):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("KERAS_NOTES_TF_STARTUP_LOG", "KERAS_BACKEND")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120).stderr


def test_importing_tensorflow_quietly_prints_nothing_here():
    code = "from keras_notes.startup import import_tensorflow_quietly as q; q(); print('ok')"
    loud = _import_stderr(code, KERAS_NOTES_TF_STARTUP_LOG="1")
    # Without the filter TensorFlow prints its start-up lines (the test can fail) ...
    assert "cudart_stub.cc" in loud or "port.cc" in loud, loud
    # ... and with it, nothing is left of them.
    assert _import_stderr(code) == ""

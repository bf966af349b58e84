"""One writer per run folder (lock.py): real processes hold and are refused the lock."""

import os
import signal
import subprocess
import sys
import time

import pytest

from finetune_images import make_image_folder
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import lock, runio

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "finetune.py")
ARGS = ["--arch", "mobilenet", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--epochs", "1",
        "--verbose", "0"]
HOLD = ("import sys, time\nfrom keras_notes.finetune import lock\nlock.hold(sys.argv[1])\n"
        "print('held', flush=True)\ntime.sleep(120)\n")


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture
def holder(tmp_path):
    """A child process that holds ``tmp_path / "run"``'s lock until killed."""
    run = tmp_path / "run"
    run.mkdir()
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=_env())
    assert child.stdout.readline() == "held\n"
    yield run, child
    child.kill()
    child.wait()


def test_a_folder_another_process_holds_is_refused_naming_that_process(holder):
    run, child = holder
    with pytest.raises(KerasNotesError, match=rf"is in use by another run \(process {child.pid}\)"):
        runio.prepare_run_dir(run, lock=True)
    (run / runio.CONFIG_FILE).write_text("{}")
    with pytest.raises(KerasNotesError, match="in use"):  # refused before the resume checks
        runio.prepare_run_dir(run, resume=True, lock=True)
    assert lock.is_locked_elsewhere(run)


def test_a_killed_holder_leaves_no_stuck_lock(holder):
    run, child = holder
    child.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
    child.wait()
    assert (run / lock.LOCK_FILE).exists() and not lock.is_locked_elsewhere(run)
    with lock.released_after():
        assert runio.prepare_run_dir(run, lock=True) == os.fspath(run)  # only run.lock there: still "empty"
        assert (run / lock.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        runio.prepare_run_dir(run, lock=True)  # this process already holds it: no-op
    assert os.path.abspath(run) not in lock._held  # released on leaving


@pytest.mark.slow
def test_a_second_finetune_on_a_live_run_exits_2_and_leaves_the_first_untouched(tmp_path):
    images = make_image_folder(tmp_path / "images", per_class=6)
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, SCRIPT, images, *ARGS, "--output", str(run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while not (run / runio.CONFIG_FILE).exists():  # the first run has the folder and is training
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # paused, it still holds the lock: the second run races nothing
    try:
        before = {name: (run / name).read_bytes() for name in os.listdir(run) if (run / name).is_file()}
        for extra in ([], ["--resume"]):
            second = subprocess.run([sys.executable, SCRIPT, images, *ARGS, "--output", str(run), *extra],
                                    capture_output=True, text=True, env=_env(), timeout=120)
            assert second.returncode == 2, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and f"is in use by another run (process {first.pid})" in lines[0], second.stderr
        after = {name: (run / name).read_bytes() for name in os.listdir(run) if (run / name).is_file()}
        assert after == before
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err
    assert (run / runio.EVALUATION_FILE).exists() and (run / runio.MODEL_FILE).exists()

"""The figure worker: the figures it draws are the run's own, and without it they are still drawn."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_notes.finetune import figures
from keras_notes.finetune.figures import FigureWorker

HISTORY = [{"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.05 * epoch,
            "val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.45 + 0.05 * epoch, "seconds": 0.1}
           for epoch in range(6)]
CONFUSION = [[7, 1, 0], [2, 5, 1], [0, 0, 9]]
CLASSES = ["cat", "dog", "élan"]  # not ASCII: the jobs cross a pipe as JSON


@pytest.fixture(autouse=True)
def worker_allowed(monkeypatch):
    monkeypatch.setenv(figures.DISABLE_ENV, "1")
    monkeypatch.setattr(figures, "usable_cpus", lambda: 2)


def _draw_both(worker, folder):
    worker.draw("curves", HISTORY, str(folder / "curves.png"), phase2_start=3)
    worker.draw("confusion", CONFUSION, CLASSES, str(folder / "confusion.png"))
    worker.finish()


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGBA"))


def test_the_workers_figures_are_the_ones_drawn_in_process(tmp_path):
    (tmp_path / "worker").mkdir()
    (tmp_path / "here").mkdir()
    with FigureWorker.start() as worker:
        assert worker.process is not None
        _draw_both(worker, tmp_path / "worker")
        assert worker.drawn_here == []  # every figure came from the worker
    _draw_both(FigureWorker(), tmp_path / "here")  # no process: drawn in this one
    for name in ("curves.png", "confusion.png"):
        drawn, expected = _pixels(tmp_path / "worker" / name), _pixels(tmp_path / "here" / name)
        assert drawn.shape == expected.shape and drawn.std() > 0  # a real figure, not a blank
        np.testing.assert_array_equal(drawn, expected)


def test_the_worker_exits_when_the_run_is_done_with_it(tmp_path):
    with FigureWorker.start() as worker:
        process = worker.process
        _draw_both(worker, tmp_path)
    assert process.poll() == 0  # ended by the closed input, not killed
    with FigureWorker.start() as worker:  # a run that fails before its figures
        process = worker.process
    assert process.poll() is not None


def test_one_cpu_or_the_switch_means_no_worker(monkeypatch):
    monkeypatch.setattr(figures, "usable_cpus", lambda: 1)
    assert FigureWorker.start().process is None
    monkeypatch.setattr(figures, "usable_cpus", lambda: 4)
    monkeypatch.setenv(figures.DISABLE_ENV, "0")
    assert FigureWorker.start().process is None


def test_a_worker_that_cannot_start_leaves_the_drawing_to_the_run(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("cannot start a process here")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    worker = FigureWorker.start()
    assert worker.process is None
    _draw_both(worker, tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "confusion.png").stat().st_size > 0


def test_figures_a_dead_worker_did_not_draw_are_drawn_by_the_run(tmp_path):
    worker = FigureWorker.start()
    worker.draw("curves", HISTORY, str(tmp_path / "curves.png"))
    worker.process.kill()
    worker.process.wait()
    worker.draw("confusion", CONFUSION, CLASSES, str(tmp_path / "confusion.png"))  # the pipe is broken now
    worker.finish()
    assert worker.process is None and "confusion" in worker.drawn_here
    for name in ("curves.png", "confusion.png"):
        assert _pixels(tmp_path / name).std() > 0


def test_a_figure_the_worker_fails_on_raises_the_runs_own_error(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with FigureWorker.start() as worker:
        worker.draw("curves", HISTORY, str(blocked / "curves.png"))  # its folder cannot be made
        with pytest.raises(OSError):
            worker.finish()


def test_the_worker_command_imports_no_tensorflow():
    code = ("import sys, keras_notes.finetune.figures; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

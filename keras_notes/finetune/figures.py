"""The run's two figures, drawn by a helper process while the run saves its model.

matplotlib draws on the CPU and holds the GIL: the training curves and the confusion matrix
took 0.28 s of a 2.1 s rerun on kept outputs (MobileNet at 224 px, 1,000 images, 10
epochs, 2-core CPU), in series with saving ``model.keras`` (0.17 s). A thread drawing
during the save finished no sooner (0.37 s either way, measured); another process does.
So a run starts a ``FigureWorker`` before it builds its model: ``python -m
keras_notes.finetune.figures`` imports matplotlib and the two plotting functions and no
TensorFlow (0.6 s of CPU, spent on the other core while the run builds and trains). At the
end the run hands it each figure's data (``draw``), saves the model and evaluates while
it draws, and waits for it (``finish``).

The worker runs the same functions on the same data, so the files are the ones the run
would draw itself (``tests/test_figures.py`` compares the pixels). Where it cannot help or
cannot run, the run draws in its own process, as before: on one CPU, with
``KERAS_NOTES_FIGURE_WORKER=0``, and for any figure the worker did not draw (it could not
start, died, or failed; an error in drawing is then raised by the run's own attempt, as
it would have been without a worker).
"""

import json
import os
import signal
import subprocess
import sys

from keras_notes.finetune.evaluate import plot_confusion_matrix, plot_training_curves

FIGURES = {"confusion": plot_confusion_matrix, "curves": plot_training_curves}
DISABLE_ENV = "KERAS_NOTES_FIGURE_WORKER"  # "0": draw every figure in the run's own process
FINISH_TIMEOUT_S = 60  # a worker that takes longer is stopped, and the run draws what is left


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_wanted():
    """True when another process can draw alongside the run: two CPUs or more, and not turned off."""
    return os.environ.get(DISABLE_ENV, "1") != "0" and usable_cpus() >= 2


class FigureWorker:
    """Draws figures in a helper process when there is one (``start()``), else in this one.

    ``draw(name, *args, **kwargs)`` calls ``FIGURES[name](*args, **kwargs)``: it only hands
    the job over when the worker runs, and draws at once when it does not. ``finish()``
    waits for the worker's figures and draws here any it did not. Use it as a context
    manager: leaving the block ends the worker, whatever happened.
    """

    def __init__(self, process=None):
        self.process = process
        self.pending = []  # jobs handed to the worker, in order, not yet confirmed
        self.drawn_here = []  # names of the figures this process drew itself

    @classmethod
    def start(cls):
        """A worker process if ``worker_wanted()`` and it can be started; else one that draws here."""
        if not worker_wanted():
            return cls()
        import keras_notes

        package_root = os.path.dirname(os.path.dirname(os.path.abspath(keras_notes.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH")))))
        try:
            process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env)
        except OSError:
            return cls()
        return cls(process)

    def draw(self, name, *args, **kwargs):
        job = (name, args, kwargs)
        if self.process is not None:
            try:
                self.process.stdin.write(json.dumps({"figure": name, "args": args, "kwargs": kwargs}) + "\n")
                self.process.stdin.flush()
                self.pending.append(job)
                return
            except (OSError, ValueError, TypeError):  # the worker is gone, or the data is not JSON
                self.close()
        self._draw_here(name, args, kwargs)

    def _draw_here(self, name, args, kwargs):
        self.drawn_here.append(name)
        FIGURES[name](*args, **kwargs)

    def finish(self):
        """Wait for every figure handed over; draw here those the worker did not."""
        jobs, self.pending = self.pending, []
        drawn = []
        if self.process is not None:
            try:  # closes the worker's input: it draws what it has, then exits
                output, _ = self.process.communicate(timeout=FINISH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                output = ""
            drawn = [json.loads(line).get("drawn") for line in output.splitlines() if line.startswith("{")]
            self.close()
        for index, (name, args, kwargs) in enumerate(jobs):
            if index >= len(drawn) or drawn[index] != name:
                self._draw_here(name, args, kwargs)

    def close(self):
        """End the worker: after ``finish`` it has exited; otherwise (the run failed first) it is stopped.

        Its figures are each written whole under a temporary name, then renamed, so stopping
        it never leaves half a file.
        """
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _warm_up(plt):
    """Draw a throwaway figure with text, lines, markers and an image, into memory.

    The first figure a process draws loads the fonts and sets up the renderer; done here,
    while the run still trains, it leaves the run's figures only their own drawing.
    """
    import io

    figure, (left, right) = plt.subplots(1, 2, figsize=(4, 2))
    left.plot([1, 2], [0.5, 0.25], marker="o", label="warm-up")
    left.legend()
    right.imshow([[0, 1], [1, 0]], cmap="Blues")
    right.text(0, 0, "0", ha="center", va="center")
    right.set_title("warm-up")
    figure.tight_layout()
    figure.savefig(io.BytesIO(), format="png", dpi=120)
    plt.close(figure)


def main():
    """The worker: one JSON job per input line, one JSON reply per job, until the input closes."""
    # Ctrl-C reaches the whole process group; the run handles it and closes this input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # no reply: the run draws every figure itself, and its own import error is the one shown
    _warm_up(plt)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            FIGURES[job["figure"]](*job["args"], **job["kwargs"])
            reply = {"drawn": job["figure"]}
        except Exception as error:  # noqa: BLE001 -- the run draws it again and sees the error itself
            reply = {"failed": job["figure"], "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)
    # Every figure is written (each file whole, then renamed) and every reply flushed: skip the
    # interpreter's teardown of matplotlib, which the run would otherwise wait for (about 0.1 s).
    os._exit(0)


if __name__ == "__main__":
    main()

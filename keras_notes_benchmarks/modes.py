"""The registry of ``--mode`` races: name -> ``arms.Mode``, in the order ``--help`` lists them.

Adding a mode is one module that defines its arms and a ``MODE`` record (see
``phase1``), and one entry here.
"""

from keras_notes_benchmarks import augment, phase1, phase2, photos, rerun, sweep

MODES = {
    "phase1": phase1.MODE,
    "phase2": phase2.MODE,
    "augment": augment.MODE,
    "photos": photos.MODE,
    "rerun": rerun.MODE,
    "sweep": sweep.MODE,
}

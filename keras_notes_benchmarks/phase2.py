"""``--mode phase2``: phase 2 streamed through the whole base against the package's kept outputs.

Both arms are ``finetune`` with the top of the base unfrozen (``unfreeze_from``); the
"streamed" arm runs the whole base forward on every step (``cache=False``), the package
arm keeps the frozen layers' output at the cut. The timed span is phase 2 alone.
"""

from keras_notes_benchmarks.arms import Mode, package_arm

TIMED_PHASE = 2


def _phase2(config):
    return {"fine_tune_epochs": config.fine_tune_epochs, "unfreeze_from": config.unfreeze_from}


def streamed_arm(config, output, marks):
    """The package with ``cache=False``: every step of phase 2 runs the whole base forward."""
    return package_arm(config, output, marks, _phase2(config), cache=False, timed_phase=TIMED_PHASE)


def kept_arm(config, output, marks):
    """The package's default: phase 2 trains on the outputs at its cut, kept by phase 1's pass."""
    return package_arm(config, output, marks, _phase2(config), timed_phase=TIMED_PHASE)


MODE = Mode(
    arms={"streamed": streamed_arm, "package": kept_arm},
    help="phase 2 streamed through the whole base against the package's cache at the cut",
    headline=lambda config: (f"phase 2 from {config.unfreeze_from}, {config.fine_tune_epochs} epochs: "
                             f"streamed vs package"),
    timed="phase 2 s",
    span="phase 2 alone; the package's trains on the outputs at its cut kept by phase 1's pass",
    ratio="ratio of phase 2",
    epochs_field="fine_tune_epochs",
)

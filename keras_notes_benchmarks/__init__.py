"""Benchmarks of the fine-tuning package: ``keras-notes-benchmark`` (``scripts/benchmark.py``).

Tooling, not library: ``keras_notes`` never imports it. One module per measurement:

- ``phase1``, ``phase2``, ``augment``, ``photos``: the ``--mode`` races, each two arms on
  the same images (the keras.io recipe, the package streamed, or the images held in RAM,
  against the package); ``modes.MODES`` is their registry. ``photos`` races on large
  generated photos (``photo_folder``), a third stored sideways.
- ``decode_scale`` (``--decode-scale``): large JPEGs decoded at reduced DCT scale against whole.
- ``frozen_pass`` (``--frozen-pass``): the frozen base's pass by batch size and engine.
- ``growth`` (``--growth``): the package alone on folders of growing size.
- ``cpu_choices`` (``--cpu-choices``): precision and thread settings.
- ``accuracy_seeds`` (``--accuracy-seeds``): the spread of validation accuracy by seed.

Shared pieces: ``common`` (child processes, peak memory, generated images and base
weights, the keras.io head), ``arms`` (the ``Mode`` record and the package's timed arm),
``race`` (running a mode's arms alternately, medians, the summary table), ``config``
(``BenchmarkConfig``), ``child`` (the child process's entry point) and ``cli``.

Adding a mode (``--mode NAME``): a module ``NAME.py`` that defines its arms,
``arm(config, output, marks) -> (val accuracy, training images)`` (``arms`` docstring),
and ``MODE = arms.Mode(...)`` naming them, its help and its summary's words, and, if it
needs images of its own, ``make_folder`` (and ``after``, a measurement printed under its
table); then one entry in ``modes.MODES``. The CLI's
``--mode`` choices and help, the child processes and the summary read the registry.
"""

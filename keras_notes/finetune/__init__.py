"""Fine-tuning keras.applications bases on an image folder.

One module per concern:

- ``archs``: the registry of bases (name -> constructor, preprocessing, sizes).
- ``layers``: ``ImagePreprocessing``, the arch's preprocessing inside the model.
- ``weights``: ``"imagenet"``, ``None`` or a local file, and the offline error.
- ``models``: ``build_model``, the course's two fine-tuned models, ``unfreeze``.
- ``scan``: walking and validating an image folder.
- ``data``: file lists to ``tf.data`` pipelines, splits, augmentation.
- ``config``: ``FinetuneConfig``, the frozen dataclass the CLI mirrors.
- ``strategy``: choosing a ``tf.distribute`` strategy and precision.
- ``train``: ``finetune(config)``, the two training phases on ``fit``.
- ``frozen_part``: cutting the model where its frozen part ends (the part that runs once, the part that trains).
- ``cache``: each phase on the frozen part's output, computed once (phase 2's cut kept by phase 1's pass).
- ``guards``: stopping cleanly on a signal or a NaN loss; atomic backups.
- ``evaluate``: accuracy, per-class precision/recall/F1, confusion matrix, plots.
- ``runio``: the run folder, atomic writes, resume checks.
- ``predict``: top-k predictions from a saved run.
- ``cluster``, ``multiworker``, ``multiworker_finetune``, ``launcher``: training on several
  machines with ``MultiWorkerMirroredStrategy`` and a custom loop, and a local launcher.
"""

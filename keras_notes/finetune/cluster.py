"""Multi-worker bookkeeping: who am I in ``TF_CONFIG``, where may I write, and the strategy.

``tf.distribute.MultiWorkerMirroredStrategy`` learns the cluster from the ``TF_CONFIG``
environment variable, one JSON object per process::

    {"cluster": {"worker": ["host0:12345", "host1:12345"]},
     "task": {"type": "worker", "index": 1}}

Every process gets the same ``cluster`` and its own ``task``. The chief is the task of
type ``"chief"`` if the cluster has one, else worker 0. Cluster launchers write more
fields than TensorFlow reads (Kubeflow's TFJob adds ``"environment": "cloud"``; Vertex AI
also ``"job"`` and a task ``"trial"``); they are ignored here as TensorFlow ignores them
(docs/tfjob.md shows what each launcher writes). Only the chief writes the run
folder; every other worker writes to its own temporary folder beside it and removes it
at the end (the ``write_filepath`` pattern of TensorFlow's multi-worker guide), so that
code which must run on every worker (checkpointing) can run unchanged everywhere.

Nothing here imports TensorFlow except ``make_multi_worker_strategy``.
"""

import dataclasses
import json
import os
import shutil

from keras_notes.errors import KerasNotesError

TF_CONFIG = "TF_CONFIG"
# Task types that train. "ps" and "evaluator" belong to other strategies.
TRAINING_TASK_TYPES = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in the cluster.

    ``worker_id`` numbers the training tasks the way ``MultiWorkerMirroredStrategy``
    does (chief first, then the workers in order); it is the index of this task's
    shard of the data, ``0 <= worker_id < num_workers``.
    """

    task_type: str
    task_index: int
    cluster: dict  # {"chief": [...], "worker": [...]}: lists of "host:port"

    @property
    def num_workers(self):
        return sum(len(self.cluster.get(kind, ())) for kind in TRAINING_TASK_TYPES)

    @property
    def worker_id(self):
        chiefs = len(self.cluster.get("chief", ()))
        return self.task_index if self.task_type == "chief" else chiefs + self.task_index

    @property
    def is_chief(self):
        if self.task_type == "chief":
            return True
        return "chief" not in self.cluster and self.task_type == "worker" and self.task_index == 0

    @property
    def name(self):
        return f"{self.task_type}-{self.task_index}"


def parse_tf_config(text):
    """The ``Task`` described by a ``TF_CONFIG`` JSON string; ``KerasNotesError`` naming what is wrong."""
    try:
        config = json.loads(text)
    except (TypeError, ValueError) as error:
        raise KerasNotesError(f"TF_CONFIG is not valid JSON ({error}); received TF_CONFIG={text!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise KerasNotesError(f'TF_CONFIG needs a "cluster" object and a "task" object; received TF_CONFIG={text!r}')
    cluster, task = config["cluster"], config["task"]
    extra = sorted(set(cluster) - set(TRAINING_TASK_TYPES))
    if extra:
        # A TFJob's "Master" replica becomes task type "master", which TensorFlow's strategies refuse.
        hint = '; name the TFJob replica "Chief", not "Master"' if "master" in extra else ""
        raise KerasNotesError(f"MultiWorkerMirroredStrategy trains with {list(TRAINING_TASK_TYPES)} tasks only; "
                              f"received cluster task types {extra} in TF_CONFIG={text!r}{hint}")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            raise KerasNotesError(f'TF_CONFIG cluster["{kind}"] must be a non-empty list of "host:port" '
                                  f"strings; received {addresses!r}")
    if len(cluster.get("chief", ())) > 1:
        raise KerasNotesError(f"TF_CONFIG may name at most one chief; received {cluster['chief']!r}")
    task_type, task_index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise KerasNotesError(f"TF_CONFIG task type {task_type!r} is not in the cluster {sorted(cluster)}")
    if isinstance(task_index, bool) or not isinstance(task_index, int) \
            or not 0 <= task_index < len(cluster[task_type]):
        raise KerasNotesError(f"TF_CONFIG task index must be an integer in [0, {len(cluster[task_type])}) for "
                              f"{task_type!r}; received index={task_index!r}")
    return Task(task_type, task_index, {kind: list(addresses) for kind, addresses in cluster.items()})


def read_tf_config(environ=None):
    """The ``Task`` of this process from ``$TF_CONFIG``; ``KerasNotesError`` if it is unset."""
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG)
    if not text:
        raise KerasNotesError(
            "multi-worker training needs the TF_CONFIG environment variable (the cluster and this "
            "process's task); set it on every machine, or use scripts/launch_local_workers.py to try "
            "it on one machine (a Kubeflow TFJob sets it only when the job has more than one replica)")
    return parse_tf_config(text)


def make_tf_config(addresses, index, task_type="worker"):
    """The ``TF_CONFIG`` dict for task ``index`` of a cluster of workers at ``addresses``."""
    return {"cluster": {task_type: list(addresses)}, "task": {"type": task_type, "index": index}}


def write_dir(output_dir, task):
    """Where ``task`` writes: the run folder for the chief, a sibling temporary folder otherwise.

    ``runs/x`` -> ``runs/.x.worker-1.tmp`` for worker 1. The name depends only on the
    task, so a restarted worker finds its own checkpoints again; it sits beside the run
    folder, not inside it, so the run folder holds nothing but the chief's files.
    """
    output_dir = os.path.normpath(os.fspath(output_dir))
    if task is None or task.is_chief:
        return output_dir
    parent, name = os.path.split(output_dir)
    return os.path.join(parent, f".{name}.{task.name}.tmp")


def remove_write_dir(path, task):
    """Delete a non-chief's temporary folder (never the chief's run folder)."""
    if task is not None and not task.is_chief:
        shutil.rmtree(path, ignore_errors=True)


def make_multi_worker_strategy(collective_timeout=None):
    """``MultiWorkerMirroredStrategy`` over the cluster in ``$TF_CONFIG`` (which must be set).

    Create it first thing in the process, before any other TensorFlow op runs:
    TensorFlow configures collective ops once, at start-up. The constructor blocks
    until every task in ``TF_CONFIG`` is up. ``collective_timeout`` (seconds) bounds
    each collective op, so a stalled peer becomes an error instead of a hang.
    """
    read_tf_config()  # refuse to fall back silently to a one-worker "cluster"
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)

"""TF_CONFIG parsing, the chief, and where each worker writes (``keras_notes.finetune.cluster``)."""

import json
import os
import re

import pytest

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import cluster


def test_worker_and_chief_ids_follow_the_strategy_numbering():
    workers = cluster.parse_tf_config(json.dumps(cluster.make_tf_config(["a:1", "b:2", "c:3"], 2)))
    assert (workers.num_workers, workers.worker_id, workers.is_chief) == (3, 2, False)
    assert cluster.parse_tf_config(json.dumps(cluster.make_tf_config(["a:1", "b:2"], 0))).is_chief
    # With a "chief" task the chief is shard 0 and worker i is shard i + 1; no worker is chief.
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 0}}
    task = cluster.parse_tf_config(json.dumps(config))
    assert (task.num_workers, task.worker_id, task.is_chief) == (3, 1, False)
    config["task"] = {"type": "chief", "index": 0}
    assert cluster.parse_tf_config(json.dumps(config)).is_chief


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', '"task" object'),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "['ps']"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief' is not in"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index=2"),
    # A TFJob "Master" replica: TensorFlow's multi-worker strategies know no "master" task.
    ('{"cluster": {"master": ["a:1"], "worker": ["b:2"]}, "task": {"type": "master", "index": 0}}',
     'name the TFJob replica "Chief"'),
])
def test_bad_tf_config_is_refused_with_the_value(text, fragment):
    with pytest.raises(KerasNotesError, match=re.escape(fragment)):
        cluster.parse_tf_config(text)


def test_missing_tf_config_says_how_to_set_it():
    with pytest.raises(KerasNotesError, match="launch_local_workers") as refused:
        cluster.read_tf_config(environ={})
    assert "TFJob sets it only when the job has more than one replica" in str(refused.value)


def test_only_the_chief_writes_the_run_folder(tmp_path):
    run = tmp_path / "runs" / "x"
    chief = cluster.parse_tf_config(json.dumps(cluster.make_tf_config(["a:1", "b:2"], 0)))
    worker = cluster.parse_tf_config(json.dumps(cluster.make_tf_config(["a:1", "b:2"], 1)))
    assert cluster.write_dir(run, chief) == str(run)
    assert cluster.write_dir(run, None) == str(run)
    assert cluster.write_dir(run, worker) == str(tmp_path / "runs" / ".x.worker-1.tmp")  # beside, not inside
    for task in (chief, worker):
        os.makedirs(cluster.write_dir(run, task))
        cluster.remove_write_dir(cluster.write_dir(run, task), task)
    assert os.listdir(tmp_path / "runs") == ["x"]

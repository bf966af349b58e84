"""``--strategy multi-worker`` under the TF_CONFIG that cluster launchers write, and docs/tfjob.yaml.

Kubeflow's training operator (v1.9.0, ``pkg/controller.v1/tensorflow/tensorflow.go``,
``genTFConfigJSONStr``) gives every pod of a TFJob one compact JSON object: the cluster
(replica types lower-cased, addresses ``<job>-<type>-<i>.<namespace>.svc:<port>``), the
pod's task, and ``"environment": "cloud"``. ``tfjob_tf_config`` below writes it the same
way, and the first test checks it against a string the operator's own test expects. The
slow tests then run the real finetune command as two processes on 127.0.0.1, in both
shapes a TFJob for this strategy takes: a Chief and a Worker replica, or two Workers.
"""

import json
import os
import re
import subprocess

import numpy as np
import pytest

from keras_notes.finetune import cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, "docs", "tfjob.yaml")
TFJOB_PORT = 2222  # kubeflowv1.TFJobDefaultPort, used when the "tensorflow" container names no "tfjob-port"
# One pair of processes below took 66-84 s on 2 cores at load average 7-8.5 (about 22 s of CPU).
RUN_TIMEOUT = 300


def tfjob_addresses(job, namespace, replicas, port=TFJOB_PORT):
    """``{"Chief": [...], "Worker": [...]}``: the headless-service address of each replica, as the operator forms it."""
    return {kind: [f"{job}-{kind.lower()}-{i}.{namespace}.svc:{port}" for i in range(count)]
            for kind, count in replicas.items()}


def tfjob_tf_config(addresses, replica_type, index):
    """The ``TF_CONFIG`` value the operator sets in the pod of ``replica_type`` number ``index``.

    Go's ``json.Marshal`` writes no spaces, map keys (the cluster's task types) sorted, and
    struct fields in declaration order: ``cluster``, ``task``, ``environment``.
    """
    config = {"cluster": {kind.lower(): list(hosts) for kind, hosts in sorted(addresses.items(),
                                                                             key=lambda item: item[0].lower())},
              "task": {"type": replica_type.lower(), "index": index},
              "environment": "cloud"}
    return json.dumps(config, separators=(",", ":"))


def test_tf_config_is_written_as_the_training_operator_writes_it():
    # The expected string is the one in training-operator v1.9.0's pod_test.go ("should generate desired
    # cluster spec", the case with no custom cluster domain): one evaluator, one ps, one worker.
    addresses = tfjob_addresses("test-tfjob", "ns3", {"Worker": 1, "PS": 1, "Evaluator": 1})
    assert tfjob_tf_config(addresses, "Worker", 0) == (
        '{"cluster":{"evaluator":["test-tfjob-evaluator-0.ns3.svc:2222"],"ps":["test-tfjob-ps-0.ns3.svc:2222"],'
        '"worker":["test-tfjob-worker-0.ns3.svc:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}')


CHIEF_AND_WORKER = {"Chief": 1, "Worker": 1}
TWO_WORKERS = {"Worker": 2}
FORMS = {"chief-and-worker": (CHIEF_AND_WORKER, [("Chief", 0), ("Worker", 0)]),
         "two-workers": (TWO_WORKERS, [("Worker", 0), ("Worker", 1)])}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_pod_finds_its_role_as_tensorflow_numbers_it(form):
    """Chief, shard number and count from ``cluster.parse_tf_config``, against TensorFlow's own functions."""
    from tensorflow.python.distribute import multi_worker_util

    replicas, pods = FORMS[form]
    addresses = tfjob_addresses("finetune", "default", replicas)
    tasks = [cluster.parse_tf_config(tfjob_tf_config(addresses, kind, index)) for kind, index in pods]
    spec = {kind.lower(): hosts for kind, hosts in addresses.items()}
    for task in tasks:
        assert task.is_chief == multi_worker_util.is_chief(spec, task.task_type, task.task_index)
        assert task.worker_id == multi_worker_util.id_in_cluster(spec, task.task_type, task.task_index)
        assert task.num_workers == multi_worker_util.worker_count(spec, task.task_type) == 2
    assert [task.is_chief for task in tasks] == [True, False]  # the Chief, or else Worker 0


def test_vertex_ai_fields_beyond_tensorflows_are_ignored():
    # The fields AI Platform Training documents (Vertex AI's custom jobs write the same cluster and task
    # types): "job" (the job's input), "environment", and in hyperparameter tuning a task "trial".
    text = json.dumps({
        "cluster": {"chief": ["cmle-training-workerpool0-ab-0:2222"],
                    "worker": ["cmle-training-workerpool1-ab-0:2222", "cmle-training-workerpool1-ab-1:2222"]},
        "environment": "cloud", "job": {"python_module": "keras_notes.cli.finetune"},
        "task": {"type": "worker", "index": 1, "trial": "1"}})
    task = cluster.parse_tf_config(text)
    assert (task.task_type, task.task_index, task.worker_id, task.num_workers, task.is_chief) == (
        "worker", 1, 2, 3, False)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """2 classes x 8 noisy 32x32 PNGs; the finetune default split keeps 12 for training and 4 for validation."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tfjob") / "tiny"
    rng = np.random.default_rng(0)
    for label in range(2):
        os.makedirs(root / f"class{label}")
        for i in range(8):
            pixels = rng.integers(0, 160, size=(32, 32, 3))
            pixels[:, :, label] += 60
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{label}" / f"{i:02d}.png")
    return str(root)


def run_pods(command, tf_configs, cwd):
    """Start one process per ``TF_CONFIG``, wait for all; -> ``[(pid, status, output), ...]``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    processes = [subprocess.Popen(command, cwd=cwd, env=dict(env, TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for tf_config in tf_configs]
    results = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=RUN_TIMEOUT)
            results.append((process.pid, process.returncode, output))
    finally:
        for process in processes:  # a pod whose peer failed waits in a collective: end it
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def event_file_pids(folder):
    """The process ids in the names of the TensorBoard event files under ``folder``.

    TensorFlow names them ``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``.
    """
    return {int(name.split(".")[-3]) for _, _, names in os.walk(folder) for name in names
            if name.startswith("events.out.tfevents.")}


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(FORMS))
def test_finetune_runs_under_a_tfjob_tf_config_and_only_the_chief_writes(form, tiny_folder, tmp_path):
    from keras_notes.cli.launch_local_workers import finetune_command
    from keras_notes.finetune.launcher import free_ports

    replicas, pods = FORMS[form]
    ports = iter(free_ports(2))
    # The TFJob's cluster, with each service name replaced by a free port on this machine.
    addresses = {kind: [f"127.0.0.1:{next(ports)}" for _ in range(count)] for kind, count in replicas.items()}
    # --freeze-base trains the head only: the pair then takes 22 s of CPU instead of 37 s.
    command = finetune_command() + [tiny_folder, "--arch", "mobilenet", "--weights", "none", "--freeze-base",
                                    "--image-size", "32", "--epochs", "1", "--batch-size", "4",
                                    "--strategy", "multi-worker", "--output", "run"]
    results = run_pods(command, [tfjob_tf_config(addresses, kind, index) for kind, index in pods], tmp_path)
    for _, status, output in results:
        assert status == 0, output
        assert "epoch 1/1 - loss" in output
    (chief_pid, _, chief_log), (_, _, worker_log) = results
    other = f"{pods[1][0].lower()}-{pods[1][1]}"  # "worker-0" beside a chief, "worker-1" without
    assert "run folder: run" in chief_log and "validation accuracy" in chief_log
    assert f"{other} writes to .run.{other}.tmp (removed at the end); the chief writes run" in worker_log

    run = tmp_path / "run"
    assert os.listdir(tmp_path) == ["run"]  # the other pod's folder is gone, nothing else was written
    assert {"model.keras", "config.json", "class_names.json", "history.csv", "evaluation.json",
            "checkpoints", "logs"} <= set(os.listdir(run))
    assert json.loads((run / "config.json").read_text())["strategy"] == "multi-worker"
    assert json.loads((run / "evaluation.json").read_text())["num_images"] == 4  # 2 per class held out
    # Both pods log to TensorBoard, each into its own folder: every event file here is the chief's.
    assert event_file_pids(run / "logs") == {chief_pid}


def test_the_manifest_runs_the_finetune_command_in_tensorflow_containers_on_shared_storage():
    """docs/tfjob.yaml: a Chief and a Worker run one finetune command, which parses, on a ReadWriteMany volume."""
    import yaml

    from keras_notes.cli.finetune import parse_args
    from keras_notes.cli.launch_local_workers import FINETUNE_SCRIPT

    with open(MANIFEST) as handle:
        documents = {document["kind"]: document for document in yaml.safe_load_all(handle)}
    assert sorted(documents) == ["PersistentVolumeClaim", "TFJob"]
    claim, job = documents["PersistentVolumeClaim"], documents["TFJob"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    # What the operator's admission webhook (pkg/webhooks/tensorflow/tfjob_webhook.go) and API constants
    # accept: a DNS-1035 job name, an image in every container, known policy values.
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", job["metadata"]["name"])
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] in ("All", "Running", "None")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # mounted by pods on different nodes
    specs = job["spec"]["tfReplicaSpecs"]
    assert sorted(specs) == ["Chief", "Worker"] and specs["Chief"]["replicas"] == 1
    commands = []
    for spec in specs.values():
        pod = spec["template"]["spec"]
        # The operator sets TF_CONFIG only in the container named "tensorflow" (TFJobDefaultContainerName).
        (container,) = [c for c in pod["containers"] if c["name"] == "tensorflow"]
        assert container["image"] and spec["restartPolicy"] in ("Always", "OnFailure", "Never", "ExitCode")
        commands.append(container["command"] + container["args"])
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        mounts = [m["mountPath"] for m in container["volumeMounts"]
                  if volumes.get(m["name"]) == claim["metadata"]["name"]]
        assert mounts, container["volumeMounts"]
        config = parse_args(container["args"])  # the flags exist and their values are valid
        for path in (config.data_dir, config.output):  # both on the shared volume
            assert any(path.startswith(mount.rstrip("/") + "/") for mount in mounts), (path, mounts)
    assert commands[0] == commands[1]  # every pod runs the same program with the same arguments
    assert commands[0][0] == FINETUNE_SCRIPT and config.strategy == "multi-worker"  # setup.cfg's entry point

"""The local launcher (``keras_notes.finetune.launcher``) and its command line, with plain Python workers.

No TensorFlow here: each worker is ``python -c CODE``, so the tests check the launcher's
own behaviour (TF_CONFIG per worker, prefixed output, restarts, time limit) in seconds.
The real TensorFlow workers run in ``test_multiworker.py``.
"""

import sys
import time

import pytest

from keras_notes.cli.launch_local_workers import finetune_command, parse_args, worker_command
from keras_notes.finetune.launcher import TIMED_OUT, free_ports, launch_local_workers


def run_launcher(code, tmp_path, **kwargs):
    """Launch ``python -c code`` as workers; return (status, output lines)."""
    out_path = tmp_path / "launcher.log"
    with open(out_path, "w") as out:
        status = launch_local_workers([sys.executable, "-c", code], out=out, grace=2.0, **kwargs)
    return status, out_path.read_text().splitlines()


def test_free_ports_are_distinct_loopback_ports():
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= port < 65536 for port in ports)


def test_launcher_gives_each_worker_its_tf_config_and_prefixes_its_lines(tmp_path):
    code = ("import json, os; c = json.loads(os.environ['TF_CONFIG']); "
            "print(c['task']['type'], c['task']['index']); print(*c['cluster']['worker'])")
    status, lines = run_launcher(code, tmp_path, num_workers=3, timeout=60)
    assert status == 0
    for index in range(3):
        assert f"[worker {index}] worker {index}" in lines
    addresses = [line.split("] ", 1)[1].split() for line in lines if line.startswith("[worker 0] 127.")][0]
    assert len(addresses) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert "[launcher] all 3 workers finished" in lines


def test_launcher_restarts_the_whole_group_after_a_failure(tmp_path):
    # First attempt: worker 1 crashes while worker 0 would run for a minute; the second attempt succeeds.
    code = ("import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            f"marker = os.path.join({str(tmp_path)!r}, f'attempts-{{i}}')\n"
            "open(marker, 'a').write('x')\n"
            "first = open(marker).read() == 'x'\n"
            "if first and i == 1: sys.exit(3)\n"
            "if first: time.sleep(60)\n"
            "print('finished')")
    began = time.monotonic()
    status, lines = run_launcher(code, tmp_path, num_workers=2, max_restarts=1, timeout=60)
    assert status == 0
    assert time.monotonic() - began < 30  # worker 0 was stopped, not waited for
    assert "[launcher] worker 1 exited with status 3; stopping the others" in lines
    assert "[launcher] restarting all 2 workers (restart 1 of at most 1)" in lines
    assert [(tmp_path / f"attempts-{i}").read_text() for i in (0, 1)] == ["xx", "xx"]  # both ran twice
    assert lines.count("[worker 0] finished") == lines.count("[worker 1] finished") == 1


def test_launcher_fails_after_its_restarts(tmp_path):
    status, lines = run_launcher("import sys; sys.exit(3)", tmp_path, num_workers=2, max_restarts=1, timeout=60)
    assert status == 3
    assert sum("started, pid" in line for line in lines) == 4  # 2 workers x (1 + 1 restart)
    assert "[launcher] giving up after 1 restart(s)" in lines


def test_launcher_does_not_retry_a_usage_error(tmp_path):
    status, lines = run_launcher("import sys; sys.exit(2)", tmp_path, num_workers=2, max_restarts=3, timeout=60)
    assert status == 2
    assert sum("started, pid" in line for line in lines) == 2


def test_launcher_stops_workers_at_its_timeout(tmp_path):
    began = time.monotonic()
    status, lines = run_launcher("import time; time.sleep(60)", tmp_path, num_workers=2, timeout=1)
    assert status == TIMED_OUT and time.monotonic() - began < 15
    assert "[launcher] timed out after 1 s; stopped all workers" in lines


def test_launcher_cli_runs_finetune_with_the_multi_worker_strategy_by_default():
    args = parse_args(["-n", "2", "--", "data/digits", "--output", "runs/mw"])
    assert args.num_workers == 2 and args.worker_args == ["data/digits", "--output", "runs/mw"]
    assert worker_command(args.worker_args) == finetune_command() + ["data/digits", "--output", "runs/mw",
                                                                      "--strategy", "multi-worker"]
    assert worker_command(["x", "--strategy=multi-worker"])[-1] == "--strategy=multi-worker"
    assert worker_command(["python", "w.py"], command=True) == ["python", "w.py"]
    with pytest.raises(SystemExit):
        parse_args(["-n", "2"])  # nothing after '--'


def test_finetune_command_prefers_the_script_beside_python_then_path_then_module(tmp_path, monkeypatch):
    from keras_notes.cli import launch_local_workers as cli

    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    monkeypatch.setattr(cli.sys, "executable", str(python))
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    assert finetune_command() == [str(python), "-m", "keras_notes.cli.finetune"]  # neither script exists
    monkeypatch.setattr(cli.shutil, "which", lambda name: f"/usr/local/bin/{name}")
    assert finetune_command() == ["/usr/local/bin/keras-notes-finetune"]  # the one on PATH
    beside = python.parent / "keras-notes-finetune"
    beside.write_text("#!/bin/sh\n")
    beside.chmod(0o755)
    assert finetune_command() == [str(beside)]  # the virtual environment's own wins


def test_launcher_cli_turns_a_bad_worker_count_into_exit_status_2(capsys):
    from keras_notes.cli.launch_local_workers import main

    assert main(["-n", "0", "--", "data/digits"]) == 2
    assert "received 0" in capsys.readouterr().err

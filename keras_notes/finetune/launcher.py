"""Run a multi-worker job on one machine: N processes on 127.0.0.1, each with its ``TF_CONFIG``.

For trying ``finetune --strategy multi-worker`` (and testing it) without a cluster.
``launch_local_workers(command, num_workers)`` picks N free ports, starts N copies of
``command`` with ``TF_CONFIG`` naming the cluster and each copy's index, prefixes every
line a worker prints with ``[worker i]``, and waits.

What TensorFlow 2.21 does when a worker dies, measured here with two CPU workers:

- kill a non-chief worker: the chief's coordination service notices the missing
  heartbeats after about 7 s, aborts the collective ops, and the chief exits with an
  ``UnavailableError`` ("The tasks have crashed ... Restart your program to reset");
- kill the chief: the other worker's pending collective fails at once ("Socket closed")
  and it exits with status 1;
- restart only the dead worker while the other lives: the coordination service refuses
  it ("unexpectedly tried to connect while it is already in error"), the survivor aborts,
  and the restarted worker then waits for ever for a cluster that is gone.

So recovery means restarting the whole group, as the ``UnavailableError`` itself says.
When any worker exits with a failure, the launcher stops the others and starts all N
again with the same ``TF_CONFIG``s, up to ``max_restarts`` times; the training resumes
from its last per-epoch checkpoint. Exit status 2 (a usage error, the same on every try)
is not retried. Workers are stopped with SIGTERM, then SIGKILL after ``grace`` seconds:
TensorFlow's coordination service installs a SIGTERM handler of its own (for preemption
notices), and a TensorFlow worker blocked in a collective was seen to ignore SIGTERM.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.cluster import make_tf_config

POLL_SECONDS = 0.2
USAGE_ERROR = 2  # a worker's bad-arguments exit: restarting would fail the same way
TIMED_OUT = 124  # the status coreutils' timeout(1) uses


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct ports free on ``host`` now (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _pump(stream, prefix, out, lock):
    """Copy ``stream`` to ``out`` line by line, each line behind ``prefix``."""
    for line in iter(stream.readline, ""):
        with lock:
            out.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
            out.flush()
    stream.close()


def _stop(processes, grace):
    """SIGTERM every live process group, then SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(process.poll() is None for process in processes):
            time.sleep(POLL_SECONDS)
    for process in processes:
        process.wait(timeout=grace)


def _describe(status):
    return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


def launch_local_workers(command, num_workers, max_restarts=2, timeout=None, host="127.0.0.1",
                         out=None, grace=5.0, env=None):
    """Run ``command`` as ``num_workers`` workers of one cluster on ``host``; return an exit status.

    0 when every worker of one attempt exits 0; otherwise the failing worker's status
    (1 for a signal), ``TIMED_OUT`` after ``timeout`` seconds in all, or 2 at once when a
    worker reports a usage error. ``env`` (default ``os.environ``) is the base environment.
    """
    if not command:
        raise KerasNotesError("no command to launch; put it after '--'")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise KerasNotesError(f"the number of workers must be an integer of at least 1; received {num_workers!r}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise KerasNotesError(f"max_restarts must be an integer of at least 0; received {max_restarts!r}")
    out = out or sys.stdout
    lock = threading.Lock()
    base_env = dict(os.environ if env is None else env)
    addresses = [f"{host}:{port}" for port in free_ports(num_workers, host)]
    deadline = None if timeout is None else time.monotonic() + timeout

    def say(message):
        with lock:
            out.write(f"[launcher] {message}\n")
            out.flush()

    say(f"cluster {addresses}; command: {' '.join(command)}")
    for attempt in range(max_restarts + 1):
        processes, pumps = [], []
        for index in range(num_workers):
            worker_env = dict(base_env, TF_CONFIG=json.dumps(make_tf_config(addresses, index)))
            # A session of its own, so that stopping a worker stops any process it started.
            process = subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, errors="replace", start_new_session=True)
            pump = threading.Thread(target=_pump, args=(process.stdout, f"[worker {index}] ", out, lock), daemon=True)
            pump.start()
            processes.append(process)
            pumps.append(pump)
            say(f"worker {index} started, pid {process.pid}")
        try:
            failed = None
            while failed is None:
                statuses = [process.poll() for process in processes]
                if all(status == 0 for status in statuses):
                    for pump in pumps:
                        pump.join(timeout=grace)
                    say(f"all {num_workers} workers finished")
                    return 0
                failed = next((i for i, status in enumerate(statuses) if status not in (None, 0)), None)
                if failed is None and deadline is not None and time.monotonic() > deadline:
                    _stop(processes, grace)
                    say(f"timed out after {timeout} s; stopped all workers")
                    return TIMED_OUT
                if failed is None:
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            _stop(processes, grace)
            say("interrupted; stopped all workers")
            return 130
        status = statuses[failed]
        say(f"worker {failed} {_describe(status)}; stopping the others")
        _stop(processes, grace)
        for pump in pumps:
            pump.join(timeout=grace)
        if status == USAGE_ERROR:
            return USAGE_ERROR
        if attempt == max_restarts:
            say(f"giving up after {max_restarts} restart(s)")
            return status if status > 0 else 1
        say(f"restarting all {num_workers} workers (restart {attempt + 1} of at most {max_restarts})")

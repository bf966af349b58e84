"""Start N training workers on this machine, each with its TF_CONFIG, and wait for them.

    python scripts/launch_local_workers.py -n 2 -- DATA_DIR --output runs/two-workers [finetune options]
    python scripts/launch_local_workers.py -n 2 --command -- python my_worker.py [its options]

Without --command, the arguments after '--' go to the finetune command, run as
``keras-notes-finetune ARGS --strategy multi-worker``. With --command,
they are the whole command each worker runs. Every worker's lines are printed behind
``[worker i]``. A worker that fails makes all of them restart (up to --max-restarts
times), resuming from the last epoch checkpoint; the exit status is non-zero if the
job does not finish.
"""

import argparse
import os
import shutil
import sys

from keras_notes.cli._common import user_errors_exit_2

FINETUNE_SCRIPT = "keras-notes-finetune"  # the console entry point setup.cfg declares
FINETUNE_MODULE = "keras_notes.cli.finetune"


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first '--' belongs to the workers, untouched by this parser.
    split = argv.index("--") if "--" in argv else len(argv)
    own, worker_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="launch_local_workers", description=__doc__.splitlines()[0],
                                     usage="%(prog)s [-h] -n N [options] -- ARGS...")
    parser.add_argument("-n", "--num-workers", type=int, required=True, help="workers to start")
    parser.add_argument("--command", action="store_true",
                        help="the arguments after '--' are a full command, not finetune options")
    parser.add_argument("--max-restarts", type=int, default=2,
                        help="times to restart the whole group after a worker fails (default 2)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop every worker and fail after this many seconds (default: no limit)")
    parser.add_argument("--grace", type=float, default=5.0,
                        help="seconds between SIGTERM and SIGKILL when stopping workers (default 5)")
    parser.add_argument("--host", default="127.0.0.1", help="address the workers listen on (default 127.0.0.1)")
    args = parser.parse_args(own)
    if not worker_args:
        parser.error("put the worker arguments after '--'")
    args.worker_args = worker_args
    return args


def finetune_command():
    """The finetune entry point of this Python: the console script beside the interpreter
    (a virtual environment's ``bin/``), else the one on ``PATH``, else ``python -m``."""
    beside = os.path.join(os.path.dirname(sys.executable), FINETUNE_SCRIPT)
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which(FINETUNE_SCRIPT)
    return [found] if found else [sys.executable, "-m", FINETUNE_MODULE]


def worker_command(worker_args, command=False):
    """The command every worker runs: ``worker_args`` as is, or the finetune CLI on them."""
    if command:
        return list(worker_args)
    finetune = finetune_command() + list(worker_args)
    has_strategy = any(arg == "--strategy" or arg.startswith("--strategy=") for arg in worker_args)
    return finetune if has_strategy else finetune + ["--strategy", "multi-worker"]


@user_errors_exit_2
def main(argv=None):
    from keras_notes.finetune.launcher import launch_local_workers

    args = parse_args(argv)
    return launch_local_workers(worker_command(args.worker_args, args.command), args.num_workers,
                                max_restarts=args.max_restarts, timeout=args.timeout, host=args.host,
                                grace=args.grace)

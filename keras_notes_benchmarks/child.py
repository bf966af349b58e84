"""A child process of the benchmark: ``python -m keras_notes_benchmarks.child REQUEST``.

``REQUEST`` is JSON, ``{"job": name, "arguments": {...}}`` (``common.run_child`` writes
it); the child runs ``JOBS[name](**arguments)`` and prints ``common.RESULT_PREFIX`` and
the result as JSON on its last line.
"""

import json
import sys

from keras_notes_benchmarks.common import RESULT_PREFIX, make_base_weights
from keras_notes_benchmarks.config import BenchmarkConfig
from keras_notes_benchmarks.cpu_choices import step_rate
from keras_notes_benchmarks.photos import pass_share
from keras_notes_benchmarks.race import run_arm_here


def _arm(arm, config, output):
    return run_arm_here(arm, BenchmarkConfig(**config), output)


def _base_weights(path, config):
    return {"path": make_base_weights(path, BenchmarkConfig(**config))}


def _step(**arguments):
    return {"images_per_second": step_rate(**arguments)}


def _pass_share(config):
    return pass_share(BenchmarkConfig(**config))


JOBS = {"arm": _arm, "base_weights": _base_weights, "step": _step, "pass_share": _pass_share}


def main(request):
    values = json.loads(request)
    result = JOBS[values["job"]](**values["arguments"])
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

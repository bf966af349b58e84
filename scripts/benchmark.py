"""Time the keras.io fine-tuning recipe against the package's path. See keras_notes/cli/benchmark.py."""
from keras_notes.cli.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())

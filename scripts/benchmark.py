"""Time the keras.io fine-tuning recipe against the package's path. See keras_notes_benchmarks/cli.py."""
from keras_notes_benchmarks.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

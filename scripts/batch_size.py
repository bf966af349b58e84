"""Throughput and final loss per batch size. See keras_notes/cli/batch_size.py."""
from keras_notes.cli.batch_size import main

if __name__ == "__main__":
    raise SystemExit(main())

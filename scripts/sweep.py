"""Search a fine-tuning head's hyperparameters, then retrain the winner. See keras_notes/cli/sweep.py."""
from keras_notes.cli.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())

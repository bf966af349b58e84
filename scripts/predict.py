"""Top-k predictions of a fine-tuned run's model. See keras_notes/cli/predict.py."""
from keras_notes.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main())

"""The bias as a threshold, with Keras Dense layers. See keras_notes/cli/bias.py."""
from keras_notes.cli.bias import main

if __name__ == "__main__":
    raise SystemExit(main())

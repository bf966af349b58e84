"""Check a NumPy backward pass against TensorFlow. See keras_notes/cli/backprop.py."""
from keras_notes.cli.backprop import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Per-layer gradient norms across initializers and activations. See keras_notes/cli/gradients.py."""
from keras_notes.cli.gradients import main

if __name__ == "__main__":
    raise SystemExit(main())

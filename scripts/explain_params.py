"""Explain a model's parameter count layer by layer. See keras_notes/cli/explain_params.py."""
from keras_notes.cli.explain_params import main

if __name__ == "__main__":
    raise SystemExit(main())

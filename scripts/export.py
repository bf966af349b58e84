"""Export a finished run and check every file on its validation images. See keras_notes/cli/export.py."""
from keras_notes.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())

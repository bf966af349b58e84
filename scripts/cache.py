"""Show and free the kept cache of frozen outputs. See keras_notes/cli/cache.py."""
from keras_notes.cli.cache import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Start N training workers on this machine, each with its TF_CONFIG. See keras_notes/cli/launch_local_workers.py."""
from keras_notes.cli.launch_local_workers import main

if __name__ == "__main__":
    raise SystemExit(main())

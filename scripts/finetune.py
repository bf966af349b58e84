"""Fine-tune a keras.applications base on an image folder. See keras_notes/cli/finetune.py."""
from keras_notes.cli.finetune import main

if __name__ == "__main__":
    raise SystemExit(main())

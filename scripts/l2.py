"""L2 regularization on the notes' In[10] model. See keras_notes/cli/l2.py."""
from keras_notes.cli.l2 import main

if __name__ == "__main__":
    raise SystemExit(main())

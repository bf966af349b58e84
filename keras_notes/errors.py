"""The package's one exception type.

``KerasNotesError`` subclasses ``ValueError`` so that callers who catch bad
input the usual way also catch it. The command-line wrappers turn it (and any
other ``ValueError`` raised while checking input) into one line on stderr and
exit status 2.
"""


class KerasNotesError(ValueError):
    """A user mistake or an unusable input, with the offending value in its message."""

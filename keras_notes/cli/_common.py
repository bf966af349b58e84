"""What every command-line front end shares: quiet TensorFlow, and user errors as one line."""

import argparse
import functools
import os
import sys

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries a CLI's own output.
# Set before TensorFlow is imported; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USAGE_ERROR = 2  # the exit status argparse itself uses for a bad invocation


def user_errors_exit_2(main):
    """Wrap ``main(argv)`` so that a ``ValueError`` (``KerasNotesError`` included) or a
    missing file becomes ``prog: error: message`` on stderr and exit status 2, with no
    traceback. Anything else is a bug and keeps its traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
            prog = os.path.basename(sys.argv[0]) or "keras_notes"
            message = " ".join(str(error).split())  # one line, whatever the message held
            print(f"{prog}: error: {message}", file=sys.stderr)
            return USAGE_ERROR

    return wrapper


def comma_separated(kind):
    """An argparse ``type`` that reads ``"1,4,16"`` as a tuple of ``kind`` (int or float)."""

    what = "integers" if kind is int else "numbers"

    def parse(text):
        try:
            return tuple(kind(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}; received {text!r}") from None

    return parse


def add_config_flags(parser, config_class, helps):
    """Add ``--field-name`` for each field in ``helps`` ({field: help}), typed and defaulted from ``config_class()``.

    A bool field becomes ``--flag / --no-flag``; a field whose default is None takes a string.
    ``config_from_args`` builds the config back from the parsed flags.
    """
    defaults = config_class()
    for name, text in helps.items():
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default: %(default)s)")
        else:
            parser.add_argument(flag, dest=name, type=str if default is None else type(default), default=default,
                                help=f"{text} (default: %(default)s)")


def config_from_args(config_class, args, helps):
    """``config_class`` with the fields ``add_config_flags`` added taken from ``args``; the rest keep their defaults."""
    return config_class(**{name: getattr(args, name) for name in helps})

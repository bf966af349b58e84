"""What every command-line front end shares: quiet TensorFlow, and user errors as one line."""

import argparse
import functools
import os
import sys

from keras_notes.fields import flag_fields
from keras_notes.startup import quiet_tensorflow_startup

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries a CLI's own output.
# Set before TensorFlow is imported; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USAGE_ERROR = 2  # the exit status argparse itself uses for a bad invocation


def user_errors_exit_2(main):
    """Wrap ``main(argv)`` so that a ``ValueError`` (``KerasNotesError`` included) or a
    missing file becomes ``prog: error: message`` on stderr and exit status 2, with no
    traceback. Anything else is a bug and keeps its traceback. TensorFlow's start-up
    lines are filtered from stderr meanwhile (``keras_notes.startup``)."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            with quiet_tensorflow_startup():  # TensorFlow's pre-absl start-up lines (keras_notes.startup)
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


def add_config_flags(parser, config_class, exclude=()):
    """Add one argument per ``keras_notes.fields.option`` field of ``config_class`` (except ``exclude``).

    A positional field becomes a positional argument; a ``bool`` field ``--flag / --no-flag``;
    any other field ``--field-name`` parsed by its ``parse`` (or its default's type) and
    defaulting to the field's default. ``config_from_args`` builds the config back.
    """
    for field in flag_fields(config_class):
        if field.name in exclude:
            continue
        meta = field.metadata
        text = meta["help"] if "default" in meta["help"] else f"{meta['help']} (default: %(default)s)"
        options = {key: value for key, value in meta.items() if key not in ("help", "parse", "positional")}
        flag = "--" + field.name.replace("_", "-")
        if meta.get("positional"):
            parser.add_argument(field.name, type=meta["parse"], help=meta["help"], **options)
        elif meta["parse"] is None and (field.default is None or isinstance(field.default, bool)):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=field.default, help=text, **options)
        else:
            parse = meta["parse"] or type(field.default)
            parser.add_argument(flag, dest=field.name, type=parse, default=field.default, help=text, **options)


def config_from_args(config_class, args, exclude=()):
    """``config_class`` built from the flags ``add_config_flags`` added; other fields keep their defaults."""
    return config_class(**{field.name: getattr(args, field.name) for field in flag_fields(config_class)
                           if field.name not in exclude})


def config_parser(prog, doc, config_class):
    """An ``ArgumentParser`` named ``prog``, described by ``doc``'s first line, with ``config_class``'s flags."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    add_config_flags(parser, config_class)
    return parser


def experiment_parser(prog, doc, config_class, output, output_help, lists=()):
    """The parser every experiment CLI shares: its config's flags, comma-separated lists, ``--output``.

    ``lists`` holds ``(flag, kind, default, help)`` for the sweeps that are arguments of the
    experiment function rather than config fields (``--strengths 0,0.01``).
    """
    parser = config_parser(prog, doc, config_class)
    for flag, kind, default, text in lists:
        shown = ",".join(f"{value:g}" for value in default)
        parser.add_argument(flag, type=comma_separated(kind), default=default,
                            help=f"{text} (default {shown})")
    parser.add_argument("--output", default=output, help=f"{output_help} (default: %(default)s)")
    return parser

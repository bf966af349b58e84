"""Config fields that carry their own command-line flag: the one way from a config to flags.

A frozen dataclass declares each user-facing field with ``option(default, help, ...)``;
``keras_notes.cli._common.add_config_flags`` turns every field that has a help text
into an argparse flag, and ``config_from_args`` builds the config back from the parsed
flags. The help text, the parser and the default therefore live next to the field
they describe, and a CLI cannot drift from its library config. Plain fields (no
``option``) are library-only and get no flag.

Metadata keys, all optional but ``help``:

- ``help``: the flag's help text; ``(default: ...)`` is appended unless it says "default";
- ``parse``: command-line string -> value; ``None`` for a ``bool`` field (``--x / --no-x``),
  else the default's own type;
- ``positional``: the field is a positional argument, not a ``--flag``;
- any other key (``choices``, ``nargs``, ``metavar``) is passed to ``add_argument`` as is.
"""

import dataclasses


def option(default, help, parse=None, **cli):
    """A dataclass field with ``default`` whose metadata feeds the generated command line."""
    return dataclasses.field(default=default, metadata={"help": help, "parse": parse, **cli})


def none_or(parse):
    """A parser that reads ``none`` (any case) as ``None`` and anything else with ``parse``."""

    def parser(text):
        return None if text.lower() == "none" else parse(text)

    parser.__name__ = f"none_or_{parse.__name__}"
    return parser


def flag_fields(config_class):
    """The fields of ``config_class`` that have a command-line flag (an ``option`` help text)."""
    return [field for field in dataclasses.fields(config_class) if field.metadata.get("help")]

"""Explain a model's parameter count layer by layer, and check every layer against Keras.

    python scripts/explain_params.py cnn_example
    python scripts/explain_params.py vgg16
    python scripts/explain_params.py mobilenet --no-top --image-size 128

NAME is a notes model (``keras_notes.notes_models.MODELS``) or a
keras.applications model by lower-case name, underscores optional (vgg16,
mobilenet, mobilenet_v2, resnet50, efficientnetb0...). Applications are built
with ``weights=None``, so nothing is downloaded. Exit status: 0 when every
layer's formula agrees with Keras, 1 when any disagrees or has no rule, 2 for a
bad invocation (unknown name, option that does not apply).
"""

import argparse

from keras_notes.cli._common import user_errors_exit_2
from keras_notes.errors import KerasNotesError
from keras_notes.report import format_table, format_value

HEADERS = ["layer", "type", "output shape", "formula", "params", "trainable", "keras", "check"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="explain_params",
        description="Per-layer parameter arithmetic for a notes model or a keras.applications "
                    "model, checked against Keras's own count.")
    parser.add_argument("name", help="a notes model (keras_notes.notes_models.MODELS, e.g. in7 or cnn_example) "
                                     "or a keras.applications name such as vgg16 or mobilenet")
    parser.add_argument("--no-top", action="store_true",
                        help="keras.applications only: drop the classifier (include_top=False)")
    parser.add_argument("--image-size", type=int, default=None, metavar="PIXELS",
                        help="keras.applications only: square input size (default: the model's own)")
    parser.add_argument("--totals-only", action="store_true",
                        help="print only the totals and any disagreement, not the table")
    return parser.parse_args(argv)


def _normalise(name):
    return name.lower().replace("_", "").replace("-", "")


def build_model(name, include_top=True, image_size=None):
    """Build the notes model or the keras.applications model called ``name`` (weights=None)."""
    from keras_notes import notes_models

    if name in notes_models.MODELS:
        if not include_top or image_size is not None:
            raise KerasNotesError(f"--no-top and --image-size apply to keras.applications models "
                                  f"only, not to the notes model {name!r}")
        return notes_models.get(name)()
    import keras

    applications = {_normalise(attr): getattr(keras.applications, attr)
                    for attr in dir(keras.applications) if attr[:1].isupper()}
    builder = applications.get(_normalise(name))
    if builder is None:
        raise KerasNotesError(f"unknown model {name!r}; choose from {sorted(notes_models.MODELS)} "
                              f"or a keras.applications name: {', '.join(sorted(applications))}")
    if image_size is not None and image_size < 1:
        raise KerasNotesError(f"--image-size must be a positive number of pixels; received {image_size}")
    input_shape = None if image_size is None else (image_size, image_size, 3)
    return builder(weights=None, include_top=include_top, input_shape=input_shape)


def _check(row):
    if not row.known:
        return "UNKNOWN"
    return "ok" if row.agrees else "DISAGREES"


def render(model, totals_only=False):
    """The table and totals for ``model`` as text, and the exit status (0 all agree, else 1)."""
    from keras_notes import params

    rows = params.explain(model)
    table = [[row.name, row.type, str(row.output_shape), row.formula,
              "?" if row.count is None else row.count,
              "?" if row.count is None else row.trainable_count,
              "-" if row.keras_count is None else row.keras_count, _check(row)]
             for row in rows]
    total, trainable, non_trainable = params.totals(rows)
    keras_total, keras_trainable, keras_non_trainable = params.keras_counts(model)
    lines = [] if totals_only else [format_table(HEADERS, table, align="llllrrrl"), ""]
    lines += [f"model {model.name}: {len(rows)} layers",
              f"formulas: {format_value(total)} parameters (trainable {format_value(trainable)}, "
              f"non-trainable {format_value(non_trainable)})",
              f"keras:    {format_value(keras_total)} parameters (trainable {format_value(keras_trainable)}, "
              f"non-trainable {format_value(keras_non_trainable)})"]
    unknown = [row.name for row in rows if not row.known]
    disagree = [row.name for row in rows if row.known and not row.agrees]
    if unknown:
        lines.append(f"{len(unknown)} layer(s) with no formula: {', '.join(unknown)}")
    if disagree:
        lines.append(f"{len(disagree)} layer(s) where the formula disagrees with Keras: "
                     f"{', '.join(disagree)}")
    totals_differ = (total, trainable, non_trainable) != (keras_total, keras_trainable,
                                                          keras_non_trainable)
    if totals_differ and not (unknown or disagree):
        lines.append("the totals differ from Keras although every layer agrees (shared weights?)")
    ok = not (unknown or disagree or totals_differ)
    if ok:
        lines.append("every layer's formula agrees with Keras")
    return "\n".join(lines), 0 if ok else 1


@user_errors_exit_2
def main(argv=None):
    args = parse_args(argv)
    model = build_model(args.name, include_top=not args.no_top, image_size=args.image_size)
    text, status = render(model, totals_only=args.totals_only)
    print(text)
    return status

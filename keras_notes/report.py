"""Plain-text tables and PNG figures, shared by every command that prints or plots."""

import os

from keras_notes.atomic import atomic_path


def format_table(headers, rows, align=None):
    """Return ``rows`` under ``headers`` as a fixed-width text table.

    ``align`` is a string with one character per column, ``"l"`` or ``"r"``; by
    default numbers (int/float) are right-aligned and everything else left-aligned.
    Floats are printed with ``format_value``.
    """
    cells = [[format_value(value) for value in row] for row in rows]
    if align is None:
        first = rows[0] if rows else [""] * len(headers)
        align = "".join("r" if isinstance(value, (int, float)) else "l" for value in first)
    if len(align) != len(headers):
        raise ValueError(f"align needs one character per column ({len(headers)}); received align={align!r}")
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.rjust(w) if a == "r" else v.ljust(w)
                         for v, w, a in zip(values, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line([str(h) for h in headers]), rule] + [line(row) for row in cells])


def format_value(value):
    """Integers with thousands separators, floats to 4 significant digits, rest as str."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def new_figure(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(figure, path):
    """Write ``figure`` to ``path`` as PNG (written to a temporary name, then renamed) and close it."""
    import matplotlib.pyplot as plt

    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    try:
        figure.tight_layout()
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=120)
    finally:
        plt.close(figure)
    return path

"""The bias as a threshold: ReLU neurons built from Keras Dense layers with hand-set weights.

    python scripts/bias.py [--biases=-5,-2,0,1,3] [--output runs/plots/bias.png]
"""

import argparse

from keras_notes.cli._common import comma_separated, user_errors_exit_2
from keras_notes.report import format_table, new_figure, save_figure

DEFAULT_OUTPUT = "runs/plots/bias.png"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="keras-notes-bias", description=__doc__.splitlines()[0])
    parser.add_argument("--biases", type=comma_separated(float), default=(-5.0, -2.0, 0.0, 1.0, 3.0),
                        help="comma-separated biases to plot, written --biases=-5,0,1 (default -5,-2,0,1,3)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="PNG path for the activation curves")
    return parser.parse_args(argv)


@user_errors_exit_2
def main(argv=None):
    from keras_notes.experiments.bias import (NOTES_INPUTS, NOTES_WEIGHTS, activation_curves, notes_example,
                                              threshold_rows)

    args = parse_args(argv)
    print(f"The notes' neuron: inputs {NOTES_INPUTS}, weights {NOTES_WEIGHTS}")
    rows = [(f"{b:+g}", f"{s:.2f}", f"{z:.2f}", f"{out:.4f}", "yes" if out > 0 else "no")
            for b, s, z, out in notes_example()]
    print(format_table(["bias", "w.x", "w.x + b", "relu (Keras Dense)", "fires"], rows, align="rrrrl"))

    print("\n'Fire only above 5': Dense(1, relu), kernel 1, bias -5")
    rows = [(f"{x:g}", f"{y:g}", f"{max(0.0, x - 5.0):g}", "yes" if fires else "no")
            for x, y, fires in threshold_rows()]
    print(format_table(["x", "Keras output", "max(0, x - 5)", "fires"], rows, align="rrrl"))
    print("It fires above 5, but its output there is x - 5, not x; with a kernel w the switch-on "
          "point is x = -b/w, so the bias is the threshold only when w = 1.")

    inputs, curves = activation_curves(biases=args.biases)
    figure, axis = new_figure(figsize=(6.4, 4.4))
    for bias, outputs in curves.items():
        line, = axis.plot(inputs, outputs, label=f"b = {bias:+g} (fires for x > {0.0 - bias:g})")
        axis.axvline(-bias, color=line.get_color(), linestyle=":", linewidth=1)
    axis.set_xlabel("input x (kernel w = 1)")
    axis.set_ylabel("relu(w*x + b), from keras.layers.Dense")
    axis.set_title("The bias moves where a ReLU neuron switches on")
    axis.grid(True, alpha=0.3)
    axis.legend()
    print(f"\nplot: {save_figure(figure, args.output)}")
    return 0

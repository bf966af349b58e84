"""Per-layer gradient norms of a deep dense network for several initializers and activations.

    python scripts/gradients.py [--seed 0] [--depth 20] [--width 64] [--output runs/plots/gradients.png]
"""

from keras_notes.cli._common import config_from_args, experiment_parser, user_errors_exit_2
from keras_notes.report import format_table, new_figure, save_figure

DEFAULT_OUTPUT = "runs/plots/gradients.png"


def parse_args(argv=None):
    from keras_notes.experiments.gradients import GradientConfig

    parser = experiment_parser("keras-notes-gradients", __doc__, GradientConfig,
                               DEFAULT_OUTPUT, "PNG path for the per-layer plot")
    return parser.parse_args(argv)


def plot(results, config, path):
    from matplotlib.ticker import MaxNLocator

    from keras_notes.experiments.gradients import ACTIVATIONS

    figure, axes = new_figure(1, len(ACTIVATIONS), figsize=(15, 4.6))
    layers = range(1, config.depth + 1)
    for axis, activation in zip(axes, ACTIVATIONS):
        for result in (r for r in results if r["activation"] == activation):
            axis.plot(layers, result["norms"], "o-", markersize=3, label=result["initializer"])
        axis.set_yscale("log")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{activation}, {config.depth} Dense layers of {config.width}")
        axis.set_xlabel("layer (1 = next to the input)")
        axis.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("||dL/d kernel|| (log scale)")
    # One legend outside the last panel: the colours mean the same initializer in every panel.
    axes[-1].legend(title="kernel initializer", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle("Vanishing and exploding gradients: gradient norm per layer, one batch, float64")
    return save_figure(figure, path)


@user_errors_exit_2
def main(argv=None):
    from keras_notes.experiments.gradients import GradientConfig, gradient_study, initializer_variances

    args = parse_args(argv)
    config = config_from_args(GradientConfig, args)
    results = gradient_study(config)
    rows = [(r["activation"], r["initializer"], f"{r['norms'][0]:.1e}", f"{r['norms'][-1]:.1e}",
             f"{r['ratio']:.1e}", f"{r['median']:.1e}", r["verdict"]) for r in results]
    print(format_table(["activation", "initializer", "|g| layer 1", f"|g| layer {config.depth}",
                        "first/last", "median |g|", "what happens"], rows, align="llrrrrl"))
    print("\nThe notes say early-layer *weights* become small; what vanishes or explodes is the gradient "
          "with respect to them. With ReLU (which is scale-free) a bad init scales every layer's gradient "
          "alike, so look at the median as well as the first/last ratio.")

    fan_in, fan_out = 256, 64
    rows = [(name, f"{var:.3g}", f"{a:.3g}", f"{b:.3g}", f"{c:.3g}", closest)
            for name, var, a, b, c, closest in initializer_variances(fan_in, fan_out, seed=args.seed)]
    print(f"\nEmpirical kernel variance, fan_in={fan_in}, fan_out={fan_out} (the notes' 'var = 1/n' is "
          "LeCun; Keras's Xavier/Glorot is 2/(fan_in+fan_out)):")
    print(format_table(["initializer", "variance", "1/fan_in", "2/(fan_in+fan_out)", "2/fan_in", "closest"],
                       rows, align="lrrrrl"))
    print(f"\nplot: {plot(results, config, args.output)}")
    return 0

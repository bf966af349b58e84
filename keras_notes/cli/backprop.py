"""Check a hand-written NumPy backward pass against TensorFlow, and train with both.

    python scripts/backprop.py [--seed 0] [--steps 25] [--learning-rate 0.5] [--output runs/plots/backprop.png]
"""

from keras_notes.cli._common import config_from_args, experiment_parser, user_errors_exit_2
from keras_notes.report import format_table, new_figure, save_figure

DEFAULT_OUTPUT = "runs/plots/backprop.png"


def parse_args(argv=None):
    from keras_notes.experiments.backprop import BackpropConfig

    parser = experiment_parser("keras-notes-backprop", __doc__, BackpropConfig,
                               DEFAULT_OUTPUT, "PNG path for the loss curves")
    return parser.parse_args(argv)


@user_errors_exit_2
def main(argv=None):
    from keras_notes.experiments.backprop import BackpropConfig, compare_gradients, training_curves

    args = parse_args(argv)
    config = config_from_args(BackpropConfig, args)
    result = compare_gradients(config)
    headers = ["gradient of the loss w.r.t.", "shape", "|g| NumPy", "|g| TF", "max |diff|", "trainable"]
    rows = [(name, "x".join(map(str, shape)), n_np, n_tf, f"{diff:.1e}", "yes" if trainable else "no")
            for name, shape, n_np, n_tf, diff, trainable in result["rows"]]
    print(format_table(headers, rows, align="llrrrl"))
    print(f"\nloss: NumPy {result['loss_numpy']:.12f}  tf.GradientTape {result['loss_tf']:.12f}")
    print(f"one SGD step (lr={config.learning_rate}): max |NumPy - keras.optimizers.SGD| "
          f"over all weights = {result['sgd_max_abs_diff']:.1e}")
    print(f"The inputs get a gradient too (|dL/dx| above), but they are data, not one of the "
          f"model's {result['trainable_count']} trainable variables, so nothing updates them.")

    numpy_losses, keras_losses = training_curves(config)
    gap = float(abs(numpy_losses - keras_losses).max())
    print(f"\n{config.steps} full-batch SGD steps: loss {numpy_losses[0]:.4f} -> {numpy_losses[-1]:.4f} (NumPy), "
          f"{keras_losses[0]:.4f} -> {keras_losses[-1]:.4f} (model.fit); max |diff| {gap:.1e} "
          f"(fit logs the loss through a float32 metric)")

    figure, axis = new_figure(figsize=(6.4, 4.2))
    steps = range(config.steps)
    axis.plot(steps, numpy_losses, "o-", label="NumPy forward/backward + SGD", markersize=6, alpha=0.6)
    axis.plot(steps, keras_losses, "x--", color="black", label="Keras model.fit, SGD", markersize=6)
    axis.set_xlabel("SGD step (full batch)")
    axis.set_ylabel("cross-entropy loss before the step")
    axis.set_yscale("log")
    axis.set_title(f"NumPy backprop vs Keras, same weights and data\n(max |loss difference| {gap:.0e})")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    print(f"plot: {save_figure(figure, args.output)}")
    return 0

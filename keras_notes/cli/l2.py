"""Train the notes' In[10] model with several L2 strengths: weight norm and losses.

    python scripts/l2.py [--seed 0] [--epochs 100] [--strengths 0,0.001,0.01,0.1] [--output runs/plots/l2.png]
"""

from keras_notes.cli._common import config_from_args, experiment_parser, user_errors_exit_2
from keras_notes.report import format_table, new_figure, save_figure

DEFAULT_OUTPUT = "runs/plots/l2.png"


def parse_args(argv=None):
    from keras_notes.experiments.l2 import STRENGTHS, L2Config

    parser = experiment_parser("keras-notes-l2", __doc__, L2Config,
                               DEFAULT_OUTPUT, "PNG path for the weight-norm curves",
                               lists=[("--strengths", float, STRENGTHS, "comma-separated L2 factors")])
    return parser.parse_args(argv)


@user_errors_exit_2
def main(argv=None):
    from matplotlib.ticker import FuncFormatter

    from keras_notes.experiments.l2 import L2Config, l2_sweep

    args = parse_args(argv)
    config = config_from_args(L2Config, args)
    results = l2_sweep(args.strengths, config)
    rows = [(f"{r['l2']:g}", f"{r['weight_norm']:.3f}", f"{r['penalty']:.4f}", f"{r['train_loss']:.4f}",
             f"{r['val_loss']:.4f}") for r in results]
    print(f"In[10] model, {config.train_samples} training samples ({config.label_noise:.0%} labels flipped), "
          f"{config.val_samples} validation samples, {config.epochs} epochs, Adam lr={config.learning_rate}")
    print(format_table(["L2", "||kernel|| of Dense(32)", "penalty sum(model.losses)", "train loss", "val loss"],
                       rows, align="rrrrr"))
    print("Losses are binary cross-entropy without the penalty. L2 shrinks the regularized kernel; whether "
          "validation loss improves depends on how much the unregularized model overfits.")

    figure, axis = new_figure(figsize=(6.4, 4.4))
    for result in results:
        axis.plot(result["weight_norms"], label=f"L2 = {result['l2']:g} (val loss {result['val_loss']:.3f})")
    axis.set_yscale("log")
    # 0.5, 1, 2 rather than 5x10^-1 ...; minor ticks labelled only at 2x and 5x so they do not crowd.
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))
    axis.set_xlabel("epoch")
    axis.set_ylabel("Frobenius norm of the Dense(32) kernel (log scale)")
    axis.set_title("L2 regularization pulls the regularized kernel toward zero")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    print(f"\nplot: {save_figure(figure, args.output)}")
    return 0

"""Throughput and final loss per batch size, at a fixed epoch budget and learning rate.

    python scripts/batch_size.py [--seed 0] [--epochs 5] [--batch-sizes 1,4,16,64,256]
                                 [--output runs/plots/batch_size.png]
"""

from keras_notes.cli._common import config_from_args, experiment_parser, user_errors_exit_2
from keras_notes.report import format_table, new_figure, save_figure

DEFAULT_OUTPUT = "runs/plots/batch_size.png"


def parse_args(argv=None):
    from keras_notes.experiments.batch_size import BATCH_SIZES, BatchSizeConfig

    parser = experiment_parser("keras-notes-batch-size", __doc__, BatchSizeConfig,
                               DEFAULT_OUTPUT, "PNG path for the two plots",
                               lists=[("--batch-sizes", int, BATCH_SIZES, "comma-separated batch sizes")])
    return parser.parse_args(argv)


def plot(rows, config, path):
    from matplotlib.ticker import FuncFormatter, NullLocator

    plain = FuncFormatter(lambda value, _: f"{value:,.0f}")  # 1,000 rather than 10^3
    sizes = [r["batch_size"] for r in rows]
    figure, (left, right) = new_figure(1, 2, figsize=(11, 4.4))
    left.plot(sizes, [r["samples_per_second"] for r in rows], "o-")
    left.set_yscale("log")
    left.yaxis.set_major_formatter(plain)
    # Label the 2x and 5x minor ticks too, so that a range under a decade still has numbers.
    left.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if f"{v:.0e}"[0] in "25" else ""))
    left.set_ylabel("training samples / second (log scale)")
    left.set_title("Throughput: bigger batches spread each step's overhead")

    right.plot(sizes, [r["train_loss"] for r in rows], "o-", label="training loss")
    right.plot(sizes, [r["val_loss"] for r in rows], "s--", label="validation loss")
    for r in rows:
        right.annotate(f"{r['updates']:,} updates", (r["batch_size"], r["val_loss"]), textcoords="offset points",
                       xytext=(0, 8), ha="center", fontsize=8)
    right.margins(x=0.12, y=0.1)  # room for the annotations at both ends
    right.set_ylabel(f"cross-entropy after {config.epochs} epochs")
    right.set_title(f"Same {config.epochs} epochs, same SGD lr={config.learning_rate}: fewer updates, higher loss",
                    fontsize=10)
    right.legend()
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(size) for size in sizes])  # the batch sizes themselves, not 2^k
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel("batch size (log scale)")
        axis.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path)


@user_errors_exit_2
def main(argv=None):
    from keras_notes.experiments.batch_size import BatchSizeConfig, batch_size_sweep, build_model

    args = parse_args(argv)
    config = config_from_args(BatchSizeConfig, args)
    rows = batch_size_sweep(args.batch_sizes, config)
    print(f"In[7]-shaped model ({build_model().count_params():,} parameters), {config.samples} training samples, {config.epochs} epochs, "
          f"SGD lr={config.learning_rate} for every batch size")
    print(format_table(["batch size", "updates", "samples/s (best step)", "train loss", "val loss", "val accuracy"],
                       [(r["batch_size"], r["updates"], round(r["samples_per_second"]), f"{r['train_loss']:.4f}",
                         f"{r['val_loss']:.4f}", f"{r['val_accuracy']:.3f}") for r in rows], align="rrrrrr"))
    print("\nWith a fixed epoch budget and the same learning rate, a batch of B makes samples/B updates per epoch.")
    fastest = max(rows, key=lambda r: r["samples_per_second"])
    slowest = min(rows, key=lambda r: r["samples_per_second"])
    if len(rows) > 1:
        speedup = fastest["samples_per_second"] / slowest["samples_per_second"]
        print(f"Batch {fastest['batch_size']} processes {speedup:.0f}x as many samples per second as batch "
              f"{slowest['batch_size']}.")
    best, largest = min(rows, key=lambda r: r["val_loss"]), max(rows, key=lambda r: r["batch_size"])
    if largest["val_loss"] > best["val_loss"]:
        print(f"The lowest validation loss comes from batch {best['batch_size']} ({best['updates']:,} updates); "
              f"batch {largest['batch_size']} ends higher after only {largest['updates']:,} updates: fewer steps, "
              "not large batches as such. Give a large batch as many updates (e.g. --batch-sizes 64 --epochs 40) "
              "or a larger learning rate to see the gap narrow.")
    print(f"\nplot: {plot(rows, config, args.output)}")
    return 0

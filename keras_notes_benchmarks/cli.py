"""Time the keras.io fine-tuning recipe against the package's path, side by side.

    keras-notes-benchmark --images 512 --image-size 224 --epochs 10 --repeats 3
    keras-notes-benchmark --mode phase2 --images 512 --epochs 1 --fine-tune-epochs 5
    keras-notes-benchmark --mode augment --images 512 --epochs 3
    keras-notes-benchmark --growth 256,1024,4096
    keras-notes-benchmark --cpu-choices --repeats 2
    keras-notes-benchmark --accuracy-seeds 40
    keras-notes-benchmark --mode photos --images 256
    keras-notes-benchmark --mode sweep --images 1000 --trials 20 --epochs 10 --reference-epochs 3
    keras-notes-benchmark --decode-scale --images 256
    keras-notes-benchmark --frozen-pass --images 256 --repeats 5

Generates the images (or takes ``--data-dir``), warms up, then runs the two arms
alternately, each in its own process, and prints the median time, images per second,
peak resident memory and final validation accuracy of each, and their ratio.
``--growth`` instead runs the package alone on generated folders of each size.
"""

from keras_notes.cli._common import comma_separated, config_from_args, config_parser, user_errors_exit_2
from keras_notes_benchmarks import accuracy_seeds, cpu_choices, decode_scale, frozen_pass, growth, race
from keras_notes_benchmarks.config import BenchmarkConfig


def build_parser():
    parser = config_parser("keras-notes-benchmark", __doc__, BenchmarkConfig)
    parser.add_argument("--growth", type=comma_separated(int), default=None, metavar="N,N,...",
                        help="run only the package on generated folders of these sizes, and print how time and "
                             "peak memory grow")
    parser.add_argument("--accuracy-seeds", type=int, default=None, metavar="N",
                        help="instead, train the phase 1 head on kept features for seeds 0..N-1, split as the "
                             "package and as keras.io split, and print the spread of validation accuracy")
    parser.add_argument("--cpu-choices", action="store_true",
                        help="instead, measure training images/s for float32 against mixed_bfloat16 and for "
                             "TensorFlow's inter-/intra-op thread settings, each in its own process")
    parser.add_argument("--decode-scale", action="store_true",
                        help="instead, compare decoding the photo folder (--mode photos') at reduced DCT scale "
                             "with decoding it whole: time, pixels, and a trained model's predictions")
    parser.add_argument("--frozen-pass", action="store_true",
                        help="instead, time the frozen base's pass on --images in-memory images for batch sizes "
                             "32-256, in TensorFlow and, when installed, onnxruntime")
    return parser


def parse_args(argv=None):
    """The command line as ``(BenchmarkConfig, growth sizes or None, cpu_choices, accuracy seeds or None,
    decode_scale, frozen_pass)``."""
    args = build_parser().parse_args(argv)
    sizes, seeds = args.growth, args.accuracy_seeds
    if seeds is not None and seeds < 2:
        raise ValueError(f"--accuracy-seeds needs at least 2 seeds; received --accuracy-seeds={seeds!r}")
    if sizes is not None and (not sizes or min(sizes) < 2):
        raise ValueError(f"--growth takes image counts of at least 2; received --growth={sizes!r}")
    return config_from_args(BenchmarkConfig, args), sizes, args.cpu_choices, seeds, args.decode_scale, args.frozen_pass


@user_errors_exit_2
def main(argv=None):
    config, growth_sizes, run_cpu_choices, seeds, run_decode_scale, run_frozen_pass = parse_args(argv)
    if run_decode_scale:
        print(f"decode scale: {config.images} photos of {config.photo_width}x{config.photo_height} px (or --data-dir) "
              f"to {config.image_size} px, whole against reduced DCT scale", flush=True)
        result = decode_scale.measure_decode_scale(config)
        print(decode_scale.format_decode_scale(result, config.image_size))
        return 0
    if run_frozen_pass:
        print(f"frozen pass: {config.arch} at {config.image_size} px on {config.images} in-memory images, median of "
              f"{config.repeats} alternating runs of each setting", flush=True)
        print(frozen_pass.format_frozen_pass(frozen_pass.measure_frozen_pass(config)))
        return 0
    if seeds:
        print(f"accuracy spread: {config.arch} at {config.image_size} px, {config.epochs} head epochs, "
              f"{config.images} generated images, seeds 0-{seeds - 1}", flush=True)
        print(accuracy_seeds.format_accuracy_spread(accuracy_seeds.accuracy_spread(config, range(seeds))))
        return 0
    if run_cpu_choices:
        print(f"CPU choices: {config.arch} at {config.image_size} px, batch {config.batch_size}, median of "
              f"{config.repeats} runs of each setting", flush=True)
        print(cpu_choices.format_cpu_choices(cpu_choices.run_cpu_choices(config)))
        return 0
    if growth_sizes:
        print(f"growth: package on {config.arch} at {config.image_size} px, {config.epochs} epochs, batch "
              f"{config.batch_size}, generated folders of {', '.join(map(str, growth_sizes))} images", flush=True)
        print(growth.format_growth(growth.run_growth(config, growth_sizes)))
        return 0
    print(race.headline(config), flush=True)
    print(race.format_summary(race.run_benchmark(config), config.mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

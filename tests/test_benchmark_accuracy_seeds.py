"""``--accuracy-seeds``: the head trained on kept features, split as the package and as keras.io split."""

from keras_notes_benchmarks import accuracy_seeds
from keras_notes_benchmarks.config import BenchmarkConfig


def test_accuracy_spread_trains_both_splits_per_seed_and_summarises_them():
    config = BenchmarkConfig(images=24, classes=2, image_size=32, epochs=2, batch_size=4)
    results = accuracy_seeds.accuracy_spread(config, range(2))
    assert {name: len(values) for name, values in results.items()} == {"package": 2, "keras.io": 2}
    assert all(0.0 <= value <= 1.0 for values in results.values() for value in values)
    summary = accuracy_seeds.format_accuracy_spread({"package": [0.5, 0.7], "keras.io": [0.6, 1.0]})
    # means 0.6 and 0.8; variances 0.02 and 0.08: standard error sqrt(0.02/2 + 0.08/2) = 0.224
    assert "+0.200, standard error 0.224" in summary

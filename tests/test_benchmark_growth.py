"""``--growth``: the package alone, once per folder size."""

import pytest

from keras_notes_benchmarks import growth
from keras_notes_benchmarks.config import BenchmarkConfig


@pytest.mark.slow
def test_growth_runs_the_package_once_per_size(capsys):
    config = BenchmarkConfig(classes=2, image_size=32, epochs=1, batch_size=4)
    results = growth.run_growth(config, (12, 24))
    assert [(result["images"], result["arm"]) for result in results] == [(12, "package"), (24, "package")]
    assert [result["train_images"] for result in results] == [10, 20]  # 20% of each class held out, rounded
    table = growth.format_growth(results)
    assert table.splitlines()[0].split()[:2] == ["images", "wall"]
    assert f"{results[1]['peak_rss_mib'] / results[0]['peak_rss_mib']:.2f}" in table

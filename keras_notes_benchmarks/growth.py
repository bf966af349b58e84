"""``--growth``: the package alone on generated folders of each size; how time and peak memory grow."""

import dataclasses
import os
import tempfile

from keras_notes_benchmarks.common import prepare
from keras_notes_benchmarks.race import run_arm


def run_growth(config, sizes, say=print):
    """The package arm alone on generated folders of each size in ``sizes``; -> one result dict per size."""
    results = []
    with tempfile.TemporaryDirectory(prefix="keras-notes-growth-") as scratch:
        for images in sizes:
            folder = os.path.join(scratch, f"images-{images}")
            sized = dataclasses.replace(config, images=images, data_dir=None)
            result = run_arm("package", prepare(sized, folder), os.path.join(folder, "run"))
            result["images"] = images
            say(f"  {images:6d} images: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
            results.append(result)
    return results


def format_growth(results):
    """The growth table: wall time, time per image and peak memory against the number of images."""
    from keras_notes.report import format_table

    smallest = results[0]
    rows = [[result["images"], f"{result['seconds']:.1f}", f"{1000 * result['seconds'] / result['images']:.1f}",
             f"{result['peak_rss_mib']:.0f}", f"{result['peak_rss_mib'] / smallest['peak_rss_mib']:.2f}"]
            for result in results]
    return format_table(["images", "wall s", "ms / image", "peak RSS MiB", f"RSS / RSS at {smallest['images']}"],
                        rows, align="rrrrr")

"""Regenerate ``data/digits/``: scikit-learn's bundled handwritten digits as PNG files.

The 1,797 images (8x8, 17 grey levels, 10 classes) are the test set of the UCI
"Optical Recognition of Handwritten Digits" data. Each is scaled to 0-255 and
enlarged to 32x32 with bicubic interpolation, then written as a greyscale PNG to
``digits/<label>/<label>_<index>.png``. Run: ``python data/make_digits.py``.

scikit-learn is needed only here, never by the package at run time.
"""

import argparse
import pathlib

import numpy as np
from PIL import Image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parent / "digits")
    parser.add_argument("--size", type=int, default=32, help="side of the written PNGs, in pixels")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits  # only for regenerating the sample

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        pixels = np.round(image / 16.0 * 255.0).astype(np.uint8)  # 0..16 -> 0..255
        picture = Image.fromarray(pixels, mode="L").resize((args.size, args.size), Image.BICUBIC)
        folder = args.output / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{label}_{index:04d}.png", optimize=True)
    print(f"wrote {len(digits.images)} images in {len(set(digits.target))} classes to {args.output}")


if __name__ == "__main__":
    main()

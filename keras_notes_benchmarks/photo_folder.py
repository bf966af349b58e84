"""A generated folder of large, photo-like JPEGs, about a third stored sideways with an EXIF tag.

The images stand in for phone photos: 4032 x 3024 px at JPEG quality 90, 2.39 MB each
on average. Each is a smooth colour field (a 6 x 8
grid of random colours, bicubically upsampled, one channel brighter by class) plus
luminance detail at four scales and pixel noise, shifted differently per image, so
the entropy-coded data that decoding time depends on is photo-like, not flat.
Every third image is stored sideways, as a phone stores a portrait or upside-down shot:
its upright picture turned by the inverse of the tag, tags 6, 8 and 3 in turn. So the
pixel stream of every file is 4032 x 3024, and a file tagged 6 or 8 shows a
3024 x 4032 portrait.

The folder is written once under a cache folder named by its parameters and reused;
``params.json`` is written last, so an interrupted generation is redone.
"""

import json
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

FORMAT_VERSION = 1  # bump when the pictures change, so that old cached folders are not reused
SIDEWAYS_TAGS = (6, 8, 3)  # portrait turned clockwise, counter-clockwise, and upside down
_TEXTURE = {}


def _octave(rng, grid, size, amplitude):
    """Gaussian noise on a ``grid`` = (rows, columns) lattice, bicubically upsampled to ``size`` = (w, h)."""
    from PIL import Image

    values = rng.normal(0, amplitude, grid).astype(np.float32)
    return np.asarray(Image.fromarray(values, "F").resize(size, Image.BICUBIC))


def _texture(width, height, seed):
    """Shared luminance detail, (height, width) float32: four octaves (amplitude halving as the
    scale quarters) plus pixel noise of standard deviation 3.5 (that sets the file size)."""
    key = (width, height, seed)
    if key not in _TEXTURE:
        rng = np.random.default_rng(seed)
        detail = sum(_octave(rng, (3 * 4 ** k, 4 * 4 ** k), (width, height), 40 / 2 ** k) for k in range(1, 5))
        _TEXTURE.clear()
        _TEXTURE[key] = detail + rng.normal(0, 3.5, (height, width)).astype(np.float32)
    return _TEXTURE[key]


def upright_photo(index, label, width, height, seed=0):
    """Picture ``index`` as displayed: ``(height, width, 3)`` uint8 (pass width < height for a portrait)."""
    from PIL import Image

    rng = np.random.default_rng((seed, index))
    landscape = (max(width, height), min(width, height))
    texture = _texture(*landscape, seed)
    texture = texture if width >= height else texture.T  # (height, width)
    colour = rng.uniform(60, 190, (6, 8, 3)).astype(np.float32)
    colour[..., label % 3] += 50
    field = Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    detail = np.roll(texture, (rng.integers(height), rng.integers(width)), (0, 1))
    return np.clip(np.asarray(field, np.float32) + detail[..., None], 0, 255).astype(np.uint8)


def stored_pixels(upright, orientation):
    """The pixels a camera stores for ``upright`` with EXIF ``orientation`` (1, 3, 6 or 8)."""
    return {1: upright, 3: upright[::-1, ::-1], 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]


def _write(job):
    from PIL import Image

    path, index, label, orientation, width, height, quality, seed = job
    turned = orientation in (6, 8)
    upright = upright_photo(index, label, height if turned else width, width if turned else height, seed)
    image = Image.fromarray(np.ascontiguousarray(stored_pixels(upright, orientation)))
    options = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    image.save(path, quality=quality, **options)
    return os.path.getsize(path)


def default_cache():
    """Where generated photo folders are kept: ``$XDG_CACHE_HOME/keras-notes`` (``~/.cache/keras-notes``)."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "keras-notes")


def photo_folder(cache, images=256, classes=2, width=4032, height=3024, quality=90, seed=0, workers=2, say=print):
    """The folder of ``images`` photos in ``classes`` class folders under ``cache``; generated if missing.

    -> the image folder's path. Every third image is stored sideways (``SIDEWAYS_TAGS`` in turn).
    Generation runs on ``workers`` processes: 256 photos of 4032 x 3024 px took 15 minutes on
    2 busy cores.
    """
    params = {"version": FORMAT_VERSION, "images": images, "classes": classes, "width": width, "height": height,
              "quality": quality, "seed": seed}
    root = os.path.join(os.fspath(cache), f"photos-{images}x{width}x{height}-q{quality}-c{classes}-s{seed}")
    marker = os.path.join(root, "params.json")
    folder = os.path.join(root, "images")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as file:
            if json.load(file) == params:
                return folder
    jobs = []
    for index in range(images):
        label = index % classes
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
        orientation = SIDEWAYS_TAGS[(index // 3) % 3] if index % 3 == 2 else 1
        jobs.append((os.path.join(folder, f"class_{label}", f"{index:04d}.jpg"), index, label, orientation,
                     width, height, quality, seed))
    say(f"generating {images} photos of {width}x{height} px (quality {quality}) in {folder} ...")
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(_write, jobs, chunksize=4))
    say(f"  done: {sum(sizes) / 2 ** 20:.0f} MiB, {sum(sizes) / len(sizes) / 1e6:.2f} MB a photo")
    with open(marker, "w", encoding="utf-8") as file:
        json.dump(params, file)
    return folder

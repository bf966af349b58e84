"""EXIF orientation: read the tag when a file is checked, turn the pixels when it is decoded.

A phone photo taken in portrait is usually stored as landscape pixels plus an EXIF
``Orientation`` tag saying how to turn them for display. ``tf.io.decode_jpeg`` and
``keras.utils.image_dataset_from_directory`` ignore the tag; Pillow's
``ImageOps.exif_transpose`` applies it. Here the tag is read once per file at scan
time from the header Pillow has already parsed (``Image.getexif`` decodes no pixels),
kept in the file list, and applied in TensorFlow after decoding (``orient``), so a
file without a tag, or with tag 1, costs nothing more than before.

The eight values and the turn that shows the image upright, as ``exif_transpose``
does it (``Image.Transpose`` names; rot90 is counter-clockwise):

    1  as stored                 5  TRANSPOSE   (swap rows and columns)
    2  FLIP_LEFT_RIGHT           6  ROTATE_270  (90 degrees clockwise)
    3  ROTATE_180                7  TRANSVERSE  (TRANSPOSE, then ROTATE_180)
    4  FLIP_TOP_BOTTOM           8  ROTATE_90   (90 degrees counter-clockwise)

TIFF is the exception: Pillow's TIFF decoder applies the file's orientation tag when it
loads the pixels, so a TIFF arrives upright (with or without ``ignore_exif``) and is not
turned again.

A damaged EXIF block does not cost the image: the tag is ignored (treated as 1) and a
note says so. Pillow reads some damaged blocks silently (a bad byte-order mark gives
an empty tag set) or salvages part of one with a warning; both count as damaged here,
so an image is only turned on a tag from a block that read cleanly.
"""

import warnings

ORIENTATION_TAG = 0x0112  # 274, in IFD0 (TIFF/EXIF)
UPRIGHT = 1
ORIENTATIONS = range(1, 9)


def read_orientation(image):
    """``(orientation, note)`` of an opened Pillow image: 1-8, and None or why the tag was ignored.

    Uses only what ``Image.open`` read from the header (JPEG APP1, PNG eXIf before the
    pixel data, WebP EXIF, TIFF tags, and the XMP ``tiff:Orientation`` that Pillow falls
    back on); no pixel is decoded. That is the base class's ``getexif``: PNG's own
    decodes the whole image to look for an eXIf chunk after the pixels.
    """
    from PIL import Image

    if image.format == "TIFF":
        return UPRIGHT, None  # Pillow's TIFF decoder turns the pixels by the tag itself
    raw = image.info.get("exif")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exif = Image.Image.getexif(image)
        except Exception as error:  # Pillow raises several types on a damaged block.
            return UPRIGHT, f"EXIF block unreadable ({type(error).__name__}); orientation ignored"
    damaged = [str(warning.message) for warning in caught if "exif" in str(warning.message).lower()]
    if damaged:
        return UPRIGHT, f"EXIF block damaged ({' '.join(damaged[0].split())[:60]}); orientation ignored"
    if raw and len(raw) > 6 and not len(exif):
        return UPRIGHT, "EXIF block unreadable (no tag could be read); orientation ignored"
    value = exif.get(ORIENTATION_TAG, UPRIGHT)
    if value not in ORIENTATIONS:
        return UPRIGHT, f"EXIF orientation {value!r} is not one of 1-8; ignored"
    return int(value), None


# Each orientation as (swap rows and columns, then reverse the rows, reverse the columns),
# indexed by the tag value; 0 stands for any value outside 1-8 and leaves the image as stored.
# 6, for instance: the transpose of a (h, w) image, its columns reversed, is the image
# turned a quarter clockwise.
_SWAP = (False, False, False, False, False, True, True, True, True)
_REVERSE_ROWS = (False, False, False, True, True, False, False, True, True)
_REVERSE_COLUMNS = (False, False, True, True, False, False, True, True, False)


def orient(image, orientation):
    """``(h, w, c)`` pixels as stored, with EXIF ``orientation`` -> as displayed; a tf.Tensor.

    Orientations 5-8 swap height and width. Any value outside 1-8 leaves the image as it is.
    Matches ``PIL.ImageOps.exif_transpose`` exactly (tests/test_exif.py). Built from one
    ``tf.cond`` and one ``tf.reverse`` rather than a nine-way ``tf.switch_case``, which
    cost 3-8 ms an image inside ``tf.data`` against 0.2-0.6 ms for the whole decode of a
    small JPEG.
    """
    import tensorflow as tf

    index = tf.cast(orientation, tf.int32)
    index = tf.where((index >= 1) & (index <= 8), index, 0)
    swap, rows, columns = (tf.gather(tf.constant(table), index) for table in (_SWAP, _REVERSE_ROWS, _REVERSE_COLUMNS))
    image = tf.cond(swap, lambda: tf.transpose(image, (1, 0, 2)), lambda: image)
    return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), tf.stack([rows, columns])))

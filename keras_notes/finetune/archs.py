"""The registry of fine-tunable bases: one entry per keras.applications architecture.

An entry names the keras.applications constructor and the preprocessing its
ImageNet weights were trained with. Adding an architecture takes one line in ``ARCHS``.

The preprocessing ``mode`` is the one ``keras.applications.imagenet_utils.preprocess_input``
understands, applied inside the model by ``ImagePreprocessing`` so that a saved model
takes raw 0-255 RGB images:

- ``"caffe"``: RGB -> BGR, then subtract the ImageNet channel means (VGG16, ResNet50);
- ``"tf"``: scale to [-1, 1] (MobileNet, MobileNetV2);
- ``"torch"``: scale to [0, 1], then normalise with the ImageNet mean and std;
- ``"none"``: the base does its own scaling (EfficientNet takes 0-255 as is).
"""

import dataclasses

MIN_IMAGE_SIZE = 32  # keras.applications refuses smaller inputs for these bases


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    constructor: str  # attribute of keras.applications, e.g. "MobileNet"
    preprocessing: str  # a mode of imagenet_utils.preprocess_input, or "none"
    default_image_size: int  # the size the ImageNet weights were trained at

    def base(self, weights=None, image_size=None, include_top=False):
        """The keras.applications model with ``include_top=include_top`` (``weights`` is passed as is)."""
        import keras

        size = self.default_image_size if image_size is None else image_size
        check_image_size(self.name, size)
        constructor = getattr(keras.applications, self.constructor)
        return constructor(weights=weights, include_top=include_top, input_shape=(size, size, 3))


ARCHS = {
    "vgg16": Arch("vgg16", "VGG16", "caffe", 224),
    "mobilenet": Arch("mobilenet", "MobileNet", "tf", 224),
    "mobilenet_v2": Arch("mobilenet_v2", "MobileNetV2", "tf", 224),
    "resnet50": Arch("resnet50", "ResNet50", "caffe", 224),
    "efficientnetb0": Arch("efficientnetb0", "EfficientNetB0", "none", 224),
}


def get_arch(name):
    """The registry entry for ``name``; ``ValueError`` naming the choices if there is none."""
    from keras_notes.errors import KerasNotesError

    try:
        return ARCHS[name]
    except KeyError:
        raise KerasNotesError(f"unknown arch {name!r}; choose from {sorted(ARCHS)}") from None


def check_image_size(arch_name, image_size):
    """Refuse an image size the keras.applications bases cannot take."""
    from keras_notes.errors import KerasNotesError

    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise KerasNotesError(
            f"image size must be an integer of at least {MIN_IMAGE_SIZE} pixels for {arch_name}; "
            f"received image_size={image_size!r}")

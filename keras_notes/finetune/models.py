"""Fine-tuning models: a keras.applications base, frozen, under a new classifier head.

``build_model`` is the package's general builder; the course's two fine-tuned
models live beside it (``course_vgg16``, ``course_mobilenet``). ``unfreeze`` opens
the top of a base for phase 2, and ``recalibrate_batch_norm`` re-estimates the
batch-norm statistics of a base trained from random weights.

A fact of Keras 3 that shapes this module: a nested model called with
``training=False`` inside a functional model does *not* stay in inference mode,
because ``fit`` calls the outer model with ``training=True`` and Keras passes that
on to every layer, overriding the ``False`` recorded at build time
(keras-team/keras#20285; ``keras.src.models.functional.operation_fn``). What keeps a
batch-norm layer in inference mode during ``fit`` is ``layer.trainable = False``:
a frozen base, or ``unfreeze``, which leaves batch norm frozen.
"""

import keras
import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.archs import get_arch
from keras_notes.layers import ImagePreprocessing
from keras_notes.finetune.weights import load_base, resolve_weights

BASE_LAYER_NAME = "base"  # the nested keras.applications model inside every build_model model
HIDDEN_LAYER_NAME = "hidden"  # the head's optional Dense(hidden_units, relu)

# Batch-norm momentum for a base trained from random weights. Keras's default, 0.99,
# leaves 0.99**steps of the initial moving variance (1.0) in the estimate: after the
# ~450 steps of 10 epochs on the digits that is 0.011, ten times the true variance of
# MobileNet's depthwise outputs (~1e-3), so inference-mode accuracy stayed at chance.
# 0.9 (PyTorch's default) forgets the initial value within ~100 steps (0.9**100 = 3e-5).
FROM_SCRATCH_BN_MOMENTUM = 0.9


def build_model(arch, num_classes, weights="imagenet", image_size=None, dropout=0.2, freeze_base=None,
                hidden_units=0):
    """A classifier that takes raw 0-255 RGB images: preprocessing -> base -> head.

    Layers, for MobileNet at 224 px and 10 classes::

        image          (batch, 224, 224, 3)   raw 0-255 RGB
        preprocessing  (batch, 224, 224, 3)   the arch's own preprocess_input, inside the model
        base           (batch, 7, 7, 1024)    keras.applications, include_top=False: 3,228,864
        pool           (batch, 1024)          global average pooling
        dropout        (batch, 1024)
        predictions    (batch, 10)            Dense(num_classes, softmax): 1024*10 + 10 = 10,250

    ``hidden_units=h`` (0: none) puts a ``Dense(h, relu)`` named ``hidden`` between the
    pooling and the dropout, so that dropout still acts on what the softmax layer reads::

        pool           (batch, 1024)
        hidden         (batch, h)             Dense(h, relu): 1024*h + h   (h=256: 262,400)
        dropout        (batch, h)
        predictions    (batch, 10)            h*10 + 10                    (h=256: 2,570)

    ``weights`` is ``"imagenet"``, ``None`` (or ``"none"``: random) or a path to a local
    weights file for the base (see ``keras_notes.finetune.weights``). ``freeze_base``
    defaults to ``True`` with pretrained weights and to ``False`` with random weights
    (a random base has nothing worth freezing).

    The base is called with ``training=False`` as the keras.io guide does, but under
    Keras 3 ``fit`` overrides that (see the module docstring): a frozen base stays in
    inference mode because it is frozen. A base trained from random weights therefore
    trains its batch-norm layers on batch statistics, and they get
    ``FROM_SCRATCH_BN_MOMENTUM`` so that their moving statistics, which inference uses,
    catch up with the weights within the run. A frozen base's own Dropout layers (only
    EfficientNet has them) get rate 0, so that the base is a fixed feature extractor.
    """
    spec = get_arch(arch)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise KerasNotesError(f"num_classes must be an integer of at least 2; received num_classes={num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise KerasNotesError(f"dropout must be in [0, 1); received dropout={dropout!r}")
    if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 0:
        raise KerasNotesError(f"hidden_units must be an integer of at least 0; received hidden_units={hidden_units!r}")
    weights = resolve_weights(arch, weights)
    size = spec.default_image_size if image_size is None else image_size
    if freeze_base is None:
        freeze_base = weights is not None

    base = load_base(arch, weights, image_size=size)
    base.name = BASE_LAYER_NAME
    base.trainable = not freeze_base
    if weights is None and not freeze_base:
        for layer in batch_norm_layers(base):
            layer.momentum = FROM_SCRATCH_BN_MOMENTUM
    if freeze_base:
        # Frozen batch norm runs in inference mode whatever fit passes, but Dropout does not
        # look at ``trainable``: EfficientNet's stochastic-depth Dropout layers would drop
        # whole blocks of a frozen base during fit. Rate 0 changes nothing at inference and
        # makes the frozen base compute in fit exactly what it computes at inference.
        for layer in base.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0

    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    x = base(x, training=False)  # (batch, h, w, c)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (batch, h, w, c) -> (batch, c)
    outputs = head(x, num_classes, dropout, hidden_units)
    return keras.Model(inputs, outputs, name=f"{arch}_finetune")


def head(features, num_classes, dropout=0.2, hidden_units=0, dropout_layer=None):
    """The new classifier head on pooled ``features`` (batch, c): [hidden ->] dropout -> predictions.

    ``build_model`` puts it on the base; ``finetune.sweep_tuner`` puts it on an ``Input`` of
    the pooled features' shape, so that a trial trains the layers a run would, with its own
    ``dropout_layer`` (named ``dropout``, in place of ``Dropout(dropout)``) whose rate a
    trial sets.
    """
    x = features
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="relu", name=HIDDEN_LAYER_NAME)(x)  # -> (batch, h)
    x = (dropout_layer or keras.layers.Dropout(dropout, name="dropout"))(x)
    # float32 output even under a mixed precision policy, so softmax and the loss stay stable.
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def course_vgg16(num_classes=2, weights="imagenet"):
    """The course's fine-tuned VGG16: ImageNet VGG16 with its top, the last Dense swapped.

    Built as the course built it: every layer of VGG16 but the final 1000-way Dense
    copied into a ``keras.Sequential``, all of them frozen, then ``Dense(num_classes,
    softmax)`` added. Inputs are 224x224 images already passed through
    ``keras.applications.vgg16.preprocess_input`` (the course did it in its data
    generator). ``weights`` as in ``build_model``; a local file must hold VGG16 *with*
    its top.

    Parameters, for 2 classes::

        VGG16 with top                      138,357,544
        - predictions  4096*1000 + 1000     - 4,097,000
        + predictions  4096*2 + 2           +     8,194
        total                               134,268,738   (the course's summary: 134,268,738)
        trainable: the new Dense only             8,194   (the course's summary: 8,194)
    """
    vgg16 = load_base("vgg16", weights, image_size=224, include_top=True)
    model = keras.Sequential(name="course_vgg16")
    for layer in vgg16.layers[:-1]:  # the InputLayer and every layer up to fc2 (4096)
        model.add(layer)
    for layer in model.layers:
        layer.trainable = False
    model.add(keras.layers.Dense(num_classes, activation="softmax", name="predictions"))
    return model


COURSE_MOBILENET_TRAINABLE_LAYERS = 23  # the course: for layer in model.layers[:-23]: trainable = False


def course_mobilenet(num_classes=10, weights="imagenet"):
    """The course's fine-tuned MobileNet: cut after global average pooling, Dense on top.

    The course (Keras 2 / early tf.keras) took ``mobile.layers[-6].output``, the
    ``global_average_pooling2d`` output of shape (batch, 1024), dropping
    reshape_1, dropout, conv_preds, reshape_2 and the softmax; added
    ``Dense(num_classes, softmax)``; and froze ``model.layers[:-23]``.

    What differs in Keras 3: MobileNet's pooling there is
    ``GlobalAveragePooling2D(keepdims=True)`` with output (batch, 1, 1, 1024) and no
    reshape_1 after it, so ``mobile.layers[-6]`` is now conv_pw_13_relu, and a Dense on
    the pooling layer would give (batch, 1, 1, num_classes). This builder therefore cuts
    at conv_pw_13_relu (batch, 7, 7, 1024) and applies a ``GlobalAveragePooling2D`` without
    keepdims under Keras's name -> (batch, 1024): the same arithmetic, no parameters,
    and the same number of layers as the course's graph, so the course's
    ``model.layers[:-23]`` freezes exactly the layers it froze. Inputs are 224x224
    images passed through ``keras.applications.mobilenet.preprocess_input``.

    Parameters, for 10 classes (BatchNorm: 4*c, of which 2*c are non-trainable)::

        MobileNet with top                   4,253,864
        - conv_preds  1024*1000 + 1000     - 1,025,000
        + dense       1024*10 + 10         +    10,250
        total                                3,239,114
        trainable, the last 23 layers:
          conv_pw_10_bn                            2*512 =     1,024
          block 11: 3*3*512 + 2*512 + 512*512 + 2*512    =   268,800
          block 12: 3*3*512 + 2*512 + 512*1024 + 2*1024  =   531,968
          block 13: 3*3*1024 + 2*1024 + 1024*1024 + 2*1024 = 1,061,888
          dense     1024*10 + 10                         =    10,250
                                                           1,873,930
        non-trainable: 3,239,114 - 1,873,930             = 1,365,184

    The 23 layers include 7 batch-norm layers, which the course's recipe trains on
    batch statistics (the keras.io guide would keep them frozen); kept as the course had it.
    """
    mobile = load_base("mobilenet", weights, image_size=224, include_top=True)
    features = mobile.get_layer("conv_pw_13_relu").output  # (batch, 7, 7, 1024)
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(features)  # -> (batch, 1024)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="dense")(x)
    model = keras.Model(inputs=mobile.input, outputs=outputs, name="course_mobilenet")
    for layer in model.layers[:-COURSE_MOBILENET_TRAINABLE_LAYERS]:
        layer.trainable = False
    return model


def batch_norm_layers(model):
    """Every BatchNormalization layer in ``model``, nested models included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):  # a nested model, such as the base
            found.extend(batch_norm_layers(layer))
    return found


def trainable_batch_norm_layers(model):
    """The batch-norm layers of ``model`` that training changes (``batch_norm_layers``, trainable)."""
    return [layer for layer in batch_norm_layers(model) if layer.trainable]


def get_base(model):
    """The nested base of a ``build_model`` model; ``KerasNotesError`` if there is none."""
    try:
        return model.get_layer(BASE_LAYER_NAME)
    except ValueError:
        raise KerasNotesError(f"model {model.name!r} has no layer named {BASE_LAYER_NAME!r}; "
                              f"unfreeze works on models made by build_model") from None


def _opened_layers(base, top_n=None, from_layer=None):
    """The base's layers (InputLayer excluded) and the index of the first one ``unfreeze`` opens."""
    if top_n is not None and from_layer is not None:
        raise KerasNotesError(f"give top_n or from_layer, not both; received top_n={top_n!r}, "
                              f"from_layer={from_layer!r}")
    layers = [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]
    if top_n is not None:
        if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= len(layers):
            raise KerasNotesError(f"top_n must be an integer from 1 to {len(layers)} (the base's layers); "
                                  f"received top_n={top_n!r}")
        return layers, len(layers) - top_n
    if from_layer is not None:
        names = [layer.name for layer in layers]
        if from_layer not in names:
            raise KerasNotesError(f"no layer named {from_layer!r} in the base; its last layers are "
                                  f"{names[-5:]} (of {len(names)})")
        return layers, names.index(from_layer)
    return layers, 0


def _trains(index, start, layer):
    return index >= start and not isinstance(layer, keras.layers.BatchNormalization)


def unfreeze(model, top_n=None, from_layer=None):
    """Phase 2: make the top of the base trainable; -> the number of base layers whose weights now train.

    ``top_n`` opens the last ``top_n`` layers of the base (counted as the course and
    the keras.io guide count, every layer, weightless ones such as ReLU included);
    ``from_layer`` opens everything from the layer of that name on; neither opens the
    whole base. BatchNormalization layers stay frozen, so they keep running in
    inference mode on their moving statistics (the keras.io guide's advice). The head
    is not touched. The caller recompiles (with a lower learning rate) for the change
    to take effect.
    """
    base = get_base(model)
    layers, start = _opened_layers(base, top_n, from_layer)
    base.trainable = True  # Keras then lets each sub-layer's own flag decide
    opened = 0
    for index, layer in enumerate(layers):
        layer.trainable = _trains(index, start, layer)
        opened += layer.trainable and bool(layer.weights)
    return opened


def first_trained_layer(model, top_n=None, from_layer=None):
    """The name of the first base layer whose weights ``unfreeze(model, top_n, from_layer)`` would
    train, without changing the model; None if it would train none."""
    layers, start = _opened_layers(get_base(model), top_n, from_layer)
    return next((layer.name for index, layer in enumerate(layers) if _trains(index, start, layer) and layer.weights),
                None)


def recalibrate_batch_norm(model, data, max_batches=None, batch_size=32):
    """Re-estimate the moving statistics of the model's trainable batch-norm layers; -> how many.

    Runs the model in training mode over ``data`` without changing any weight, and
    sets each trainable batch-norm layer's moving mean and variance to the plain
    average of its batch statistics over the batches (momentum ``k/(k+1)`` at batch
    ``k``), the "precise batch norm" recipe. Frozen batch-norm layers (a pretrained,
    frozen base; layers ``unfreeze`` left frozen) are not touched, and the function
    returns 0 when there are none to update.

    ``data``: a NumPy array of images, or an iterable of batches such as a
    ``tf.data.Dataset`` yielding images or ``(images, labels)``. Give images as
    inference sees them (no augmentation) in batches drawn at random, as training
    batches are: a batch of one class lacks the between-class variance, and stats
    averaged over class-sorted batches are wrong (measured on the digits: validation
    accuracy 0.914 -> 0.925 with shuffled batches, -> 0.889 with class-sorted ones).
    An array is shuffled here (fixed seed) and cut into ``batch_size`` batches; a
    dataset is used as it comes. ``max_batches`` caps the pass. Call it eagerly,
    outside ``tf.function``.
    """
    layers = trainable_batch_norm_layers(model)
    if not layers:
        return 0
    if hasattr(data, "shape") and not hasattr(data, "element_spec"):  # an array of images
        order = np.random.default_rng(0).permutation(len(data))
        batches = (data[order[start:start + batch_size]] for start in range(0, len(data), batch_size))
    else:
        batches = data
    momenta = [layer.momentum for layer in layers]
    try:
        seen = 0
        for batch in batches:
            if max_batches is not None and seen >= max_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in layers:
                layer.momentum = seen / (seen + 1)  # 0 at the first batch: its statistics replace the old
            model(images, training=True)
            seen += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if seen == 0:
        raise KerasNotesError("recalibrate_batch_norm received no batches")
    return len(layers)

"""Cut a model where its frozen part ends: the part that runs once, and the part that trains.

Without augmentation, every layer below the first one whose weights train gives the
same output for the same image in every epoch: the preprocessing and the pooling have
no parameters, frozen batch-norm layers run in inference mode on fixed statistics
(``models`` module docstring), and a frozen base's Dropout layers have rate 0. Where
the cut falls depends on what the phase trains::

    phase 1, base frozen (MobileNet at 224 px):
      image (n, 224, 224, 3) -> preprocessing -> base -> pool (n, 1024)          once
      (n, 1024) -> [hidden ->] dropout -> predictions                           every step

    phase 2, --unfreeze-from conv_dw_12 (the last two depthwise/pointwise blocks):
      image (n, 224, 224, 3) -> preprocessing -> base up to conv_pad_12 (n, 15, 15, 512)   once
      (n, 15, 15, 512) -> conv_dw_12 ... conv_pw_13_relu -> pool -> dropout -> predictions   every step

The part that trains is made of the model's *own* layers (``keras.Model`` on the
base's intermediate tensors shares them), so the full model is trained in place and
``model.keras`` is still the whole model that takes raw images. It is compiled with
the full model's optimizer, so Adam's state and step count are where the uncached
path would leave them. In a graph with branches (ResNet), the cut may cross several
tensors; each is kept. ``cache`` keeps the frozen part's output and trains on it.
"""

import dataclasses

POOL_LAYER_NAME = "pool"
# The head's layers above the pool, in order; "hidden" is there only with hidden_units > 0.
HEAD_LAYER_NAMES = ("hidden", "dropout", "predictions")


def head_layers(model):
    """The head's layers of a ``build_model`` model, in order: those of ``HEAD_LAYER_NAMES`` it has."""
    names = {layer.name for layer in model.layers}
    return [model.get_layer(name) for name in HEAD_LAYER_NAMES if name in names]


@dataclasses.dataclass(frozen=True)
class FrozenSplit:
    """A model cut where its frozen part ends."""

    extractor: object  # keras.Model: raw images -> the boundary tensor(s); the frozen part
    trainable: object  # keras.Model: boundary tensor(s) -> probabilities; the model's own layers
    boundary: tuple  # (name, shape without the batch axis) of each kept tensor


def feature_extractor(model):
    """The frozen part of a ``build_model`` model in phase 1: raw images -> pooled features (batch, c)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(POOL_LAYER_NAME).output, name="frozen_features")


def _compiled(model, inputs, outputs, name, steps_per_execution=1):
    import keras

    part = keras.Model(inputs, outputs, name=name)
    # The full model's optimizer (and loss): Adam's moments and step count carry on in the
    # object that phase 2, resume and the tests see as model.optimizer.
    part.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                 steps_per_execution=steps_per_execution)
    return part


def head_model(model, steps_per_execution=1):
    """The model's own head layers ([hidden,] dropout, predictions) on a features input:
    (batch, c) -> (batch, classes)."""
    import keras

    inputs = keras.Input(model.get_layer(POOL_LAYER_NAME).output.shape[1:], name="features")
    x = inputs
    for layer in head_layers(model):
        x = layer(x)
    return _compiled(model, inputs, x, "head", steps_per_execution)


def boundary_tensors(base, start):
    """The tensors that layers ``base.layers[:start]`` hand to ``base.layers[start:]``, in graph order."""
    position = {id(layer): index for index, layer in enumerate(base.layers)}
    found = {}
    for layer in base.layers[start:]:
        # Keras keeps a layer's calls as nodes; tensors from other graphs built on the
        # same layers (earlier cuts) come from layers outside ``position`` and are passed over.
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                history = tensor._keras_history
                if position.get(id(history.operation), start) < start:
                    found.setdefault((id(history.operation), history.node_index, history.tensor_index), tensor)
    return list(found.values())


def split_frozen(model, first_trained=None, steps_per_execution=1):
    """Cut a compiled ``build_model`` model where its frozen part ends; -> ``FrozenSplit`` or None.

    With the whole base frozen the cut is the pooling layer's output. With part of the
    base trainable (``unfreeze``) it is below the first base layer whose weights train;
    ``first_trained`` names that layer ahead of time (``models.first_trained_layer``),
    for phase 1 to keep phase 2's cut as well. None when nothing can be kept: the base
    trains from its first layer, or a frozen layer below the cut is a Dropout that
    would still drop units in training. The trained part is compiled with
    ``steps_per_execution`` (``Model.compile``'s: steps per call of its train function).
    """
    import keras

    from keras_notes.finetune.models import get_base

    base = get_base(model)
    if first_trained is None and not base.trainable_weights:  # phase 1 with a frozen base
        pool = model.get_layer(POOL_LAYER_NAME)
        return FrozenSplit(feature_extractor(model), head_model(model, steps_per_execution),
                           ((pool.name, tuple(pool.output.shape[1:])),))
    names = [layer.name for layer in base.layers]
    start = (names.index(first_trained) if first_trained is not None else
             next(index for index, layer in enumerate(base.layers) if layer.trainable_weights))
    below = base.layers[:start]
    if all(isinstance(layer, keras.layers.InputLayer) for layer in below) or any(
            isinstance(layer, keras.layers.Dropout) and layer.rate > 0 for layer in below):
        return None
    tensors = boundary_tensors(base, start)
    lower = keras.Model(base.inputs, tensors, name="frozen_part")
    images = keras.Input(model.inputs[0].shape[1:], name="image")
    extractor = keras.Model(images, lower(model.get_layer("preprocessing")(images)), name="frozen_features")

    upper = keras.Model(tensors, base.outputs[0], name="trained_part_of_base")  # the base's own layers
    inputs = [keras.Input(tensor.shape[1:], name=f"kept_{index}") for index, tensor in enumerate(tensors)]
    x = upper(inputs[0] if len(inputs) == 1 else inputs)
    for layer in (model.get_layer(POOL_LAYER_NAME), *head_layers(model)):
        x = layer(x)
    trainable = _compiled(model, inputs, x, "trained_part", steps_per_execution)
    boundary = tuple((tensor._keras_history.operation.name, tuple(tensor.shape[1:])) for tensor in tensors)
    return FrozenSplit(extractor, trainable, boundary)


def with_pooled_output(model, split):
    """``split``'s extractor with the pooled features added as a last output (the whole frozen base).

    Phase 1 runs this once over the images: the pooled features train its head, and the
    outputs at phase 2's cut are kept for phase 2, which then runs no pass of its own.
    """
    import keras

    kept = split.extractor.outputs
    upper = split.trainable.get_layer("trained_part_of_base")
    pooled = model.get_layer(POOL_LAYER_NAME)(upper(kept[0] if len(kept) == 1 else kept))
    return keras.Model(split.extractor.inputs, [*kept, pooled], name="frozen_features_and_cut")

"""Parameter counts from first principles: each layer's configuration and input shape.

The counts here never read Keras's variable sizes (``layer.weights``,
``count_params``). They are worked out from ``units``, ``filters``,
``kernel_size``, ``groups``, ``use_bias``, ``axis``... and the shape a layer was
called on, the way the notes do it by hand, so comparing them with Keras is a
real check. A layer type without a rule here is reported as unknown (count
``None``), never guessed; subclasses of known layers count as unknown too,
because a subclass may add weights.

    >>> rows = explain(model)            # one LayerParams per layer, formula filled in
    >>> count_params(model)              # (total, trainable, non_trainable)
"""

import dataclasses
import math

import keras

from keras_notes.errors import KerasNotesError


@dataclasses.dataclass(frozen=True)
class LayerParams:
    """One layer's parameters, worked out from its configuration."""

    name: str            # "outer/inner" for a layer inside a nested model
    type: str            # the layer's class name, e.g. "Conv2D"
    output_shape: object  # e.g. (None, 1, 16); None when Keras cannot say
    formula: str         # the arithmetic with numbers filled in, e.g. "5*16 + 16 = 96"
    count: object        # int, or None when the layer type is unknown
    non_trainable: int   # part of ``count`` no optimizer updates (BatchNorm moving statistics)
    trainable: bool      # False when the layer is frozen (so all its parameters are non-trainable)
    keras_count: object  # Keras's own ``layer.count_params()``, kept only for comparison

    @property
    def known(self):
        return self.count is not None

    @property
    def agrees(self):
        return self.count == self.keras_count

    @property
    def trainable_count(self):
        if self.count is None:
            return None
        return self.count - self.non_trainable if self.trainable else 0

    @property
    def non_trainable_count(self):
        if self.count is None:
            return None
        return self.count - self.trainable_count


class _CannotCount(Exception):
    """Raised by a rule when the configuration or input shape does not determine the count."""


class _Settings:
    """A layer's configuration read from its attributes: ``settings["units"]`` is ``layer.units``.

    The keys are ``layer.get_config()``'s, and so are the values for every layer
    with a rule here. ``get_config()`` itself is not used because it serialises the
    dtype policy through a check that imports TensorFlow whenever it is installed,
    even on the JAX backend (Keras 3.15, ``serialization_lib``).
    """

    def __init__(self, layer):
        self._layer = layer

    def __getitem__(self, key):
        try:
            return getattr(self._layer, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key, default=None):
        return getattr(self._layer, key, default)


# ---------------------------------------------------------------------------
# Arithmetic helpers. A factor is an int, or (text, value) to show how it arose.

def _sum_of_products(*products):
    """``([3, 3, 3, 2], [2])`` -> ``("3*3*3*2 + 2 = 56", 56)``; empty products are skipped."""
    products = [p for p in products if p]

    def value(factor):
        return factor[1] if isinstance(factor, tuple) else factor

    def text(factor):
        return factor[0] if isinstance(factor, tuple) else str(factor)

    for product in products:
        if any(not isinstance(value(f), int) for f in product):
            raise _CannotCount(f"a dimension is not known: {[value(f) for f in product]}")
    total = sum(math.prod(value(f) for f in product) for product in products)
    return " + ".join("*".join(text(f) for f in p) for p in products) + f" = {total:,}", total


def _size_along(shape, axes):
    """The number of entries along ``axes`` of ``shape``, as (text, value): 32 or ("(4*32)", 128)."""
    axes = [axes] if isinstance(axes, int) else list(axes)
    sizes = [shape[a] for a in axes]
    if any(not isinstance(s, int) for s in sizes):
        raise _CannotCount(f"axis {axes} of input shape {shape} is not known")
    if len(sizes) == 1:
        return sizes[0]
    return "(" + "*".join(map(str, sizes)) + ")", math.prod(sizes)


def _channels(config, shape):
    """Input channels of a convolution: last axis for channels_last, axis 1 otherwise."""
    return shape[-1] if config.get("data_format", "channels_last") == "channels_last" else shape[1]


# ---------------------------------------------------------------------------
# Rules: (layer, config, input_shape) -> (formula, count, non_trainable).

def _no_parameters(layer, config, shape):
    return "0", 0, 0


def _dense(layer, config, shape):
    # kernel (inputs, units) + bias (units,); Dense acts on the last axis only.
    formula, count = _sum_of_products([shape[-1], config["units"]],
                                      [config["units"]] if config["use_bias"] else [])
    return formula, count, 0


def _conv(layer, config, shape):
    # kernel (*kernel_size, c_in/groups, filters) + bias (filters,). A transposed
    # convolution's kernel is (*kernel_size, filters, c_in) with no groups: the same product.
    c_in, groups, filters = _channels(config, shape), config.get("groups", 1), config["filters"]
    per_group = (f"({c_in}/{groups})", c_in // groups) if groups > 1 else c_in
    formula, count = _sum_of_products([*config["kernel_size"], per_group, filters],
                                      [filters] if config["use_bias"] else [])
    return formula, count, 0


def _depthwise(layer, config, shape):
    # kernel (*kernel_size, c_in, depth_multiplier) + bias (c_in*depth_multiplier,).
    c_in, multiplier = _channels(config, shape), config["depth_multiplier"]
    formula, count = _sum_of_products([*config["kernel_size"], c_in, multiplier],
                                      [c_in, multiplier] if config["use_bias"] else [])
    return formula, count, 0


def _separable(layer, config, shape):
    # depthwise (*kernel_size, c_in, m) + pointwise (c_in*m, filters) + bias (filters,).
    c_in, multiplier, filters = _channels(config, shape), config["depth_multiplier"], config["filters"]
    formula, count = _sum_of_products([*config["kernel_size"], c_in, multiplier],
                                      [c_in, multiplier, filters],
                                      [filters] if config["use_bias"] else [])
    return formula, count, 0


def _batch_norm(layer, config, shape):
    # Per channel: gamma (if scale) and beta (if center) are trained; the moving
    # mean and variance are running averages updated in the forward pass, never
    # by the optimizer. Batch renormalisation keeps three more running statistics.
    channels = _size_along(shape, config["axis"])
    frozen = 2 + (3 if config.get("renorm") else 0)
    per_channel = int(bool(config["scale"])) + int(bool(config["center"])) + frozen
    c_text, c = channels if isinstance(channels, tuple) else (str(channels), channels)
    return (f"{per_channel}*{c_text} = {per_channel * c:,} ({frozen}*{c_text} non-trainable)",
            per_channel * c, frozen * c)


def _layer_norm(layer, config, shape):
    # gamma (if scale or rms_scaling) and beta (if center, without rms_scaling), both trained.
    rms = config.get("rms_scaling", False)
    per_entry = int(bool(config["scale"]) or rms) + int(bool(config["center"]) and not rms)
    formula, count = _sum_of_products([per_entry, _size_along(shape, config["axis"])])
    return (formula if per_entry else "0"), count, 0


def _group_norm(layer, config, shape):
    # gamma and beta per channel (the groups only change how statistics are pooled).
    per_channel = int(bool(config["scale"])) + int(bool(config["center"]))
    formula, count = _sum_of_products([per_channel, _size_along(shape, config["axis"])])
    return (formula if per_channel else "0"), count, 0


def _normalization(layer, config, shape):
    # Without a given mean/variance, Keras keeps mean and variance along the kept
    # axes plus a scalar sample count for adapt(), all non-trainable.
    if layer.input_mean is not None:
        return "0 (mean and variance given as constants)", 0, 0
    channels = _size_along(shape, config["axis"])
    formula, count = _sum_of_products([2, channels], [1])
    return formula + " (mean, variance, count; non-trainable)", count, count


def _embedding(layer, config, shape):
    formula, count = _sum_of_products([config["input_dim"], config["output_dim"]])
    return formula, count, 0


def _layer_scale(layer, config, shape):
    # keras.applications.convnext.LayerScale: one learned scale per channel.
    dim = config["projection_dim"]
    return f"{dim:,} (one scale per channel)", dim, 0


def _path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


_PARAMETER_FREE = """
    InputLayer Flatten Reshape Permute RepeatVector Identity Masking Lambda
    Cropping1D Cropping2D Cropping3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
    UpSampling1D UpSampling2D UpSampling3D
    MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianDropout GaussianNoise
    AlphaDropout ActivityRegularization
    Activation ReLU LeakyReLU ELU Softmax UnitNormalization
    Rescaling Resizing CenterCrop RandomFlip RandomRotation RandomZoom RandomTranslation
    RandomContrast RandomCrop RandomBrightness
    Add Subtract Multiply Average Maximum Minimum Concatenate Dot
""".split()

_LAYER_RULES = {
    "Dense": _dense,
    "Conv1D": _conv, "Conv2D": _conv, "Conv3D": _conv,
    "Conv1DTranspose": _conv, "Conv2DTranspose": _conv, "Conv3DTranspose": _conv,
    "DepthwiseConv1D": _depthwise, "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "GroupNormalization": _group_norm, "Normalization": _normalization,
    "Embedding": _embedding,
    **{name: _no_parameters for name in _PARAMETER_FREE},
}

# Rules are keyed by the exact class (module path + name): a subclass is unknown.
_RULES = {_path(getattr(keras.layers, name)): rule
          for name, rule in _LAYER_RULES.items() if hasattr(keras.layers, name)}
# Layers that keras.applications models define for themselves (not exported by keras.layers).
_RULES.update({
    "keras.src.applications.convnext.LayerScale": _layer_scale,
    "keras.src.applications.convnext.StochasticDepth": _no_parameters,
    "keras.src.applications.inception_resnet_v2.CustomScaleLayer": _no_parameters,
})

# Rules that need no input shape.
_SHAPE_FREE = {_no_parameters, _embedding, _layer_scale}

# Models whose layers were called on symbolic inputs, so each has a known input shape.
_GRAPH_MODELS = {"keras.src.models.sequential.Sequential", "keras.src.models.functional.Functional"}


def _input_shape(layer):
    """The shape ``layer`` was (first) called on; the first input's for merge layers."""
    try:
        inputs = layer.input
    except (AttributeError, ValueError):
        # Built on its own (layer.build(shape)), never called on a symbolic tensor.
        inputs = (layer.get_build_config() or {}).get("input_shape")
        if isinstance(inputs, list):
            inputs = inputs[0]
        return tuple(inputs) if inputs is not None else None
    first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    return tuple(first.shape)


def _output_shape(layer):
    try:
        outputs = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(outputs, (list, tuple)):
        return [tuple(o.shape) for o in outputs]
    return tuple(outputs.shape)


def explain_layer(layer, input_shape=None, name=None, trainable=None):
    """One ``LayerParams`` for ``layer``, built or called on ``input_shape``.

    ``input_shape`` defaults to the shape the layer was called on (or built with);
    ``trainable`` defaults to ``layer.trainable``.
    """
    kind = type(layer)
    rule = _RULES.get(_path(kind))
    if input_shape is None and rule is not None and rule not in _SHAPE_FREE:
        input_shape = _input_shape(layer)
    formula, count, non_trainable = f"unknown layer type {_path(kind)}: not counted", None, 0
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        # LoRA and quantisation replace the kernel with other variables: not covered.
        formula = "LoRA or quantised layer: not counted"
    elif rule is not None and input_shape is None and rule not in _SHAPE_FREE:
        formula = "cannot count: the layer was never built or called, so its input shape is unknown"
    elif rule is not None:
        try:
            formula, count, non_trainable = rule(layer, _Settings(layer), input_shape)
        except (_CannotCount, KeyError, TypeError, IndexError) as error:
            formula = f"cannot count: {error}"
    return LayerParams(
        name=name or layer.name,
        type=kind.__name__,
        output_shape=_output_shape(layer),
        formula=formula,
        count=count,
        non_trainable=non_trainable,
        trainable=layer.trainable if trainable is None else bool(trainable),
        keras_count=layer.count_params() if layer.built else None,
    )


def explain(model):
    """One ``LayerParams`` per layer of ``model``; nested Sequential/Functional models recurse.

    A layer's parameters are trainable when both the layer and the top model are
    trainable. Setting ``trainable`` on a nested model already propagates to its
    layers (Keras does this on assignment), and Keras's own
    ``model.trainable_weights`` reads only the top model and each layer, so this
    is the split the optimizer sees.
    """
    if not model.built:
        raise KerasNotesError(
            f"model {model.name!r} is not built; start it from keras.Input(shape) or call "
            "model.build(input_shape) first")
    return _explain_layers(model, prefix="", top_trainable=model.trainable)


def _explain_layers(model, prefix, top_trainable):
    rows = []
    for layer in model.layers:
        if _path(type(layer)) in _GRAPH_MODELS:
            rows.extend(_explain_layers(layer, f"{prefix}{layer.name}/", top_trainable))
        else:
            rows.append(explain_layer(layer, name=prefix + layer.name,
                                      trainable=top_trainable and layer.trainable))
    return rows


def totals(rows):
    """(total, trainable, non_trainable) summed over the rows whose count is known."""
    known = [row for row in rows if row.known]
    trainable = sum(row.trainable_count for row in known)
    non_trainable = sum(row.non_trainable_count for row in known)
    return trainable + non_trainable, trainable, non_trainable


def count_params(model):
    """(total, trainable, non_trainable) for ``model``, from first principles.

    Raises ``KerasNotesError`` naming the layers it cannot count rather than
    returning a total that leaves them out.
    """
    rows = explain(model)
    unknown = [f"{row.name} ({row.type})" for row in rows if not row.known]
    if unknown:
        raise KerasNotesError(
            f"cannot count {model.name!r}: {len(unknown)} layer(s) not covered: {unknown[:5]}")
    return totals(rows)


def keras_counts(model):
    """Keras's own (total, trainable, non_trainable) for ``model``: the reference to compare with."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return trainable + non_trainable, trainable, non_trainable

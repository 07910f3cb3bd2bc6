"""Grad-CAM (Selvaraju et al., 2017): which regions raised the AI score, for any Keras CNN.

The gradient of the model's AI logit (the pre-sigmoid score, negated for models whose output
is P(REAL)) with respect to the last convolutional block's activations weights each channel;
the map is the ReLU of the weighted channel sum, so it is non-negative and shows only what
pushed the image *towards* "AI". Its unit is the AI logit, which keeps maps of one model
comparable: an image the model finds real has a faint or empty map.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

import keras
import numpy as np
import tensorflow as tf

from fakelens.errors import InvalidArgumentError
from fakelens.explain.heatmaps import Explanation, load_views, resize_map
from fakelens.inference.detector import Detector, Input

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_GRAD_MODELS: WeakKeyDictionary = WeakKeyDictionary()


def has_convolution(model: keras.Model) -> bool:
    """Whether Grad-CAM has a layer to explain (`target_layer`)."""
    return any(isinstance(layer, _CONV_TYPES) for layer in model.layers)


def target_layer(model: keras.Model) -> keras.layers.Layer:
    """The last convolutional block: the last layer with a spatial (H, W > 1) output at or after
    the last convolution, pooling layers excluded (a pooled 2x2 map says little)."""
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, _CONV_TYPES)]
    if not convs:
        raise InvalidArgumentError(
            f"model {model.name!r} has no convolutional layer; Grad-CAM needs one. "
            f"Received layers: {[layer.name for layer in model.layers]}"
        )
    spatial = [
        layer
        for layer in model.layers[convs[-1] :]
        if len(layer.output.shape) == 4
        and "Pooling" not in type(layer).__name__
        and all(side is None or side > 1 for side in layer.output.shape[1:3])
    ]
    return spatial[-1] if spatial else model.layers[convs[-1]]


def _grad_model(model: keras.Model) -> tuple[keras.Model, str]:
    """A model returning (target activations, input of the output layer), built once per model."""
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(f"heatmaps need a Keras model; received {type(model).__name__}")
    if model not in _GRAD_MODELS:
        layer = target_layer(model)
        head = model.layers[-1]
        _GRAD_MODELS[model] = (keras.Model(model.inputs, [layer.output, head.input]), layer.name)
    return _GRAD_MODELS[model]


def _ai_logit(detector: Detector, head_input: tf.Tensor) -> tf.Tensor:
    """The AI score before the sigmoid, so that confident images still have gradients."""
    head = detector.model.layers[-1]
    if isinstance(head, keras.layers.Dense) and getattr(head.activation, "__name__", "") == "sigmoid":
        logit = tf.matmul(head_input, head.kernel) + (head.bias if head.use_bias else 0.0)
    else:  # another head: undo the sigmoid of its output
        p = tf.clip_by_value(head(head_input), 1e-7, 1 - 1e-7)
        logit = tf.math.log(p) - tf.math.log1p(-p)
    logit = tf.reshape(logit, [-1])[0]
    return logit if detector.card.output == "p_ai" else -logit


def explain(detector: Detector, image: Input, *, name: str | None = None) -> Explanation:
    """Decode `image` (path, bytes or (H, W, 3) uint8 array), score it and map its AI evidence.

    The model sees exactly what `Detector.predict` feeds it, so the probability is the same;
    the returned image is the input shrunk to at most MAX_MAP_SIDE, the map's size.
    """
    _check_fit(detector)
    return explain_views(detector, *load_views(detector, image, name))


def explain_views(detector: Detector, prepared: np.ndarray, shown: np.ndarray) -> Explanation:
    """`explain` for an image already decoded by `heatmaps.load_views` (the server decodes
    untrusted files on its own bounded pool)."""
    _check_fit(detector)
    grad_model, layer = _grad_model(detector.model)
    batch = tf.convert_to_tensor(prepared[None].astype(np.float32))
    with tf.GradientTape() as tape:
        activations, head_input = grad_model(batch, training=False)
        score = _ai_logit(detector, head_input)
    gradients = tape.gradient(score, activations)
    if gradients is None:
        raise InvalidArgumentError(
            f"model {detector.name!r}: the AI score does not depend on layer {layer!r}"
        )
    weights = tf.reduce_mean(gradients[0], axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(activations[0] * weights, axis=-1)).numpy()
    probability = float(detector.predict_proba(prepared[None])[0])
    return Explanation(
        image=shown,
        heatmap=resize_map(cam, shown.shape[:2]),
        ai_probability=probability,
        label=str(detector.card.labels(np.array([probability]))[0]),
        method="gradcam",
        layer=layer,
    )


def _check_fit(detector: Detector) -> None:
    if detector.card.fit != "stretch":
        raise InvalidArgumentError(
            f"model {detector.name!r} crops images (fit={detector.card.fit!r}); a Grad-CAM map "
            "is drawn over the whole image: use occlusion"
        )


def heatmap(detector: Detector, image: Input, *, name: str | None = None) -> np.ndarray:
    """The Grad-CAM map of `image`: float32, finite, >= 0, at the image's aspect (long side at
    most MAX_MAP_SIDE), in units of the AI logit."""
    return explain(detector, image, name=name).heatmap

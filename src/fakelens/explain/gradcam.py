"""Grad-CAM (Selvaraju et al., 2017): which regions raised the AI score, for any Keras CNN.

The gradient of the model's AI logit (the pre-sigmoid score, negated for models whose output
is P(REAL)) with respect to the last convolutional block's activations weights each channel;
the map is the ReLU of the weighted channel sum, so it is non-negative and shows only what
pushed the image *towards* "AI". Its unit is the AI logit, which keeps maps of one model
comparable: an image the model finds real has a faint or empty map.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

import keras
import matplotlib
import numpy as np
import tensorflow as tf
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from fakelens.data.decode import decode_image, input_bytes, resize_to
from fakelens.errors import ImageDecodeError, InvalidArgumentError
from fakelens.inference import Detector, Input
from fakelens.reporting.plots import figure_png

#: Longest side of a returned map; larger images get a map at their aspect, scaled down.
MAX_MAP_SIDE = 512
#: Overlay colour map; low values are also drawn more transparent, so an empty map adds nothing.
COLOUR_MAP = "inferno"
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_GRAD_MODELS: WeakKeyDictionary = WeakKeyDictionary()


@dataclass(frozen=True)
class Explanation:
    """One image, the model's verdict on it and its Grad-CAM map (at the image's aspect)."""

    image: np.ndarray
    heatmap: np.ndarray
    ai_probability: float
    label: str
    layer: str


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
    if isinstance(image, np.ndarray):
        prepared, full = detector.prepare(image, name), image
    else:
        label, raw = input_bytes(image, name)
        prepared = detector.prepare(raw, label)
        full = decode_image(raw, name=label, draft_size=(MAX_MAP_SIDE, MAX_MAP_SIDE))
    size = _fit(full.shape[:2])
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
    probability = float(detector.predict_batch(prepared[None])[0])
    return Explanation(
        image=resize_to(full, size),
        heatmap=_resize_map(cam, size),
        ai_probability=probability,
        label=str(detector.card.labels(np.array([probability]))[0]),
        layer=layer,
    )


def heatmap(detector: Detector, image: Input, *, name: str | None = None) -> np.ndarray:
    """The Grad-CAM map of `image`: float32, finite, >= 0, at the image's aspect (long side at
    most MAX_MAP_SIDE), in units of the AI logit."""
    return explain(detector, image, name=name).heatmap


def _fit(image_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) at the same aspect, the long side at most MAX_MAP_SIDE."""
    height, width = image_size
    scale = min(1.0, MAX_MAP_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize_map(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = Image.fromarray(np.nan_to_num(cam).astype(np.float32), mode="F").resize(
        (size[1], size[0]), Image.Resampling.BILINEAR
    )
    return np.maximum(np.asarray(resized, dtype=np.float32), 0.0)


def overlay_figure(
    image: np.ndarray, heat: np.ndarray, title: str | None = None, scale: float | None = None
) -> Figure:
    """The image beside the image with the map over it, upscaled to a viewable size, with a colour
    bar from 0 to `scale` (None: this map's maximum; give maps one scale to compare them)."""
    if heat.ndim != 2 or not np.isfinite(heat).all():
        raise InvalidArgumentError(f"expected a finite 2-D heatmap; received shape {heat.shape}")
    height, width = image.shape[:2]
    extent = (0, width, height, 0)
    top = scale if scale else float(heat.max()) if heat.max() > 0 else 1.0
    shares = np.clip(heat / top, 0.0, 1.0)
    colours = matplotlib.colormaps[COLOUR_MAP](shares)
    colours[..., 3] = 0.15 + 0.6 * shares
    figure = Figure(figsize=(8.4, 4.2 * height / width + 0.6), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    smoothing = "nearest" if max(height, width) <= 128 else "antialiased"
    for axis, caption in ((left, "image"), (right, "regions raising the AI score")):
        axis.imshow(image, extent=extent, interpolation=smoothing)
        axis.set_title(caption, fontsize=10)
        axis.axis("off")
    right.imshow(colours, extent=extent, interpolation="bilinear")
    bar = figure.colorbar(ScalarMappable(Normalize(0, top), COLOUR_MAP), ax=right, shrink=0.85)
    bar.set_label("Grad-CAM (AI logit)")
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def overlay_png(
    image: Input,
    heat: np.ndarray,
    *,
    title: str | None = None,
    scale: float | None = None,
    dpi: int | None = None,
) -> bytes:
    """PNG bytes of `overlay_figure` (840 px wide at the default 100 dpi); `image` may be a path,
    file bytes or an RGB array."""
    array = image if isinstance(image, np.ndarray) else decode_image(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageDecodeError("<array>", f"expected an (H, W, 3) RGB array; received shape {array.shape}")
    return figure_png(overlay_figure(array, heat, title, scale), dpi)


def describe(explanation: Explanation) -> str:
    """A title for an overlay: verdict and calibrated probability."""
    return f"{explanation.label.upper()}  ·  P(AI) = {explanation.ai_probability:.3f}"

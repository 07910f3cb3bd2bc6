"""Heatmaps of what raised the AI score: the method chosen per model, the result they share, the
drawing.

Grad-CAM (`explain.gradcam`) needs a Keras CNN; occlusion (`explain.occlusion`) needs only
`Detector.predict_proba`, so ONNX and probe models are explained too. Nothing here imports
TensorFlow: a light install (`fakelens[onnx]`) explains with occlusion.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from fakelens.data.decode import decode_image, input_bytes, resize_to
from fakelens.errors import ImageDecodeError, InvalidArgumentError
from fakelens.inference.detector import Detector, Input
from fakelens.plots import figure_png

#: Longest side of a returned map; larger images get a map at their aspect, scaled down.
MAX_MAP_SIDE = 512
#: Overlay colour map; low values are also drawn more transparent, so an empty map adds nothing.
COLOUR_MAP = "inferno"
#: "auto": Grad-CAM for Keras CNNs that see the whole image, occlusion for every other model.
METHODS = ("auto", "gradcam", "occlusion")
#: An overlay's width in inches (840 px at 100 dpi); a narrower figure draws its text larger
#: beside the images, as report tiles do.
OVERLAY_WIDTH = 8.4
#: What a map's values are, per method (the colour bar's label).
UNITS = {"gradcam": "Grad-CAM (AI logit)", "occlusion": "occlusion: drop in AI logit"}


@dataclass(frozen=True)
class Explanation:
    """One image (as drawn), the model's verdict on it and its map (at the image's size)."""

    image: np.ndarray
    heatmap: np.ndarray
    ai_probability: float
    label: str
    #: "gradcam" or "occlusion".
    method: str
    #: Grad-CAM's target layer; None for occlusion.
    layer: str | None = None


def choose_method(detector: Detector, method: str = "auto") -> str:
    """`method` checked, with "auto" resolved: Grad-CAM for a Keras model with a convolution that
    stretches images to its input (Grad-CAM's map is drawn over the whole image), else occlusion."""
    if method not in METHODS:
        raise InvalidArgumentError(f"heatmap method must be one of {', '.join(METHODS)}; received {method!r}")
    if method == "occlusion":
        return method
    if _is_keras(detector.model):
        from fakelens.explain.gradcam import has_convolution

        if method == "gradcam" or (has_convolution(detector.model) and detector.card.fit == "stretch"):
            return "gradcam"
    elif method == "gradcam":
        raise InvalidArgumentError(
            f"Grad-CAM needs a Keras model; model {detector.name!r} is a {type(detector.model).__name__}: "
            "use the method 'occlusion' (or 'auto')"
        )
    return "occlusion"


def explain(
    detector: Detector, image: Input, *, name: str | None = None, method: str = "auto"
) -> Explanation:
    """Score `image` (path, bytes or (H, W, 3) uint8 array) and map its AI evidence by `method`."""
    if choose_method(detector, method) == "gradcam":
        from fakelens.explain import gradcam

        return gradcam.explain(detector, image, name=name)
    from fakelens.explain import occlusion

    return occlusion.explain(detector, image, name=name)


def _is_keras(model: Any) -> bool:
    keras = sys.modules.get("keras")  # a Keras model means Keras is loaded: never import it here
    return keras is not None and isinstance(model, keras.Model)


def load_views(detector: Detector, image: Input, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's input exactly as `Detector.predict` prepares it (so the probability is the
    same), and the image as drawn: shrunk to at most MAX_MAP_SIDE, the map's size."""
    if isinstance(image, np.ndarray):
        return detector.prepare(image, name), shown_image(image)
    label, raw = input_bytes(image, name)
    return detector.prepare(raw, label), shown_image(raw, label)


def shown_image(image: Input, name: str | None = None) -> np.ndarray:
    """The image as drawn under its map: shrunk to at most MAX_MAP_SIDE (JPEGs decoded small)."""
    full = (
        image
        if isinstance(image, np.ndarray)
        else decode_image(image, name=name, draft_size=(MAX_MAP_SIDE, MAX_MAP_SIDE))
    )
    return resize_to(full, fit_size(full.shape[:2]))


def fit_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) at the same aspect, the long side at most MAX_MAP_SIDE."""
    height, width = image_size
    scale = min(1.0, MAX_MAP_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_map(cells: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A coarse map resized (bilinear) to `size` = (height, width): float32, finite, >= 0."""
    resized = Image.fromarray(np.nan_to_num(cells).astype(np.float32), mode="F").resize(
        (size[1], size[0]), Image.Resampling.BILINEAR
    )
    return np.maximum(np.asarray(resized, dtype=np.float32), 0.0)


def colour_top(heat: np.ndarray, scale: float | None = None) -> float:
    """The value drawn in the colour map's brightest colour: `scale` if given, else this map's own
    maximum (1 for an empty map). Own by default: maps of one batch differ by orders of magnitude
    (a 32x32 image the model knows well beside a large photo it finds real), and on a shared scale
    the weaker ones would be drawn blank; a shared `scale` is for comparing maps of like images."""
    if scale:
        return float(scale)
    peak = float(heat.max()) if heat.size else 0.0
    return peak if peak > 0 else 1.0


def overlay_figure(
    image: np.ndarray,
    heat: np.ndarray,
    title: str | None = None,
    scale: float | None = None,
    method: str = "gradcam",
    width: float = OVERLAY_WIDTH,
) -> Figure:
    """The image beside the image with the map over it, upscaled to a viewable size, with a colour
    bar from 0 to `colour_top(heat, scale)`; `width` in inches."""
    if heat.ndim != 2 or not np.isfinite(heat).all():
        raise InvalidArgumentError(f"expected a finite 2-D heatmap; received shape {heat.shape}")
    height = image.shape[0]
    extent = (0, image.shape[1], height, 0)
    top = colour_top(heat, scale)
    shares = np.clip(heat / top, 0.0, 1.0)
    colours = matplotlib.colormaps[COLOUR_MAP](shares)
    colours[..., 3] = 0.15 + 0.6 * shares
    figure = Figure(figsize=(width, width / 2 * height / image.shape[1] + 0.6), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    smoothing = "nearest" if max(image.shape[:2]) <= 128 else "antialiased"
    for axis, caption in ((left, "image"), (right, "regions raising the AI score")):
        axis.imshow(image, extent=extent, interpolation=smoothing)
        axis.set_title(caption, fontsize=10)
        axis.axis("off")
    right.imshow(colours, extent=extent, interpolation="bilinear")
    bar = figure.colorbar(ScalarMappable(Normalize(0, top), COLOUR_MAP), ax=right, shrink=0.85)
    bar.set_label(UNITS[method])
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
    method: str = "gradcam",
    width: float = OVERLAY_WIDTH,
) -> bytes:
    """PNG bytes of `overlay_figure` (`width` x `dpi` px wide: 840 by default); `image` may be a
    path, file bytes or an RGB array; `method` names the map's unit on the colour bar."""
    array = image if isinstance(image, np.ndarray) else decode_image(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageDecodeError("<array>", f"expected an (H, W, 3) RGB array; received shape {array.shape}")
    return figure_png(overlay_figure(array, heat, title, scale, method, width), dpi)


def explanation_png(
    explanation: Explanation,
    *,
    title: str | None = None,
    scale: float | None = None,
    dpi: int | None = None,
    width: float = OVERLAY_WIDTH,
) -> bytes:
    """`overlay_png` of an explanation, titled with its verdict unless `title` is given."""
    return overlay_png(
        explanation.image,
        explanation.heatmap,
        title=title or describe(explanation),
        scale=scale,
        dpi=dpi,
        method=explanation.method,
        width=width,
    )


def describe(explanation: Explanation) -> str:
    """A title for an overlay: verdict and calibrated probability."""
    return f"{explanation.label.upper()}  ·  P(AI) = {explanation.ai_probability:.3f}"

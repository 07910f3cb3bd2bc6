"""Models that ship inside the package, by name."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent
#: The model `predict` and `scan` use when none is named: `clipprobe`, with `patchres` for
#: CIFAKE-sized images (`routing`).
DEFAULT_MODEL = "auto"


def shipped_models() -> list[str]:
    return sorted(path.stem for pattern in ("*.keras", "*.json") for path in WEIGHTS_DIR.glob(pattern))


def shipped_model_path(name: str, suffix: str = ".keras") -> Path | None:
    """The shipped `.keras` file of `name`, or its ONNX export with suffix=".onnx"; a probe
    model (`<name>.json`: a fetched encoder and a head) whatever the suffix, as it runs on
    onnxruntime alone."""
    for path in (WEIGHTS_DIR / f"{name}.json", WEIGHTS_DIR / f"{name}{suffix}"):
        if path.is_file():
            return path
    return None

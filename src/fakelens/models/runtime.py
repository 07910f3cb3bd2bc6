"""The light runtime: an exported `.onnx` model scored with onnxruntime alone, no TensorFlow.

`fakelens export` writes a graph that takes (N, H, W, 3) uint8 images at the card's input size
(fakelens resizes with Pillow first, as for Keras models) and returns calibrated P(AI): the
temperature and the output orientation are inside the graph. The model card travels in the
file's `metadata_props`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fakelens.errors import ModelLoadError
from fakelens.models.card import ModelCard
from fakelens.models.limits import check_model_size

#: The metadata key holding the model card's JSON.
CARD_KEY = "fakelens_card"
#: What `OnnxModel` feeds a graph, and the outputs it can read as scores.
INPUT_TYPE = "tensor(uint8)"
OUTPUT_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
INSTALL_HINT = "install the light runtime with: pip install 'fakelens[onnx]'"


class OnnxModel:
    """An onnxruntime session behind the one call `Detector` makes of a Keras model."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(images, dtype=np.uint8)}
        return self.session.run(None, feed)[0]


def runtime_card(card: ModelCard) -> ModelCard:
    """The card as seen by `Detector`: the graph already outputs calibrated P(AI)."""
    return card.with_updates(output="p_ai", temperature=1.0)


def one_thread_session(path: Path) -> object:
    """An onnxruntime session that runs each call on one thread, without spinning: callers run
    calls side by side (`Detector` scores batches in parallel, `InferenceConfig`), which leaves no
    thread idle, nor spinning on the cores that decoding needs."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(f"{path}: ONNX models need onnxruntime; {INSTALL_HINT}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"{path}: onnxruntime could not load the model: {exc}") from None


def load_onnx(path: str | os.PathLike[str]) -> tuple[OnnxModel, ModelCard]:
    """Load a `.onnx` file written by `fakelens export`, with its card; the graph's inputs and
    outputs are checked against the card (`_check_graph`) before anything is scored."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    check_model_size(path, path.stat().st_size)
    session = one_thread_session(path)
    text = session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
    if text is None:
        raise ModelLoadError(
            f"{path}: this .onnx file has no fakelens model card; export it with `fakelens export`"
        )
    card = ModelCard.from_json(text, path)
    _check_graph(path, session, card)
    return OnnxModel(session), runtime_card(card)


def _check_graph(path: Path, session: object, card: ModelCard) -> None:
    """Refuse a graph that cannot run on the card's batches: onnxruntime would otherwise fail
    at the first prediction, with its own InvalidArgument."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    mismatch = card.signature_mismatch([_shape(x) for x in inputs], [_shape(x) for x in outputs])
    if mismatch is None and inputs[0].type != INPUT_TYPE:
        mismatch = f"it takes {inputs[0].type}, not the {INPUT_TYPE} images fakelens feeds"
    if mismatch is None and outputs[0].type not in OUTPUT_TYPES:
        mismatch = f"it outputs {outputs[0].type}, not floating-point scores"
    if mismatch:
        raise ModelLoadError(f"{path}: refused: the graph disagrees with its card: {mismatch}")


def _shape(node: object) -> tuple[int | None, ...]:
    """A graph input's or output's shape, with named (symbolic) dimensions as None."""
    return tuple(size if isinstance(size, int) else None for size in node.shape or ())

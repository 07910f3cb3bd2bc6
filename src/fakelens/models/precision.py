"""Compute precision of Keras models: float32, or bfloat16 where the CPU's matrix engines pay.

Weights, losses and metrics stay float32 in both (Keras' `mixed_bfloat16` policy); the output
layer computes in float32 too, so scores keep their resolution (bf16 has 8 significant bits:
sigmoid outputs above 0.996 would all round to 1.0 and tie). `auto` picks bf16 only where the
CPU reports AMX tiles for it (`amx_bf16`): with AVX-512 BF16 alone, oneDNN's bf16 kernels run
no faster than float32 FMA, and `benchmarks/train_throughput.py` measured them slower here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fakelens.config import PRECISIONS
from fakelens.errors import InvalidArgumentError

if TYPE_CHECKING:
    import keras

#: Keras dtype policy per resolved precision.
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}
#: CPU flags (as /proc/cpuinfo spells them) that run bf16 natively, fastest first.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of this machine's first CPU; empty where the OS does not say."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bf16_unsupported(flags: frozenset[str] | None = None) -> str | None:
    """Why this CPU cannot run bf16 natively, or None when it can."""
    flags = cpu_flags() if flags is None else flags
    if any(flag in flags for flag in BF16_FLAGS):
        return None
    return f"this CPU has no bf16 instructions (none of {', '.join(BF16_FLAGS)} in its flags)"


def resolve_precision(requested: str, flags: frozenset[str] | None = None) -> str:
    """ "fp32" or "bf16" for a requested precision; `auto` decides from the CPU's flags.

    Examples:
    >>> resolve_precision("auto", frozenset({"avx512f", "amx_tile", "amx_bf16"}))
    'bf16'
    >>> resolve_precision("auto", frozenset({"avx512f", "avx512_bf16"}))
    'fp32'
    """
    if requested not in PRECISIONS:
        raise InvalidArgumentError(
            f"precision must be one of {', '.join(PRECISIONS)}; received {requested!r}"
        )
    flags = cpu_flags() if flags is None else flags
    if requested == "auto":
        return "bf16" if BF16_FLAGS[0] in flags else "fp32"
    if requested == "bf16" and (reason := bf16_unsupported(flags)):
        raise InvalidArgumentError(f"precision bf16: {reason}; use fp32 or auto")
    return requested


def model_precision(model: keras.Model) -> str:
    """The precision `model` computes in: that of its first layer with weights."""
    weighted = next((layer for layer in model.layers if layer.weights), None)
    policy = weighted.dtype_policy.name if weighted is not None else "float32"
    return next((name for name, known in POLICIES.items() if known == policy), "fp32")


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` computing in `precision` ("fp32" or "bf16"): itself when it already does, else a
    rebuilt copy with the same weights (not compiled). The input and output layers keep their
    own dtypes, so the copy takes and returns what the original does."""
    import keras

    if model_precision(model) == precision:
        return model
    config = model.get_config()
    outputs = config["output_layers"]  # [name, node, tensor], or a list of them
    kept = {outputs[0]} if isinstance(outputs[0], str) else {name for name, *_ in outputs}
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer" and layer["config"]["name"] not in kept:
            layer["config"]["dtype"] = POLICIES[precision]
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy

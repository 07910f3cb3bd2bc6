"""Training throughput of registered models in float32 and bf16, against each precision's peak.

    python benchmarks/train_throughput.py [--models patchres patchres-deep seed] [--seconds 20]
        [--precisions fp32 bf16] [--accuracy-epochs 3] [--accuracy-limit 20000]

Everything is measured in one run, so the ratios hold even on a noisy machine:
- each precision's peak is a large matmul timed here in its dtype;
- which oneDNN kernels bf16 runs (`ONEDNN_VERBOSE`, in a child process): `avx512_core_amx` on
  AMX tiles, `avx512_core_bf16` on AVX-512 BF16 alone;
- each model trains on random 32x32 batches with its own recipe's batch size (augmentation
  included when the recipe has it), in each precision;
- validation accuracy after the same epochs of `patchres` on a CIFAKE subset, in each precision
  (`--accuracy-epochs 0` skips it; $FAKELENS_DATA or ../shared/data/cifake/cifake.zip).
Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_file import save_results

from fakelens.config import TrainConfig
from fakelens.data.layout import resolve_data_path
from fakelens.models import create_model, get_spec
from fakelens.models.precision import BF16_FLAGS, bf16_unsupported, cpu_flags
from fakelens.training.pipeline import training_batches
from fakelens.training.run import train

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
#: Run in a child with ONEDNN_VERBOSE=1: prints the oneDNN primitive lines of a bf16 matmul and conv.
KERNEL_CHILD = """
import tensorflow as tf
a = tf.cast(tf.random.normal((256, 256)), tf.bfloat16)
tf.matmul(a, a).numpy()
x = tf.cast(tf.random.normal((8, 32, 32, 64)), tf.bfloat16)
w = tf.cast(tf.random.normal((3, 3, 64, 64)), tf.bfloat16)
tf.nn.conv2d(x, w, 1, "SAME").numpy()
"""


def matmul_peak(precision: str, size: int = 2048, repeats: int = 20) -> float:
    """FLOP/s of a large matmul in `precision`: the practical peak of this machine."""
    import tensorflow as tf  # after fakelens, which sets TensorFlow's options

    a = tf.cast(tf.random.normal((size, size)), DTYPES[precision])
    b = tf.cast(tf.random.normal((size, size)), DTYPES[precision])
    tf.matmul(a, b).numpy()
    began = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - began)


def bf16_kernels() -> list[str]:
    """The oneDNN implementations a bf16 matmul and convolution run on, e.g.
    "matmul: brg_matmul:avx512_core_amx"."""
    verbose = subprocess.run(
        [sys.executable, "-c", KERNEL_CHILD],
        env={**os.environ, "ONEDNN_VERBOSE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    fields = (line.split(",") for line in verbose.splitlines() if ",primitive,exec,cpu," in line)
    return sorted({f"{row[5]}: {row[6]}" for row in fields if row[5] in ("matmul", "convolution")})


def forward_flops(model) -> float:
    """FLOPs of one 32x32 image through the model, from TensorFlow's graph profiler."""
    import tensorflow as tf
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, 32, 32, 3], tf.float32)).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return float(profile(graph, options=options).total_float_ops)


def train_rate(name: str, precision: str, seconds: float) -> dict:
    recipe = get_spec(name).recipe
    model, _ = create_model(name, precision=precision)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8192, 32, 32, 3), dtype=np.uint8)
    targets = rng.integers(0, 2, 8192)
    batches = training_batches(images, targets, recipe.batch_size, seed=0, augment=recipe.augment)
    model.fit(batches, steps_per_epoch=5, epochs=1, verbose=0, shuffle=False)  # trace, warm up
    steps = 5
    while True:
        began = time.perf_counter()
        model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        elapsed = time.perf_counter() - began
        if elapsed >= seconds or steps >= 100_000:
            break
        steps = int(steps * max(2.0, 1.2 * seconds / elapsed))
    flops = forward_flops(model)
    rate = steps * recipe.batch_size / elapsed
    return {
        "model": name,
        "precision": precision,
        "params": int(model.count_params()),
        "forward_mflops": flops / 1e6,
        "batch_size": recipe.batch_size,
        "augment": recipe.augment,
        "train_images_per_second": rate,
        # Training costs about 3x the forward pass (forward, input and weight gradients).
        "achieved_train_flops": 3 * flops * rate,
    }


def accuracy_after(precision: str, epochs: int, limit: int, runs: Path) -> dict:
    """`patchres` trained for `epochs` on a `limit`-image CIFAKE subset: its validation figures."""
    config = TrainConfig(
        model="patchres", epochs=epochs, limit=limit, precision=precision, runs_dir=runs, name=precision
    )
    result = train(config, resolve_data_path(None), quiet=True)
    val = result.card.metrics["val"]
    return {
        "precision": precision,
        "epochs": epochs,
        "train_images": result.metadata["train_images"],
        "val_images": val["count"],
        "val_accuracy": result.history["val_accuracy"][-1],
        "val_loss": result.history["val_loss"][-1],
        "train_seconds": result.metadata["train_seconds_total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["patchres", "patchres-deep", "seed"])
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--accuracy-epochs", type=int, default=3)
    parser.add_argument("--accuracy-limit", type=int, default=20_000)
    args = parser.parse_args()
    precisions = [p for p in args.precisions if p == "fp32" or not bf16_unsupported()]
    flags = cpu_flags()
    peaks = {p: matmul_peak(p) for p in precisions}
    rows = [train_rate(name, p, args.seconds) for name in args.models for p in precisions]
    for row in rows:
        row["fraction_of_peak"] = row["achieved_train_flops"] / peaks[row["precision"]]
        row["fraction_of_fp32_peak"] = row["achieved_train_flops"] / peaks["fp32"]
    rate = {(r["model"], r["precision"]): r["train_images_per_second"] for r in rows}
    result = {
        "machine": platform.platform(),
        "cpu_bf16_flags": [flag for flag in BF16_FLAGS if flag in flags],
        "bf16_kernels": bf16_kernels() if "bf16" in precisions else [],
        "matmul_peak_gflops": {p: peak / 1e9 for p, peak in peaks.items()},
        "models": rows,
        "bf16_over_fp32": {m: rate[m, "bf16"] / rate[m, "fp32"] for m in args.models if (m, "bf16") in rate},
    }
    if args.accuracy_epochs:
        with tempfile.TemporaryDirectory() as runs:
            result["accuracy"] = [
                accuracy_after(p, args.accuracy_epochs, args.accuracy_limit, Path(runs)) for p in precisions
            ]
    path = save_results("train_throughput.json", result)
    flags_found = ", ".join(result["cpu_bf16_flags"]) or "none"
    print(f"CPU bf16 flags: {flags_found}; bf16 kernels: {result['bf16_kernels']}")
    print("Matmul peak: " + ", ".join(f"{p} {peak / 1e9:.0f} GFLOP/s" for p, peak in peaks.items()))
    for row in rows:
        print(
            f"{row['model']:>14} {row['precision']}: {row['train_images_per_second']:8.0f} train images/s "
            f"(batch {row['batch_size']}, {row['forward_mflops']:.1f} MFLOPs/image, "
            f"{row['fraction_of_peak']:.1%} of the {row['precision']} peak)"
        )
    for model, ratio in result["bf16_over_fp32"].items():
        print(f"{model:>14}: bf16 / fp32 = {ratio:.2f}x")
    for row in result.get("accuracy", []):
        print(
            f"patchres {row['precision']}, {row['epochs']} epochs on {row['train_images']:,} images: "
            f"validation accuracy {row['val_accuracy']:.4f} ({row['val_images']:,} images)"
        )
    print(f"Results saved to {path}")


if __name__ == "__main__":
    main()

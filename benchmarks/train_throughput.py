"""Training throughput of registered models, and the achieved share of this machine's FP32 peak.

    python benchmarks/train_throughput.py [--models patchres seed] [--seconds 20]

Everything is measured in one run, so the ratios hold even on a noisy machine: the peak is a
large float32 matmul timed here, and each model trains on random 32x32 batches with its own
recipe's batch size (augmentation included when the recipe has it). Writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from results_file import save_results

from fakelens.models import create_model, get_spec
from fakelens.training.pipeline import training_batches


def matmul_peak(size: int = 2048, repeats: int = 20) -> float:
    """FP32 FLOP/s of a large matmul: the practical peak of this machine."""
    import tensorflow as tf  # after fakelens, which sets TensorFlow's options

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.matmul(a, b).numpy()
    began = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - began)


def forward_flops(model) -> float:
    """FLOPs of one 32x32 image through the model, from TensorFlow's graph profiler."""
    import tensorflow as tf
    from tensorflow.python.profiler.model_analyzer import profile
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, 32, 32, 3], tf.float32)).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return float(profile(graph, options=options).total_float_ops)


def train_rate(name: str, seconds: float) -> dict:
    recipe = get_spec(name).recipe
    model, _ = create_model(name)
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
        "params": int(model.count_params()),
        "forward_mflops": flops / 1e6,
        "batch_size": recipe.batch_size,
        "augment": recipe.augment,
        "train_images_per_second": rate,
        # Training costs about 3x the forward pass (forward, input and weight gradients).
        "achieved_train_flops": 3 * flops * rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["patchres", "seed"])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    peak = matmul_peak()
    rows = [train_rate(name, args.seconds) for name in args.models]
    for row in rows:
        row["fraction_of_peak"] = row["achieved_train_flops"] / peak
    baseline = rows[-1]["train_images_per_second"]
    result = {
        "machine": platform.platform(),
        "matmul_peak_gflops": peak / 1e9,
        "models": rows,
        "ratios_to_last": {r["model"]: r["train_images_per_second"] / baseline for r in rows},
    }
    path = save_results("train_throughput.json", result)
    print(f"FP32 matmul peak: {peak / 1e9:.0f} GFLOP/s")
    for row in rows:
        print(
            f"{row['model']:>14}: {row['train_images_per_second']:8.0f} train images/s "
            f"(batch {row['batch_size']}, {row['forward_mflops']:.1f} MFLOPs/image, "
            f"{row['fraction_of_peak']:.1%} of peak)"
        )
    print(f"Results saved to {path}")


if __name__ == "__main__":
    main()

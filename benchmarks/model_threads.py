"""How to spend the cores on a model: one batch split across them, or whole batches side by side.

    python benchmarks/model_threads.py [--models seed patchres] [--backends keras onnx]

For each model and backend, pre-decoded 32x32 arrays (random pixels: the cost of a model does
not depend on them) in batches of 256, three ways, each in a fresh process (TensorFlow fixes its
thread pools when it starts):

- split: one batch at a time, each operation split across all cores (TensorFlow's and
  onnxruntime's default);
- one_thread: one batch at a time, each on one thread;
- side_by_side: as many batches at once as there are cores, each on one thread (what
  `Detector.load` sets up).

Reports images/s and CPU time per image (best of `--repeats`), and the ratios to `split`, of
this run only. Writes benchmarks/results/model_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from results_file import save_results

IMAGES = 10_240
CORES = os.cpu_count() or 1
#: (threads per operation, batches at once) of each way.
WAYS = {"split": (CORES, 1), "one_thread": (1, 1), "side_by_side": (1, CORES)}


def measure(model: str, backend: str, op_threads: int, parallel: int, repeats: int) -> dict:
    """Run in the child: the model set up one way, timed on IMAGES arrays."""
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(op_threads)  # read by `Detector.load`, before TF starts
    import numpy as np

    from fakelens.inference.detector import Detector, load_detector

    loaded = load_detector(model, backend=backend)
    engine = loaded.model
    if backend == "onnx" and op_threads != 1:
        engine = _onnx_session(model, op_threads)
    detector = Detector(engine, loaded.card, parallel_batches=parallel)
    images = np.random.default_rng(0).integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8)
    detector.predict_proba(images[: 4 * detector.batch_size])  # trace, warm the pools
    best: tuple[float, float] | None = None
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        detector.predict_proba(images)
        seconds = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if best is None or seconds < best[0]:
            best = (seconds, cpu)
    seconds, cpu = best
    return {
        "per_second": IMAGES / seconds,
        "cpu_us_per_image": 1e6 * cpu / IMAGES,
        "cores_busy": cpu / seconds,
    }


def _onnx_session(model: str, op_threads: int):
    """The shipped export with `op_threads` threads per operation (fakelens' own loader uses one)."""
    import onnxruntime

    from fakelens.models.runtime import OnnxModel
    from fakelens.weights import shipped_model_path

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = shipped_model_path(model, ".onnx")
    return OnnxModel(onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["seed", "patchres"])
    parser.add_argument("--backends", nargs="+", default=["keras", "onnx"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per way, best kept")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, backend, op_threads, parallel = args.child
        print(json.dumps(measure(model, backend, int(op_threads), int(parallel), args.repeats)))
        return
    rows = []
    for model in args.models:
        for backend in args.backends:
            row: dict = {"model": model, "backend": backend}
            for way, (op_threads, parallel) in WAYS.items():
                child = [sys.executable, __file__, "--repeats", str(args.repeats)]
                child += ["--child", model, backend, str(op_threads), str(parallel)]
                output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
                row[way] = json.loads(output.strip().splitlines()[-1])
            for way in ("one_thread", "side_by_side"):
                row[f"{way}_vs_split"] = row[way]["per_second"] / row["split"]["per_second"]
            rows.append(row)
            print(
                f"{model}/{backend}: "
                + ", ".join(
                    f"{way} {row[way]['per_second']:,.0f}/s ({row[way]['cpu_us_per_image']:.0f} us CPU/image)"
                    for way in WAYS
                )
                + f"; side by side / split {row['side_by_side_vs_split']:.2f}x",
                flush=True,
            )
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": platform.platform(),
        "cpus": CORES,
        "images": IMAGES,
        "batch_size": 256,
        "ways": {way: {"threads_per_op": t, "batches_at_once": p} for way, (t, p) in WAYS.items()},
        "rows": rows,
    }
    print(f"Results saved to {save_results('model_threads.json', result)}")


if __name__ == "__main__":
    main()

"""Cold start: `fakelens predict one.jpg` from a fresh process, as a user runs it once.

    python benchmarks/cold_start.py [--runs 7] [--image PATH]

Each way is run `--runs` times, each in a fresh Python process, in turns (one of each way, then
again), so that a busy moment of the machine does not fall on one way only:

- default: the shipped default model (`auto`);
- seed_onnx: `--model seed` (the shipped export, onnxruntime);
- seed_keras: `--model seed --backend keras` (TensorFlow).

Reports the median and 90th percentile of the wall time (the process from start to exit, Python's
own start included) and of peak memory: the child's own high-water mark (VmHWM in
/proc/self/status, read as it exits), not `ru_maxrss`, which is the largest of all children.
Ratios are to `seed_onnx`, of this run only. The image: a 32x32 JPEG of random pixels (CIFAKE's
size), unless `--image`. Writes benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import save_results

WAYS = {
    "default": [],
    "seed_onnx": ["--model", "seed"],
    "seed_keras": ["--model", "seed", "--backend", "keras"],
}
BASELINE = "seed_onnx"
#: The child: `fakelens ARGS`, as the console script runs it, writing its own peak memory (kB) to
#: the file named first as it exits.
CHILD = """
import atexit, sys

def peak(path=sys.argv[1]):
    status = open("/proc/self/status").read()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    open(path, "w").write(kb)

atexit.register(peak)
sys.argv = ["fakelens", *sys.argv[2:]]
from fakelens.cli import app
app()
"""


def cold_run(args: list[str], peak_file: Path) -> tuple[float, float]:
    """(wall seconds, peak MiB) of one fresh `fakelens ARGS` process."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, str(peak_file), *args], check=True, capture_output=True)
    seconds = time.perf_counter() - began
    return seconds, int(peak_file.read_text()) / 1024


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
    }


def sample_image(folder: Path) -> Path:
    import numpy as np
    from PIL import Image

    path = folder / "one.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per way")
    parser.add_argument("--image", type=Path, help="image to judge (default: a 32x32 JPEG)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        image = args.image or sample_image(Path(scratch))
        peak_file = Path(scratch) / "peak"
        for way in WAYS:  # once each, unmeasured: files into the page cache, .pyc written
            cold_run(["predict", *WAYS[way], str(image)], peak_file)
        measured: dict[str, dict[str, list[float]]] = {way: {"wall_s": [], "peak_mib": []} for way in WAYS}
        for _ in range(args.runs):
            for way, options in WAYS.items():
                seconds, mib = cold_run(["predict", *options, str(image)], peak_file)
                measured[way]["wall_s"].append(seconds)
                measured[way]["peak_mib"].append(mib)
    rows = {}
    for way, values in measured.items():
        rows[way] = {
            "command": " ".join(["fakelens", "predict", *WAYS[way], "one.jpg"]),
            "wall_s": summary(values["wall_s"]),
            "peak_mib": summary(values["peak_mib"]),
            "runs": values,
        }
    base = rows[BASELINE]
    for row in rows.values():
        wall, peak = row["wall_s"], row["peak_mib"]
        row[f"wall_vs_{BASELINE}"] = wall["median"] / base["wall_s"]["median"]
        row[f"peak_vs_{BASELINE}"] = peak["median"] / base["peak_mib"]["median"]
        print(
            f"{row['command']}: wall median {wall['median']:.2f} s, p90 {wall['p90']:.2f} s "
            f"({row[f'wall_vs_{BASELINE}']:.2f}x); peak {peak['median']:.0f} MiB "
            f"({row[f'peak_vs_{BASELINE}']:.2f}x)",
            flush=True,
        )
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "image": str(args.image) if args.image else "32x32 JPEG of random pixels",
        "runs_per_way": args.runs,
        "baseline": BASELINE,
        "ways": rows,
    }
    print(f"Results saved to {save_results('cold_start.json', result)}")


if __name__ == "__main__":
    main()

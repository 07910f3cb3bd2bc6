"""Scan throughput, latency and memory, every figure measured side by side in one run.

    python benchmarks/scan.py [--quick] [--data cifake.zip] [--models seed patchres]

On the official CIFAKE test images (20,000; `--quick`: 2,000), for each model and backend:

- naive: the original way, one file at a time: read, decode (Pillow), resize, then Keras
  `model.predict` on a batch of one; timed on `--naive` files and given as images/s.
- model_only: the pre-decoded uint8 arrays in batches of 256, nothing else.
- scan_zip / scan_folder: `fakelens.scanning.scan.scan` end to end (listing, reading, decoding, scoring,
  writing the CSV), from the zip and from the same images extracted to a temporary folder.
- pipeline_only: the same scans with a model that returns a constant: the scan's own ceiling.

Throughputs are the best of `--repeats` runs, taken in turns (model only, zip scan, folder
scan, and again), so that a slow spell of a shared machine slows them all rather than one. Then latency:
`Detector.predict`, warm, on one 32x32 JPEG and one generated 12-megapixel JPEG (p50/p99); and
memory: the peak RSS of scans of N and 5N files (a list of hard links to the extracted images),
each in a fresh process. `--precision` adds `inference_precision.py`'s comparison (Keras float32
and bf16, ONNX, the CLIP encoder INT8 and float32). Ratios compare figures of this run only. Writes
benchmarks/results/scan.json (scan-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from results_file import save_results

from fakelens.data.decode import load_image
from fakelens.data.layout import is_image_name, resolve_data_path
from fakelens.inference.detector import BACKENDS, Detector, load_detector
from fakelens.models.card import ModelCard
from fakelens.scanning.scan import scan

TARGETS = {"scan_vs_model_only": 0.70, "scan_vs_naive": {"seed": 300, "patchres": 50}}

# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss would include the parent's size at fork.
MEMORY_CHILD = """
import json, sys, time
from pathlib import Path
from fakelens.inference.detector import load_detector
from fakelens.scanning.scan import scan

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))

detector = load_detector(sys.argv[1], backend=sys.argv[2])
detector.predict(sys.argv[3])  # warm: what a loaded model costs, before any scanning
before = peak_mb()
began = time.perf_counter()
summary = scan(detector, "@" + sys.argv[4], Path(sys.argv[5]), quiet=True, resume=False)
print(json.dumps({
    "files": summary.scored + len(summary.failures),
    "seconds": time.perf_counter() - began,
    "peak_rss_mb_before_scan": before,
    "peak_rss_mb": peak_mb(),
}))
"""


def evenly_spread(names: list[str], count: int) -> list[str]:
    """`count` of `names` (all of them when fewer), spread evenly: a deterministic subset."""
    return names[:: max(1, len(names) // count)][:count]


def test_images(data: Path, count: int, tmp: Path) -> tuple[Path, Path, list[str]]:
    """A zip holding `count` test images (the data zip itself when all are used) and a folder
    with the same images extracted."""
    with zipfile.ZipFile(data) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("test/") and is_image_name(n))
        if count < len(names):
            names = evenly_spread(names, count)
            source = tmp / "subset.zip"
            with zipfile.ZipFile(source, "w") as subset:
                for name in names:
                    subset.writestr(name, archive.read(name))
        else:
            source = data
        folder = tmp / "extracted"
        for name in names:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    return source, folder, names


def naive_rate(model, files: list[Path], size: tuple[int, int]) -> float:
    """The original loop: one file, one decode, one resize, one `model.predict` at a time."""
    model.predict(np.zeros((1, *size, 3), np.uint8), verbose=0)  # exclude the one-off tracing
    began = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR))
        model.predict(array[None], verbose=0)
    return len(files) / (time.perf_counter() - began)


def best_rates(runs: dict[str, Callable[[], None]], count: int, repeats: int) -> dict[str, float]:
    """Images per second of the fastest of `repeats` calls of each run, the runs taking turns:
    a slow spell of the machine then slows all of them, not one, and their ratios stay fair."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - began)
    return {name: count / min(times) for name, times in seconds.items()}


def model_only(detector: Detector, images: np.ndarray) -> Callable[[], None]:
    detector.predict_proba(images[: detector.batch_size])
    return lambda: detector.predict_proba(images)


def scanner(detector: Detector, source: Path, out: Path, expected: int) -> Callable[[], None]:
    def run() -> None:
        summary = scan(detector, source, out, include=["test/*"], quiet=True, resume=False)
        if summary.scored != expected:
            raise RuntimeError(f"scan of {source} scored {summary.scored} of {expected} images")

    return run


class ConstantModel:
    """A model that costs nothing: what is left of a scan is reading, decoding and writing."""

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 1), 0.5, dtype=np.float32)


def latency_ms(detector: Detector, data: bytes, repeats: int) -> dict[str, float]:
    for _ in range(3):
        detector.predict(data)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        detector.predict(data)
        times.append((time.perf_counter() - began) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "calls": repeats}


def photo_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel JPEG with smooth shapes and sensor-like noise (encodes like a photo)."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((width, height))
    noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def memory(model: str, backend: str, files: list[Path], counts: list[int], tmp: Path) -> list[dict]:
    """Peak RSS of scans of `counts` files, each in a fresh process, over hard links to `files`."""
    links = tmp / "links"
    paths: list[str] = []
    for copy in range(-(-max(counts) // len(files))):
        for index, path in enumerate(files):
            link = links / str(copy) / f"{index}{path.suffix}"
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, link)
            paths.append(str(link))
    rows = []
    for count in counts:
        listing = tmp / f"paths-{count}.txt"
        listing.write_text("\n".join(paths[:count]) + "\n")
        command = [sys.executable, "-c", MEMORY_CHILD, model, backend, str(files[0]), str(listing)]
        result = subprocess.run(
            [*command, str(tmp / "memory.csv")], capture_output=True, text=True, check=True
        )
        rows.append({"model": model, "backend": backend, **json.loads(result.stdout.splitlines()[-1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CIFAKE zip [default: as for --data]")
    parser.add_argument("--quick", action="store_true", help="2,000 images, short loops: a smoke run")
    parser.add_argument("--models", nargs="+", default=["seed", "patchres"])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--naive", type=int, default=None, help="files timed in the naive loop [300]")
    parser.add_argument("--repeats", type=int, default=None, help="runs per throughput, best kept [3]")
    parser.add_argument(
        "--precision", action="store_true", help="also compare precisions (inference_precision.py)"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="print a results JSON as tables; no run")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    best_of = args.repeats or (2 if args.quick else 3)
    count, naive, repeats = (2000, 30, 50) if args.quick else (20_000, args.naive or 300, 300)
    load_at_start = os.getloadavg()
    result: dict = {
        "command": " ".join(["python", *sys.argv]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "repeats": best_of,
        "throughput": [],
        "latency_ms": [],
    }
    big_jpeg = photo_jpeg()
    with tempfile.TemporaryDirectory(prefix="fakelens-bench-") as tmp_name:
        tmp = Path(tmp_name)
        source, folder, names = test_images(resolve_data_path(args.data), count, tmp)
        files = [folder / name for name in names]
        images = np.stack([load_image(path, (32, 32)) for path in files])
        small_jpeg = files[0].read_bytes()
        constant = Detector(ConstantModel(), ModelCard(name="constant", architecture="constant"))
        result["pipeline_only_per_second"] = best_rates(
            {
                "zip": scanner(constant, source, tmp / "scan.csv", count),
                "folder": scanner(constant, folder, tmp / "scan.csv", count),
            },
            count,
            best_of,
        )
        print(
            "pipeline only (a model that returns a constant): "
            + ", ".join(
                f"{where} {rate:,.0f}/s" for where, rate in result["pipeline_only_per_second"].items()
            )
        )
        for model in args.models:
            keras_model = load_detector(model, backend="keras").model
            naive_per_second = naive_rate(keras_model, files[:naive], (32, 32))
            for backend in args.backends:
                detector = load_detector(model, backend=backend)
                runs = {
                    "model_only": model_only(detector, images),
                    "scan_zip": scanner(detector, source, tmp / "scan.csv", count),
                    "scan_folder": scanner(detector, folder, tmp / "scan.csv", count),
                }
                rates = best_rates(runs, count, best_of)
                row = {
                    "model": model,
                    "backend": backend,
                    "images": count,
                    "naive_keras_per_second": naive_per_second,
                    **{f"{name}_per_second": rate for name, rate in rates.items()},
                }
                for where in ("zip", "folder"):
                    rate = row[f"scan_{where}_per_second"]
                    row[f"scan_{where}_vs_model_only"] = rate / row["model_only_per_second"]
                    row[f"scan_{where}_vs_naive"] = rate / naive_per_second
                result["throughput"].append(row)
                for name, data in (("32x32 jpeg", small_jpeg), ("12 MP jpeg", big_jpeg)):
                    calls = repeats if name == "32x32 jpeg" else repeats // 5
                    timing = latency_ms(detector, data, calls)
                    result["latency_ms"].append({"model": model, "backend": backend, "image": name, **timing})
                report_model(result, model, backend)
        counts = [count, 5 * count]
        result["memory"] = [
            row for backend in args.backends for row in memory("seed", backend, files, counts, tmp)
        ]
    if args.precision:
        from inference_precision import compare as compare_precisions  # it imports this module
        from inference_precision import report as report_precisions

        result["precision"] = compare_precisions(args.models, args.data, args.quick, 200, best_of)
        report_precisions(result["precision"])
    result["load_average"] = {"start": load_at_start, "end": os.getloadavg()}
    path = save_results("scan-quick.json" if args.quick else "scan.json", result)
    for row in result["memory"]:
        print(
            f"memory {row['model']}/{row['backend']}: {row['files']:,} files, "
            f"peak RSS {row['peak_rss_mb']:.0f} MB (after loading: {row['peak_rss_mb_before_scan']:.0f} MB), "
            f"{row['files'] / row['seconds']:,.0f} files/s"
        )
    print(f"load average at start {load_at_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"Results saved to {path}")


def markdown(result: dict) -> str:
    """The README's performance tables, from a results JSON."""
    lines = [
        "| model, backend | naive loop | model only | scan, zip | scan, folder | zip scan / model only "
        "| zip scan / naive | latency 32x32 p50 / p99 | latency 12 MP p50 / p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["throughput"]:
        key = (row["model"], row["backend"])
        small, large = (
            next(t for t in result["latency_ms"] if (t["model"], t["backend"]) == key and t["image"] == image)
            for image in ("32x32 jpeg", "12 MP jpeg")
        )
        lines.append(
            f"| `{row['model']}`, {row['backend']} | {row['naive_keras_per_second']:,.1f}/s "
            f"| {row['model_only_per_second']:,.0f}/s | {row['scan_zip_per_second']:,.0f}/s "
            f"| {row['scan_folder_per_second']:,.0f}/s | {row['scan_zip_vs_model_only']:.2f} "
            f"| {row['scan_zip_vs_naive']:,.0f}x | {small['p50']:.1f} / {small['p99']:.1f} ms "
            f"| {large['p50']:.1f} / {large['p99']:.1f} ms |"
        )
    pipeline = result["pipeline_only_per_second"]
    lines += [
        "",
        f"A scan with a model that returns a constant: {pipeline['zip']:,.0f}/s from the zip, "
        f"{pipeline['folder']:,.0f}/s from the folder.",
    ]
    lines += ["", "| memory: scan of a list of paths | files | peak RSS | RSS after loading the model |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for row in result["memory"]:
        lines.append(
            f"| `{row['model']}`, {row['backend']} | {row['files']:,} | {row['peak_rss_mb']:.0f} MB "
            f"| {row['peak_rss_mb_before_scan']:.0f} MB |"
        )
    return "\n".join(lines)


def report_model(result: dict, model: str, backend: str) -> None:
    row = next(r for r in result["throughput"] if (r["model"], r["backend"]) == (model, backend))
    target = TARGETS["scan_vs_naive"].get(model)
    print(
        f"{model}/{backend}: naive {row['naive_keras_per_second']:,.1f}/s, model only "
        f"{row['model_only_per_second']:,.0f}/s, scan zip {row['scan_zip_per_second']:,.0f}/s, "
        f"folder {row['scan_folder_per_second']:,.0f}/s"
    )
    for where in ("zip", "folder"):
        print(
            f"  scan {where}: {row[f'scan_{where}_vs_model_only']:.2f}x model only "
            f"(target >= {TARGETS['scan_vs_model_only']}), {row[f'scan_{where}_vs_naive']:,.0f}x naive"
            + (f" (target >= {target})" if target else "")
        )
    for timing in (t for t in result["latency_ms"] if (t["model"], t["backend"]) == (model, backend)):
        print(f"  latency {timing['image']}: p50 {timing['p50']:.1f} ms, p99 {timing['p99']:.1f} ms")


if __name__ == "__main__":
    main()

"""Throughput of the real-world model (`clipprobe`) on 1-12 megapixel JPEGs, with peak RSS and
the latency of one 12 MP photo. Writes benchmarks/results/real_world_scan.json.

Model only: prepared 224x224 arrays through `Detector.predict_proba` (the CLIP encoder, one image
per run, as many side by side as there are cores). Scan: end to end over a folder of generated
photos (listing, reading, DCT-scaled decoding, cropping, scoring, writing the CSV). Both take
turns, best of `--repeats`, so their ratio is fair on a noisy machine.

    python benchmarks/real_world_scan.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from results_file import RESULTS
from scan import MEMORY_CHILD, best_rates, latency_ms, model_only, photo_jpeg

from fakelens.inference.detector import load_detector
from fakelens.scanning.scan import scan

#: (width, height) of the generated photos: 1, 3, 6 and 12 megapixels.
SIZES = ((1200, 900), (2000, 1500), (3000, 2000), (4000, 3000))
TARGET_IMAGES_PER_SECOND = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-size", type=int, default=8, help="photos of each size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "real_world_scan.json")
    args = parser.parse_args()
    detector = load_detector("clipprobe")
    with tempfile.TemporaryDirectory(prefix="fakelens-bench-") as folder:
        root = Path(folder)
        photos = root / "photos"
        photos.mkdir()
        files = []
        for width, height in SIZES:
            data = photo_jpeg(width, height)
            for i in range(args.per_size):
                files.append(photos / f"{width}x{height}-{i}.jpg")
                files[-1].write_bytes(data)
        count = len(files)
        prepared = np.stack([detector.prepare(path) for path in files])

        def scan_folder() -> None:
            summary = scan(detector, photos, root / "out.csv", quiet=True, resume=False)
            if summary.scored != count:
                raise RuntimeError(f"scanned {summary.scored} of {count}")

        rates = best_rates(
            {"model_only": model_only(detector, prepared), "scan": scan_folder}, count, args.repeats
        )
        latency = latency_ms(detector, files[-1].read_bytes(), repeats=10)
        listing = root / "paths.txt"
        listing.write_text("\n".join(map(str, files)) + "\n")
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD,
                "clipprobe",
                "onnx",
                str(files[0]),
                str(listing),
                str(root / "m.csv"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        memory = json.loads(child.stdout.strip().splitlines()[-1])
    result = {
        "model": "clipprobe",
        "images": count,
        "sizes_megapixels": [round(w * h / 1e6, 1) for w, h in SIZES],
        "model_only_images_per_second": rates["model_only"],
        "scan_images_per_second": rates["scan"],
        "scan_vs_model_only": rates["scan"] / rates["model_only"],
        "target_images_per_second": TARGET_IMAGES_PER_SECOND,
        "latency_12mp_ms": latency,
        "memory": memory,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Load on `fakelens serve` over loopback: latency, throughput, errors and server memory.

    python benchmarks/serve_load.py [--model patchres] [--small 3000] [--large 200] [--concurrency 16]

Starts the server as a user would (`fakelens serve` on 127.0.0.1, one process), then sends
`--small` requests of one 32x32 CIFAKE test image each (generated images when CIFAKE is
absent), then `--large` requests of one 12-megapixel JPEG each, `--concurrency` at a time.
The server's resident memory is sampled throughout, and the CPU time the server and this
client spend per request is recorded: both share this machine's cores, so the figures are a
floor, and with the client's share they show where the time goes. Writes
benchmarks/results/serve_load_<model>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image
from results_file import save_results

CIFAKE = Path(os.environ.get("FAKELENS_DATA", Path(__file__).parents[1] / "../shared/data/cifake/cifake.zip"))


def small_images(count: int = 200) -> list[bytes]:
    """CIFAKE test JPEGs, or generated 32x32 JPEGs when the data set is absent."""
    if CIFAKE.is_file():
        with zipfile.ZipFile(CIFAKE) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg"))
            return [archive.read(n) for n in names[:: max(1, len(names) // count)][:count]]
    rng = np.random.default_rng(0)
    return [jpeg(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(count)]


def large_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel photo-like JPEG: smooth gradients with fine noise (about 3 MB)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=2)
    noisy = base + rng.normal(0, 6, base.shape).astype(np.float32)
    return jpeg(np.clip(noisy, 0, 255).astype(np.uint8), quality=90)


def jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, port: int, window_ms: float) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "fakelens"), "serve", "--port", str(port), "--model", model]
    command += ["--batch-window-ms", str(window_ms)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
        if process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"the server did not start: {process.stderr.read().decode() if process.stderr else ''}")


class MemorySampler:
    """Peak resident memory of a process, sampled every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> MemorySampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU time used so far by the server and by this client process."""
    server, client = process.cpu_times(), resource.getrusage(resource.RUSAGE_SELF)
    return server.user + server.system, client.ru_utime + client.ru_stime


def timed_load(
    url: str, process: psutil.Process, payloads: list[bytes], requests: int, concurrency: int
) -> dict:
    """`load`, plus the CPU milliseconds the server and the client spent per request."""
    before = cpu_seconds(process)
    result = asyncio.run(load(url, payloads, requests, concurrency))
    after = cpu_seconds(process)
    result["cpu_ms_per_request"] = {
        side: round((a - b) / requests * 1000, 2) for side, a, b in zip(("server", "client"), after, before)
    }
    return result


async def load(url: str, payloads: list[bytes], requests: int, concurrency: int) -> dict:
    """Send `requests` single-file uploads, `concurrency` at a time; latency per request."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            files = [("files", (f"{i}.jpg", payloads[i % len(payloads)], "image/jpeg"))]
            began = time.perf_counter()
            response = await client.post(f"{url}/v1/predict", files=files)
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "errors": requests - statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds, 2),
        "requests_per_second": round(requests / seconds, 1),
        "latency_ms": {
            q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="patchres")
    parser.add_argument("--small", type=int, default=3000, help="requests with one 32x32 image")
    parser.add_argument("--large", type=int, default=200, help="requests with one 12-megapixel JPEG")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-window-ms", type=float, default=5.0)
    args = parser.parse_args()

    small, large = small_images(), [large_jpeg()]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args.model, port, args.batch_window_ms)
    try:
        sampler = MemorySampler(server.pid)
        asyncio.run(load(url, small, 64, 4))  # warm-up: graph tracing, allocator pools
        baseline = sampler.rss()
        with sampler:
            small_result = timed_load(url, sampler.process, small, args.small, args.concurrency)
            after_small = sampler.rss()
            large_result = (
                timed_load(url, sampler.process, large, args.large, args.concurrency) if args.large else {}
            )
        time.sleep(2)
        after = sampler.rss()
    finally:
        server.terminate()
        server.wait(timeout=30)
    mib = 2**20
    result = {
        "model": args.model,
        "batch_window_ms": args.batch_window_ms,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "small_32x32": small_result,
        "large_12mp": {**large_result, "jpeg_bytes": len(large[0])},
        "server_rss_mib": {
            "baseline_after_warmup": round(baseline / mib, 1),
            "after_small": round(after_small / mib, 1),
            "peak": round(sampler.peak / mib, 1),
            "after_all_2s": round(after / mib, 1),
        },
    }
    out = save_results(f"serve_load_{Path(args.model).name.replace('.', '_')}.json", result)
    print(json.dumps(result, indent=2))
    print(f"Results saved to {out}")


if __name__ == "__main__":
    main()

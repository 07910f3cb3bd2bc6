"""Servers for tests: the app around a stand-in model (TestClient), its upload helpers, and real
servers on loopback (a free port, a process that is ready or fails the test, raw requests)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import encode
from fastapi.testclient import TestClient

from fakelens.config import ServeConfig
from fakelens.inference.detector import Detector
from fakelens.models.card import ModelCard
from fakelens.serving.app import create_app

#: A bright JPEG (the stand-in model calls it real) and a dark PNG (AI).
BRIGHT = encode(np.full((32, 32, 3), 230, np.uint8))
DARK = encode(np.full((32, 32, 3), 20, np.uint8), "PNG")


class MeanBrightness:
    """A stand-in model: P(REAL) = mean brightness, so bright images are real. Optionally slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0


def stub_detector(delay_s: float = 0.0) -> Detector:
    card = ModelCard(
        name="stub", architecture="mean-brightness", threshold=0.5, metrics={"test": {"accuracy": 0.5}}
    )
    return Detector(MeanBrightness(delay_s), card, batch_size=2)


def client_for(config: ServeConfig | None = None, detector: Detector | None = None) -> TestClient:
    return TestClient(create_app(config, detector=detector or stub_detector()))


def files(*items: tuple[str, bytes]) -> list:
    """Multipart parts named `files`, one per (name, bytes)."""
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def raw_request(address: tuple[str, int], head: bytes, body_parts: list[bytes], pause_s: float) -> bytes:
    """Send a request's head and body parts with pauses between them; return the response: its
    head, and its body as far as its Content-Length says or the server sends before closing."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(head)
        for part in body_parts:
            time.sleep(pause_s)
            try:
                connection.sendall(part)
            except OSError:  # the server answered and closed already
                break
        answer = connection.recv(65536)
        length = re.search(rb"\r\ncontent-length: *(\d+)\r\n", answer, re.IGNORECASE)
        end = answer.find(b"\r\n\r\n") + 4 + (int(length[1]) if length else 0)
        while len(answer) < end and (more := connection.recv(65536)):
            answer += more
        return answer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(
    command: list[str], port: int, log: Path, *, env: dict[str, str] | None = None, ready_s: float = 60
) -> Iterator[subprocess.Popen]:
    """Run `command`, a server listening on `port` with its output in `log`, from the moment its
    /readyz answers 200 until the block ends; fail the test with the log if it never does."""
    url = f"http://127.0.0.1:{port}/readyz"
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not become ready within {ready_s:g} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)

"""Real servers on loopback for tests: a free port, and a process that is ready or fails the test."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


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

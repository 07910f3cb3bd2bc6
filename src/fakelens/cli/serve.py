"""`serve`: the HTTP API and the web page."""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import urllib.request
from dataclasses import asdict
from typing import Annotated

import typer

from fakelens.cli.app import (
    BackendOption,
    ModelOption,
    TrustModel,
    app,
    open_detector,
    out,
    usage_errors,
)
from fakelens.config import ServeConfig
from fakelens.errors import InvalidArgumentError

#: Seconds between the checks of /readyz that tell when the server is ready.
READY_POLL_S = 0.1


@app.command()
@usage_errors
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8000,
    model: ModelOption = None,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own model.")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest accepted file in MB (larger ones are answered as too large).")
    ] = ServeConfig.max_upload_bytes / 2**20,
    max_files: Annotated[
        int, typer.Option(help="Most files per request (413 above it).")
    ] = ServeConfig.max_files,
    timeout: Annotated[
        float, typer.Option(help="Seconds to receive (408), decode (504) and score (503) an upload.")
    ] = ServeConfig.request_timeout_s,
    batch_window_ms: Annotated[
        float, typer.Option(help="Requests arriving within this many ms share one model call.")
    ] = ServeConfig.batch_window_ms,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Allow browser calls from this origin (repeatable; default none)."),
    ] = None,
    backend: BackendOption = None,
    trust_model: TrustModel = False,
) -> None:
    """Serve the HTTP API (/v1/predict, /v1/model, /docs) and the web page at /.

    Prints one line once the model is loaded and the server listens. Set FAKELENS_API_KEY to
    require `Authorization: Bearer <key>` on /v1/*.
    """
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from fakelens.serving.app import CONFIG_ENV, create_app
    except ImportError as exc:
        raise InvalidArgumentError(
            f"serving needs the serve extra: pip install 'fakelens[serve]' ({exc})"
        ) from None
    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1; received {workers}")
    config = ServeConfig(
        model=model,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_files=max_files,
        request_timeout_s=timeout,
        batch_window_ms=batch_window_ms,
        cors_origins=tuple(cors_origin or ()),
        trust_model=trust_model,
        backend=backend,
    )
    listener = listen(host, port)  # before the model loads: a busy port is told at once
    url, local_url = addresses(host, listener.getsockname()[1])
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    served = "fakelens.serving.app:app_from_env"
    if workers == 1:  # loaded here, a model that cannot load is refused in one line (exit 2), not
        # by the server's start-up with a traceback; more workers each load their own
        served = create_app(config, detector=open_detector(model, trust_model, backend=backend))
    server = uvicorn.Config(
        served, factory=workers > 1, workers=workers, timeout_keep_alive=5, log_level="warning"
    )
    announce_when_ready(url, local_url, workers)
    try:
        if workers == 1:
            uvicorn.Server(server).run(sockets=[listener])
        else:
            Multiprocess(server, sockets=[listener]).run()
    except KeyboardInterrupt:
        pass


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` as uvicorn binds one; a port in use, or an address that
    cannot be listened on, is a one-line usage error."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidArgumentError(
                f"port {port} is already in use on {host}; stop the program using it, or choose "
                "another port with --port"
            ) from None
        raise InvalidArgumentError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port"
        ) from None
    listener.set_inheritable(True)  # worker processes inherit it
    return listener


def addresses(host: str, port: int) -> tuple[str, str]:
    """The server's URL as the user named it, and the one this machine reaches it at (an
    address that means every interface is reached on loopback)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)

    def url(address: str) -> str:
        return f"http://[{address}]:{port}/" if ":" in address else f"http://{address}:{port}/"

    return url(host), url(local)


def announce_when_ready(url: str, local_url: str, workers: int) -> None:
    """Print one line, from a background thread, once /readyz answers: the model is loaded and
    warmed up, and the server listens."""
    first = f", the first of {workers} workers" if workers > 1 else ""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy

    def wait() -> None:
        while True:
            try:
                with direct.open(f"{local_url}readyz", timeout=1) as answer:
                    name = json.load(answer)["model"]
                out.print(f"Ready: model {name}{first}, on {url} (API docs at /docs); Ctrl+C stops.")
                return
            except OSError:  # not listening yet, or 503 while the model loads
                time.sleep(READY_POLL_S)

    threading.Thread(target=wait, name="fakelens-ready", daemon=True).start()

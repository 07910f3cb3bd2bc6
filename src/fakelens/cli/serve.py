"""`serve`: the HTTP API and the web page."""

from __future__ import annotations

import json
import os
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


@app.command()
@usage_errors
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: ModelOption = None,
    workers: Annotated[int, typer.Option(help="Server processes, each with its own model.")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest accepted file in MB (413 above it).")
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

    Set FAKELENS_API_KEY to require `Authorization: Bearer <key>` on /v1/*.
    """
    try:
        import uvicorn

        from fakelens.serving.app import CONFIG_ENV
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
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    served = "fakelens.serving.app:app_from_env"
    if workers == 1:  # loaded here, a model that cannot load is refused in one line (exit 2), not
        # by the server's start-up with a traceback; more workers each load their own
        from fakelens.serving.app import create_app

        served = create_app(config, detector=open_detector(model, trust_model, backend=backend))
    out.print(f"Serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops.")
    uvicorn.run(
        served,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        timeout_keep_alive=5,
        log_level="warning",
    )

"""The FastAPI application: the routes (`routes`), the lifespan that loads the model, the API
key, and the middleware.

`create_app` builds it around a detector loaded in the lifespan (or handed in by tests);
`app_from_env` is the factory uvicorn's worker processes call.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakelens import __version__
from fakelens.config import ServeConfig
from fakelens.heap import map_large_blocks
from fakelens.inference.detector import Detector, load_detector
from fakelens.serving.routes import STATIC, router
from fakelens.serving.service import Service

#: Environment variable holding the API key; when set, /v1/* needs `Authorization: Bearer KEY`.
API_KEY_ENV = "FAKELENS_API_KEY"
#: Environment variable carrying a JSON ServeConfig to uvicorn's worker processes.
CONFIG_ENV = "FAKELENS_SERVE_CONFIG"

logger = logging.getLogger(__name__)


def create_app(config: ServeConfig | None = None, *, detector: Detector | None = None) -> FastAPI:
    """The API around `detector`, or around the model `config.model` loaded at start-up."""
    app = FastAPI(
        title="fakelens",
        version=__version__,
        summary="Tell AI-generated images from real photographs.",
        lifespan=lifespan,
    )
    app.state.config = config or ServeConfig()
    app.state.detector = detector
    app.state.api_key = os.environ.get(API_KEY_ENV) or None
    app.state.service = None
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Each one added wraps the ones before: every answer, a 500 included, gets `nosniff`.
    app.add_middleware(JsonErrors)
    if app.state.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(app.state.config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(NoSniff)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load (or take) the detector, warm it up, and start the service the routes use."""
    config: ServeConfig = app.state.config
    loaded = app.state.detector or await anyio.to_thread.run_sync(
        lambda: load_detector(
            config.model or _default_model(), trust=config.trust_model, backend=config.backend
        )
    )
    await anyio.to_thread.run_sync(loaded.warm_up)
    # TensorFlow and Keras leave millions of long-lived objects; without this, the cyclic
    # garbage collector walks them all now and then, stalling requests by a hundred ms.
    gc.freeze()
    quiet_decoder_warnings()
    map_large_blocks()
    app.state.service = Service.start(loaded, config)
    try:
        yield
    finally:
        app.state.service.close()
        app.state.service = None


def quiet_decoder_warnings() -> None:
    """Keep Pillow's and matplotlib's warnings about uploaded files ("Corrupt EXIF data", a
    large image) off the server's log: they come per request, from data the server does not
    control, and each file's answer already says what could not be read."""
    for module in ("PIL", "matplotlib"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")


def _default_model() -> str:
    from fakelens.weights import DEFAULT_MODEL

    return DEFAULT_MODEL


class NoSniff:
    """Tell browsers never to guess a response's type (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_header if scope["type"] == "http" else send)


class JsonErrors:
    """The last line of defence: an unexpected exception is logged here, with its traceback,
    and answered as a JSON 500 that shows none of it (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch_start)
        except Exception:
            logger.exception("unexpected failure answering %s %s", scope["method"], scope["path"])
            if started:  # too late for a clean answer: the server closes the connection
                raise
            detail = "internal error: the failure is logged on the server; retry, or report it"
            response = JSONResponse({"detail": detail}, status_code=500)
            await response(scope, receive, send)


def app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker process: the config travels as JSON."""
    raw = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    raw["cors_origins"] = tuple(raw.get("cors_origins", ()))
    return create_app(ServeConfig(**raw))

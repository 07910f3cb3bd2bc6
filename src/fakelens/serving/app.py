"""The FastAPI application: routes, limits, API key, and the web page at `/`.

`create_app` builds it around a detector loaded in the lifespan (or handed in by tests);
`app_from_env` is the factory uvicorn's worker processes call.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakelens import __version__
from fakelens.config import ServeConfig
from fakelens.data.decode import NOT_AN_IMAGE
from fakelens.errors import InvalidArgumentError
from fakelens.heap import map_large_blocks
from fakelens.inference.detector import Detector, load_detector
from fakelens.serving.decoding import Busy
from fakelens.serving.schemas import ExplainResponse, ModelInfo, PredictResponse, Problem, Result
from fakelens.serving.service import ScoringTimeout, Service, timed_out
from fakelens.serving.uploads import Upload, UploadRejected, read_uploads

#: Environment variable holding the API key; when set, /v1/* needs `Authorization: Bearer KEY`.
API_KEY_ENV = "FAKELENS_API_KEY"
#: Environment variable carrying a JSON ServeConfig to uvicorn's worker processes.
CONFIG_ENV = "FAKELENS_SERVE_CONFIG"
STATIC = Path(__file__).parent / "static"
#: The page loads nothing from elsewhere; images shown are the user's own (blob:) or ours (data:).
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)

#: Seconds a client should wait before retrying a request refused as busy.
RETRY_AFTER_S = 5

logger = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False)
T = TypeVar("T")


# Dependencies are `async def` although they never wait: FastAPI runs a plain `def` dependency
# in a worker thread, a hop that costs more than the check itself on every request.
async def get_service(request: Request) -> Service:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "the model is still loading")
    return service


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected = request.app.state.api_key
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})


ServiceDep = Annotated[Service, Depends(get_service)]


async def receive_uploads(request: Request, service: ServiceDep) -> list[Upload]:
    """The request's files, within the size, count and time limits."""
    config = service.config
    try:
        return await asyncio.wait_for(
            read_uploads(request, max_files=config.max_files, max_bytes=config.max_upload_bytes),
            config.request_timeout_s,
        )
    except asyncio.TimeoutError:
        raise HTTPException(408, f"upload not received within {config.request_timeout_s:g} s") from None
    except UploadRejected as exc:
        raise HTTPException(exc.status, exc.detail) from None


def failure_status(errors: list[str], timeout_s: float) -> int:
    """200 when any file was judged; else 415 if none was an image at all, 504 if a file ran
    out of time (it may be judged when the server is less busy), else 422."""
    if not errors or None in errors:
        return 200
    if all(error == NOT_AN_IMAGE for error in errors):
        return 415
    return 504 if timed_out(timeout_s) in errors else 422


async def json_response(build: Callable[[], BaseModel], status: int) -> JSONResponse:
    """The model `build()` makes, as JSON, built on a worker thread: a body of many records with
    their evidence takes long enough to render that it would stall the event loop (/healthz)."""
    return await anyio.to_thread.run_sync(
        lambda: JSONResponse(build().model_dump(exclude_unset=True), status_code=status)
    )


def create_app(config: ServeConfig | None = None, *, detector: Detector | None = None) -> FastAPI:
    """The API around `detector`, or around the model `config.model` loaded at start-up."""
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = detector or await anyio.to_thread.run_sync(
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

    app = FastAPI(
        title="fakelens",
        version=__version__,
        summary="Tell AI-generated images from real photographs.",
        lifespan=lifespan,
    )
    app.state.api_key = os.environ.get(API_KEY_ENV) or None
    app.state.service = None
    app.add_middleware(JsonErrors)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )
    _add_api(app)
    _add_page(app)
    return app


def quiet_decoder_warnings() -> None:
    """Keep Pillow's and matplotlib's warnings about uploaded files ("Corrupt EXIF data", a
    large image) off the server's log: they come per request, from data the server does not
    control, and each file's answer already says what could not be read."""
    for module in ("PIL", "matplotlib"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")


def _default_model() -> str:
    from fakelens.weights import DEFAULT_MODEL

    return DEFAULT_MODEL


def _add_api(app: FastAPI) -> None:
    protected = [Depends(require_api_key)]
    errors = {
        status: {"model": Problem, "description": text}
        for status, text in {
            400: "Not a multipart upload, or a malformed one.",
            401: "API key required (FAKELENS_API_KEY is set) and missing or wrong.",
            408: "The upload was not received in time.",
            413: "A file over the size limit, or too many files.",
            500: "An unexpected failure (logged on the server, never shown).",
            503: "The model is loading or overloaded, or too many files are being decoded.",
        }.items()
    }

    def upload_errors(body: type, not_image: str, undecodable: str, late: str) -> dict:
        """The error statuses of an upload route; 415, 422 and 504 answer with the route's own
        body."""
        return {
            **errors,
            415: {"model": body, "description": not_image},
            422: {"model": body, "description": undecodable},
            504: {"model": body, "description": late},
        }

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        dependencies=protected,
        responses=upload_errors(
            PredictResponse,
            "No file was an image.",
            "No file could be decoded.",
            "No file could be decoded, some not within the request timeout.",
        ),
    )
    async def predict(
        service: ServiceDep,
        uploads: Annotated[list[Upload], Depends(receive_uploads)],
        evidence: Annotated[bool, Query(description="Add each file's metadata findings.")] = False,
    ) -> JSONResponse:
        """Judge one or more images sent as multipart parts named `files`.

        Each file gets a record; a file that cannot be read, or not within the request timeout,
        gets its reason in `error` while the others are still judged.
        """
        records = await run_service(service.predict(uploads, evidence=evidence))

        def body() -> PredictResponse:
            return PredictResponse(
                model=service.detector.name,
                threshold=service.detector.card.threshold,
                results=[Result(**record.to_dict()) for record in records],
            )

        timeout = service.config.request_timeout_s
        return await json_response(body, failure_status([record.error for record in records], timeout))

    @app.post(
        "/v1/explain",
        response_model=ExplainResponse,
        dependencies=protected,
        responses={
            **upload_errors(
                ExplainResponse,
                "The file is not an image.",
                "The file could not be decoded.",
                "The file was not decoded within the request timeout.",
            ),
            501: {"model": Problem, "description": "No heatmap can be made for this model."},
        },
    )
    async def explain(
        service: ServiceDep, uploads: Annotated[list[Upload], Depends(receive_uploads)]
    ) -> JSONResponse:
        """Judge one image and show why: a heatmap overlay (Grad-CAM for Keras CNNs, occlusion for
        other models) and its metadata evidence."""
        if len(uploads) != 1:
            raise HTTPException(400, f"send exactly one image to /v1/explain; received {len(uploads)}")
        try:
            explained = await run_service(service.explain(uploads[0]))
        except InvalidArgumentError as exc:
            raise HTTPException(501, str(exc)) from None
        overlay = explained.overlay_png

        def body() -> ExplainResponse:
            return ExplainResponse(
                model=service.detector.name,
                threshold=service.detector.card.threshold,
                result=Result(**explained.record.to_dict()),
                heatmap_png=base64.b64encode(overlay).decode("ascii") if overlay else None,
                heatmap_layer=explained.layer,
                heatmap_method=explained.method,
            )

        status = failure_status([explained.record.error], service.config.request_timeout_s)
        return await json_response(body, status)

    @app.get("/v1/model", response_model=ModelInfo, dependencies=protected, responses=errors)
    async def model_info(service: ServiceDep) -> ModelInfo:
        """The model card: what the model is, how it was trained, and what it measured."""
        card = asdict(service.detector.card)
        del card["output"]  # an internal convention; the API speaks only of ai_probability
        return ModelInfo(**card, fakelens_version=__version__)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": Problem}})
    async def readyz(request: Request) -> dict[str, str]:
        """The model is loaded and the batcher is running."""
        service = await get_service(request)
        if not service.batcher.alive:
            raise HTTPException(503, "the model worker has stopped")
        return {"status": "ready", "model": service.detector.name}


async def run_service(work: Awaitable[T]) -> T:
    """`work`'s result; 503 when the model is overloaded or the decoding pool is full."""
    try:
        return await work
    except ScoringTimeout as exc:
        raise HTTPException(503, str(exc)) from None
    except Busy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}) from None


def _add_page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(NoSniff)


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

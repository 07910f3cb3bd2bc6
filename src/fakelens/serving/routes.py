"""The HTTP routes: the API under /v1, the health checks, and the web page at `/`.

They are plain functions on one `router`. The service they work through comes from
`get_service` (the app's state, set in its lifespan), so a test can hand in another with
`app.dependency_overrides[get_service]`.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from fakelens import __version__
from fakelens.data.decode import NOT_AN_IMAGE
from fakelens.errors import InvalidArgumentError
from fakelens.record import Prediction
from fakelens.serving.card_summary import summarize
from fakelens.serving.decoding import Busy
from fakelens.serving.schemas import ExplainResponse, ModelInfo, PredictResponse, Problem, Result
from fakelens.serving.service import ScoringTimeout, Service, timed_out
from fakelens.serving.uploads import Upload, UploadRejected, read_uploads

STATIC = Path(__file__).parent / "static"
#: The page loads nothing from elsewhere; images shown are the user's own (blob:) or ours (data:).
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
#: Seconds a client should wait before retrying a request refused as busy.
RETRY_AFTER_S = 5

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)
T = TypeVar("T")


# Dependencies are `async def` although they never wait: FastAPI runs a plain `def` dependency
# in a worker thread, a hop that costs more than the check itself on every request.
async def get_service(request: Request) -> Service:
    """The service the lifespan started; 503 until it has."""
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


def failure_status(records: list[Prediction], uploads: list[Upload], timeout_s: float) -> int:
    """200 when any file was judged; else 413 if every file was over the size limit, 415 if
    none was an image at all, 504 if a file ran out of time (it may be judged when the server
    is less busy), else 422."""
    errors = [record.error for record in records]
    if None in errors:
        return 200
    if all(upload.rejected for upload in uploads):
        return 413
    if all(error == NOT_AN_IMAGE for error in errors):
        return 415
    return 504 if timed_out(timeout_s) in errors else 422


async def json_response(build: Callable[[], BaseModel], status: int) -> JSONResponse:
    """The model `build()` makes, as JSON, built on a worker thread: a body of many records with
    their evidence takes long enough to render that it would stall the event loop (/healthz)."""
    return await anyio.to_thread.run_sync(
        lambda: JSONResponse(build().model_dump(exclude_unset=True), status_code=status)
    )


async def run_service(work: Awaitable[T]) -> T:
    """`work`'s result; 503 when the model is overloaded or the decoding pool is full."""
    try:
        return await work
    except ScoringTimeout as exc:
        raise HTTPException(503, str(exc)) from None
    except Busy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}) from None


PROTECTED = [Depends(require_api_key)]
ERRORS: dict[int | str, dict] = {
    status: {"model": Problem, "description": text}
    for status, text in {
        400: "Not a multipart upload, a malformed one, or a part not named `files` or `file`.",
        401: "API key required (FAKELENS_API_KEY is set) and missing or wrong.",
        408: "The upload was not received in time.",
        413: "Too many files, or more bytes than any request may carry; the detail names the file.",
        500: "An unexpected failure (logged on the server, never shown).",
        503: "The model is loading or overloaded, or too many files are being decoded.",
    }.items()
}


def upload_errors(body: type, too_large: str, not_image: str, undecodable: str, late: str) -> dict:
    """The error statuses of an upload route; 415, 422, 504 and a 413 for files over the size
    limit answer with the route's own body, so that each file's reason reads the same way."""
    return {
        **ERRORS,
        413: {"model": body | Problem, "description": f"{too_large} Otherwise: {ERRORS[413]['description']}"},
        415: {"model": body, "description": not_image},
        422: {"model": body, "description": undecodable},
        504: {"model": body, "description": late},
    }


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    dependencies=PROTECTED,
    responses=upload_errors(
        PredictResponse,
        "Every file was over the size limit (each record says so).",
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
    """Judge one or more images sent as multipart parts named `files` (or `file`).

    Each file gets a record, in order; a file that cannot be read, is over the size limit, or is
    not read within the request timeout gets its reason in `error` while the others are judged.
    """
    records = await run_service(service.predict(uploads, evidence=evidence))

    def body() -> PredictResponse:
        return PredictResponse(
            model=service.detector.name,
            threshold=service.detector.card.threshold,
            results=[Result(**record.to_dict()) for record in records],
        )

    return await json_response(body, failure_status(records, uploads, service.config.request_timeout_s))


@router.post(
    "/v1/explain",
    response_model=ExplainResponse,
    dependencies=PROTECTED,
    responses={
        **upload_errors(
            ExplainResponse,
            "The file was over the size limit (the record says so).",
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

    status = failure_status([explained.record], uploads, service.config.request_timeout_s)
    return await json_response(body, status)


@router.get("/v1/model", response_model=ModelInfo, dependencies=PROTECTED, responses=ERRORS)
async def model_info(service: ServiceDep) -> ModelInfo:
    """The model card: what the model is, how it was trained, what it measured, and the same in
    plain words (`summary`: what it learned from and where it is weak)."""
    card = service.detector.card
    fields = asdict(card)
    del fields["output"]  # an internal convention; the API speaks only of ai_probability
    return ModelInfo(**fields, summary=summarize(card), fakelens_version=__version__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": Problem}})
async def readyz(service: ServiceDep) -> dict[str, str]:
    """The model is loaded and the batcher is running."""
    if not service.batcher.alive:
        raise HTTPException(503, "the model worker has stopped")
    return {"status": "ready", "model": service.detector.name}


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> FileResponse:
    """The web page (HEAD too, for uptime checks), under a policy that allows only our files."""
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The page's icon, for clients that ask for it by its traditional name."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

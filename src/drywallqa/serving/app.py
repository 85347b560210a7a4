"""The HTTP service: ``POST /v1/segment``, ``GET /healthz``, ``GET /v1/models`` and a web page.

Build it with :func:`create_app` and run it with any ASGI server (``drywallqa serve`` uses
uvicorn). The model is loaded once, on the first request that needs it (or up front when a
:class:`~drywallqa.inference.Predictor` is passed in), and shared by all requests.

Heavy work never runs on the event loop. A request's work (decoding the upload, its share of a
model call, QA figures and mask encoding) runs in a worker thread, at most
``max_concurrent_predictions`` requests at a time, with at most ``max_queued`` waiting for a slot;
a request beyond that is answered at once with 503 and ``Retry-After``, so a burst never piles up
memory or turns into a wall of 504s. The model itself runs in one thread of its own, a
:class:`~drywallqa.serving.batching.MicroBatcher` that batches the images of the requests in
flight (up to ``max_batch``), so concurrent requests share model calls. Large uploads are decoded
reduced (:func:`drywallqa.files.read_photo`).

Every error is JSON ``{"error": {"status": 4xx, "code": "...", "message": "..."}}``:

=====  ===================================================================================
400    the body is not valid multipart/form-data
408    the request body did not arrive within ``body_timeout_s``
413    request body over ``max_upload_mb``, or an image over ``max_image_pixels``
415    the ``image`` upload is not a readable image (or a corrupt JPEG)
422    missing ``image``/``prompt``; empty, overlong or too many prompts; bad ``mask_format``
       or ``mm_per_px``; an image under :data:`~drywallqa.files.MIN_IMAGE_SIDE`; with
       ``strict_prompts``, a prompt that names no known class
404    unknown ``model`` (or path)
503    the model could not be loaded, or the work queue is full (with ``Retry-After``)
504    the prediction took longer than ``timeout_s``
=====  ===================================================================================
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from drywallqa import __version__
from drywallqa.data.masks import mask_to_rle
from drywallqa.serving.extra import serve_install_command
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError, DrywallQAError, ImageSizeError
from drywallqa.files import Photo, read_photo
from drywallqa.inference import Predictor, check_prompt
from drywallqa.serving.batching import MicroBatcher, QueueFull
from drywallqa.serving.predict import results_archive
from drywallqa.serving.qa import inspect_mask, prompt_class, unknown_prompt_message
from drywallqa.serving.render import (
    FIGURE_SET_COLOURS,
    jpeg_bytes,
    mask_png_bytes,
    render_overlay,
)
from drywallqa.serving.thresholds import QAThresholds

MASK_FORMATS = ("rle", "png")
MAX_PROMPT_LENGTH = 200
# Form fields (prompts, flags) ride along with the image; allow them this much beyond the image limit.
FORM_FIELDS_ALLOWANCE = 64 * 1024
# Files of the web page, served from the package: name -> media type.
# Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes; the 4.x of `swagger-ui-bundle` cannot),
# served from the `fastapi-offline` package so /docs works without a CDN (the service usually runs
# next to a camera, offline).
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
               "favicon.png": "image/png"}
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.ico": "image/x-icon"}
# The page loads nothing from elsewhere: scripts, styles and images come from this server or
# are data:/blob: URLs made by the page itself.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")


# -- model ---------------------------------------------------------------------------------------
class ModelHolder:
    """Loads the predictor once, on first use, safely from many threads.

    Args:
        predictor: An already built predictor (then nothing is loaded).
        spec: Model spec for ``loader`` (None: the shipped model).
        loader: ``loader(spec) -> Predictor``; :func:`drywallqa.inference.load_predictor` with
            ``predictor_kwargs`` by default.
        predictor_kwargs: Passed to the default loader (``threshold``, ``device``, ...).
    """

    def __init__(self, predictor: Predictor | None = None, spec: str | None = None,
                 loader: Callable[[str | None], Predictor] | None = None, **predictor_kwargs: Any):
        self._predictor = predictor
        self._given = predictor is not None
        self.spec = spec
        self._loader = loader
        self._predictor_kwargs = predictor_kwargs
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """Whether the predictor is in memory."""
        return self._predictor is not None

    def get(self) -> Predictor:
        """The predictor, loading it on the first call (other callers wait for that load).

        Raises:
            DrywallQAError: If loading fails (the next call tries again).
        """
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:  # another thread may have loaded it while we waited
                    started = time.perf_counter()
                    if self._loader is not None:
                        predictor = self._loader(self.spec)
                    else:
                        from drywallqa.inference import load_predictor

                        predictor = load_predictor(self.spec, **self._predictor_kwargs)
                    self.load_seconds = time.perf_counter() - started
                    self._predictor = predictor
        return self._predictor

    def describe(self, model_id: str) -> dict:
        """JSON description for ``GET /v1/models`` (does not load the model)."""
        spec = self.spec or ("predictor given to create_app" if self._given else "shipped default")
        info: dict[str, Any] = {"id": model_id, "spec": spec, "loaded": self.loaded}
        if self._predictor is not None:
            predictor = self._predictor
            info.update(architecture=getattr(predictor, "name", type(predictor).__name__),
                        threshold=float(getattr(predictor, "threshold", 0.5)),
                        thresholds=dict(getattr(predictor, "thresholds", {})),
                        image_size=getattr(predictor, "image_size", None))
        return info


# -- response models (they document the API in /openapi.json) ------------------------------------
class ErrorDetail(BaseModel):
    status: int = Field(description="HTTP status code")
    code: str = Field(description="machine-readable kind, e.g. 'payload_too_large'")
    message: str = Field(description="what went wrong and what to do about it")


class ErrorBody(BaseModel):
    error: ErrorDetail


class MaskPayload(BaseModel):
    format: Literal["rle", "png"]
    size: list[int] = Field(description="[height, width]")
    counts: str | None = Field(None, description="compressed COCO RLE counts (format 'rle'; decode with pycocotools)")
    base64: str | None = Field(None, description="8-bit PNG, 0 background / 255 mask, base64 (format 'png')")


class ImagePayload(BaseModel):
    media_type: str
    base64: str


class SegmentResult(BaseModel):
    prompt: str
    class_: str | None = Field(None, alias="class", description="prompt class, null when the prompt names none")
    prompt_known: bool = Field(description="false when the prompt names no known class: no QA rules apply and the "
                               "model was not trained for it (see 'warnings')")
    figure_set: str = Field(description="crack | joint | area")
    figures: dict[str, float | int | None] = Field(description="QA figures (see docs/serving.md)")
    verdict: str = Field(description="fail | pass | unchecked")
    reasons: list[str]
    severity: float
    checked: list[str]
    mask: MaskPayload
    overlay: ImagePayload | None = None


class SegmentResponse(BaseModel):
    model: str
    image: dict[str, Any] = Field(description="filename, width and height of the upload, and decoded_width and "
                                  "decoded_height: the size masks and overlays are given at (a large photo is decoded "
                                  "reduced; figures stay in the upload's pixels)")
    mm_per_px: float | None
    results: list[SegmentResult]
    warnings: list[str] = Field(description="one line per prompt that names no known class")
    timing_ms: dict[str, float]


# -- errors ---------------------------------------------------------------------------------------
_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
          413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable", 500: "internal_error",
          503: "unavailable", 504: "timeout"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": _CODES.get(status, "error"), "message": message}},
                        status_code=status, headers=headers)


# A body left unread ends its connection: the client's next bytes would be read as a new request.
_CLOSE = {"Connection": "close"}


class _BodyLimits:
    """ASGI middleware: 413 for request bodies over ``limit`` bytes, before they are read whole, and
    408 for a body that has not fully arrived ``timeout_s`` after the request started (a client
    trickling its upload holds a connection and a parser; the server's header deadline covers
    what comes before).

    A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked)
    is counted as it arrives. ``path_limits`` gives some paths limits of their own (``/v1/export``
    takes a whole batch's masks and overlays): ``{path: (bytes, megabytes for messages)}``.
    """

    def __init__(self, app, limit: int, limit_mb: float, timeout_s: float,
                 path_limits: dict[str, tuple[int, float]] | None = None):
        self.app = app
        self.limits = (limit, limit_mb)
        self.path_limits = path_limits or {}
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, limit_mb = self.path_limits.get(scope.get("path", ""), self.limits)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _error(413, self._message(int(declared), limit_mb), headers=_CLOSE)(scope, receive, send)
        received = 0
        deadline = time.monotonic() + self.timeout_s
        body_done = False

        async def counting_receive():
            nonlocal received, body_done
            if body_done:  # after the body: only http.disconnect comes, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s", headers=_CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, self._message(received, limit_mb), headers=_CLOSE)
                body_done = not message.get("more_body", False)
            return message

        return await self.app(scope, counting_receive, send)

    @staticmethod
    def _message(size: int, limit_mb: float) -> str:
        return f"request body is {size / 1e6:.2g} MB; the limit is {limit_mb:g} MB (send a smaller or more compressed image)"


class _WorkQueue:
    """At most ``slots`` functions running in worker threads at once (per event loop), and at most
    ``max_waiting`` callers waiting for a slot: one more gets
    :class:`~drywallqa.serving.batching.QueueFull` at once.

    A caller waiting for a slot holds no thread and no decoded image, so a request that times out
    while queued costs nothing. A function already running cannot be stopped: on time-out its
    caller gets the error at once, the thread finishes in the background and frees its slot then.
    (One semaphore per loop because an asyncio semaphore belongs to the loop it was first used in,
    and test clients run each client in a loop of its own.)
    """

    def __init__(self, slots: int, max_waiting: int):
        self.slots = slots
        self.max_waiting = max_waiting
        self.waiting = 0
        # Threads of their own: asyncio's default pool has min(32, cores + 4) threads, fewer than
        # the requests that may be in flight, each waiting for its batched model call.
        self.executor = ThreadPoolExecutor(slots, thread_name_prefix="drywallqa-request")
        self.mean_seconds = 1.0  # moving average of a function's run time, for Retry-After
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [other for other in self._semaphores if other.is_closed()]:
                del self._semaphores[stale]
            return self._semaphores.setdefault(loop, asyncio.Semaphore(self.slots))

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one caller."""
        return max(1, math.ceil(self.mean_seconds * (self.waiting + self.slots) / self.slots))

    async def run(self, function: Callable[[], Any]) -> Any:
        semaphore = self._semaphore()
        with self._lock:
            if semaphore.locked() and self.waiting >= self.max_waiting:
                raise QueueFull(self.retry_after())
            self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        started = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(self.executor, function)

        def finished(future: asyncio.Future) -> None:
            semaphore.release()
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.perf_counter() - started)
            if not future.cancelled():
                future.exception()  # mark retrieved: a timed-out caller no longer awaits it

        work.add_done_callback(finished)
        return await asyncio.shield(work)


class _Batching:
    """The :class:`~drywallqa.serving.batching.MicroBatcher` of the served predictor, made once the
    model is loaded (requests are never refused by it: the work queue bounds what is in flight)."""

    def __init__(self, holder: ModelHolder, max_batch: int | None, max_wait_s: float, max_pairs: int):
        self.holder, self.max_batch, self.max_wait_s, self.max_pairs = holder, max_batch, max_wait_s, max_pairs
        self.batcher: MicroBatcher | None = None
        self._lock = threading.Lock()

    def get(self) -> MicroBatcher:
        if self.batcher is None:
            predictor = self.holder.get()
            with self._lock:
                if self.batcher is None:
                    self.batcher = MicroBatcher(predictor, max_batch=self.max_batch, max_wait_s=self.max_wait_s,
                                                max_queued=self.max_pairs)
        return self.batcher

    def describe(self) -> dict:
        """Batch settings and what the model thread has done, for ``GET /v1/models``."""
        batcher = self.batcher
        if batcher is None:
            return {"max_batch": self.max_batch, "max_wait_ms": round(1000 * self.max_wait_s, 3), "calls": 0}
        stats = batcher.stats
        return {"max_batch": batcher.max_batch, "max_wait_ms": round(1000 * self.max_wait_s, 3), "calls": stats.calls,
                "pairs": stats.pairs, "mean_batch": round(stats.mean_batch, 2)}


# -- app ------------------------------------------------------------------------------------------
def create_app(
    predictor: Predictor | None = None,
    model_spec: str | None = None,
    *,
    model_id: str = "default",
    max_upload_mb: float = 10.0,
    timeout_s: float = 30.0,
    max_image_pixels: int = 40_000_000,
    max_prompts: int = 8,
    max_concurrent_predictions: int = 8,
    max_queued: int = 16,
    max_batch: int | None = None,
    batch_wait_s: float = 0.005,
    body_timeout_s: float = 60.0,
    max_export_mb: float = 200.0,
    strict_prompts: bool = False,
    thresholds: QAThresholds | None = None,
    prompt_config: PromptConfig | None = None,
    **predictor_kwargs: Any,
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        predictor: The predictor to serve; when None, ``model_spec`` is loaded on first use.
        model_spec: Model folder for :func:`~drywallqa.inference.load_predictor` (None: the
            shipped model). Ignored when ``predictor`` is given.
        model_id: Name clients use in the ``model`` field and ``GET /v1/models``.
        max_upload_mb: Largest accepted request body, in megabytes (10⁶ bytes).
        timeout_s: Longest time a prediction may take (waiting for a free slot included).
        max_image_pixels: Largest accepted image, width × height (decoding bombs are refused).
        max_prompts: Most prompts in one request.
        max_concurrent_predictions: Requests processed at once (decoding, waiting for their share
            of a batched model call, measuring); more wait. Their images are batched together, so
            this bounds the batches as well as the memory of decoded uploads.
        max_queued: Requests that may wait for a slot; more get 503 with ``Retry-After`` at once.
        max_batch: Most images per model call; the predictor's ``batch_size`` by default.
        batch_wait_s: Longest wait for a batch to fill once a request is ready and the model idle.
        body_timeout_s: Longest time a request body may take to arrive (408 after it).
        max_export_mb: Largest body of ``POST /v1/export`` (a batch's masks and overlays), in MB.
        strict_prompts: Answer 422 to a prompt that names no known class (by default it is
            answered, with ``prompt_known: false`` and a line in ``warnings``); a request's
            ``strict_prompts`` field overrides it.
        thresholds: QA figure sets and rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        **predictor_kwargs: For the lazy loader (``threshold``, ``device``, ...).

    Returns:
        The app; ``app.state.model`` is its :class:`ModelHolder`.
    """
    if max_upload_mb <= 0 or timeout_s <= 0 or body_timeout_s <= 0 or max_prompts < 1 or max_concurrent_predictions < 1 \
            or max_queued < 0 or (max_batch is not None and max_batch < 1) or batch_wait_s < 0 or max_export_mb <= 0:
        raise ConfigError("max_upload_mb, timeout_s and body_timeout_s must be positive, max_prompts, "
                          "max_concurrent_predictions and max_batch >= 1, max_queued and batch_wait_s >= 0")
    holder = ModelHolder(predictor, model_spec, **predictor_kwargs)
    batching = _Batching(holder, max_batch, batch_wait_s, max_concurrent_predictions * max_prompts)
    thresholds = thresholds or QAThresholds.default()
    prompt_config = prompt_config or PromptConfig.default()
    upload_limit = int(max_upload_mb * 1e6)
    max_export_items = 4000
    work_queue = _WorkQueue(max_concurrent_predictions, max_queued)

    docs_assets = _swagger_ui_folder()
    strict_default = strict_prompts
    app = FastAPI(
        title="drywallqa",
        version=__version__,
        description="Text-prompted segmentation of drywall photos with QA figures and pass/fail verdicts. "
        "Errors are JSON `{\"error\": {status, code, message}}`.",
        docs_url=None,  # our own /docs below: Swagger UI from the package, never from a CDN
        redoc_url=None,  # /docs and /openapi.json cover the API
    )
    app.state.model = holder
    app.state.model_id = model_id
    app.state.work_queue = work_queue
    app.state.batching = batching
    app.add_middleware(_BodyLimits, limit=upload_limit + FORM_FIELDS_ALLOWANCE, limit_mb=max_upload_mb,
                       timeout_s=body_timeout_s, path_limits={"/v1/export": (int(max_export_mb * 1e6), max_export_mb)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such path {request.url.path}; see /docs or /openapi.json"
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err.get("loc", ())[1:]) or "request"
            problems.append(f"{field}: {err.get('msg', 'invalid')}")
        hint = " (send multipart/form-data with a file field 'image' and one or more 'prompt' fields)"
        return _error(422, "; ".join(problems) + hint)

    # -- page -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return _static_response("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name!r}")
        return _static_response(name)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return _static_response("favicon.ico")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        if docs_assets is None:
            raise HTTPException(404, "the API page needs the fastapi-offline package: "
                                f"{serve_install_command()} (the schema is at /openapi.json)")
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js", swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/docs-assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if docs_assets is None or name not in DOCS_ASSETS:
            raise HTTPException(404, f"no docs asset {name!r}")
        return Response(content=(docs_assets / name).read_bytes(), media_type=DOCS_ASSETS[name],
                        headers={"Cache-Control": "max-age=86400"})

    # -- API ------------------------------------------------------------------------------------
    @app.get("/healthz", summary="Liveness and model state")
    def healthz() -> dict:
        return {"status": "ok", "version": __version__, "model": model_id, "model_loaded": holder.loaded}

    @app.get("/v1/models", summary="Models this server serves")
    def models() -> dict:
        return {"default": model_id, "models": [{**holder.describe(model_id), "batching": batching.describe()}]}

    @app.get("/v1/models/{name}", summary="One model", responses={404: {"model": ErrorBody}})
    def model_info(name: str) -> dict:
        _check_model(name, model_id)
        return holder.describe(model_id)

    @app.post(
        "/v1/segment",
        summary="Segment an image with text prompts; QA figures, verdicts and masks",
        response_model=SegmentResponse,
        response_model_by_alias=True,
        responses={status: {"model": ErrorBody} for status in (400, 404, 408, 413, 415, 422, 503, 504)},
    )
    async def segment(
        image: Annotated[UploadFile, File(description="the photo (JPEG, PNG, WebP, BMP, TIFF)")],
        prompt: Annotated[list[str], Form(description="one or more prompts, e.g. 'segment crack'")],
        mask_format: Annotated[str, Form(description="'rle' (COCO compressed RLE) or 'png' (base64 PNG)")] = "rle",
        mm_per_px: Annotated[float | None, Form(description="image scale in millimetres per pixel: adds mm figures")] = None,
        overlay: Annotated[bool, Form(description="also return the overlay as a base64 JPEG")] = False,
        model: Annotated[str | None, Form(description="model id; the served one by default (see /v1/models)")] = None,
        strict_prompts: Annotated[bool | None, Form(description="answer 422 to a prompt that names no known class "
                                                     "(default: the server's --strict-prompts)")] = None,
    ):
        started = time.perf_counter()
        if model:
            _check_model(model, model_id)
        prompts = _check_prompts(prompt, max_prompts)
        if mask_format not in MASK_FORMATS:
            raise HTTPException(422, f"mask_format must be one of {', '.join(MASK_FORMATS)}, got {mask_format!r}")
        if mm_per_px is not None and not (np.isfinite(mm_per_px) and mm_per_px > 0):
            raise HTTPException(422, f"mm_per_px must be a positive number, got {mm_per_px}")
        unknown = [p for p in prompts if prompt_class(p, prompt_config) is None]
        warnings = [unknown_prompt_message(p, prompt_config) for p in unknown]
        if unknown and (strict_prompts if strict_prompts is not None else strict_default):
            raise HTTPException(422, f"prompt: {warnings[0]} (strict_prompts is on)")
        data = await image.read()
        if len(data) > upload_limit:
            raise HTTPException(413, f"image is {len(data) / 1e6:.1f} MB; the limit is {max_upload_mb:g} MB")
        if not data:
            raise HTTPException(422, "image: the uploaded file is empty")
        _check_upload_header(data, image.filename or "upload", max_image_pixels)
        try:
            batcher = batching.batcher or await asyncio.to_thread(batching.get)
        except DrywallQAError as exc:
            raise HTTPException(503, f"model {model_id!r} could not be loaded: {exc}") from exc
        loaded = time.perf_counter()
        timing: dict[str, float] = {}

        def decode_predict_and_inspect() -> tuple[Photo, list[dict]]:
            # Decoding a large photo is heavy work too: inside the queue, off the event loop.
            started_work = time.perf_counter()
            photo = _decode_upload(data, image.filename or "upload")
            timing["decode"] = time.perf_counter() - started_work
            pixels = photo.pixels
            results = batcher.predict([pixels] * len(prompts), prompts)  # batched with other requests' images
            out = []
            for prompt_text, result in zip(prompts, results):
                inspection = inspect_mask(result.mask, prompt_text, confidence=result.confidence, mm_per_px=mm_per_px,
                                          thresholds=thresholds, prompt_config=prompt_config, scale=photo.scale)
                item = inspection.to_dict()
                item["prompt_known"] = prompt_text not in unknown
                item["mask"] = _mask_payload(result.mask, mask_format)
                if overlay:
                    tinted = render_overlay(pixels, result.mask, FIGURE_SET_COLOURS[inspection.figures.figure_set])
                    item["overlay"] = {"media_type": "image/jpeg",
                                       "base64": base64.b64encode(jpeg_bytes(tinted, quality=85)).decode("ascii")}
                out.append(item)
            return photo, out

        try:
            photo, results = await asyncio.wait_for(work_queue.run(decode_predict_and_inspect), timeout=timeout_s)
        except QueueFull as full:
            raise HTTPException(503, f"the server is busy ({work_queue.slots} running, {work_queue.waiting} waiting); "
                                     f"retry after {full.retry_after_s} s",
                                headers={"Retry-After": str(full.retry_after_s)}) from None
        except asyncio.TimeoutError as exc:
            raise HTTPException(504, f"prediction took longer than {timeout_s:g} s; try a smaller image or fewer prompts") from exc
        except DrywallQAError as exc:
            raise HTTPException(422, str(exc)) from exc
        finished = time.perf_counter()
        decode_s = timing.get("decode", 0.0)
        return {
            "model": model_id,
            "image": {"filename": image.filename, "width": photo.width, "height": photo.height,
                      "decoded_width": int(photo.pixels.shape[1]), "decoded_height": int(photo.pixels.shape[0])},
            "mm_per_px": mm_per_px,
            "results": results,
            "warnings": warnings,
            "timing_ms": {"decode": round(1000 * decode_s, 2), "load": round(1000 * (loaded - started), 2),
                          "predict": round(1000 * (finished - loaded - decode_s), 2),
                          "total": round(1000 * (finished - started), 2)},
        }

    @app.post(
        "/v1/export",
        summary="Zip results made one upload at a time: masks, overlays, results.jsonl, results.csv, coco.json",
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}, "description": "the zip, laid out like a predict folder"},
                   **{status: {"model": ErrorBody} for status in (400, 408, 413, 422, 503, 504)}},
    )
    async def export(
        items: Annotated[str, Form(description="JSON list, one per mask: {image, prompt, width, height, confidence}; "
                                   "image is the photo's file name or relative path, width and height its size")],
        mask: Annotated[list[UploadFile], File(description="one PNG mask per item (0 background, 255 mask), in order")],
        overlay: Annotated[list[UploadFile] | None, File(description="optional: one JPEG overlay per item")] = None,
        mm_per_px: Annotated[float | None, Form(description="image scale: adds mm figures and the mm rules")] = None,
    ):
        entries = _check_export_items(items, len(mask), max_export_items)
        if overlay and len(overlay) != len(entries):
            raise HTTPException(422, f"overlay: got {len(overlay)} overlays for {len(entries)} items; send one per item or none")
        if mm_per_px is not None and not (np.isfinite(mm_per_px) and mm_per_px > 0):
            raise HTTPException(422, f"mm_per_px must be a positive number, got {mm_per_px}")
        mask_data = [await upload.read() for upload in mask]
        overlay_data = [await upload.read() for upload in overlay] if overlay else None
        if overlay_data and not all(data[:3] == b"\xff\xd8\xff" for data in overlay_data):
            raise HTTPException(422, "overlay: send JPEG overlays (canvas.toBlob(..., 'image/jpeg'))")
        threshold = float(getattr(holder.get(), "threshold", 0.5)) if holder.loaded else None

        def build() -> bytes:
            masks = [_decode_export_mask(data, index, entries[index]) for index, data in enumerate(mask_data)]
            return results_archive(entries, masks, overlay_data, model_id=model_id, threshold=threshold,
                                   mm_per_px=mm_per_px, thresholds=thresholds, prompt_config=prompt_config)

        try:
            archive = await asyncio.wait_for(work_queue.run(build), timeout=timeout_s)
        except QueueFull as full:
            raise HTTPException(503, f"the server is busy; retry after {full.retry_after_s} s",
                                headers={"Retry-After": str(full.retry_after_s)}) from None
        except asyncio.TimeoutError as exc:
            raise HTTPException(504, f"the export took longer than {timeout_s:g} s; export fewer photos at once") from exc
        return Response(archive, media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="drywallqa-results.zip"'})

    return app


def _check_export_items(text: str, masks: int, max_items: int) -> list[dict]:
    """The ``items`` of an export, checked: a JSON list of one object per mask."""
    import json

    try:
        items = json.loads(text)
    except ValueError as exc:
        raise HTTPException(422, f"items: not JSON ({exc})") from exc
    if not isinstance(items, list) or not items:
        raise HTTPException(422, "items: expected a non-empty JSON list, one object per mask")
    if len(items) > max_items:
        raise HTTPException(422, f"items: {len(items)} results; export at most {max_items} at once")
    if len(items) != masks:
        raise HTTPException(422, f"mask: got {masks} masks for {len(items)} items; send one per item")
    checked = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise HTTPException(422, f"{where}: expected an object with image, prompt, width, height, confidence")
        image, width, height, confidence = item.get("image"), item.get("width"), item.get("height"), item.get("confidence")
        if not isinstance(image, str) or not image.strip() or image.startswith(("/", "\\")) or ".." in image.split("/"):
            raise HTTPException(422, f"{where}.image: expected the photo's file name or relative path, got {image!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise HTTPException(422, f"{where}: width and height must be positive integers, got {width!r} x {height!r}")
        if confidence is not None and not (isinstance(confidence, (int, float)) and 0 <= confidence <= 1):
            raise HTTPException(422, f"{where}.confidence: expected a number in [0, 1] or null, got {confidence!r}")
        try:
            prompt = check_prompt(item.get("prompt") if isinstance(item.get("prompt"), str) else "",
                                  max_length=MAX_PROMPT_LENGTH)
        except ConfigError as exc:
            raise HTTPException(422, f"{where}.prompt: {exc}") from exc
        checked.append({"image": image.strip(), "prompt": prompt, "width": width, "height": height,
                        "confidence": confidence})
    return checked


def _decode_export_mask(data: bytes, index: int, item: dict) -> np.ndarray:
    """An export's mask PNG as bool, no larger than its image."""
    from drywallqa.files import open_image

    name = f"mask[{index}]"
    if not data.startswith(b"\x89PNG"):
        raise HTTPException(422, f"{name}: not a PNG")
    with _upload_errors(name):
        with open_image(data, name) as img:
            pixels = np.asarray(img.convert("L"))
    height, width = pixels.shape
    if width > item["width"] or height > item["height"]:
        raise HTTPException(422, f"{name}: {width}x{height} px is larger than its image, {item['width']}x{item['height']}")
    return pixels > 127


def _check_model(name: str, model_id: str) -> None:
    if name != model_id:
        raise HTTPException(404, f"unknown model {name!r}; this server serves: {model_id!r} (see /v1/models)")


def _check_prompts(prompts: list[str], max_prompts: int) -> list[str]:
    if len(prompts) > max_prompts:
        raise HTTPException(422, f"got {len(prompts)} prompts; at most {max_prompts} per request")
    checked = []
    for text in prompts:
        try:
            checked.append(check_prompt(text, max_length=MAX_PROMPT_LENGTH))
        except ConfigError as exc:
            raise HTTPException(422, f"prompt: {exc}") from exc
    return list(dict.fromkeys(checked))


def _check_upload_header(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse what the header alone shows (not an image, too many pixels, too small): cheap, so it
    runs before the work queue and a broken upload never waits behind predictions."""
    from drywallqa.files import MIN_IMAGE_SIDE, open_image

    with _upload_errors(name):
        with open_image(data, name) as img:
            width, height = img.size
        if width * height > max_pixels:
            raise HTTPException(413, f"{name}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                                     f"the limit is {max_pixels / 1e6:.0f}")
        if min(width, height) < MIN_IMAGE_SIDE:
            read_photo(data, name=name)  # raises the one message for a too small image


def _decode_upload(data: bytes, name: str) -> Photo:
    """Decode an upload (checked by :func:`_check_upload_header`), reduced when large."""
    with _upload_errors(name):
        return read_photo(data, name=name)


@contextlib.contextmanager
def _upload_errors(name: str):
    """Image errors as HTTP errors: too large 413, too small 422, unreadable or corrupt 415."""
    try:
        yield
    except ImageSizeError as exc:
        raise HTTPException(413 if exc.too_large else 422, str(exc)) from exc
    except DataError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise HTTPException(415, f"{name}: not a readable image ({detail}; send JPEG, PNG, WebP, BMP or TIFF)") from exc


def _mask_payload(mask: np.ndarray, mask_format: str) -> dict:
    size = [int(mask.shape[0]), int(mask.shape[1])]
    if mask_format == "rle":
        return {"format": "rle", "size": size, "counts": mask_to_rle(mask)["counts"]}
    return {"format": "png", "size": size, "base64": base64.b64encode(mask_png_bytes(mask)).decode("ascii")}


def _static_response(name: str) -> Response:
    data = resources.files("drywallqa.serving").joinpath("static", name).read_bytes()
    headers = {"Cache-Control": "max-age=86400" if name == "favicon.ico" else "no-cache"}
    if name == "index.html":
        headers["Content-Security-Policy"] = PAGE_CSP
    return Response(content=data, media_type=STATIC_FILES[name], headers=headers)


def _swagger_ui_folder() -> Path | None:
    """Swagger UI's files from the ``fastapi-offline`` package, or None when it is missing."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if all((folder / name).is_file() for name in DOCS_ASSETS) else None


def static_folder() -> Path:
    """Folder of the web page's files inside the package."""
    return Path(str(resources.files("drywallqa.serving").joinpath("static")))

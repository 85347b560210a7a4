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
reduced (:func:`drywallqa.files.read_photo`). A request's deadline (``timeout_s``) goes with its
pairs: past it they are dropped unpredicted and its worker thread is freed. The app's lifespan
stops the model thread and lets the worker threads go when the server stops.

Every error is JSON ``{"error": {"status": 4xx or 5xx, "code": "...", "message": "..."}}``:

=====  ===================================================================================
400    the body is not valid multipart/form-data
408    the request body did not arrive within ``body_timeout_s``
413    request body over ``max_upload_mb``, or an image over ``max_image_pixels``
415    the ``image`` upload is not a readable image (or a corrupt JPEG)
422    missing ``image``/``prompt``; several ``image`` files (or values of another one-value
       field: send one photo per request, the server batches concurrent requests); empty,
       overlong or too many prompts; bad ``mask_format`` or ``mm_per_px``; an image under
       :data:`~drywallqa.files.MIN_IMAGE_SIDE`; with ``strict_prompts``, a prompt that names no
       known class
404    unknown ``model`` (or path)
500    anything else that went wrong (a bug, a broken model): still this envelope, code
       ``internal_error``; the details go to the server's log
503    the model could not be loaded, or the work queue is full (with ``Retry-After``)
504    the prediction took longer than ``timeout_s``
=====  ===================================================================================

The pieces live beside this module: :mod:`.admission` (body limits, work queue, model holder,
shared batcher), :mod:`.api_schema` (field and upload checks, error envelope, response models)
and :mod:`.page` (the web page and ``/docs`` files).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from drywallqa import __version__
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import Photo
from drywallqa.inference import Prediction, Predictions, Predictor, check_tile
from drywallqa.qa.inspection import prompt_class, unknown_prompt_message
from drywallqa.qa.rules import QARules
from drywallqa.serving.admission import BodyLimits, ModelHolder, SharedBatcher, WorkQueue
from drywallqa.serving.api_schema import (
    EXPORT_SINGLE_FIELDS,
    MASK_FORMATS,
    SEGMENT_SINGLE_FIELDS,
    ErrorBody,
    SegmentResponse,
    check_export_items,
    check_model,
    check_prompts,
    check_scale,
    check_single_fields,
    check_upload_header,
    decode_export_mask,
    decode_upload,
    error_response,
    segment_item,
)
from drywallqa.serving.batching import DeadlineExceeded, QueueFull
from drywallqa.serving.extra import serve_install_command
from drywallqa.serving.page import DOCS_ASSETS, STATIC_FILES, add_webapp_routes, static_response, swagger_ui_folder
from drywallqa.serving.results import results_archive

# Form fields (prompts, flags) ride along with the image; allow them this much beyond the image limit.
FORM_FIELDS_ALLOWANCE = 64 * 1024


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
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    webapp_dir: str | None = None,
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
        qa_rules: QA figure sets and rules; the built-in file by default.
        prompt_config: Prompt classes (for the QA rules and the predictor's per-class thresholds);
            the built-in ``prompts.yaml`` by default.
        webapp_dir: An app folder of ``drywallqa app build``: its model, browser runtime, service worker
            and manifest are served too, and the page offers "on this device" beside "on the server".
        **predictor_kwargs: For the lazy loader (``threshold``, ``device``, ...).

    Returns:
        The app; ``app.state.model`` is its :class:`ModelHolder`.
    """
    if max_upload_mb <= 0 or timeout_s <= 0 or body_timeout_s <= 0 or max_prompts < 1 or max_concurrent_predictions < 1 \
            or max_queued < 0 or (max_batch is not None and max_batch < 1) or batch_wait_s < 0 or max_export_mb <= 0:
        raise ConfigError("max_upload_mb, timeout_s and body_timeout_s must be positive, max_prompts, "
                          "max_concurrent_predictions and max_batch >= 1, max_queued and batch_wait_s >= 0")
    prompt_config = prompt_config or PromptConfig.default()
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    holder = ModelHolder(predictor, model_spec, prompt_config=prompt_config, **predictor_kwargs)
    batching = SharedBatcher(holder, max_batch, batch_wait_s, max_concurrent_predictions * max_prompts)
    upload_limit = int(max_upload_mb * 1e6)
    max_export_items = 4000
    work_queue = WorkQueue(max_concurrent_predictions, max_queued)

    docs_assets = swagger_ui_folder()
    strict_default = strict_prompts

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # On the server's shutdown (uvicorn's lifespan, a TestClient used as a context manager):
        # the model thread finishes what is queued and stops, and the worker threads are let go.
        yield
        await asyncio.to_thread(close_workers, batching, work_queue)

    app = FastAPI(
        title="drywallqa",
        version=__version__,
        description="Text-prompted segmentation of drywall photos with QA figures and pass/fail verdicts. "
        "Errors are JSON `{\"error\": {status, code, message}}`.",
        docs_url=None,  # our own /docs below: Swagger UI from the package, never from a CDN
        redoc_url=None,  # /docs and /openapi.json cover the API
        lifespan=lifespan,
    )
    app.state.model = holder
    app.state.model_id = model_id
    app.state.work_queue = work_queue
    app.state.batching = batching
    add_webapp_routes(app, webapp_dir)
    app.add_middleware(BodyLimits, limit=upload_limit + FORM_FIELDS_ALLOWANCE, limit_mb=max_upload_mb,
                       timeout_s=body_timeout_s, path_limits={"/v1/export": (int(max_export_mb * 1e6), max_export_mb)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such path {request.url.path}; see /docs or /openapi.json"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        # Whatever escaped the checks (a bug, a broken model) is still answered in the envelope;
        # the traceback goes to the server's log (Starlette re-raises it there after this answer).
        return error_response(500, f"internal error ({type(exc).__name__}) while answering {request.url.path}; "
                                   "the server's log has the details")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err.get("loc", ())[1:]) or "request"
            problems.append(f"{field}: {err.get('msg', 'invalid')}")
        hint = " (send multipart/form-data with a file field 'image' and one or more 'prompt' fields)"
        return error_response(422, "; ".join(problems) + hint)

    # -- page -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return static_response("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name!r}")
        return static_response(name)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return static_response("favicon.ico")

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
        check_model(name, model_id)
        return holder.describe(model_id)

    @app.post(
        "/v1/segment",
        summary="Segment an image with text prompts; QA figures, verdicts and masks",
        response_model=SegmentResponse,
        response_model_by_alias=True,
        responses={status: {"model": ErrorBody} for status in (400, 404, 408, 413, 415, 422, 500, 503, 504)},
    )
    async def segment(
        request: Request,
        image: Annotated[UploadFile, File(description="the photo (JPEG, PNG, WebP, BMP, TIFF); one per request "
                                                       "(several are refused with 422)")],
        prompt: Annotated[list[str], Form(description="one or more prompts, e.g. 'segment crack'")],
        mask_format: Annotated[str, Form(description="'rle' (COCO compressed RLE) or 'png' (base64 PNG)")] = "rle",
        mm_per_px: Annotated[float | None, Form(description="image scale in millimetres per pixel: adds mm figures")] = None,
        overlay: Annotated[bool, Form(description="also return the overlay as a base64 JPEG")] = False,
        tile: Annotated[str | None, Form(description="auto, off or a tile side in pixels (>= 64): how a large or "
                                         "elongated photo is tiled (default: the server's --tile)")] = None,
        model: Annotated[str | None, Form(description="model id; the served one by default (see /v1/models)")] = None,
        strict_prompts: Annotated[bool | None, Form(description="answer 422 to a prompt that names no known class "
                                                     "(default: the server's --strict-prompts)")] = None,
    ):
        started = time.perf_counter()
        check_single_fields(await request.form(), SEGMENT_SINGLE_FIELDS)
        if model:
            check_model(model, model_id)
        prompts = check_prompts(prompt, max_prompts)
        if mask_format not in MASK_FORMATS:
            raise HTTPException(422, f"mask_format must be one of {', '.join(MASK_FORMATS)}, got {mask_format!r}")
        scale_warning = check_scale(mm_per_px)
        try:
            tile = check_tile(tile) if tile is not None else None
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        unknown = [p for p in prompts if prompt_class(p, prompt_config) is None]
        warnings = [unknown_prompt_message(p, prompt_config) for p in unknown]
        warnings += [scale_warning] if scale_warning else []
        if unknown and (strict_prompts if strict_prompts is not None else strict_default):
            raise HTTPException(422, f"prompt: {warnings[0]} (strict_prompts is on)")
        data = await image.read()
        if len(data) > upload_limit:
            raise HTTPException(413, f"image is {len(data) / 1e6:.1f} MB; the limit is {max_upload_mb:g} MB")
        if not data:
            raise HTTPException(422, "image: the uploaded file is empty")
        check_upload_header(data, image.filename or "upload", max_image_pixels)
        try:
            batcher = batching.batcher or await asyncio.to_thread(batching.get)
        except DrywallQAError as exc:
            raise HTTPException(503, f"model {model_id!r} could not be loaded: {exc}") from exc
        loaded = time.perf_counter()
        # The time-out's moment, for the model thread too: past it, this request's pairs are dropped
        # unpredicted and its worker thread is freed instead of waiting for an answer nobody reads.
        deadline = time.monotonic() + timeout_s
        timing: dict[str, float] = {}
        tiling: dict = {}  # the tiles the photo took (the same for every prompt)

        def decode_predict_and_inspect() -> tuple[Photo, Predictions, list[dict]]:
            # Decoding a large photo is heavy work too: inside the queue, off the event loop.
            started_work = time.perf_counter()
            photo = decode_upload(data, image.filename or "upload")
            timing["decode"] = time.perf_counter() - started_work
            pixels = photo.pixels
            # Batched with other requests' images; the tile scale follows the decoded pixels.
            results = batcher.predict([pixels] * len(prompts), prompts, deadline=deadline, tile=tile,
                                      mm_per_px=mm_per_px * photo.scale if mm_per_px else None)
            if results:
                tiling.update(results[0].extra.get("tiling") or {})
            predictions = Predictions(
                Prediction.from_result(result, photo, image=image.filename or "upload", model=model_id,
                                       mm_per_px=mm_per_px, qa_rules=qa_rules, prompt_config=prompt_config)
                for result in results)
            # The masks and overlays encoded here too, in the worker thread, never on the event loop.
            return photo, predictions, [segment_item(p, mask_format, overlay, known=p.prompt not in unknown)
                                        for p in predictions]

        try:
            photo, predictions, items = await asyncio.wait_for(work_queue.run(decode_predict_and_inspect), timeout=timeout_s)
        except QueueFull as full:
            raise HTTPException(503, f"the server is busy ({work_queue.slots} running, {work_queue.waiting} waiting); "
                                     f"retry after {full.retry_after_s} s",
                                headers={"Retry-After": str(full.retry_after_s)}) from None
        except (asyncio.TimeoutError, DeadlineExceeded) as exc:  # the batcher's may come a moment before asyncio's
            raise HTTPException(504, f"prediction took longer than {timeout_s:g} s; try a smaller image or fewer prompts") from exc
        except DrywallQAError as exc:
            raise HTTPException(422, str(exc)) from exc
        finished = time.perf_counter()
        decode_s = timing.get("decode", 0.0)
        return {
            "photo_verdict": predictions.verdict,
            "model": model_id,
            "image": {"filename": image.filename, "width": photo.width, "height": photo.height,
                      "decoded_width": int(photo.pixels.shape[1]), "decoded_height": int(photo.pixels.shape[0]),
                      "orientation": photo.orientation,
                      **({"tiling": tiling} if tiling else {})},
            "mm_per_px": mm_per_px,
            "results": items,
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
                   **{status: {"model": ErrorBody} for status in (400, 408, 413, 422, 500, 503, 504)}},
    )
    async def export(
        request: Request,
        items: Annotated[str, Form(description="JSON list, one per mask: {image, prompt, width, height, confidence}; "
                                   "image is the photo's file name or relative path, width and height its size")],
        mask: Annotated[list[UploadFile], File(description="one PNG mask per item, in order (0 background, any other "
                                                     "value mask: 255 or 1)")],
        overlay: Annotated[list[UploadFile] | None, File(description="optional: one JPEG overlay per item")] = None,
        mm_per_px: Annotated[float | None, Form(description="image scale: adds mm figures and the mm rules")] = None,
    ):
        check_single_fields(await request.form(), EXPORT_SINGLE_FIELDS)
        entries = check_export_items(items, len(mask), max_export_items)
        if overlay and len(overlay) != len(entries):
            raise HTTPException(422, f"overlay: got {len(overlay)} overlays for {len(entries)} items; send one per item or none")
        check_scale(mm_per_px)
        mask_data = [await upload.read() for upload in mask]
        overlay_data = [await upload.read() for upload in overlay] if overlay else None
        if overlay_data and not all(data[:3] == b"\xff\xd8\xff" for data in overlay_data):
            raise HTTPException(422, "overlay: send JPEG overlays (canvas.toBlob(..., 'image/jpeg'))")
        threshold = float(getattr(holder.get(), "threshold", 0.5)) if holder.loaded else None

        def build() -> bytes:
            masks = [decode_export_mask(data, index, entries[index]) for index, data in enumerate(mask_data)]
            return results_archive(entries, masks, overlay_data, model_id=model_id, threshold=threshold,
                                   mm_per_px=mm_per_px, qa_rules=qa_rules, prompt_config=prompt_config)

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


def close_workers(batching: SharedBatcher, work_queue: WorkQueue) -> None:
    """Stop an app's model thread (after the pairs queued) and let its worker threads go."""
    batching.close()
    work_queue.close()

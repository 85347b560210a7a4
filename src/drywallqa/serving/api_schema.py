"""What the HTTP API accepts and answers: field checks, upload checks, the error envelope and the
response models (they document the API in ``/openapi.json``).

Every check fails with an :class:`~fastapi.exceptions.HTTPException` whose status and message
:func:`error_response` turns into ``{"error": {"status", "code", "message"}}``.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any, Literal

import numpy as np
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from drywallqa.data.masks import mask_to_rle
from drywallqa.errors import ConfigError, DataError, ImageSizeError
from drywallqa.files import MAX_DECODE_PIXELS, Photo, read_photo
from drywallqa.image_codecs import HeifSupportMissing
from drywallqa.inference import Prediction, check_prompt
from drywallqa.inference.prediction import json_ready
from drywallqa.inference.render import jpeg_bytes, mask_png_bytes
from drywallqa.paths import UnsafePathError, check_data_path
from drywallqa.qa.figures import check_mm_per_px

MASK_FORMATS = ("rle", "png")
#: What a verdict field may hold (:data:`drywallqa.qa.VERDICTS`, spelled out for the OpenAPI schema).
VerdictText = Literal["fail", "pass", "not found", "unchecked"]
MAX_PROMPT_LENGTH = 200


# -- errors ---------------------------------------------------------------------------------------
ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
               413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable", 500: "internal_error",
               503: "unavailable", 504: "timeout"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": ERROR_CODES.get(status, "error"), "message": message}},
                        status_code=status, headers=headers)


# A body left unread ends its connection: the client's next bytes would be read as a new request.


# A body left unread ends its connection: the client's next bytes would be read as a new request.
CLOSE_CONNECTION = {"Connection": "close"}


# -- response models ------------------------------------------------------------------------------
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
    figures: dict[str, float | int | str | None] = Field(description="QA figures (see docs/serving.md); width_source "
                                                           "is 'photo' or 'mask'")
    verdict: VerdictText = Field(description="this prompt's verdict: fail, pass, 'not found' (nothing found for a "
                                 "class that is neither a defect nor required: nothing to judge) or unchecked (a class "
                                 "without QA rules); see docs/serving.md")
    reasons: list[str]
    severity: float
    checked: list[str]
    mask: MaskPayload
    overlay: ImagePayload | None = None


class SegmentResponse(BaseModel):
    photo_verdict: VerdictText = Field(description="the photo's verdict: fail if any prompt fails, else pass if any "
                                       "passes, else 'not found' (unchecked when every prompt is)")
    model: str
    image: dict[str, Any] = Field(description="filename, width and height of the upload as a viewer shows it, "
                                  "decoded_width and decoded_height: the size masks and overlays are given at (a large "
                                  "photo is decoded reduced; figures stay in the upload's pixels), orientation: the "
                                  "EXIF orientation (1-8) applied to the file's pixels, and tiling: the tiles the "
                                  "photo was judged in")
    mm_per_px: float | None
    results: list[SegmentResult]
    warnings: list[str] = Field(description="one line per prompt that names no known class, and one for a mm_per_px "
                                "outside the scale of photos of walls")
    timing_ms: dict[str, float]


# -- request checks -------------------------------------------------------------------------------
def check_export_items(text: str, masks: int, max_items: int) -> list[dict]:
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
        try:  # it goes into results.jsonl and coco.json, where readers take it as a path (drywallqa.paths)
            check_data_path(image.strip() if isinstance(image, str) else image)
        except UnsafePathError as exc:
            raise HTTPException(422, f"{where}.image: expected the photo's file name or relative path: {exc}") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise HTTPException(422, f"{where}: width and height must be positive integers, got {width!r} x {height!r}")
        if width * height > MAX_DECODE_PIXELS:
            raise HTTPException(422, f"{where}: width x height is over {MAX_DECODE_PIXELS // 10**6} megapixels, "
                                     "more than any photo this package reads; give the photo file's size")
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


def decode_export_mask(data: bytes, index: int, item: dict) -> np.ndarray:
    """An export's mask PNG as bool, no larger than its image: any non-zero pixel is mask (a 0/255
    PNG, as ``/v1/segment`` sends them, and a 0/1 one alike)."""
    from drywallqa.files import open_image

    name = f"mask[{index}]"
    if not data.startswith(b"\x89PNG"):
        raise HTTPException(422, f"{name}: not a PNG")
    with upload_errors(name):
        with open_image(data, name) as img:
            pixels = np.asarray(img.convert("L"))
    height, width = pixels.shape
    if width > item["width"] or height > item["height"]:
        raise HTTPException(422, f"{name}: {width}x{height} px is larger than its image, {item['width']}x{item['height']}")
    return pixels > 0


def check_scale(mm_per_px: float | None) -> str | None:
    """The ``mm_per_px`` field checked (422 when refused); a warning line for an unusual scale."""
    try:
        return check_mm_per_px(mm_per_px, "mm_per_px")
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from exc


#: Form fields of one value each: a second value would be dropped in silence (the last one wins),
#: so a request with more is refused.
SEGMENT_SINGLE_FIELDS = ("image", "mask_format", "mm_per_px", "overlay", "model", "strict_prompts")
EXPORT_SINGLE_FIELDS = ("items", "mm_per_px")


def check_single_fields(form, names: tuple[str, ...]) -> None:
    """422 when a one-value field of ``form`` (a Starlette ``FormData``) comes more than once."""
    for name in names:
        count = len(form.getlist(name))
        if count > 1:
            if name == "image":
                raise HTTPException(422, f"image: got {count} files; send one photo per request (concurrent requests "
                                         "share the model's batches), or use drywallqa predict for a folder")
            raise HTTPException(422, f"{name}: got {count} values; send it once")


def check_model(name: str, model_id: str) -> None:
    if name != model_id:
        raise HTTPException(404, f"unknown model {name!r}; this server serves: {model_id!r} (see /v1/models)")


def check_prompts(prompts: list[str], max_prompts: int) -> list[str]:
    if len(prompts) > max_prompts:
        raise HTTPException(422, f"got {len(prompts)} prompts; at most {max_prompts} per request")
    checked = []
    for text in prompts:
        try:
            checked.append(check_prompt(text, max_length=MAX_PROMPT_LENGTH))
        except ConfigError as exc:
            raise HTTPException(422, f"prompt: {exc}") from exc
    return list(dict.fromkeys(checked))


def check_upload_header(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse what the header alone shows (not an image, too many pixels, too small): cheap, so it
    runs before the work queue and a broken upload never waits behind predictions."""
    from drywallqa.files import check_photo_size, open_image

    with upload_errors(name):
        with open_image(data, name) as img:
            width, height = img.size
        if width * height > max_pixels:
            raise HTTPException(413, f"{name}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                                     f"the limit is {max_pixels / 1e6:.0f}")
        check_photo_size(name, width, height)  # too small, in the file or once decoded reduced


def decode_upload(data: bytes, name: str) -> Photo:
    """Decode an upload (checked by :func:`check_upload_header`), reduced when large."""
    with upload_errors(name):
        return read_photo(data, name=name)


@contextlib.contextmanager
def upload_errors(name: str):
    """Image errors as HTTP errors: too large 413, too small 422, unreadable or corrupt 415."""
    try:
        yield
    except ImageSizeError as exc:
        raise HTTPException(413 if exc.too_large else 422, str(exc)) from exc
    except HeifSupportMissing as exc:  # the server lacks the heic extra: the message names it
        raise HTTPException(415, f"{exc}; or send JPEG, PNG, WebP, BMP or TIFF") from exc
    except DataError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise HTTPException(415, f"{name}: not a readable image ({detail}; send JPEG, PNG, WebP, BMP or TIFF)") from exc


def mask_payload(mask: np.ndarray, mask_format: str) -> dict:
    size = [int(mask.shape[0]), int(mask.shape[1])]
    if mask_format == "rle":
        return {"format": "rle", "size": size, "counts": mask_to_rle(mask)["counts"]}
    return {"format": "png", "size": size, "base64": base64.b64encode(mask_png_bytes(mask)).decode("ascii")}


def segment_item(prediction: Prediction, mask_format: str, overlay: bool, known: bool) -> dict:
    """One prompt's entry of a ``/v1/segment`` answer (:class:`SegmentResult`): its inspection, whether
    the prompt names a known class, its mask in ``mask_format`` and, when asked for, its overlay."""
    item = json_ready(prediction.inspection.to_dict())
    item["prompt_known"] = known
    item["mask"] = mask_payload(prediction.load_mask(), mask_format)
    if overlay:
        item["overlay"] = {"media_type": "image/jpeg",
                           "base64": base64.b64encode(jpeg_bytes(prediction.plot(), quality=85)).decode("ascii")}
    return item

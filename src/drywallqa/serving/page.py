"""The web page and the API page (``/docs``) of the HTTP service: files served from the package.

Swagger UI comes from the ``fastapi-offline`` package, so ``/docs`` works without a CDN (the
service usually runs next to a camera, offline).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi.responses import Response

# Files of the web page, served from the package: name -> media type.
# Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes; the 4.x of `swagger-ui-bundle` cannot),
# served from the `fastapi-offline` package so /docs works without a CDN (the service usually runs
# next to a camera, offline).
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
               "favicon.png": "image/png"}
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "live.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.ico": "image/x-icon"}
# The page loads nothing from elsewhere: scripts, styles and images come from this server or
# are data:/blob: URLs made by the page itself.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")


def static_response(name: str) -> Response:
    data = resources.files("drywallqa.serving").joinpath("static", name).read_bytes()
    headers = {"Cache-Control": "max-age=86400" if name == "favicon.ico" else "no-cache"}
    if name == "index.html":
        headers["Content-Security-Policy"] = PAGE_CSP
    return Response(content=data, media_type=STATIC_FILES[name], headers=headers)


def swagger_ui_folder() -> Path | None:
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

"""The web page and the API page (``/docs``) of the HTTP service: files served from the package.

Swagger UI comes from the ``fastapi-offline`` package, so ``/docs`` works without a CDN (the
service usually runs next to a camera, offline). With ``drywallqa serve --app DIR``
(:func:`add_webapp_routes`), the model, browser runtime, service worker and manifest of an app of
``drywallqa app build`` are served too, so the page can also run the model on the device.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi.responses import FileResponse, Response

# Files of the web page, served from the package: name -> media type.
# Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes; the 4.x of `swagger-ui-bundle` cannot),
# served from the `fastapi-offline` package so /docs works without a CDN (the service usually runs
# next to a camera, offline).
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
               "favicon.png": "image/png"}
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "live.js": "text/javascript; charset=utf-8", "modes.js": "text/javascript; charset=utf-8",
                "processing.js": "text/javascript; charset=utf-8", "qa.js": "text/javascript; charset=utf-8",
                "ondevice.js": "text/javascript; charset=utf-8", "crack_width.js": "text/javascript; charset=utf-8",
                "ridges.js": "text/javascript; charset=utf-8", "joint_lines.js": "text/javascript; charset=utf-8",
                "taping_band.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.ico": "image/x-icon"}
# The page loads nothing from elsewhere: scripts, styles and images come from this server or
# are data:/blob: URLs made by the page itself. The on-device mode compiles WebAssembly (no eval
# of JS) and runs its threads in workers from the same server.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")
# Cross-origin isolation: the on-device mode's WebAssembly threads need SharedArrayBuffer, which
# browsers give only to pages sent with both headers (and whose resources all come from this origin).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
# Top-level paths of a built app that the package's own routes do not serve.
WEBAPP_PATHS = ("sw.js", "manifest.webmanifest", "app.json", "icons/{name}", "model/{name}", "ort/{name}")


def static_response(name: str) -> Response:
    data = resources.files("drywallqa.serving").joinpath("static").joinpath(name).read_bytes()
    headers = {"Cache-Control": "max-age=86400" if name == "favicon.ico" else "no-cache", **ISOLATION_HEADERS}
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


def add_webapp_routes(app, folder) -> None:
    """Serve a built app's model, runtime, service worker and manifest beside the page (``serve --app``).

    Only the files the app's ``app.json`` lists are served (see :class:`~drywallqa.serving.webapp.WebApp`).
    Without an app (``folder`` None), ``/app.json`` lists no files: the page asks for it first, and
    learns that there is no on-device model here without meeting a 404.

    Raises:
        ConfigError: If ``folder`` is not an app of ``drywallqa app build``.
    """
    from fastapi.exceptions import HTTPException

    from drywallqa.serving.webapp import APP_FORMAT, APP_VERSION, WebApp, media_type

    if folder is None:
        def no_app() -> dict:
            return {"format": APP_FORMAT, "version": APP_VERSION, "files": {},
                    "note": "no on-device app here: build one with `drywallqa app build OUT`, serve with --app OUT"}

        app.add_api_route("/app.json", no_app, methods=["GET"], include_in_schema=False)
        return
    webapp = WebApp.open(folder)

    def serve(path: str) -> FileResponse:
        file = webapp.path(path)
        if file is None:
            raise HTTPException(404, f"the app in {webapp.folder} has no file {path!r}")
        return FileResponse(file, media_type=media_type(path), headers={"Cache-Control": "no-cache", **ISOLATION_HEADERS})

    def in_folder(prefix: str):
        def endpoint(name: str) -> FileResponse:
            return serve(prefix + name)
        return endpoint

    def one_file(path: str):
        def endpoint() -> FileResponse:
            return serve(path)
        return endpoint

    for pattern in WEBAPP_PATHS:
        prefix = pattern.split("{")[0]
        endpoint = in_folder(prefix) if "{" in pattern else one_file(pattern)
        app.add_api_route(f"/{pattern}", endpoint, methods=["GET"], include_in_schema=False)

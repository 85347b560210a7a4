"""The Label Studio ML backend protocol over HTTP (FastAPI), around a :class:`LabelStudioBackend`.

The routes and bodies are those label-studio-ml's server answers (its ``api.py``), so Label Studio
connects to it as to any ML backend:

==================  =====================================================================
route               what Label Studio sends -> what it gets back
==================  =====================================================================
``GET /health``     (also ``GET /``) -> ``{"status": "UP", "model_class": ..., "model_version": ...}``
``POST /setup``     ``{"project": "ID.TIMESTAMP", "schema": LABEL_CONFIG, ...}`` when the backend
                    is connected -> ``{"model_version": ...}``; 400 with the reason if the
                    config has no brush labels
``POST /predict``   ``{"tasks": [...], "label_config": ..., "project": ..., "params": {...}}`` ->
                    ``{"results": [one prediction per task], "model_version": ...}``
``POST /webhook``   ``{"action": EVENT, "project": {...}, "task": {...}, "annotation": {...}}``
                    -> 201 ``{"result": ..., "status": "ok"}`` (:meth:`LabelStudioBackend.fit`);
                    other events -> 200 ``{"status": "Unknown event"}``
``GET /metrics``    -> ``{}``
==================  =====================================================================
"""

from __future__ import annotations

from drywallqa.errors import DrywallQAError
from drywallqa.integrations.label_studio import ANNOTATION_EVENTS, LabelStudioBackend

#: Webhook events handed to :meth:`LabelStudioBackend.fit` (label-studio-ml's ``TRAIN_EVENTS``).
WEBHOOK_EVENTS = (*ANNOTATION_EVENTS, "ANNOTATION_DELETED", "START_TRAINING")
#: What the backend needs beyond the base install: distribution -> module.
LABEL_STUDIO_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "label-studio-converter": "label_studio_converter"}
INSTALL_COMMAND = 'pip install "drywallqa[label-studio]"'


def require_label_studio_extra() -> None:
    """Import what the backend needs, or fail with the pip command that adds it.

    Raises:
        DrywallQAError: Naming the missing packages and the one ``pip install`` command.
    """
    from drywallqa.serving.extra import require_modules

    require_modules(LABEL_STUDIO_MODULES, "the Label Studio backend", INSTALL_COMMAND)


def create_label_studio_app(backend: LabelStudioBackend):
    """The FastAPI app serving ``backend`` with the ML backend protocol (see the module docstring)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="drywallqa Label Studio ML backend", docs_url=None, redoc_url=None, openapi_url=None)

    def refused(exc: DrywallQAError) -> JSONResponse:
        return JSONResponse({"status": "error", "error": str(exc)}, status_code=400)

    @app.get("/")
    @app.get("/health")
    def health() -> dict:
        return {"status": "UP", "model_class": "drywallqa", "model_version": backend.model_version}

    @app.get("/metrics")
    def metrics() -> dict:
        return {}

    @app.post("/setup")
    def setup(body: dict):
        try:
            return {"model_version": backend.setup(str(body.get("schema") or ""))}
        except DrywallQAError as exc:
            return refused(exc)

    @app.post("/predict")
    def predict(body: dict):
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            return refused(DrywallQAError("the body has no 'tasks' list"))
        try:
            results = backend.predict(tasks, str(body.get("label_config") or ""))
        except DrywallQAError as exc:
            return refused(exc)
        return {"results": results, "model_version": backend.model_version}

    @app.post("/webhook")
    def webhook(body: dict):
        event = body.pop("action", None)
        if event not in WEBHOOK_EVENTS:
            return JSONResponse({"status": "Unknown event"}, status_code=200)
        try:
            return JSONResponse({"result": backend.fit(event, body), "status": "ok"}, status_code=201)
        except DrywallQAError as exc:
            return refused(exc)

    return app

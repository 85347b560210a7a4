"""``drywallqa app build``: the web page as a static app that runs the model in the browser, offline.

:func:`build_webapp` writes a folder that any static host (or ``python -m http.server``) serves,
and that ``drywallqa serve --app`` serves beside its API::

    index.html, favicon.ico, static/*   the page (the same files ``drywallqa serve`` shows)
    model/model.onnx                    the exported graph, fp32: the file ONNX Runtime runs in Python
    model/model.json                    the embeddings of every known prompt (canonical prompts and
                                        paraphrases; the browser has no text encoder), each prompt's
                                        class and mask threshold (the model's calibrated per-class
                                        ones), and the QA rules that judge the figures
    ort/                                onnxruntime-web: WebAssembly, and WebGPU unless ``webgpu=False``
    sw.js                               the service worker: stores the app on first load, then serves
                                        it with the network off
    manifest.webmanifest, icons/        what makes it an installable app
    app.json                            what was built: versions, model, each file's SHA-256

The page (``static/ondevice.js`` with ``static/processing.js``, ``static/qa.js`` and the photo measures
``static/crack_width.js``, ``static/ridges.js``, ``static/joint_lines.js``, ``static/taping_band.js``) does what
:class:`~drywallqa.inference.Predictor` and :func:`~drywallqa.qa.inspect_mask` do in Python: the same resize,
threshold, figures (crack widths and taping figures measured on the photo) and verdicts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from drywallqa import __version__
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import MIN_IMAGE_SIDE, PHOTO_MAX_SIDE
from drywallqa.inference.prompt_store import prompt_key
from drywallqa.qa.inspection import prompt_class
from drywallqa.qa.rules import QARules
from drywallqa.serving.ort_web import (
    BACKENDS,
    ORT_WEB_FILES,
    ORT_WEB_VERSION,
    check_backends,
    ensure_ort_web,
    replace_folder,
)

APP_FORMAT = "drywallqa-webapp"
APP_VERSION = 1
MODEL_JSON_FORMAT = "drywallqa-webapp-model"
#: The page's files, copied from the package's ``static/`` (``index.html`` and the icon to the top).
PAGE_FILES = ("index.html", "favicon.ico", "static/style.css", "static/app.js", "static/modes.js", "static/live.js",
              "static/processing.js", "static/crack_width.js", "static/ridges.js", "static/joint_lines.js",
              "static/taping_band.js", "static/qa.js", "static/ondevice.js")
ICON_SIZES = (192, 512)
#: Stored by the service worker only when fetched: the WebGPU runtime, which a browser without a
#: WebGPU adapter never loads.
LAZY_BACKENDS = ("webgpu",)
THEME_COLOUR = "#1f2a36"
# What a static host must send for each suffix (documented in docs/field.md; `serve --app` sends it).
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".json": "application/json", ".webmanifest": "application/manifest+json", ".wasm": "application/wasm",
               ".onnx": "application/octet-stream", ".png": "image/png", ".ico": "image/x-icon",
               ".txt": "text/plain; charset=utf-8"}


@dataclass
class WebAppBuild:
    """What :func:`build_webapp` wrote.

    Attributes:
        folder: The app's folder.
        model: The model's name and runtime precision, e.g. ``"promptunet fp32"``.
        prompts: Prompts the app knows (their embeddings are in ``model/model.json``).
        backends: Browser backends included (``wasm``, ``webgpu``).
        files: Relative path -> size in bytes of every file written.
    """

    folder: Path
    model: str
    prompts: list[str]
    backends: tuple[str, ...]
    files: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """Lines for the console."""
        total = sum(self.files.values()) / 1e6
        model = self.files.get("model/model.onnx", 0) / 1e6
        return (f"wrote {self.folder}: {len(self.files)} files, {total:.1f} MB (model {self.model}, {model:.1f} MB; "
                f"{len(self.prompts)} known prompts; onnxruntime-web {ORT_WEB_VERSION}: {', '.join(self.backends)})\n"
                f"serve it with any static host, e.g. `python -m http.server -d {self.folder}`, or beside the API with "
                f"`drywallqa serve --app {self.folder}`; it works offline after the first load")


def build_webapp(out: str | os.PathLike, *, model: str | None = None, prompt_config=None, qa_rules: QARules | None = None,
                 webgpu: bool = True, overwrite: bool = False, say=print) -> WebAppBuild:
    """Write the static on-device app into ``out`` (see the module docstring for its layout).

    Args:
        out: Output folder; created, or replaced when ``overwrite`` (never half-written: the app is
            written beside it and moved into place).
        model: A model folder or an exported ``.onnx`` file; the shipped model by default. A folder
            is exported to ONNX once, with its parity check (the cache :func:`~drywallqa.inference.load_predictor` uses).
        prompt_config: Prompt classes whose prompts the app knows; the built-in ``prompts.yaml`` by default.
        qa_rules: QA rules of the verdicts; the built-in ``qa-rules.yaml`` by default.
        webgpu: Include the WebGPU runtime (29 MB) beside the WebAssembly one (14 MB).
        overwrite: Replace an existing ``out``.
        say: Called with progress lines.

    Returns:
        What was written.

    Raises:
        ConfigError: If ``out`` exists and ``overwrite`` is off, or a prompt has no embedding.
        DrywallQAError: If the model cannot be exported or the browser runtime cannot be fetched.
    """
    from drywallqa.data.prompts import PromptConfig
    from drywallqa.inference import OnnxPredictor, load_predictor

    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for the app")
    _check_model(model)  # before fetching anything
    backends = check_backends(BACKENDS if webgpu else ("wasm",))
    runtime_files = ensure_ort_web(backends, say=say)  # first: a missing npm fails before the export
    prompt_config = prompt_config or PromptConfig.default()
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    predictor = load_predictor(model, device="cpu", runtime="onnx", say=say)
    assert isinstance(predictor, OnnxPredictor)  # runtime="onnx"
    predictor.set_prompt_config(prompt_config)
    model_doc = model_json(predictor, prompt_config, qa_rules)
    model_doc["runtime"] = {"package": "onnxruntime-web", "version": ORT_WEB_VERSION, "backends": list(backends)}

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        staging.chmod(0o755)
        static = resources.files("drywallqa.serving").joinpath("static")
        for name in PAGE_FILES:
            _write(staging / name, static.joinpath(Path(name).name).read_bytes())
        shutil.copyfile(predictor.path, _parent(staging / "model" / "model.onnx"))
        _write(staging / "model" / "model.json", json.dumps(model_doc, separators=(",", ":")).encode())
        for name, path in runtime_files.items():
            shutil.copyfile(path, _parent(staging / "ort" / name))
        _write(staging / "ort" / "NOTICE.txt", (path.parent / "NOTICE.txt").read_bytes())
        for size in ICON_SIZES:
            _write(staging / "icons" / f"icon-{size}.png", _icon_png(size))
        _write(staging / "manifest.webmanifest", json.dumps(_manifest(), indent=1).encode())
        files = _hashes(staging)
        lazy = sorted(f"ort/{name}" for backend in LAZY_BACKENDS if backend in backends for name in ORT_WEB_FILES[backend])
        version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
        precache = ["./", "app.json", *sorted(name for name in files if name not in lazy)]
        _write(staging / "sw.js", _service_worker(version, precache, lazy))
        files = _hashes(staging)
        app = {"format": APP_FORMAT, "version": APP_VERSION, "drywallqa": __version__, "build": version,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": model_doc["model"],
               "ort_web": {"version": ORT_WEB_VERSION, "backends": list(backends)}, "files": files}
        _write(staging / "app.json", json.dumps(app, indent=1).encode())
        sizes = {name: (staging / name).stat().st_size for name in [*files, "app.json"]}
        replace_folder(staging, out, "the app")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return WebAppBuild(out, f"{model_doc['model']['name']} {model_doc['model']['precision']}",
                       [p["text"] for p in model_doc["prompts"]], backends, sizes)


def _check_model(model: str | None) -> None:
    if model is None:
        return
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise ConfigError(f"{path}: no such ONNX file (write one with `drywallqa export --format onnx`)")
    elif not (path / "model.safetensors").is_file():
        raise ConfigError(f"--model {model}: the app runs a model folder of `drywallqa train` (save_pretrained) or an "
                          ".onnx file of `drywallqa export`; other architectures have no ONNX export")


def model_json(predictor, prompt_config, qa_rules: QARules) -> dict:
    """``model/model.json``: the graph's input, the known prompts with their embeddings, classes and
    mask thresholds, and the QA rules.

    Args:
        predictor: An :class:`~drywallqa.inference.OnnxPredictor` (its per-class thresholds set).
        prompt_config: The prompt classes (their prompts, paraphrases and held-out paraphrases).
        qa_rules: The QA rules.

    Raises:
        ConfigError: For a prompt with no stored embedding that the model cannot embed.
    """
    entries: dict[str, dict] = {}
    for prompt_class_ in prompt_config.classes.values():
        for kind, texts in (("canonical", [prompt_class_.prompt]), ("paraphrase", prompt_class_.paraphrases),
                            ("heldout", prompt_class_.heldout)):
            for text in texts:
                entries.setdefault(prompt_key(text), {"text": text, "kind": kind})
    store = predictor.prompt_embeddings
    for text, kind in zip(store.prompts, store.kinds):  # prompts stored with the graph beyond the config's
        entries.setdefault(prompt_key(text), {"text": text, "kind": kind})
    texts = [entry["text"] for entry in entries.values()]
    embeddings = predictor.embed(texts)
    prompts = []
    for (key, entry), row in zip(entries.items(), embeddings):
        class_name = prompt_class(entry["text"], prompt_config)
        prompts.append({"text": entry["text"], "key": key, "kind": entry["kind"], "class": class_name,
                        "figure_set": qa_rules.figure_set(class_name), "threshold": predictor.threshold_for(entry["text"]),
                        "embedding": [float(v) for v in row]})
    metadata = predictor.metadata
    return {
        "format": MODEL_JSON_FORMAT, "version": APP_VERSION,
        "model": {"name": metadata.get("model", predictor.path.stem), "precision": metadata.get("precision", "fp32"),
                  "file": "model.onnx", "image_size": predictor.image_size, "embed_dim": int(embeddings.shape[1]),
                  "text_encoder": store.text_encoder, "inputs": ["images", "prompt_embeddings"],
                  "outputs": ["mask_logits", "confidence_logits"]},
        "threshold": predictor.threshold, "thresholds": dict(getattr(predictor, "thresholds", {}) or {}),
        "classes": {name: pc.prompt for name, pc in prompt_config.classes.items()},
        "photo": {"max_side": PHOTO_MAX_SIDE, "min_side": MIN_IMAGE_SIDE},
        "prompts": prompts,
        "qa_rules": qa_rules_dict(qa_rules),
    }


def qa_rules_dict(rules: QARules) -> dict:
    """The rules as ``static/qa.js``'s ``judge`` reads them: each rule ``[figure, above, below]``."""
    def listed(entries):
        return [[rule.figure, rule.above, rule.below] for rule in entries]

    return {"source": rules.source, "min_component_area_px": rules.min_component_area_px, "classes": {
        name: {"figure_set": entry.figure_set, "defect": entry.defect, "required": entry.required,
               "min_area_percent": entry.min_area_percent, "rules": listed(entry.rules),
               "rules_mm": listed(entry.rules_mm), "rules_px": listed(entry.rules_px)}
        for name, entry in rules.classes.items()}}


@dataclass(frozen=True)
class WebApp:
    """A built app folder, as ``drywallqa serve --app`` serves it: only the files its ``app.json`` lists.

    Attributes:
        folder: The folder.
        files: Relative paths of its files (from ``app.json``), plus ``app.json``.
    """

    folder: Path
    files: frozenset[str]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> WebApp:
        """Check a folder written by :func:`build_webapp`.

        Raises:
            ConfigError: One line naming the folder when it is not a built app, or one missing a file.
        """
        folder = Path(folder)
        try:
            app = json.loads((folder / "app.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            app = None
        if not isinstance(app, dict) or app.get("format") != APP_FORMAT or not isinstance(app.get("files"), dict):
            raise ConfigError(f"{folder}: not an app folder of `drywallqa app build` (no app.json of format {APP_FORMAT!r})")
        if app.get("version") != APP_VERSION:
            raise ConfigError(f"{folder}: app format version {app.get('version')}, this drywallqa reads {APP_VERSION}; "
                              "build it again with `drywallqa app build`")
        missing = [name for name in app["files"] if not (folder / name).is_file()]
        if missing:
            raise ConfigError(f"{folder}: {len(missing)} file(s) of the app are missing, e.g. {missing[0]}; build it again")
        return cls(folder.resolve(), frozenset([*app["files"], "app.json"]))

    def path(self, name: str) -> Path | None:
        """The file of a relative URL path, or None when the app has no such file."""
        return self.folder / name if name in self.files else None


def media_type(name: str) -> str:
    """The Content-Type of an app file, by suffix."""
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


# -- writing ------------------------------------------------------------------------------------
def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, data: bytes) -> None:
    _parent(path).write_bytes(data)


def _hashes(folder: Path) -> dict[str, str]:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name != "app.json":
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _service_worker(version: str, precache: list[str], lazy: list[str]) -> bytes:
    template = resources.files("drywallqa.serving").joinpath("static").joinpath("sw.js").read_text(encoding="utf-8")
    marker = "/*BUILD*/"
    head, _, rest = template.partition(marker)
    _, _, tail = rest.partition(marker)
    if not tail:  # pragma: no cover - the packaged template always has both markers
        raise DrywallQAError("static/sw.js has no /*BUILD*/ ... /*BUILD*/ placeholder")
    build = json.dumps({"version": version, "precache": precache, "lazy": lazy}, indent=1)
    return (head + build + tail).encode("utf-8")


def _manifest() -> dict:
    return {"name": "drywallqa: inspect a wall", "short_name": "drywallqa", "start_url": "./", "scope": "./",
            "display": "standalone", "background_color": "#f4f6f8", "theme_color": THEME_COLOUR,
            "description": "Masks, QA figures and verdicts for photos of drywall, computed on this device.",
            "icons": [{"src": f"icons/icon-{size}.png", "sizes": f"{size}x{size}", "type": "image/png",
                       "purpose": "any maskable"} for size in ICON_SIZES]}


def _icon_png(size: int) -> bytes:
    """The app's icon: a wall panel with a red crack on the page's header colour."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), THEME_COLOUR)
    draw = ImageDraw.Draw(image)
    s = size / 192
    draw.rounded_rectangle([36 * s, 36 * s, 156 * s, 156 * s], radius=10 * s, fill="#e9e4da")
    points = [(70, 44), (84, 78), (76, 102), (98, 128), (94, 150)]
    draw.line([(x * s, y * s) for x, y in points], fill="#c62828", width=max(2, round(7 * s)), joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()



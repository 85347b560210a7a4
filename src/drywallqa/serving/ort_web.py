"""The web app's browser runtime: onnxruntime-web's dist files, fetched once from the npm registry.

They are tens of megabytes of WebAssembly, so they stay out of git (a GPU call carries the tracked
tree, and its room is for photos). :func:`fetch_ort_web` runs ``npm pack`` for the pinned version,
checks the tarball against its pinned npm integrity hash, and writes the files a backend needs into
``drywallqa/serving/ort_web_dist/`` (git-ignored, shipped in the wheel as package data);
``drywallqa app build`` copies them into the app. Two backends:

- ``wasm``: WebAssembly with SIMD, threaded when the page is cross-origin isolated (14 MB);
- ``webgpu``: the WebGPU build (its WebAssembly also runs the CPU kernels), loaded only by a
  browser that offers a WebGPU adapter (29 MB).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from drywallqa.errors import DrywallQAError

ORT_WEB_VERSION = "1.31.1"
#: npm's integrity field of ``onnxruntime-web@ORT_WEB_VERSION`` (``npm view onnxruntime-web@1.31.1 dist.integrity``).
ORT_WEB_INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
#: The files of each backend in the package's ``dist/``: the ES module the page imports, then the
#: Emscripten loader and WebAssembly it loads.
ORT_WEB_FILES = {
    "wasm": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
}
BACKENDS = tuple(ORT_WEB_FILES)
#: What was fetched: version, integrity and each file's SHA-256, beside the files.
STAMP_FILE = "ort-web.json"
NOTICE = ("onnxruntime-web {version} (https://www.npmjs.com/package/onnxruntime-web), Copyright (c) Microsoft "
          "Corporation, MIT License; fetched from the npm registry by `drywallqa app fetch-runtime`.\n")
NPM_TIMEOUT_S = 600


def vendor_folder() -> Path:
    """Where the fetched files live: ``ort_web_dist/`` beside this module (package data of the wheel)."""
    return Path(__file__).resolve().parent / "ort_web_dist"


def check_backends(backends) -> tuple[str, ...]:
    """The backends asked for, validated and deduplicated (``wasm`` always comes first: it is the fallback)."""
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise DrywallQAError(f"unknown browser backend(s) {', '.join(unknown)}; expected some of {', '.join(BACKENDS)}")
    return tuple(b for b in BACKENDS if b in set(backends) | {"wasm"})


def vendored_files(backends=BACKENDS, folder: Path | None = None) -> dict[str, Path] | None:
    """The fetched files of ``backends`` (name -> path) when all are there, of the pinned version; else None."""
    folder = folder or vendor_folder()
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("version") != ORT_WEB_VERSION:
        return None
    names = [name for backend in check_backends(backends) for name in ORT_WEB_FILES[backend]]
    paths = {name: folder / name for name in names}
    if not all(path.is_file() and name in stamp.get("files", {}) for name, path in paths.items()):
        return None
    return paths


def ensure_ort_web(backends=BACKENDS, *, say=print) -> dict[str, Path]:
    """The files of ``backends``, fetched first when this install lacks them (see :func:`fetch_ort_web`)."""
    found = vendored_files(backends)
    if found is None:
        say(f"fetching onnxruntime-web {ORT_WEB_VERSION} from the npm registry (once) into {vendor_folder()} ...")
        fetch_ort_web()
        found = vendored_files(backends)
    if found is None:  # pragma: no cover - fetch_ort_web writes every file or raises
        raise DrywallQAError(f"{vendor_folder()}: onnxruntime-web files missing after the fetch")
    return found


def fetch_ort_web(folder: Path | None = None, *, npm: str = "npm") -> Path:
    """Fetch ``onnxruntime-web@ORT_WEB_VERSION`` with ``npm pack`` and write its browser files to ``folder``.

    The tarball must match :data:`ORT_WEB_INTEGRITY`; the folder is replaced only once every file
    is written, so an interrupted fetch leaves the old one (or none) in place.

    Args:
        folder: Destination; :func:`vendor_folder` by default.
        npm: The npm command.

    Returns:
        The folder.

    Raises:
        DrywallQAError: One line when npm is missing, the registry cannot be reached, the tarball
            does not match its hash, or the folder cannot be written.
    """
    folder = Path(folder or vendor_folder())
    hint = ("run `drywallqa app fetch-runtime` where the npm registry can be reached, or install a drywallqa "
            "wheel, which ships them")
    if shutil.which(npm) is None:
        raise DrywallQAError(f"onnxruntime-web {ORT_WEB_VERSION} (the web app's browser runtime) is not in this install "
                             f"and `{npm}` is not on PATH to fetch it: install Node.js with npm, or {hint}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the files from other users of the install
    except OSError as exc:
        raise DrywallQAError(f"{folder.parent}: cannot write the browser runtime there ({exc.strerror or exc})") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="drywallqa-npm-") as tmp:
            tarball = _npm_pack(npm, Path(tmp), hint)
            _extract(tarball, staging)
        replace_folder(staging, folder, "the browser runtime")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _npm_pack(npm: str, destination: Path, hint: str) -> Path:
    spec = f"onnxruntime-web@{ORT_WEB_VERSION}"
    try:
        proc = subprocess.run([npm, "pack", spec, "--pack-destination", str(destination), "--silent"],
                              capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DrywallQAError(f"`npm pack {spec}` took over {NPM_TIMEOUT_S} s; {hint}") from exc
    tarballs = sorted(destination.glob("onnxruntime-web-*.tgz"))
    if proc.returncode != 0 or not tarballs:
        lines = [re.sub(r"^npm (error|ERR!) ?", "", line.strip()) for line in (proc.stderr or proc.stdout or "").splitlines()]
        code = next((line.split(None, 1)[1] for line in lines if line.startswith("code ") and " " in line), "")
        detail = next((line for line in lines if line and not re.match(r"(code|syscall|errno)\b|A complete log", line)), "")
        why = ": ".join(filter(None, (code, detail)))
        raise DrywallQAError(f"`npm pack {spec}` failed ({why or f'exit code {proc.returncode}'}); {hint}")
    data = tarballs[0].read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if integrity != ORT_WEB_INTEGRITY:
        raise DrywallQAError(f"{tarballs[0].name} does not match the pinned npm integrity of {spec} "
                             f"(expected {ORT_WEB_INTEGRITY}, got {integrity}); nothing was written")
    return tarballs[0]


def _extract(tarball: Path, staging: Path) -> None:
    files = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for name in (n for names in ORT_WEB_FILES.values() for n in names):
            try:
                member = tar.extractfile(f"package/dist/{name}")
            except KeyError:
                member = None
            if member is None:
                raise DrywallQAError(f"{tarball.name} has no dist/{name}; is ORT_WEB_FILES right for {ORT_WEB_VERSION}?")
            data = member.read()
            (staging / name).write_bytes(data)
            files[name] = hashlib.sha256(data).hexdigest()
    (staging / "NOTICE.txt").write_text(NOTICE.format(version=ORT_WEB_VERSION), encoding="utf-8")
    stamp = {"package": "onnxruntime-web", "version": ORT_WEB_VERSION, "integrity": ORT_WEB_INTEGRITY, "files": files}
    (staging / STAMP_FILE).write_text(json.dumps(stamp, indent=1), encoding="utf-8")


def replace_folder(staging: Path, folder: Path, what: str) -> None:
    """Put ``staging`` where ``folder`` is, the old one moved aside first and removed after, so
    ``folder`` is never half-written; ``what`` names it in the error (``"the app"``)."""
    old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
    try:
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
    except OSError as exc:
        raise DrywallQAError(f"{folder}: cannot write {what} there ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(old, ignore_errors=True)

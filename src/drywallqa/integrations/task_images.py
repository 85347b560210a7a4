"""Reading a Label Studio task's photo: where from, and what the backend refuses to read.

A task names its photo by a URL that Label Studio made, or that whoever imported the tasks wrote.
The backend reads only what lies on this machine:

==========================================  =====================================================
task URL                                    read from
==========================================  =====================================================
``/data/upload/<project>/<file>``           ``upload_dir / <project>/<file>`` (Label Studio's
                                            ``<data dir>/media/upload``); else fetched from
                                            ``label_studio_url``
``/data/local-files/?d=<path>``             ``local_files_root / <path>`` (Label Studio's
                                            ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``); else
                                            fetched from ``label_studio_url``
``http(s)://localhost...``, ``127.x``,      fetched over HTTP (no proxy, no redirect); the API
``[::1]``                                   key goes only to ``label_studio_url``'s origin
anything else (another host, ``s3://``,     refused with a reason: the backend opens no
``file://``, ``data:``)                     connection beyond this machine
==========================================  =====================================================

A local path must resolve inside its root (links and ``..`` resolved): a task naming
``?d=../../etc/passwd`` is refused.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from drywallqa.errors import ConfigError, DataError
from drywallqa.files import PHOTO_MAX_SIDE, Photo, read_photo

UPLOAD_PREFIX = "/data/upload/"
LOCAL_FILES_PREFIX = "/data/local-files"
#: Largest photo the backend fetches over HTTP.
MAX_IMAGE_BYTES = 100 * 1024 * 1024


class TaskImageError(DataError):
    """A task's photo cannot or may not be read; the message says which and why."""


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` lies in ``root`` once links and ``..`` are resolved.

    Stricter than :func:`drywallqa.paths.is_inside`, the rule for a dataset's own files (where a
    linked file was made by whoever made the folder): a task's photo name comes from the labelling
    server, so a link that leads out of the allowed root is refused too.
    """
    if "\x00" in str(path):
        return False
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off this machine: it is an error, not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} not followed", headers, fp)


@dataclass
class TaskImageReader:
    """Reads the photos Label Studio tasks name (see the module docstring for the rules).

    Attributes:
        upload_dir: Label Studio's upload folder, ``<data dir>/media/upload`` (made by Label Studio
            at the first upload); None to fetch ``/data/upload/`` URLs from ``label_studio_url``.
        local_files_root: Label Studio's local files document root; None to fetch
            ``/data/local-files/`` URLs from ``label_studio_url``.
        label_studio_url: Label Studio's own address (``http://localhost:8080``), on this
            machine; relative task URLs are fetched from it.
        api_key: Label Studio access token sent with requests to ``label_studio_url``.
        timeout_s: Longest wait for a fetched photo.
    """

    upload_dir: Path | None = None
    local_files_root: Path | None = None
    label_studio_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.local_files_root is not None and not Path(self.local_files_root).is_dir():
            raise ConfigError(f"Label Studio local files root {self.local_files_root}: no such folder")
        self.upload_dir = Path(self.upload_dir) if self.upload_dir else None
        self.local_files_root = Path(self.local_files_root) if self.local_files_root else None
        if self.label_studio_url:
            scheme, host, _ = _origin(self.label_studio_url)
            if scheme not in ("http", "https") or not is_loopback(host):
                raise ConfigError(f"Label Studio URL {self.label_studio_url!r}: expected http(s)://localhost:PORT or a "
                                  "loopback address (the backend opens no connection beyond this machine)")
            self.label_studio_url = self.label_studio_url.rstrip("/")

    def read(self, url: object, *, max_side: int | None = PHOTO_MAX_SIDE) -> Photo:
        """The photo ``url`` names, turned as a viewer shows it (:func:`~drywallqa.files.read_photo`).

        Args:
            url: The task's image URL.
            max_side: Decode to at most this long side (None: full size).

        Raises:
            TaskImageError: If the URL is refused, names nothing, or is not a readable photo.
        """
        if not isinstance(url, str) or not url.strip():
            raise TaskImageError(f"no image URL in the task (got {url!r:.80})")
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            if not is_loopback(parts.hostname):
                raise TaskImageError(f"{url:.200}: not on this machine; the backend reads local files and localhost URLs "
                                     "only (serve the photos from Label Studio, or import them as uploads or local files)")
            local = self._local_path(parts)
            return self._read_file(local, url, max_side) if local is not None else self._fetch(url, max_side)
        if parts.scheme or parts.netloc:
            raise TaskImageError(f"{url:.200}: cannot read {parts.scheme or 'this'} URLs; the backend reads Label "
                                 "Studio uploads, local files and localhost URLs")
        local = self._local_path(parts)
        if local is not None:
            return self._read_file(local, url, max_side)
        if self.label_studio_url and parts.path.startswith("/"):
            return self._fetch(self.label_studio_url + url, max_side)
        raise TaskImageError(f"{url:.200}: give the backend Label Studio's data folder (--label-studio-data), its local "
                             "files root (--local-files-root) or its URL (--label-studio-url) to read it")

    def _local_path(self, parts) -> Path | None:
        """Where a ``/data/upload/`` or ``/data/local-files/`` URL lies here, when its root is known."""
        if parts.path.startswith(UPLOAD_PREFIX) and self.upload_dir is not None:
            return self._under(self.upload_dir, unquote(parts.path[len(UPLOAD_PREFIX):]))
        if parts.path.rstrip("/") == LOCAL_FILES_PREFIX and self.local_files_root is not None:
            names = parse_qs(parts.query).get("d") or [""]
            return self._under(self.local_files_root, names[0])
        return None

    @staticmethod
    def _under(root: Path, relative: str) -> Path:
        path = root / relative.lstrip("/")
        if not relative.strip("/") or not inside(path, root):
            raise TaskImageError(f"{relative!r:.200} leads out of {root}: refused")
        return path

    @staticmethod
    def _read_file(path: Path, url: str, max_side: int | None) -> Photo:
        if not path.is_file():
            raise TaskImageError(f"{url:.200}: no such file {path}")
        try:
            return read_photo(path, name=str(path), max_side=max_side)
        except DataError as exc:
            raise TaskImageError(str(exc)) from exc

    def _fetch(self, url: str, max_side: int | None) -> Photo:
        headers = {}
        if self.api_key and self.label_studio_url and _origin(url) == _origin(self.label_studio_url):
            headers["Authorization"] = f"Token {self.api_key}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s) as response:
                data = response.read(MAX_IMAGE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise TaskImageError(f"{url:.200}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TaskImageError(f"{url:.200}: cannot fetch ({getattr(exc, 'reason', exc)})") from exc
        if len(data) > MAX_IMAGE_BYTES:
            raise TaskImageError(f"{url:.200}: over {MAX_IMAGE_BYTES // 2**20} MiB")
        try:
            return read_photo(data, name=url[:200], max_side=max_side)
        except DataError as exc:
            raise TaskImageError(str(exc)) from exc

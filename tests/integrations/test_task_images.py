"""Which task photos the Label Studio backend reads, and what it refuses to read."""

from __future__ import annotations

import http.server
import threading

import numpy as np
import pytest
from labelling_helpers import bar_photo

from drywallqa.errors import ConfigError
from drywallqa.integrations.task_images import TaskImageError, TaskImageReader, inside, is_loopback


@pytest.fixture
def reader(photo_tree) -> TaskImageReader:
    return TaskImageReader(upload_dir=photo_tree / "ls-data" / "media" / "upload", local_files_root=photo_tree / "site-photos")


@pytest.mark.parametrize("url", [
    "/data/upload/3/1a2b3c4d-wall.png",
    "/data/local-files/?d=level-2/room%205.png",
    "/data/local-files/?d=level-2%2Froom%205.png",
    "http://localhost:8080/data/upload/3/1a2b3c4d-wall.png",  # Label Studio's own URL: read from the folder
])
def test_reads_uploads_and_local_files(reader, url):
    photo = reader.read(url)
    assert (photo.width, photo.height) == (90, 60)
    np.testing.assert_array_equal(photo.pixels, bar_photo())


@pytest.mark.parametrize("url, reason", [
    ("/data/upload/../../../secret.png", "leads out of"),
    ("/data/upload/3/../../../../secret.png", "leads out of"),
    ("/data/local-files/?d=../secret.png", "leads out of"),
    ("/data/local-files/?d=/etc/passwd", "no such file"),  # absolute: taken inside the root, where it is not
    ("/data/local-files/?d=", "leads out of"),
    ("/data/upload/3/missing.png", "no such file"),
    ("https://example.com/wall.jpg", "not on this machine"),
    ("http://10.0.0.7/wall.jpg", "not on this machine"),
    ("s3://bucket/wall.jpg", "cannot read s3"),
    ("file:///etc/passwd", "cannot read file"),
    ("data:image/png;base64,AAAA", "cannot read data"),
    ("/static/wall.jpg", "--label-studio-data"),
    ("", "no image URL"),
    (None, "no image URL"),
])
def test_refuses_what_it_may_not_read(reader, url, reason):
    with pytest.raises(TaskImageError, match="^.*" + reason.replace("(", r"\(")):
        reader.read(url)


def test_a_link_out_of_the_root_is_refused(photo_tree, reader):
    (photo_tree / "site-photos" / "escape.png").symlink_to(photo_tree / "secret.png")
    with pytest.raises(TaskImageError, match="leads out of"):
        reader.read("/data/local-files/?d=escape.png")


def test_not_a_photo_is_one_clear_error(photo_tree, reader):
    (photo_tree / "site-photos" / "notes.png").write_text("not an image")
    with pytest.raises(TaskImageError, match="notes.png"):
        reader.read("/data/local-files/?d=notes.png")


@pytest.mark.parametrize("host, expected", [
    ("localhost", True), ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
    ("10.0.0.1", False), ("example.com", False), ("localhost.example.com", False), ("", False), (None, False),
])
def test_loopback(host, expected):
    assert is_loopback(host) is expected


def test_inside(tmp_path):
    assert inside(tmp_path / "a" / "b.png", tmp_path)
    assert not inside(tmp_path / ".." / "b.png", tmp_path)
    assert not inside(tmp_path.parent / (tmp_path.name + "-other") / "b.png", tmp_path)


def test_label_studio_url_must_be_on_this_machine(tmp_path):
    with pytest.raises(ConfigError, match="loopback"):
        TaskImageReader(label_studio_url="http://labelstudio.example.com:8080")
    with pytest.raises(ConfigError, match="no such folder"):
        TaskImageReader(local_files_root=tmp_path / "missing")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the bar photo at /data/upload/..., redirects /away, records each request's headers."""

    seen: list = []
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://example.com/wall.png")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(photo_tree):
    _Handler.seen = []
    _Handler.body = (photo_tree / "ls-data" / "media" / "upload" / "3" / "1a2b3c4d-wall.png").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetches_from_label_studio_with_its_token_only(local_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://10.255.255.1:9")  # ignored: nothing goes through a proxy
    reader = TaskImageReader(label_studio_url=local_server, api_key="secret-token")
    assert reader.read("/data/upload/3/1a2b3c4d-wall.png").pixels.shape == (60, 90, 3)
    assert _Handler.seen[-1] == ("/data/upload/3/1a2b3c4d-wall.png", "Token secret-token")
    # Another server on this machine is read, without the token.
    other = TaskImageReader(label_studio_url="http://localhost:1", api_key="secret-token")
    assert other.read(local_server + "/photo.png").pixels.shape == (60, 90, 3)
    assert _Handler.seen[-1] == ("/photo.png", None)


def test_a_redirect_is_not_followed(local_server):
    with pytest.raises(TaskImageError, match="302"):
        TaskImageReader().read(local_server + "/away")

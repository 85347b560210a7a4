"""The server under slow and numerous clients: header and body deadlines and the connection cap,
on a real uvicorn with :func:`drywallqa.serving.server.server_config` (raw sockets on 127.0.0.1)."""

from __future__ import annotations

import select
import socket
import time

import pytest

pytest.importorskip("uvicorn", reason="the HTTP service needs uvicorn (pip install 'drywallqa[serve]')")
pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
import httpx
from serving_helpers import DarkPixelPredictor, running_server

from drywallqa.serving import create_app

HEADER_TIMEOUT_S = 0.5
MAX_CONNECTIONS = 30


@pytest.fixture(scope="module")
def server():
    """The app on the guarded protocol in a thread: (port, uvicorn server)."""
    app = create_app(DarkPixelPredictor(), body_timeout_s=0.5)
    with running_server(app, header_timeout_s=HEADER_TIMEOUT_S, max_connections=MAX_CONNECTIONS) as running:
        yield running


def slow_client(port: int, first: bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n") -> socket.socket:
    """A connection that sent the start of a request and then nothing (or a byte now and then)."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(first)
    return conn


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        chunks.append(b"<reset>")
    return b"".join(chunks)


def healthy(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def wait_until_healthy(port: int, patience_s: float = 30) -> bool:
    """Healthy within ``patience_s`` (many header deadlines: a busy machine runs late, not wrong)."""
    give_up = time.monotonic() + patience_s
    while not healthy(port):
        if time.monotonic() > give_up:
            return False
        time.sleep(HEADER_TIMEOUT_S / 2)
    return True


def test_trickled_headers_get_408_and_the_connection_closed(server):
    """A header line now and then does not extend the deadline: the server answers while the client
    is still trickling (if each line extended it, no answer would come before the trickle ends)."""
    port, _ = server
    started = time.monotonic()
    conn = slow_client(port)
    trickle, sent = 80, 0  # lines, one every quarter deadline: 20 deadlines, ample room for a busy machine
    # Until the server answers (or closes), or the trickle ends.
    while sent < trickle and not select.select([conn], [], [], HEADER_TIMEOUT_S / 4)[0]:
        try:
            conn.sendall(b"X-a: b\r\n")
        except OSError:
            break
        sent += 1
    reply = read_all(conn)
    assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply
    assert time.monotonic() - started >= HEADER_TIMEOUT_S  # not before the deadline (a busy machine is only later)
    assert sent < trickle  # nor kept open by the trickle
    conn.close()
    assert healthy(port)


def test_idle_keep_alive_connection_gets_the_same_deadline(server):
    port, _ = server
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request trickles
    assert read_all(conn).startswith(b"HTTP/1.1 408")
    conn.close()


def test_connection_cap_holds_against_many_slow_clients(server):
    port, uvicorn_server = server
    clients = [slow_client(port) for _ in range(MAX_CONNECTIONS)]
    give_up = time.monotonic() + 30  # the server has taken them all (a busy machine is only later)
    while len(uvicorn_server.server_state.connections) < MAX_CONNECTIONS and time.monotonic() < give_up:
        time.sleep(0.01)
    extra = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(10)]
    refused = [read_all(conn) for conn in extra]
    assert all(reply.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in reply for reply in refused)
    assert len(uvicorn_server.server_state.connections) <= MAX_CONNECTIONS
    assert wait_until_healthy(port)  # the slow ones time out: the server serves again
    for conn in clients + extra:
        conn.close()
    assert len(uvicorn_server.server_state.connections) <= 1


def test_trickled_body_gets_408(server):
    port, _ = server
    boundary = b"b0undary"
    head = (b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=" + boundary
            + b"\r\nContent-Length: 100000\r\n\r\n")
    conn = slow_client(port, head + b"--" + boundary + b"\r\n")
    reply = read_all(conn)
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in reply
    conn.close()


class BrokenPredictor(DarkPixelPredictor):
    def predict_batch(self, images, prompts, **kwargs):
        raise RuntimeError("the device is gone")


def test_internal_errors_are_json_and_stopping_the_server_stops_the_apps_threads():
    import io

    import numpy as np
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.full((64, 96, 3), 200, dtype=np.uint8)).save(png, format="PNG")
    app = create_app(BrokenPredictor())
    with running_server(app) as (port, _):
        response = httpx.post(f"http://127.0.0.1:{port}/v1/segment", data={"prompt": "segment crack"},
                              files={"image": ("wall.png", png.getvalue(), "image/png")}, timeout=10)
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
        assert healthy(port)
        batcher = app.state.batching.batcher
        assert batcher._thread.is_alive()
    assert batcher._closed and not batcher._thread.is_alive() and app.state.work_queue.executor is None

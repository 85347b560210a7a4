"""Running the app on uvicorn with limits that slow or numerous clients cannot get around.

uvicorn bounds idle keep-alive connections but not a client that trickles its request headers a
byte at a time (slowloris): such a connection is held for as long as the client likes, and a few
hundred of them exhaust the server's file descriptors. :class:`GuardedH11Protocol` adds what
uvicorn lacks: a deadline for a request's headers (408 and close after ``header_timeout_s``, from
the connection's start or the end of its previous response), and a cap on open connections (one
over it gets 503 and is closed at once). The body's deadline is the app's ``body_timeout_s``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 512


def _canned_response(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request-header deadline and a connection cap.

    Subclass it with :func:`guarded_protocol` to set the limits.
    """

    header_timeout_s: float = HEADER_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_canned_response(
                503, "Service Unavailable", "unavailable",
                f"the server holds its limit of {self.max_connections} connections; retry in a moment", "retry-after: 1\r\n"))
            transport.close()
            return
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived: the app's limits take over
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()  # the next request on this keep-alive connection

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:
            self.transport.write(_canned_response(
                408, "Request Timeout", "request_timeout",
                f"the request headers did not arrive within {self.header_timeout_s:g} s"))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)


def guarded_protocol(header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> type:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout_s": float(header_timeout_s), "max_connections": int(max_connections)})


def check_tls_files(certfile: str | None, keyfile: str | None) -> None:
    """Raise a one-line :class:`DrywallQAError` unless both or neither TLS file is given, and those given exist."""
    from drywallqa.errors import DrywallQAError

    if bool(certfile) != bool(keyfile):
        raise DrywallQAError("https needs both --ssl-certfile and --ssl-keyfile (a certificate and its private key)")
    for name, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path and not Path(path).is_file():
            raise DrywallQAError(f"{name}: no such file {path!r}")


def server_config(app, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = HEADER_TIMEOUT_S,
                  max_connections: int = MAX_CONNECTIONS, log_level: str = "info",
                  ssl_certfile: str | None = None, ssl_keyfile: str | None = None):
    """A ``uvicorn.Config`` for ``app`` with the guarded protocol, short keep-alive and a header size cap.

    Args:
        app: The ASGI app (:func:`~drywallqa.serving.app.create_app`).
        host: Address to bind.
        port: Port.
        header_timeout_s: Longest time a client may take to send a request's headers.
        max_connections: Open connections beyond which a new one gets 503 and is closed.
        log_level: uvicorn's log level.
        ssl_certfile: PEM certificate to serve https with (with ``ssl_keyfile``); browsers give the
            web page's live camera only to https pages or to http on localhost.
        ssl_keyfile: Its PEM private key.
    """
    import uvicorn

    check_tls_files(ssl_certfile, ssl_keyfile)

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=guarded_protocol(header_timeout_s, max_connections),
        timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024,
        lifespan="on",  # the app's shutdown stops its model thread and worker threads
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
    )

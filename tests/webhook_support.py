"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that checks every
request's signature with the Standard Webhooks library (``standardwebhooks`` from PyPI), as an
application would, and keeps what it accepted.

``answer`` says what it does with the next requests: ``200`` (accept), another status code
(refuse: the sender must retry), or ``"hang"`` (hold the request until ``release()``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from postline.common.webhooks import new_secret


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    payload: dict[str, Any]
    path: str


@dataclass
class WebhookReceiver:
    secret: str = field(default_factory=new_secret)
    answer: int | str = 200
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0  # requests answered with something else than a 2xx
    bad_signatures: int = 0
    _server: ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        answer = self.answer
        if answer == "hang":
            self._released.wait(60)
            answer = 200 if self.answer == "hang" else self.answer
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            with self._lock:
                self.bad_signatures += 1
            answer = 401
        else:
            if answer == 200:
                with self._lock:
                    self.accepted.append(
                        Received(
                            request.headers["webhook-id"],
                            request.headers["webhook-timestamp"],
                            payload,
                            request.path,
                        )
                    )
            else:
                with self._lock:
                    self.refused += 1
        reply = json.dumps({"ok": answer == 200}).encode()
        request.send_response(int(answer))
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(reply)))
        request.end_headers()
        request.wfile.write(reply)

    def release(self) -> None:
        self._released.set()

    def url(self, path: str = "/hooks") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                event
                for r in self.accepted
                if path is None or r.path == path
                for event in r.payload["data"].get("events", [])
            ]

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextlib.contextmanager
def receiver_pair() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    """Two started receivers (each with its own secret), stopped afterwards."""
    pair = (WebhookReceiver().start(), WebhookReceiver().start())
    try:
        yield pair
    finally:
        for receiver in pair:
            receiver.stop()

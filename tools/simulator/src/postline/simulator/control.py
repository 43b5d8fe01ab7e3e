"""The control API: what the simulator received, over HTTP, served in the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from postline.simulator.behaviour import Behaviour
from postline.simulator.records import Recorder

logger = logging.getLogger(__name__)


def create_app(recorder: Recorder, behaviour: Behaviour) -> FastAPI:
    app = FastAPI(title="Postline destination simulator", docs_url=None, redoc_url=None)

    # Endpoints are async so they run on the loop that owns the recorder.
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/messages")
    async def messages(
        rcpt: str | None = None,
        domain: str | None = None,
        since: float | None = None,
        raw: bool = False,
    ) -> list[dict[str, Any]]:
        found = recorder.messages(rcpt=rcpt, domain=domain, since=since)
        return [record.to_json(include_raw=raw) for record in found]

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return recorder.stats()

    @app.post("/reset")
    async def reset() -> dict[str, str]:
        recorder.reset()
        behaviour.reset()
        logger.info("records and greylist state reset")
        return {"status": "reset"}

    return app


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


class ControlServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server = _EmbeddedServer(
            uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            sock.close()
            self._task.result()
            raise RuntimeError(f"control API on {self.host}:{self.port} did not start")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None

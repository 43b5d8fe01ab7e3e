"""The simulator: SMTP server and control API sharing one event loop and one recorder."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from types import TracebackType

from postline.simulator.behaviour import Behaviour
from postline.simulator.control import ControlServer, create_app
from postline.simulator.records import Recorder
from postline.simulator.server import SimulatorHandler, SimulatorSMTP

logger = logging.getLogger(__name__)

DEFAULT_SMTP_PORT = 2600
DEFAULT_CONTROL_PORT = 2601
DEFAULT_SLOW_SECONDS = 5.0
DEFAULT_HOSTNAME = "mx.simulator.test"
_CLOSE_TIMEOUT = 5.0


class Simulator:
    """Stands in for the internet's mail servers.

    Port 0 binds a free port; after :meth:`start`, ``smtp_port`` and ``control_port`` hold
    the bound ports. ``control_port=None`` runs without the control API.
    """

    def __init__(
        self,
        smtp_host: str = "127.0.0.1",
        smtp_port: int = DEFAULT_SMTP_PORT,
        *,
        control_host: str = "127.0.0.1",
        control_port: int | None = DEFAULT_CONTROL_PORT,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        hostname: str = DEFAULT_HOSTNAME,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.control_host = control_host
        self.control_port = control_port
        self.hostname = hostname
        self.slow_seconds = slow_seconds
        self.tls_context = _tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
        self.behaviour = Behaviour()
        self.recorder = Recorder()
        self._connections: set[SimulatorSMTP] = set()
        self._smtp_server: asyncio.Server | None = None
        self._control: ControlServer | None = None

    @property
    def control_url(self) -> str:
        if self.control_port is None:
            raise RuntimeError("the simulator runs without a control API")
        return f"http://{self.control_host}:{self.control_port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = SimulatorHandler(self.behaviour, self.recorder, self.slow_seconds)

        def connection() -> SimulatorSMTP:
            return SimulatorSMTP(
                handler,
                self.recorder,
                self._connections,
                hostname=self.hostname,
                enable_SMTPUTF8=True,
                tls_context=self.tls_context,
                require_starttls=False,
                loop=loop,
            )

        self._smtp_server = await loop.create_server(connection, self.smtp_host, self.smtp_port)
        self.smtp_port = self._smtp_server.sockets[0].getsockname()[1]
        logger.info(
            "SMTP on %s:%s (STARTTLS %s)",
            self.smtp_host,
            self.smtp_port,
            "on" if self.tls_context else "off",
        )
        if self.control_port is not None:
            app = create_app(self.recorder, self.behaviour)
            self._control = ControlServer(app, self.control_host, self.control_port)
            try:
                await self._control.start()
            except BaseException:
                await self.stop()
                raise
            self.control_port = self._control.port
            logger.info("control API on %s", self.control_url)

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.stop()
            self._control = None
        if self._smtp_server is not None:
            self._smtp_server.close()
            await self._close_connections()
            await self._smtp_server.wait_closed()
            self._smtp_server = None
            logger.info("SMTP on %s:%s stopped", self.smtp_host, self.smtp_port)

    async def _close_connections(self) -> None:
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        if not connections:
            return
        # connection_lost runs on a later loop iteration than transport.close().
        _, pending = await asyncio.wait(
            [asyncio.create_task(c.closed.wait()) for c in connections], timeout=_CLOSE_TIMEOUT
        )
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("%s SMTP connections still open at shutdown", len(pending))

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context

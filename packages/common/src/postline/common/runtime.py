"""What every service process needs around its own work: a stop signal, an HTTP server.

Services without an HTTP API of their own serve ``/healthz`` (alive), ``/readyz`` (ready to
work, with the reasons when not) and ``/metrics`` (Prometheus) on ``POSTLINE_HEALTH_LISTEN``
with uvicorn (see ``health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar

import grpc
import uvicorn
import uvloop
from pydantic_settings import BaseSettings, SettingsConfigDict

from postline.common.health import Readiness, probe_app

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LoopSettings(BaseSettings):
    """Read before the event loop exists (the service's own settings are read inside it)."""

    model_config = SettingsConfigDict(env_prefix="POSTLINE_", extra="ignore")

    # uvloop (libuv) runs the same asyncio code with a cheaper loop and transports: less CPU
    # per SMTP command and AMQP frame (bench/README.md, "End to end").
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service's ``main`` on the event loop ``POSTLINE_EVENT_LOOP`` names."""

    async def serve() -> None:
        keep_grpc_aio()
        await main()

    if LoopSettings().event_loop == "uvloop":
        uvloop.run(serve())
    else:
        asyncio.run(serve())


def keep_grpc_aio() -> None:
    """Hold gRPC's asyncio runtime for the life of the process (call it on the event loop).

    gRPC counts its asyncio servers and channels and shuts its runtime down when the last one
    is freed: it shuts the completion queue down and joins its poller thread. When that last
    one is freed by the garbage collector on another thread (a ClickHouse worker thread, say)
    while an operation is still pending, the shutdown never completes and that thread waits
    for ever; a test process was seen stuck so in a ClickHouse client's start-up. One reference
    held from the start means the count never reaches zero: the runtime ends with the process.
    """
    grpc.aio.init_grpc_aio()


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable`` for at most ``seconds`` (then :class:`TimeoutError`), in the
    calling task. Use it instead of ``asyncio.wait_for``: on Python 3.11 ``wait_for`` drops a
    cancel that lands as the awaited thing completes, so a task asked to stop in that moment
    goes on (a loop around it runs for ever; one did, in a broker's ``close``).
    ``asyncio.timeout`` keeps every cancel that did not come from its own deadline."""
    async with asyncio.timeout(seconds):
        return await awaitable


# A stop that takes longer than this logs what the process still waits for: its tasks from
# the event loop, then (should the loop itself be stuck, or the process be past it) every
# thread's stack from a thread of its own.
SLOW_STOP_SECONDS = 10.0


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Kubernetes sends SIGTERM on rolling updates)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            loop.call_later(SLOW_STOP_SECONDS, _log_waiting_tasks)
            threads = threading.Timer(SLOW_STOP_SECONDS + 5, _log_thread_stacks)
            threads.daemon = True
            threads.start()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return stop


def _log_waiting_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    lines = [f"still stopping after {SLOW_STOP_SECONDS:g} s; {len(tasks)} tasks wait:"]
    lines += [f"{task.get_name()}: {' > '.join(_awaiting(task.get_coro()))}" for task in tasks]
    logger.warning("\n".join(lines))


def _awaiting(coro: object) -> list[str]:
    """Where a suspended coroutine waits, outermost first (a task's own stack is one frame)."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            where.append(type(coro).__name__)
            break
        where.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _log_thread_stacks() -> None:
    logger.warning("still not stopped after %g s; every thread's stack:", SLOW_STOP_SECONDS + 5)
    faulthandler.dump_traceback(all_threads=True)


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:port``) to a host and a port."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.strip("[]"), int(port)


async def serve_health(listen: str, readiness: Readiness) -> HttpServer:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` (see ``health``) on ``listen``."""
    server = HttpServer(probe_app(readiness), listen)
    await server.start()
    logger.info("%s serving /healthz /readyz /metrics", listen)
    return server


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service's own loop: the service, not uvicorn, owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """An ASGI app served on ``host:port`` until ``stop()``."""

    def __init__(self, app: Any, listen: str) -> None:
        host, port = split_listen(listen)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError("HTTP server stopped while starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

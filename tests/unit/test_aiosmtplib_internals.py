"""The aiosmtplib internals ``bench/floor/run.py`` relies on.

The floor benchmark's bare client writes a message the way the sender once did, waiting for
the transport to drain through aiosmtplib's ``_drain_helper``: if an upgrade renamed it or
``_paused``, the benchmark would fail or stop waiting. (The sender itself no longer uses them:
after opening, its own protocol, ``postline.sender.connection``, does the writing and reading.)
"""

from __future__ import annotations

import asyncio
import inspect

from aiosmtplib.protocol import FlowControlMixin, SMTPProtocol


def test_flow_control_names_the_paused_transport() -> None:
    async def check() -> None:
        protocol = SMTPProtocol()
        assert protocol._paused is False
        protocol.pause_writing()
        assert protocol._paused is True
        protocol.resume_writing()
        assert protocol._paused is False
        await asyncio.wait_for(protocol._drain_helper(), 1)  # not paused: returns at once

    asyncio.run(check())


def test_drain_waits_only_while_paused() -> None:
    source = inspect.getsource(FlowControlMixin._drain_helper)
    assert "if not self._paused:" in source

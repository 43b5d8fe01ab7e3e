"""The aiosmtplib internals the sender's DATA relies on (``postline.sender.smtp``).

The sender writes the message itself and waits for each block to drain only while the
transport has paused writing: if an upgrade renamed ``_paused`` or ``_drain_helper``, the data
block timeout would stop applying (or DATA would fail) without a loud error where it is used.
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

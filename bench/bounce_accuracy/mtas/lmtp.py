"""A scripted LMTP server (RFC 2033) for mailbox servers that cannot run here within minutes
(Cyrus's lmtpd, round 23): it answers each recipient the reply scripted for it on the shared
:class:`Destination` (``Destination.script``), at RCPT or after DATA, as the scripted SMTP
server does, and takes every other recipient. An MTA under test delivers to it over LMTP,
so its notice quotes the reply as it quotes a mailbox server's.

A reply after DATA is one for the whole message: an LMTP server answers the end of DATA once
per recipient, so cases scripted at DATA here send to one recipient.
"""

from __future__ import annotations

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from .destination import HOST, Destination, _ScriptedHandler

PORT = 8532  # 2532 + the helper's test port offset (6000)


class ScriptedLMTP:
    """Scripted LMTP on ``HOST``:``PORT`` while the context is open."""

    host = HOST
    port = PORT

    def __init__(self, destination: Destination, hostname: str, port: int = PORT) -> None:
        self.port = port
        self._controller = _LMTPController(
            _ScriptedHandler(destination), hostname=HOST, port=port, server_hostname=hostname
        )

    def __enter__(self) -> ScriptedLMTP:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class _LMTPController(Controller):
    def __init__(self, handler: object, *, server_hostname: str, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self._server_hostname = server_hostname

    def factory(self) -> LMTP:
        return LMTP(self.handler, hostname=self._server_hostname)

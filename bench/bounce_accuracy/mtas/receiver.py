"""A receiving-server round's server(s) as the sending MTAs in front of them need them.

Each such round's first module (``<round>_postfix``: the receiving side and Postfix sending to
it) describes its receiving side once, as ``RECEIVER``; ``exim.behind`` and ``sendmail.behind``
run Exim or Sendmail in front of it, so the round's ``<round>_exim`` and ``<round>_sendmail``
modules hold only their own constants (name, folder, port, final destination).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .cases import Case
from .destination import Destination

Prepared = TypeVar("Prepared")


@dataclass(frozen=True)
class Sending:
    """The sending MTA in front, as its receiving side is told of it."""

    mta: str
    cases: list[Case]
    destination: Destination
    out: Path
    port: int  # the sending MTA's own listener (a receiving side may relay through it)


@dataclass(frozen=True)
class Receiver:
    """``cases``: the round's case file; ``routes``: each recipient domain and the port of
    127.0.0.1 it goes to; ``relay``: the name of Exim's routes to them (``<relay>0``, ...);
    ``serving``: the receiving side running while open, what it yields (its versions) added to
    the rows' version; ``captured``: sender domains whose mail (the notices) goes to the capture
    server too, Exim's routes to them named ``<captured_as>0``, ...; ``clients``: the address
    the sending MTA binds to, one for all or one per sending module (none: not bound);
    ``exim_timeout``: how long Exim's notices are waited for, if not ``exim.TIMEOUT``;
    ``sendmail_routes``: Sendmail's mailer table routes, if not ``routes`` (a domain with a
    leading dot: all its subdomains by one entry; Sendmail takes at most 25 mailers, one per
    route)."""

    cases: Path
    routes: Callable[[], dict[str, int]]
    relay: str
    serving: Callable[[Sending], AbstractContextManager[str]]
    captured: tuple[str, ...] = ()
    captured_as: str = "sender"
    clients: Mapping[str, str] | str | None = None
    exim_timeout: float | None = None
    sendmail_routes: Callable[[], dict[str, int]] | None = None

    def client(self, mta: str) -> str | None:
        """The address ``mta`` binds to, if any."""
        if isinstance(self.clients, Mapping):
            return self.clients[mta]
        return self.clients

    def exim_captured(self) -> dict[str, str]:
        """Exim's route name for each captured domain."""
        return {f"{self.captured_as}{number}": d for number, d in enumerate(self.captured)}


def prepared(
    prepare: Callable[[], Prepared],
    receiving: Callable[[Path, str], AbstractContextManager[None]],
    words: Callable[[Prepared], str],
) -> Callable[[Sending], AbstractContextManager[str]]:
    """A ``Receiver.serving`` of a round whose receiving side is made by ``prepare`` (fresh
    folders, packages unpacked: what it returns, the packages' versions, told in ``words``)
    and run by ``receiving(out, mta)``."""

    @contextmanager
    def serving(sending: Sending) -> Iterator[str]:
        made = prepare()
        with receiving(sending.out, sending.mta):
            yield words(made)

    return serving

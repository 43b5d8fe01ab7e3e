"""A counting SMTP sink for the end-to-end benchmark: accepts everything, counts exactly.

    python bench/e2e/sink.py --listen 127.0.0.1:23026 --status /tmp/sink.json

Postfix's ``smtp-sink`` would be the natural sink, but its counters (``-c``, ``-M``) move only
when a session ends, so they lag by whole sessions when the client keeps sessions open (both
Postfix's connection cache and Postline's sender do), and its per-message dumps (``-d``) share
names within a second and overwrite each other. This one is an asyncio protocol (no
``aiosmtpd``, a few dozen microseconds per message) that records, for every message, when
its final dot arrived, and per recipient domain how many connections were open at once.

It writes a small status (messages so far) to ``--status`` at most ten times a second, and on
SIGTERM the whole record: arrival times, messages per domain, peak connections per domain,
duplicates (a ``Message-ID`` seen twice). Loopback only; a benchmark tool, not a server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

GREETING = b"220 sink ESMTP\r\n"
EHLO = b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
OK = b"250 2.0.0 Ok\r\n"
QUEUED = b"250 2.0.0 Ok: queued\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
BYE = b"221 2.0.0 Bye\r\n"
UNKNOWN = b"500 5.5.2 Error: command not recognized\r\n"
END = b"\r\n.\r\n"


class Record:
    """Everything the sink saw."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.per_domain: Counter[str] = Counter()
        self.open_per_domain: Counter[str] = Counter()
        self.peak_per_domain: Counter[str] = Counter()
        self.connections = 0
        self.peak_connections = 0
        self.sessions = 0
        self.message_ids: set[bytes] = set()
        self.duplicates = 0

    def opened(self) -> None:
        self.connections += 1
        self.sessions += 1
        self.peak_connections = max(self.peak_connections, self.connections)

    def closed(self, domains: set[str]) -> None:
        self.connections -= 1
        for domain in domains:
            self.open_per_domain[domain] -= 1

    def first_rcpt(self, domain: str) -> None:
        self.open_per_domain[domain] += 1
        peak = self.open_per_domain[domain]
        if peak > self.peak_per_domain[domain]:
            self.peak_per_domain[domain] = peak

    def message(self, domains: list[str], message_id: bytes | None) -> None:
        self.arrivals.append(time.time())
        for domain in domains:
            self.per_domain[domain] += 1
        if message_id is not None:
            if message_id in self.message_ids:
                self.duplicates += 1
            else:
                self.message_ids.add(message_id)

    def summary(self) -> dict[str, object]:
        return {"messages": len(self.arrivals), "last": self.arrivals[-1] if self.arrivals else 0}

    def full(self) -> dict[str, object]:
        return {
            **self.summary(),
            "arrivals": self.arrivals,
            "per_domain": dict(self.per_domain),
            "peak_connections_per_domain": dict(self.peak_per_domain),
            "peak_connections": self.peak_connections,
            "sessions": self.sessions,
            "duplicates": self.duplicates,
        }


def _message_id(data: bytes) -> bytes | None:
    head = data[: data.find(b"\r\n\r\n")].lower()
    at = head.find(b"\nmessage-id:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at + 1)
    return head[at + 12 : end if end > 0 else None].strip()


class SinkProtocol(asyncio.Protocol):
    def __init__(self, record: Record) -> None:
        self.record = record
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.in_data = False
        self.rcpt_domains: list[str] = []
        self.session_domains: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.record.opened()
        transport.write(GREETING)

    def connection_lost(self, exc: Exception | None) -> None:
        self.record.closed(self.session_domains)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer and self.transport is not None:
            if self.in_data:
                # The DATA line's CRLF counts as the CRLF before an empty message's dot.
                end = (b"\r\n" + self.buffer).find(END)
                if end < 0:
                    return
                message = self.buffer[: max(0, end)]
                self.buffer = self.buffer[end + 3 :]
                self.in_data = False
                self.record.message(self.rcpt_domains, _message_id(b"\r\n" + message))
                self.rcpt_domains = []
                self.transport.write(QUEUED)
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            self.command(line)

    def command(self, line: bytes) -> None:
        assert self.transport is not None
        verb = line[:4].upper()
        if verb == b"RCPT":
            domain = line.rpartition(b"@")[2].strip(b"> \t").decode("ascii", "replace").lower()
            self.rcpt_domains.append(domain)
            if domain not in self.session_domains:
                self.session_domains.add(domain)
                self.record.first_rcpt(domain)
            self.transport.write(OK)
        elif verb in (b"MAIL", b"RSET", b"NOOP", b"HELO"):
            self.rcpt_domains = []
            self.transport.write(OK)
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(GO_AHEAD)
        elif verb == b"EHLO":
            self.transport.write(EHLO)
        elif verb == b"QUIT":
            self.transport.write(BYE)
            self.transport.close()
            self.transport = None
        else:
            self.transport.write(UNKNOWN)


def _write(path: Path, content: dict[str, object]) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(content))
    os.replace(partial, path)


async def serve(host: str, port: int, status: Path) -> None:
    record = Record()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: SinkProtocol(record), host, port, backlog=1024)
    written = -1
    _write(status, record.summary())
    while not stop.is_set():
        if len(record.arrivals) != written:
            written = len(record.arrivals)
            _write(status, record.summary())
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass
    server.close()
    _write(status, record.full())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--status", required=True, type=Path)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    asyncio.run(serve(host, int(port), args.status))


if __name__ == "__main__":
    main()

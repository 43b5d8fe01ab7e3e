"""A small DNS server of the harness's own (round 41): it answers from a table, over UDP and TCP
on a loopback address, what an MTA's resolver asks about the DNS cases' domains. An MTA is
pointed at it by a private ``/etc/resolv.conf`` laid over the system's in its mount namespace
(:func:`resolv_conf`, a :class:`host.Bind`); the system's files are never changed.

Each name of the table is answered as the case needs: records (MX, A, CNAME, TXT; an MX to ``.``
is a null MX, RFC 7505; TXT for SPF, DMARC, DKIM keys and DNSBL reasons, round 45), none
(NODATA: the name exists with no record of the type asked), an rcode (SERVFAIL), or nothing at
all (the query dropped: a server that does not answer). A name not in the table is NXDOMAIN.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ADDRESS = "127.0.0.41"  # a loopback address of its own, port 53 (resolv.conf names no port)
TYPES = {"A": 1, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28}
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3


@dataclass(frozen=True)
class Name:
    """What one name answers: ``records`` (type, data: an MX's "10 mx.host", an A's address, a
    CNAME's target, a TXT's text, cut into strings of 255 bytes), ``rcode`` (SERVFAIL),
    ``silent`` (no answer at all)."""

    records: tuple[tuple[str, str], ...] = ()
    rcode: int = NOERROR
    silent: bool = False


@dataclass
class Table:
    names: dict[str, Name] = field(default_factory=dict)

    def answer(self, query: bytes) -> bytes | None:
        ident, _flags, count = struct.unpack("!HHH", query[:6])
        name, end = _name(query, 12)
        qtype = struct.unpack("!H", query[end : end + 2])[0]
        question = query[12 : end + 4]
        entry = self.names.get(name.lower().rstrip("."))
        if entry is not None and entry.silent:
            return None
        rcode = NXDOMAIN if entry is None else entry.rcode
        records = [] if entry is None or rcode else list(self._records(name, qtype, set()))
        header = struct.pack("!HHHHHH", ident, 0x8580 | rcode, min(count, 1), len(records), 0, 0)
        return header + question + b"".join(records)

    def _records(self, name: str, qtype: int, seen: set[str]) -> Iterator[bytes]:
        """The records of ``name`` of type ``qtype``, or its CNAME and what the chain gives
        (a loop ends where a name comes round again, as a recursive server's answer)."""
        key = name.lower().rstrip(".")
        entry = self.names.get(key)
        if entry is None or key in seen:
            return
        seen.add(key)
        for kind, data in entry.records:
            if TYPES[kind] == qtype:
                yield _record(key, kind, data)
            elif kind == "CNAME":
                yield _record(key, kind, data)
                yield from self._records(data, qtype, seen)


def _name(data: bytes, at: int) -> tuple[str, int]:
    labels = []
    while data[at]:
        length = data[at]
        labels.append(data[at + 1 : at + 1 + length].decode("ascii", "replace"))
        at += 1 + length
    return ".".join(labels), at + 1


def _encoded(name: str) -> bytes:
    parts = [p for p in name.rstrip(".").split(".") if p]
    return b"".join(bytes([len(p)]) + p.encode() for p in parts) + b"\0"


def _record(name: str, kind: str, data: str) -> bytes:
    if kind == "MX":
        preference, host = data.split()
        rdata = struct.pack("!H", int(preference)) + _encoded(host)
    elif kind == "CNAME":
        rdata = _encoded(data)
    elif kind == "TXT":
        text = data.encode("ascii")
        chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [b""]
        rdata = b"".join(bytes([len(chunk)]) + chunk for chunk in chunks)
    else:
        rdata = socket.inet_pton(socket.AF_INET6 if kind == "AAAA" else socket.AF_INET, data)
    return _encoded(name) + struct.pack("!HHIH", TYPES[kind], 1, 60, len(rdata)) + rdata


class _UDP(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        query, sock = self.request
        reply = self.server.table.answer(query)  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TCP(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        size = self.request.recv(2)
        if len(size) < 2:
            return
        want, query = struct.unpack("!H", size)[0], b""
        while len(query) < want:
            chunk = self.request.recv(want - len(query))
            if not chunk:
                return
            query += chunk
        reply = self.server.table.answer(query)  # type: ignore[attr-defined]
        if reply is not None:
            self.request.sendall(struct.pack("!H", len(reply)) + reply)


class _UDPServer(socketserver.ThreadingUDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@contextmanager
def serving(table: Table, address: str = ADDRESS) -> Iterator[None]:
    """The server answering from ``table`` on ``address``:53 (UDP and TCP) while open."""
    servers: list[socketserver.BaseServer] = [_UDPServer((address, 53), _UDP)]
    servers.append(_TCPServer((address, 53), _TCP))
    threads = []
    for server in servers:
        server.table = table  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()


def resolv_conf(path: Path, address: str = ADDRESS) -> Path:
    """A resolv.conf naming only the server at ``address``, quick to give up (one try of one
    second), for a :class:`host.Bind` over ``/etc/resolv.conf``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"nameserver {address}\noptions timeout:1 attempts:1\n")
    return path

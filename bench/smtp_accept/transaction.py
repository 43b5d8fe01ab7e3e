"""One SMTP transaction of the relay, in-process: what ingress's own code costs per message.

The relay's protocol (`RelaySMTP`) and handler (`RelayHandler`) as ingress runs them, over an
in-memory transport, with a broker that only encodes what it is given (bench/floor's), the
relaying policy of bench/smtp_accept (no AUTH for 127.0.0.0/8) and the ``accepted`` log line
written to a file: connection made, ``HELO``, ``MAIL``, ``RCPT``, ``DATA`` with a 5 KB message
as ``smtp-source`` sends it, ``QUIT``, connection lost; one command at a time, each answered
before the next (``smtp-source`` does not pipeline).

    .venv/bin/python bench/smtp_accept/transaction.py [--transactions 2000] [--rounds 5]

Prints the best round's µs per transaction (steady on a shared machine, unlike CPU per message
over sockets). For instructions, which do not move with the machine's load, run it under
callgrind twice and take the difference (round 7 in bench/README.md):

    valgrind --tool=callgrind --callgrind-out-file=/tmp/1001.out .venv/bin/python \\
        bench/smtp_accept/transaction.py --warmup 200 --transactions 1001 --rounds 1

It drives whatever ``postline.ingress`` the interpreter imports, so the same script measures
another worktree's code with that worktree's ``.venv/bin/python``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from postline.common.broker import Topology
from postline.common.policy.loader import parse_policy
from postline.ingress.relay import RelayHandler
from postline.ingress.smtp_protocol import RelaySMTP

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from postfix_relay import POSTLINE_RELAY_POLICY

PEER = ("127.0.0.1", 40000)
# What `smtp-source -l 5120` sends, byte for byte but the date and the Message-Id.
BODY = b"".join(b"%d" % (i % 10) + b"X" * 77 + b"\r\n" for i in range(1, 64)) + b"X" * 80 + b"\r\n"
MESSAGE = (
    b"From: <from@example.test>\r\nTo: <to@x.test>\r\n"
    b"Date: Sun,  6 Dec 2026 00:29:27 +0000 (UTC)\r\n"
    b"Message-Id: <2f01.0003.0000@bench.localhost>\r\n\r\n" + BODY + b".\r\n"
)
COMMANDS = [
    b"HELO bench.localhost\r\n",
    b"MAIL FROM:<from@example.test>\r\n",
    b"RCPT TO:<to@x.test>\r\n",
    b"DATA\r\n",
    MESSAGE,
    b"QUIT\r\n",
]


class EncodeOnly:
    """What ingress hands its broker, encoded as a publish would, and dropped."""

    def __init__(self) -> None:
        self.topology = Topology(4)

    async def publish_grouped(self, routing_key: str, message: Any) -> None:
        message.SerializeToString()

    async def publish_events(self, events: Any, *, linger: float = 0.0) -> None:
        for event in events:
            event.SerializeToString()


class Transport(asyncio.Transport):
    """A connection in memory: keeps what is written, reports its loss when closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: asyncio.Protocol | None = None
        self.lines = 0
        self.last = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEER if name == "peername" else default

    def write(self, data: Any) -> None:
        self.last = bytes(data)
        self.lines += self.last.count(b"\r\n")

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            self.loop.call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def answered(transport: Transport, lines: int) -> None:
    """Let the loop run until ``lines`` reply lines were written."""
    for _ in range(10_000):
        if transport.lines >= lines:
            return
        await asyncio.sleep(0)
    raise RuntimeError(f"no reply: {transport.lines} lines of {lines}")


async def transaction(loop: asyncio.AbstractEventLoop, handler: RelayHandler) -> None:
    transport = Transport(loop)
    protocol = RelaySMTP(handler, tls_context=None, loop=loop)
    transport.protocol = protocol
    protocol.connection_made(transport)
    await answered(transport, 1)
    for lines, command in enumerate(COMMANDS, 2):  # one reply line each (the data: its 250)
        protocol.data_received(command)
        await answered(transport, lines)
        if command is MESSAGE and not transport.last.startswith(b"250 2.0.0 Ok: queued as "):
            raise RuntimeError(f"not accepted: {transport.last!r}")
    await asyncio.sleep(0)  # connection_lost
    assert transport.closed


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    policy = parse_policy(POSTLINE_RELAY_POLICY)
    handler = RelayHandler(EncodeOnly(), lambda: policy, "bench.localhost")  # type: ignore[arg-type]
    for _ in range(args.warmup):
        await transaction(loop, handler)
    best = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.transactions):
            await transaction(loop, handler)
        best = min(best, (time.perf_counter() - started) / args.transactions)
    await handler.drain()
    print(f"{best * 1e6:.1f} µs per transaction (best of {args.rounds} x {args.transactions})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    arguments = parser.parse_args()
    with tempfile.NamedTemporaryFile(prefix="postline-transaction-", suffix=".log") as log:
        logging.basicConfig(filename=log.name, level=logging.INFO)
        # aiosmtpd's own log of every line, quiet as ingress set it (the relay before round 7
        # ran on aiosmtpd; nothing logs there now).
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        uvloop.run(main(arguments))

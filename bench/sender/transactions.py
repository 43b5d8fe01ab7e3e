"""The sender's SMTP transactions alone: CPU per message of ``SmtpSession`` and of the sink.

    .venv/bin/python bench/sender/transactions.py [--messages 20000] [--sessions 20]
                                                  [--size 5120] [--port 17326] [--json FILE]

No broker, policy or DKIM: ``--sessions`` sessions (``postline.sender.smtp.SmtpSession``, the
process's default event loop policy: uvloop, as the sender runs) each send their share of
``--messages`` messages of ``--size`` bytes, one after another, to ``bench/e2e/sink.py`` in a
process of its own on 127.0.0.1 (it offers PIPELINING, as Postfix's ``smtp-sink`` does). It
reports this process's CPU (user + system) per message over the timed part, the sink's, and
the rate; 500 messages of warm-up first. Figures in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from postline.sender.smtp import Endpoint, SmtpSession, SmtpTimeouts
from postline.sender.tls import TlsContexts
from postline.v1 import delivery_pb2

SINK = Path(__file__).resolve().parent.parent / "e2e" / "sink.py"


def message(size: int) -> bytes:
    head = b"From: app@example.test\r\nTo: user@d0.test\r\nSubject: bench\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def send(endpoint: Endpoint, sessions: int, messages: int, content: bytes) -> None:
    async def one(count: int) -> None:
        session = await SmtpSession.open(
            endpoint, helo_name="bench.test", timeouts=SmtpTimeouts(), tls=TlsContexts(None)
        )
        for _ in range(count):
            reply = await session.send("app@example.test", "user@d0.test", content)
            if reply.code != 250 or not await session.reset():
                raise RuntimeError(str(reply))
        await session.close()

    share, extra = divmod(messages, sessions)
    await asyncio.gather(*(one(share + (i < extra)) for i in range(sessions)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--port", type=int, default=17326)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    content = message(args.size)
    endpoint = Endpoint("127.0.0.1", args.port, "127.0.0.1", "", delivery_pb2.TLS_MODE_NONE)
    with tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp:
        status = Path(tmp) / "sink.json"
        sink = subprocess.Popen(
            [sys.executable, str(SINK), "--listen", f"127.0.0.1:{args.port}", "--status", status]
        )
        try:
            while not status.exists():
                time.sleep(0.05)
            uvloop.run(send(endpoint, args.sessions, args.warmup, content))
            load = os.getloadavg()[0]
            own, sink_cpu, started = own_cpu(), cpu_of(sink.pid), time.monotonic()
            uvloop.run(send(endpoint, args.sessions, args.messages, content))
            seconds = time.monotonic() - started
            own, sink_cpu = own_cpu() - own, cpu_of(sink.pid) - sink_cpu
        finally:
            sink.terminate()
            sink.wait(10)
        delivered = json.loads(status.read_text())["messages"]
    result = {
        "messages": args.messages,
        "delivered_with_warmup": delivered,
        "rate": args.messages / seconds,
        "sender_cpu_us_per_message": own / args.messages * 1e6,
        "sink_cpu_us_per_message": sink_cpu / args.messages * 1e6,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

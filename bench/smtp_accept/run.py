"""SMTP accept throughput: Postline ingress next to Postfix, same load, same machine.

    .venv/bin/python bench/smtp_accept/run.py [--messages 5000] [--sessions 20] [--size 5120]

Needs Debian's postfix package (smtp-source, smtp-sink, postfix) and the local RabbitMQ:

    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix

1. Ingress alone (no scheduler: deliveries just queue) on a private RabbitMQ vhost, relaying
   without AUTH for 127.0.0.0/8 (smtp-source has no AUTH). After the run, the vhost's inbound
   queues must hold exactly one delivery per accepted message; then the vhost is deleted.
2. A throwaway Postfix instance (its own config and queue directory under a temporary
   directory) on a loopback port, relaying to smtp-sink, accepting the same load.

Each run starts its server afresh, sends a warm-up, then the timed load (smtp-source's wall
time); the sides alternate for --rounds rounds and the medians are compared. Prints both rates
and their ratio (JSON with --json). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from postline.common.broker.consumer import decode
from postline.common.broker.groups import unbatch
from postline.common.broker.topology import inbound_queue, urgent_queue
from postline.v1.delivery_pb2 import AcceptedDelivery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from postfix_relay import POSTLINE_RELAY_POLICY, relay, wait_for_smtp

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
FROM, TO = "from@example.test", "to@x.test"
TOOLS = ("smtp-source", "smtp-sink", "postfix", "rabbitmqctl")
SHARDS = 4

# --postfix-hold: accepted mail goes to the hold queue and stays there, as the deliveries of the
# ingress run stay in RabbitMQ (no scheduler): acceptance only, no delivery work meanwhile.
HOLD = "smtpd_data_restrictions = check_client_access static:HOLD\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smtp_source(port: int, messages: int, sessions: int, size: int, reuse: bool) -> float:
    """Run smtp-source; its wall time in seconds. It aborts on any unexpected reply."""
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    command += ["-f", FROM, "-t", TO, "-M", "bench.localhost"]
    if reuse:
        command.append("-d")
    command.append(f"127.0.0.1:{port}")
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=120
    )
    return result.stdout


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    vhost = f"postline-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


def queued_deliveries(vhost: str, shards: int) -> int:
    """Deliveries waiting in the scheduler's inbound (and urgent) queues: several may share a
    broker message (ingress publishes by group commit), so the messages are read and counted,
    unacknowledged (they go back when the connection closes)."""

    async def count() -> int:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
        total = 0
        try:
            channel = await connection.channel()
            for name in [q(k) for k in range(shards) for q in (inbound_queue, urgent_queue)]:
                queue = await channel.declare_queue(name, passive=True)
                while (message := await queue.get(fail=False)) is not None:
                    body = decode(message.body, message.headers or {}, AcceptedDelivery)
                    items = unbatch(body)
                    total += 1 if items is None else len(items)
        finally:
            await connection.close()
        return total

    return asyncio.run(count())


@contextlib.contextmanager
def ingress(workdir: Path, vhost: str, port: int) -> Iterator[int]:
    policy = workdir / "postline.bench.yaml"
    policy.write_text(POSTLINE_RELAY_POLICY)
    env = {
        **os.environ,
        "POSTLINE_AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "POSTLINE_POLICY": str(policy),
        "POSTLINE_SHARDS": str(SHARDS),
        "POSTLINE_SMTP_LISTEN": f"127.0.0.1:{port}",
        "POSTLINE_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "POSTLINE_GRPC_LISTEN": f"127.0.0.1:{free_port()}",
    }
    with open(workdir / "ingress.log", "wb") as log:
        process = subprocess.Popen(
            [str(PYTHON), "-m", "postline.ingress"], env=env, stdout=log, stderr=log
        )
        try:
            wait_for_smtp(port)
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def postfix(workdir: Path, port: int, hold: bool) -> Iterator[int]:
    sink_port = free_port()
    # smtp-sink stands in for the next hop: Postfix delivers from its queue as it would.
    sink = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", f"127.0.0.1:{sink_port}", "256"], stdout=subprocess.DEVNULL
    )
    try:
        with relay(workdir, port, sink_port, HOLD if hold else "") as config:
            yield int((config / "queue" / "pid" / "master.pid").read_text())
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children, reaped or alive (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def fields(path: Path) -> list[str]:
        return path.read_text().rsplit(")", 1)[1].split()

    own = fields(Path(f"/proc/{pid}/stat"))
    total = sum(int(own[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            child = fields(stat)
            if int(child[1]) == pid:  # ppid
                total += int(child[11]) + int(child[12])
    return total / ticks


def rabbitmq_pid() -> int | None:
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True)
    return int(found.stdout) if found.returncode == 0 else None


@dataclass
class Run:
    rate: float  # messages per second
    cpu_ms: float  # CPU of the server's processes per message
    broker_cpu_ms: float | None = None  # RabbitMQ's, for the ingress (shared: an upper bound)


def timed(args: argparse.Namespace, port: int, pids: list[int]) -> Run:
    """The timed load; CPU per message of ``pids[0]`` and, if given, ``pids[1]``."""
    smtp_source(port, args.warmup, args.sessions, args.size, args.reuse)
    before = [cpu_seconds(pid) for pid in pids]
    seconds = smtp_source(port, args.messages, args.sessions, args.size, args.reuse)
    after = [cpu_seconds(pid) for pid in pids]
    per_msg = [1000 * (a - b) / args.messages for a, b in zip(after, before, strict=True)]
    return Run(args.messages / seconds, per_msg[0], per_msg[1] if len(per_msg) > 1 else None)


def bench_ingress(args: argparse.Namespace, workdir: Path) -> Run:
    port = free_port()
    broker = rabbitmq_pid()
    with private_vhost() as vhost, ingress(workdir, vhost, port) as pid:
        run = timed(args, port, [pid] if broker is None else [pid, broker])
        expected = args.warmup + args.messages
        # Every accepted message must be in RabbitMQ: one delivery each (one recipient).
        deliveries = queued_deliveries(vhost, SHARDS)
        if deliveries != expected:
            raise SystemExit(f"ingress: {deliveries} deliveries queued, expected {expected}")
    return run


def bench_postfix(args: argparse.Namespace, workdir: Path) -> Run:
    port = free_port()
    with postfix(workdir, port, args.postfix_hold) as pid:
        run = timed(args, port, [pid])
    if args.postfix_hold:
        expected = args.warmup + args.messages
        held = sum(1 for p in (workdir / "postfix" / "queue" / "hold").rglob("*") if p.is_file())
        if held != expected:
            raise SystemExit(f"postfix: {held} messages held, expected {expected}")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120, help="payload bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--reuse", action="store_true", help="smtp-source -d: one connection")
    parser.add_argument("--skip-postfix", action="store_true")
    parser.add_argument("--skip-ingress", action="store_true")
    parser.add_argument("--postfix-hold", action="store_true", help="Postfix queues, no relay")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (see this script's docstring)", file=sys.stderr)
        return 2
    runs: dict[str, list[Run]] = {"ingress": [], "postfix": []}
    load_before = os.getloadavg()[0]
    for round_ in range(1, args.rounds + 1):
        # Alternating, so that whatever else the machine does weighs on both sides alike.
        sides = [s for s in ("ingress", "postfix") if not getattr(args, f"skip_{s}")]
        for side in sides:
            with tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp:
                workdir = Path(tmp)
                os.chmod(workdir, 0o755)  # Postfix's daemons run as the postfix user
                bench = bench_ingress if side == "ingress" else bench_postfix
                run = bench(args, workdir)
            runs[side].append(run)
            print(
                f"round {round_}: {side} {run.rate:.0f} msgs/s, {run.cpu_ms:.2f} ms CPU/msg",
                file=sys.stderr,
            )
    results: dict[str, object] = {
        "messages": args.messages,
        "sessions": args.sessions,
        "payload_bytes": args.size,
        "connection_per_message": not args.reuse,
        "postfix_relays_to_smtp_sink": not args.postfix_hold,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    medians = {}
    for side, side_runs in runs.items():
        if side_runs:
            medians[side] = statistics.median(r.rate for r in side_runs)
            results[f"{side}_msgs_per_s"] = round(medians[side], 1)
            results[f"{side}_runs"] = [round(r.rate) for r in side_runs]
            cpu = statistics.median(r.cpu_ms for r in side_runs)
            results[f"{side}_cpu_ms_per_msg"] = round(cpu, 3)
            broker = [r.broker_cpu_ms for r in side_runs if r.broker_cpu_ms is not None]
            if broker:
                results[f"{side}_rabbitmq_cpu_ms_per_msg"] = round(statistics.median(broker), 3)
    if len(medians) == 2:
        results["ingress_to_postfix"] = round(medians["ingress"] / medians["postfix"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

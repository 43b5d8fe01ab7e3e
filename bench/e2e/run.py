"""End to end: Postline (as ``make run`` lays it out) next to a Postfix relay, same load.

    .venv/bin/python bench/e2e/run.py [--messages 20000] [--rounds 2] [--senders 1]
                                      [--ingresses 1] [--domains 1] [--json FILE]

Postfix's ``smtp-source`` sends ``--messages`` messages of ``--size`` bytes over ``--sessions``
parallel sessions (one message per connection, its default) to the side under test, which
delivers every message to a counting SMTP sink on 127.0.0.1 (``sink.py`` beside this file):

* **Postline**: the five services as processes (``postline.devstack``, one process each unless
  ``--senders``/``--ingresses`` say otherwise), the dev policy with relaying from loopback
  without AUTH (``smtp-source`` has none) and a route for the bench domains to the sink, the
  local RabbitMQ (a private vhost, deleted afterwards) or a private RabbitMQ node
  (``--rabbitmq-node``), embedded ClickHouse in a scratch directory;
* **Postfix 3.7**: a throwaway instance (own ``main.cf``, ``master.cf`` and queue directory in a
  scratch directory) relaying to the sink, queue files fsync'd (its default).

A run ends when the sink has every message and the side's own log says each one was delivered
(Postline: ``succeeded`` in the delivery log; Postfix: ``status=sent`` in its mail log). Rate =
messages / (end - start of the load). Besides it: SMTP accept latency (the time from the final
dot to the ``250``) of a probe that sends one message at a time beside the load; accept-to-
delivered latency from each side's log; CPU seconds per 1,000 messages of every process
(RabbitMQ included; the shared broker's figure is an upper bound) and peak memory per process.
Sides alternate for ``--rounds`` rounds; medians are reported. Every process it starts is
stopped before it exits. Not part of the test suite; figures in ``bench/README.md``.

Needs Debian's postfix package (``smtp-source``, ``postfix``) and RabbitMQ.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from postline.devstack import Ports, Stack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from postfix_relay import relay

ROOT = Path(__file__).resolve().parents[2]
SINK = Path(__file__).resolve().parent / "sink.py"
PYTHON = sys.executable
TOOLS = ("smtp-source", "postfix", "rabbitmqctl")
FROM = "app@example.test"
DOMAIN = "bench.test"
# Ports this script listens on itself (the stack's are the design's, shifted by --port-offset);
# --ports-base moves them together.
PORTS_BASE = 23000
POSTFIX_PORT = PORTS_BASE + 25
SINK_PORT = PORTS_BASE + 26
RABBITMQ_PORT = PORTS_BASE + 672
REPORTS_AUTH = "Bearer dev:dev-secret"

RABBITMQ_CONF = """\
listeners.tcp.default = 127.0.0.1:{port}
loopback_users = none
"""


# --- processes: CPU and memory from /proc -------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (and of its reaped children with ``children``)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def memory_kib(pid: int, field_name: str) -> int:
    """A ``/proc/<pid>/status`` size (``VmRSS``, ``VmHWM``) in KiB; 0 when gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def descendants(root: int) -> dict[int, str]:
    """Every live process under ``root`` (and root itself): pid -> command name."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            pid = int(text.split(" ", 1)[0])
            names[pid] = text[text.index("(") + 1 : text.rindex(")")]
            parents[pid] = int(text.rsplit(")", 1)[1].split()[1])
    found = {root: names.get(root, "?")}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found[pid] = names[pid]
                changed = True
    return found


class Watcher:
    """Samples CPU and memory of a set of processes (by role) while a run goes on.

    ``roles()`` names the processes to watch, read again at every sample (Postfix starts and
    ends processes as it goes). CPU per role is what its processes used since ``start``
    (processes that came and went between two samples are missed: the Postfix total is taken
    from the master's own and its children's counters instead); memory per role is the
    largest resident size one of its processes had, and how many processes it had at most.
    """

    def __init__(self, roles: Callable[[], dict[int, str]], every: float = 0.25) -> None:
        self.roles = roles
        self.every = every
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.role_of: dict[int, str] = {}
        self.peak_rss: dict[str, int] = {}
        self.peak_count: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        for pid, role in self.roles().items():
            self.base[pid] = cpu_seconds(pid)
            self.role_of[pid] = role
        self._thread.start()

    def _sample(self) -> None:
        counts: dict[str, int] = {}
        for pid, role in self.roles().items():
            self.role_of.setdefault(pid, role)
            self.base.setdefault(pid, 0.0)
            used = cpu_seconds(pid)
            if used:
                self.last[pid] = used
            rss = memory_kib(pid, "VmRSS")
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), rss)
            counts[role] = counts.get(role, 0) + 1
        for role, count in counts.items():
            self.peak_count[role] = max(self.peak_count.get(role, 0), count)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds per role since ``start``."""
        self._sample()
        self._stop.set()
        self._thread.join()
        used: dict[str, float] = {}
        for pid, last in self.last.items():
            role = self.role_of[pid]
            used[role] = used.get(role, 0.0) + max(0.0, last - self.base.get(pid, 0.0))
        return used


# --- load: smtp-source and an accept-latency probe ----------------------------------------


def run_source(port: int, messages: int, sessions: int, size: int, to: str) -> float:
    """One smtp-source run (it stops at any unexpected reply); its CPU seconds."""
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    command += ["-f", FROM, "-t", to, "-M", "bench.localhost", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({process.returncode}): {' '.join(command)}")
    return usage.ru_utime + usage.ru_stime


def recipients(domains: int) -> list[str]:
    if domains == 1:
        return [f"rcpt@{DOMAIN}"]
    return [f"rcpt@d{i:02d}.{DOMAIN}" for i in range(1, domains + 1)]


def load(port: int, messages: int, sessions: int, size: int, domains: int) -> float:
    """``messages`` over ``sessions`` sessions, spread evenly over the domains; CPU seconds."""
    tos = recipients(domains)
    if len(tos) == 1:
        return run_source(port, messages, sessions, size, tos[0])
    # smtp-source has one recipient address: one run per domain, `sessions` at a time.
    each, extra = divmod(messages, len(tos))
    jobs = [(each + (1 if i < extra else 0), to) for i, to in enumerate(tos)]
    per_job = max(1, sessions // len(tos))
    with ThreadPoolExecutor(max_workers=max(1, sessions // per_job)) as pool:
        futures = [pool.submit(run_source, port, n, per_job, size, to) for n, to in jobs if n]
        return sum(f.result() for f in futures)


class Probe:
    """One SMTP transaction at a time beside the load, connection per message like the
    load's: the time from the final dot to the reply (accept latency)."""

    def __init__(self, port: int, size: int, to: str, pause: float = 0.05) -> None:
        self.port = port
        self.to = to
        self.pause = pause
        self.body = ("X" * 78 + "\r\n") * max(1, size // 80)
        self.accept: list[float] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop; the number of messages it had accepted."""
        self._stop.set()
        self._thread.join()
        return len(self.accept)

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            try:
                self._transaction(number)
            except (OSError, RuntimeError):
                self.refused += 1
            self._stop.wait(self.pause)

    def _transaction(self, number: int) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            reader = s.makefile("rb")

            def reply() -> bytes:
                line = reader.readline()
                while line[3:4] == b"-":
                    line = reader.readline()
                if line[:1] not in (b"2", b"3"):
                    raise RuntimeError(line.decode(errors="replace"))
                return line

            reply()
            for command in (
                b"EHLO probe.localhost",
                f"MAIL FROM:<{FROM}>".encode(),
                f"RCPT TO:<{self.to}>".encode(),
                b"DATA",
            ):
                s.sendall(command + b"\r\n")
                reply()
            message_id = f"<probe-{uuid.uuid4().hex}@bench.localhost>"
            head = f"From: <{FROM}>\r\nTo: <{self.to}>\r\nMessage-ID: {message_id}\r\n"
            s.sendall(f"{head}Subject: probe {number}\r\n\r\n{self.body}".encode())
            started = time.perf_counter()
            s.sendall(b".\r\n")
            reply()
            self.accept.append(time.perf_counter() - started)
            s.sendall(b"QUIT\r\n")
            with contextlib.suppress(OSError, RuntimeError):
                reply()


# --- the sink ----------------------------------------------------------------------------


@contextlib.contextmanager
def sink(workdir: Path, port: int, host: str = "127.0.0.1") -> Iterator[Sink]:
    status = workdir / "sink.json"
    process = subprocess.Popen(
        [PYTHON, str(SINK), "--listen", f"{host}:{port}", "--status", str(status)]
    )
    running = Sink(process, status)
    try:
        wait_for(lambda: status.exists(), "the sink", 30)
        yield running
    finally:
        running.stop()


@dataclass
class Sink:
    process: subprocess.Popen[bytes]
    status: Path
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def messages(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(self.status.read_text())["messages"])
        return 0

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
            self.final = json.loads(self.status.read_text())
        return self.final


# --- helpers -----------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], what: str, timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale, 1)

    return {"p50": at(0.50), "p99": at(0.99), "n": len(ordered)}


def rabbitmqctl(node: str | None, *args: str) -> str:
    command = ["rabbitmqctl", "-q", *(["-n", node] if node else []), *args]
    result = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    return result.stdout


@dataclass
class Broker:
    """The RabbitMQ a Postline run uses: the local one, or a private node (``--rabbitmq-node``)."""

    url_base: str
    pid: int | None
    node: str | None = None

    @contextlib.contextmanager
    def vhost(self) -> Iterator[str]:
        vhost = f"postline-bench-{uuid.uuid4().hex[:12]}"
        rabbitmqctl(self.node, "add_vhost", vhost)
        rabbitmqctl(self.node, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        try:
            yield f"{self.url_base}/{vhost}"
        finally:
            rabbitmqctl(self.node, "delete_vhost", vhost)


@contextlib.contextmanager
def local_rabbitmq() -> Iterator[Broker]:
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True)
    pid = int(found.stdout) if found.returncode == 0 else None
    yield Broker("amqp://guest:guest@127.0.0.1:5672", pid)


@contextlib.contextmanager
def private_rabbitmq(workdir: Path) -> Iterator[Broker]:
    """A RabbitMQ node of our own (own name, port, data), stopped afterwards."""
    node = f"postline-bench-{os.getpid()}@localhost"
    base = workdir / "rabbitmq"
    base.mkdir()
    conf = base / "rabbitmq.conf"
    conf.write_text(RABBITMQ_CONF.format(port=RABBITMQ_PORT))
    (base / "enabled_plugins").write_text("[].\n")
    shutil.chown(base, user="rabbitmq")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(RABBITMQ_PORT),
        "RABBITMQ_DIST_PORT": str(RABBITMQ_PORT + 1),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True)
    try:
        pid_file = base / "pid"
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "a node", 60))

        def started() -> bool:
            with contextlib.suppress(subprocess.CalledProcessError):
                rabbitmqctl(node, "await_startup", "--timeout", "60")
                return True
            return False

        wait_for(started, "the private RabbitMQ node to start", 180, 1.0)
        yield Broker(f"amqp://guest:guest@127.0.0.1:{RABBITMQ_PORT}", pid, node)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "-n", node, "stop"], check=False, timeout=120)


# --- one run of each side ----------------------------------------------------------------


@dataclass
class Timed:
    started: float
    ended: float
    total: int  # messages of the timed load, the probe's included
    expected: int  # at the sink by the end (the warm-up's included)
    probe: Probe
    source_cpu: float


def timed_load(
    args: argparse.Namespace, port: int, the_sink: Sink, warm: int, logged: Callable[[], int]
) -> Timed:
    """The timed load and the probe beside it, until the sink has every message and the side's
    own log (``logged``: messages delivered so far) says so."""
    probe = Probe(port, args.size, recipients(args.domains)[0])
    started = time.time()
    probe.start()
    source_cpu = load(port, args.messages, args.sessions, args.size, args.domains)
    total = args.messages + probe.stop()
    expected = warm + total
    wait_for(lambda: the_sink.messages() >= expected, "every message at the sink", 900)
    wait_for(lambda: logged() >= expected, "the delivery log", 900, 0.2)
    return Timed(started, time.time(), total, expected, probe, source_cpu)


@dataclass
class Result:
    side: str
    messages: int
    seconds: float
    accept_ms: dict[str, float]
    delivered_ms: dict[str, float]
    cpu: dict[str, float]  # role -> CPU seconds per 1,000 messages
    memory_mib: dict[str, float]  # role -> peak resident MiB of one process
    processes: dict[str, int]  # role -> most processes at once
    sink: dict[str, Any]
    load_average: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def bench_policy(ports: Ports, domains: int, connections: int | None) -> dict[str, Any]:
    """The dev policy, relaying for loopback without AUTH, the bench domains routed to the sink."""
    data = yaml.safe_load((ROOT / "postline.dev.yaml").read_text())
    server = data["servers"]["default"]
    server["relay"].update(
        max_connections=1000, rate_per_ip="1000000/s", relay_without_auth_from=["127.0.0.0/8"]
    )
    names = [to.partition("@")[2] for to in recipients(domains)]
    server["routes"] = [{"match": names, "to": f"127.0.0.1:{SINK_PORT}", "tls": "none"}]
    if connections is not None:
        rule = {"match": names, "connections": connections, "messages_per_connection": 100}
        server["speed"] = [rule, *server["speed"]]
    return dict(data)


BROKER_METRIC = re.compile(
    r'^postline_broker_(published|received)_(messages|items)_total\{type="postline\.v1\.(\w+)"\} '
    r"([0-9.e+]+)$",
    re.M,
)
# The scheduler's decisions (granted, backlogged...): how many deliveries took which path.
DECISION_METRIC = re.compile(
    r'^postline_scheduler_decisions_total\{decision="(\w+)"\} ([0-9.e+]+)$', re.M
)


def broker_counts(stack: Stack) -> dict[str, float]:
    """Every process's broker messages so far, ``process: published|received type`` -> n,
    and the scheduler's decisions, ``process: decided decision`` -> n."""
    counts: dict[str, float] = {}
    for name in stack.processes:
        url = stack.health_url(name)
        if url is None or name == "simulator":
            continue
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(url.replace("/readyz", "/metrics"), timeout=10) as answer:
                text = answer.read().decode()
            for way, unit, kind, value in BROKER_METRIC.findall(text):
                label = f"{name}: {way} {kind}" + (" (items)" if unit == "items" else "")
                counts[label] = float(value)
            for decision, value in DECISION_METRIC.findall(text):
                counts[f"{name}: decided {decision}"] = float(value)
    return counts


def delivered_count(ports: Ports) -> int:
    """Deliveries the delivery log shows succeeded (today and yesterday, UTC)."""
    today = datetime.now(UTC).date()
    query = urllib.parse.urlencode(
        {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
    )
    request = urllib.request.Request(
        f"http://{ports.reports}/api/v1/stats/deliveries?{query}",
        headers={"Authorization": REPORTS_AUTH},
    )
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(request, timeout=10) as response:
            rows = json.loads(response.read())["rows"]
        return sum(int(row.get("succeeded", 0)) for row in rows)
    return 0


def postline_latencies(dsn: str, since: float) -> tuple[dict[str, float], dict[str, int]]:
    """Accept-to-delivered of the deliveries accepted after ``since``, and the delivery log's
    final statuses (read from the stopped reports service's ClickHouse)."""
    from postline.common.clickhouse.client import connect

    client = connect(dsn)
    try:
        rows = client.query(
            "SELECT toFloat64(at) - toFloat64(accepted_at) FROM postline.delivery_events "
            "WHERE status = 'succeeded' AND toFloat64(accepted_at) >= {since:Float64}",
            parameters={"since": since},
        ).result_rows
        statuses = client.query(
            "SELECT status, count() FROM postline.delivery_log FINAL GROUP BY status"
        ).result_rows
    finally:
        client.close()
    return percentiles([r[0] for r in rows]), {str(s): int(n) for s, n in statuses}


def run_postline(args: argparse.Namespace, workdir: Path, broker: Broker) -> Result:
    ports = Ports(offset=args.port_offset)
    policy = workdir / "postline.yaml"
    policy.write_text(
        yaml.safe_dump(bench_policy(ports, args.domains, args.connections), sort_keys=False)
    )
    with broker.vhost() as amqp_url, sink(workdir, SINK_PORT) as the_sink:
        stack = Stack(
            policy=policy,
            data_dir=workdir / "var",
            amqp_url=amqp_url,
            ports=ports,
            shards=args.shards,
            log_dir=workdir / "logs",
            senders=args.senders,
            ingresses=args.ingresses,
            extra_env=dict(args.env),
            traces=args.traces,
        )
        try:
            stack.start(timeout=120)
            port = int(ports.smtp.rpartition(":")[2])
            warm = args.warmup
            if warm:
                load(port, warm, args.sessions, args.size, args.domains)
                wait_for(lambda: the_sink.messages() >= warm, "the warm-up at the sink", 300)
                wait_for(lambda: delivered_count(ports) >= warm, "the warm-up's log", 300, 0.5)
            dead = [name for name, p in stack.processes.items() if p.poll() is not None]
            if dead:  # e.g. a port held by another stack answered its readiness probe
                raise RuntimeError(f"{', '.join(dead)} exited; see {workdir / 'logs'}")
            roles = {p.pid: name for name, p in stack.processes.items()}
            if broker.pid is not None:
                roles[broker.pid] = "rabbitmq"
            roles[the_sink.pid] = "sink"
            watcher = Watcher(lambda: roles)
            profiles = start_profiles(args, stack, workdir)
            watcher.start()
            counts_before = broker_counts(stack)
            load_before = os.getloadavg()[0]
            run = timed_load(args, port, the_sink, warm, lambda: delivered_count(ports))
            started, ended, total, expected = run.started, run.ended, run.total, run.expected
            probe, source_cpu = run.probe, run.source_cpu
            cpu = watcher.stop()
            counts_after = broker_counts(stack)
            stop_profiles(profiles)
            cpu["smtp-source"] = source_cpu
            memory = {n: memory_kib(p.pid, "VmHWM") / 1024 for n, p in stack.processes.items()}
            if broker.pid is not None:
                memory["rabbitmq"] = watcher.peak_rss.get("rabbitmq", 0) / 1024
            memory["sink"] = watcher.peak_rss.get("sink", 0) / 1024
        finally:
            codes = stack.stop()
        final = the_sink.stop()
    arrivals = sorted(final.get("arrivals", []))
    ended = max(ended, arrivals[expected - 1] if len(arrivals) >= expected else ended)
    delivered, statuses = postline_latencies(stack.clickhouse_dsn, started)
    if statuses.get("succeeded") != expected or len(statuses) != 1:
        raise SystemExit(f"postline: delivery log {statuses}, expected {expected} succeeded")
    unclean = {name: code for name, code in codes.items() if code != 0}
    return Result(
        side="postline",
        messages=total,
        seconds=ended - started,
        accept_ms=percentiles(probe.accept),
        delivered_ms=delivered,
        cpu={role: round(1000 * s / total, 3) for role, s in cpu.items()},
        memory_mib={role: round(m, 1) for role, m in memory.items()},
        processes={},
        sink=_sink_summary(final),
        load_average=load_before,
        extra={
            "probe_refused": probe.refused,
            "unclean_exits": unclean,
            "broker_messages_per_message": {
                key: round((n - counts_before.get(key, 0.0)) / total, 3)
                for key, n in sorted(counts_after.items())
                if n - counts_before.get(key, 0.0) > 0
            },
        },
    )


def _sink_summary(final: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": final.get("messages"),
        "duplicates": final.get("duplicates"),
        "sessions": final.get("sessions"),
        "peak_connections": final.get("peak_connections"),
        "peak_connections_per_domain": final.get("peak_connections_per_domain"),
    }


SENT = re.compile(rb"status=sent")
DELAY = re.compile(rb" delay=([0-9.]+),.*status=sent")


def run_postfix(args: argparse.Namespace, workdir: Path) -> Result:
    with sink(workdir, SINK_PORT) as the_sink, relay(workdir, POSTFIX_PORT, SINK_PORT) as cf:
        maillog = cf / "maillog"
        master = int((cf / "queue" / "pid" / "master.pid").read_text())

        def sent() -> int:
            with contextlib.suppress(OSError):
                return len(SENT.findall(maillog.read_bytes()))
            return 0

        warm = args.warmup
        if warm:
            load(POSTFIX_PORT, warm, args.sessions, args.size, args.domains)
            wait_for(lambda: the_sink.messages() >= warm and sent() >= warm, "the warm-up", 300)
        log_offset = maillog.stat().st_size if maillog.exists() else 0

        def tree() -> dict[int, str]:
            return {**descendants(master), the_sink.pid: "sink"}

        watcher = Watcher(tree)
        watcher.start()
        total_before = cpu_seconds(master, children=True) + sum(
            cpu_seconds(p) for p in descendants(master) if p != master
        )
        load_before = os.getloadavg()[0]
        run = timed_load(args, POSTFIX_PORT, the_sink, warm, sent)
        started, ended, total, expected = run.started, run.ended, run.total, run.expected
        probe, source_cpu = run.probe, run.source_cpu
        cpu = watcher.stop()
        total_after = cpu_seconds(master, children=True) + sum(
            cpu_seconds(p) for p in descendants(master) if p != master
        )
        with maillog.open("rb") as log:
            log.seek(log_offset)
            delays = [float(m.group(1)) for m in DELAY.finditer(log.read())]
    final = the_sink.stop()
    arrivals = sorted(final.get("arrivals", []))
    ended = max(ended, arrivals[expected - 1] if len(arrivals) >= expected else ended)
    postfix_cpu = {f"postfix/{k}": v for k, v in cpu.items() if k != "sink"}
    cpu_out = {role: round(1000 * s / total, 3) for role, s in postfix_cpu.items()}
    cpu_out["postfix (all processes)"] = round(1000 * (total_after - total_before) / total, 3)
    cpu_out["sink"] = round(1000 * cpu.get("sink", 0.0) / total, 3)
    cpu_out["smtp-source"] = round(1000 * source_cpu / total, 3)
    memory = {f"postfix/{k}": round(v / 1024, 1) for k, v in watcher.peak_rss.items()}
    return Result(
        side="postfix",
        messages=total,
        seconds=ended - started,
        accept_ms=percentiles(probe.accept),
        delivered_ms=percentiles(delays),
        cpu=cpu_out,
        memory_mib=memory,
        processes={f"postfix/{k}": v for k, v in watcher.peak_count.items() if k != "sink"},
        sink=_sink_summary(final),
        load_average=load_before,
        extra={"probe_refused": probe.refused},
    )


# --- profiling (optional) ----------------------------------------------------------------


def start_profiles(
    args: argparse.Namespace, stack: Stack, workdir: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy record of each service for the timed part (``--py-spy PATH``)."""
    if not args.py_spy:
        return []
    out = Path(args.profile_dir or workdir / "profiles")
    out.mkdir(parents=True, exist_ok=True)
    started = []
    for name, process in stack.processes.items():
        if name == "simulator":
            continue
        command = [args.py_spy, "record", "--pid", str(process.pid), "--rate", "200"]
        command += ["--format", "speedscope", "-o", str(out / f"{name}.speedscope.json")]
        started.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
    return started


def stop_profiles(profiles: list[subprocess.Popen[bytes]]) -> None:
    for process in profiles:
        process.send_signal(signal.SIGINT)
    for process in profiles:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- main --------------------------------------------------------------------------------


def emit(results: dict[str, Any], path: Path | None) -> None:
    """The results as JSON on stdout, and in ``path`` too (``--json``)."""
    text = json.dumps(results, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")


def median_result(results: list[Result]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3) if values else 0.0

    roles = sorted({role for r in results for role in r.cpu})
    memory_roles = sorted({role for r in results for role in r.memory_mib})
    return {
        "msgs_per_s": round(statistics.median(r.rate for r in results), 1),
        "runs_msgs_per_s": [round(r.rate, 1) for r in results],
        "accept_ms": {k: med([r.accept_ms.get(k, 0) for r in results]) for k in ("p50", "p99")},
        "delivered_ms": {
            k: med([r.delivered_ms.get(k, 0) for r in results]) for k in ("p50", "p99")
        },
        "cpu_s_per_1000": {role: med([r.cpu.get(role, 0.0) for r in results]) for role in roles},
        "peak_memory_mib": {
            role: max(r.memory_mib.get(role, 0.0) for r in results) for role in memory_roles
        },
        "load_average": [round(r.load_average, 2) for r in results],
        "runs": [
            {
                "msgs_per_s": round(r.rate, 1),
                "messages": r.messages,
                "seconds": round(r.seconds, 2),
                "accept_ms": r.accept_ms,
                "delivered_ms": r.delivered_ms,
                "cpu_s_per_1000": r.cpu,
                "processes": r.processes,
                "sink": r.sink,
                "load_average": round(r.load_average, 2),
                **r.extra,
            }
            for r in results
        ],
    }


def parse_env(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, setting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120, help="payload bytes per message")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    parser.add_argument("--sides", default="postline,postfix")
    parser.add_argument("--senders", type=int, default=1, help="Postline sender processes")
    parser.add_argument("--ingresses", type=int, default=1, help="ingress processes (one port)")
    parser.add_argument("--shards", type=int, default=4, help="make run's default")
    parser.add_argument("--domains", type=int, default=1, help="destination domains")
    parser.add_argument(
        "--connections", type=int, help="a speed rule for the bench domains: connections each"
    )
    parser.add_argument("--port-offset", type=int, default=13000, help="the stack's ports")
    parser.add_argument("--rabbitmq-node", action="store_true", help="a private RabbitMQ node")
    parser.add_argument(
        "--traces",
        action="store_true",
        help="record every span into reports' ClickHouse, as make run does (default: off, "
        "as a production without a collector runs)",
    )
    parser.add_argument(
        "--ports-base", type=int, default=PORTS_BASE, help="Postfix +25, sink +26, RabbitMQ +672"
    )
    parser.add_argument(
        "--env", type=parse_env, action="append", default=[], help="NAME=VALUE for Postline"
    )
    parser.add_argument("--py-spy", help="py-spy executable: profile each service")
    parser.add_argument("--profile-dir", help="where py-spy profiles go")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    global POSTFIX_PORT, SINK_PORT, RABBITMQ_PORT
    POSTFIX_PORT, SINK_PORT = args.ports_base + 25, args.ports_base + 26
    RABBITMQ_PORT = args.ports_base + 672
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install postfix)", file=sys.stderr)
        return 2
    sides = [s for s in args.sides.split(",") if s]
    runs: dict[str, list[Result]] = {side: [] for side in sides}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="postline-e2e-") as tmp:
        os.chmod(tmp, 0o755)  # Postfix's daemons and RabbitMQ run as their own users
        with contextlib.ExitStack() as scope:
            broker = scope.enter_context(
                private_rabbitmq(Path(tmp)) if args.rabbitmq_node else local_rabbitmq()
            )
            for round_ in range(1, args.rounds + 1):
                # Alternating, so that whatever else the machine does weighs on both alike.
                for side in sides:
                    workdir = Path(tmp) / f"{side}-{round_}"
                    workdir.mkdir()
                    os.chmod(workdir, 0o755)
                    result = (
                        run_postline(args, workdir, broker)
                        if side == "postline"
                        else run_postfix(args, workdir)
                    )
                    runs[side].append(result)
                    print(
                        f"round {round_}: {side} {result.rate:.0f} msgs/s "
                        f"({result.messages} in {result.seconds:.1f} s, "
                        f"load {result.load_average:.1f})",
                        file=sys.stderr,
                        flush=True,
                    )
    results: dict[str, Any] = {
        "messages": args.messages,
        "sessions": args.sessions,
        "payload_bytes": args.size,
        "domains": args.domains,
        "senders": args.senders,
        "ingresses": args.ingresses,
        "shards": args.shards,
        "rounds": args.rounds,
        "rabbitmq": "private node" if args.rabbitmq_node else "local (shared)",
        "env": dict(args.env),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    for side, side_runs in runs.items():
        if side_runs:
            results[side] = median_result(side_runs)
    if "postline" in results and "postfix" in results:
        results["ratio"] = round(
            results["postline"]["msgs_per_s"] / results["postfix"]["msgs_per_s"], 2
        )
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start, watch and stop the five services and the destination simulator as processes.

``make run`` uses it with the design's default ports; end-to-end tests use it with a port
offset, a private RabbitMQ vhost and a temporary data directory, so they never collide with a
running ``make run``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from postline.common.redact import redact_url

logger = logging.getLogger(__name__)

SERVICES = ("reports", "bounce", "scheduler", "sender", "ingress")
# Services that may run as several processes (Stack.senders, Stack.schedulers,
# Stack.ingresses): each further process listens this many ports further.
INSTANCE_PORT_STEP = 100


@dataclass(frozen=True)
class Ports:
    """The design's local addresses, shifted by ``offset``."""

    offset: int = 0
    host: str = "127.0.0.1"

    def addr(self, port: int) -> str:
        return f"{self.host}:{port + self.offset}"

    @property
    def smtp(self) -> str:
        return self.addr(2525)

    @property
    def api(self) -> str:
        return self.addr(8025)

    @property
    def ingress_grpc(self) -> str:
        return self.addr(50051)

    @property
    def scheduler_grpc(self) -> str:
        return self.addr(50052)

    @property
    def bounce_smtp(self) -> str:
        return self.addr(2526)

    @property
    def bounce_grpc(self) -> str:
        return self.addr(50053)

    @property
    def reports(self) -> str:
        return self.addr(8080)

    @property
    def reports_grpc(self) -> str:
        return self.addr(50054)

    @property
    def otlp(self) -> str:
        """The reports service's span receiver (OTLP/HTTP)."""
        return self.addr(4318)

    @property
    def simulator(self) -> str:
        return self.addr(2600)

    @property
    def simulator_control(self) -> str:
        return self.addr(2601)

    def instance(self, number: int) -> Ports:
        """The ports of a service's ``number``-th process (1: the design's; extra processes
        listen 100 ports further each, except the ingresses' shared SMTP port)."""
        return Ports(self.offset + INSTANCE_PORT_STEP * (number - 1), self.host)

    def health(self, service: str) -> str:
        return {
            "scheduler": self.addr(9102),
            "sender": self.addr(9103),
            "bounce": self.addr(9104),
            "ingress": self.api,
            "reports": self.reports,
        }[service]


@dataclass
class Stack:
    policy: Path
    data_dir: Path
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    ports: Ports = field(default_factory=Ports)
    shards: int = 4
    log_dir: Path | None = None  # None: children log to this process's stderr
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # How each process was started (to start it again): name -> (arguments, environment).
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    senders: int = 1  # sender processes (named sender, sender-2, ...)
    schedulers: int = 1  # scheduler processes: one owns each shard, the others stand by
    # ingress processes: they share the SMTP port (SO_REUSEPORT, the kernel spreads the
    # connections); their HTTP and gRPC ports are per process.
    ingresses: int = 1
    simulator_slow_seconds: float | None = None  # the simulator's --slow-seconds
    # Every service sends its spans to the reports service, which writes them to ClickHouse
    # (the console's timelines); False: no spans are recorded (trace ids still are).
    traces: bool = True

    @property
    def clickhouse_dsn(self) -> str:
        return f"chdb://{self.data_dir / 'clickhouse' / 'reports'}"

    def env(self, service: str, instance: int = 1) -> dict[str, str]:
        p = self.ports.instance(instance)
        listen = {
            "ingress": {
                "POSTLINE_SMTP_LISTEN": self.ports.smtp,
                "POSTLINE_HTTP_LISTEN": p.api,
                "POSTLINE_GRPC_LISTEN": p.ingress_grpc,
                # STARTTLS with a self-signed certificate, made by `dev_certificate`.
                "POSTLINE_TLS_CERT": str(self.tls_dir / "ingress.crt"),
                "POSTLINE_TLS_KEY": str(self.tls_dir / "ingress.key"),
            },
            "scheduler": {
                "POSTLINE_GRPC_LISTEN": p.scheduler_grpc,
                "POSTLINE_BOUNCE_GRPC": self.ports.bounce_grpc,
            },
            "sender": {},
            "bounce": {
                "POSTLINE_SMTP_LISTEN": p.bounce_smtp,
                "POSTLINE_GRPC_LISTEN": p.bounce_grpc,
                "POSTLINE_CLICKHOUSE_DSN": self.bounce_clickhouse_dsn,
            },
            "reports": {
                "POSTLINE_HTTP_LISTEN": p.reports,
                "POSTLINE_GRPC_LISTEN": p.reports_grpc,
                "POSTLINE_CLICKHOUSE_DSN": self.clickhouse_dsn,
                "POSTLINE_BOUNCE_GRPC": self.ports.bounce_grpc,
                "POSTLINE_OTLP_LISTEN": p.otlp if self.traces else "",
            },
        }[service]
        tracing = {
            "POSTLINE_OTEL_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.ports.otlp}",
            # Spans reach the console within a second or two.
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        }
        env = {
            **os.environ,
            "POSTLINE_AMQP_URL": self.amqp_url,
            "POSTLINE_POLICY": str(self.policy),
            "POSTLINE_SHARDS": str(self.shards),
            **(tracing if self.traces else {}),
            **listen,
            **self.extra_env,
        }
        if service in ("scheduler", "sender", "bounce"):
            env["POSTLINE_HEALTH_LISTEN"] = p.health(service)
        if service == "ingress" and self.ingresses > 1:
            env["POSTLINE_SMTP_REUSE_PORT"] = "true"
        return env

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    def dev_certificate(self) -> None:
        """The ingress's self-signed STARTTLS certificate (kept across runs)."""
        command = [sys.executable, "-m", "postline.ingress.tls", str(self.tls_dir)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    @property
    def bounce_clickhouse_dsn(self) -> str:
        return f"chdb://{self.data_dir / 'clickhouse' / 'bounce'}"

    def migrate(self) -> None:
        # Each service that owns ClickHouse data has its own data path (chdb: one process
        # per path), and each needs the schema before it starts.
        for dsn in (self.clickhouse_dsn, self.bounce_clickhouse_dsn):
            subprocess.run(
                [sys.executable, "-m", "postline.common.cli", "migrate", "--dsn", dsn],
                check=True,
                env={**os.environ, "POSTLINE_POLICY": str(self.policy)},
            )

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (args, env)
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT if out else None
        )

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.migrate()
        self.dev_certificate()
        sim_args = ["-m", "postline.simulator", "--smtp", self.ports.simulator]
        sim_args += ["--control", self.ports.simulator_control]
        if self.simulator_slow_seconds is not None:
            sim_args += ["--slow-seconds", str(self.simulator_slow_seconds)]
        self._spawn("simulator", sim_args, dict(os.environ))
        for service in SERVICES:
            self._spawn(service, ["-m", f"postline.{service}"], self.env(service))
            for number in range(2, self._instances(service) + 1):
                name = f"{service}-{number}"
                self._spawn(name, ["-m", f"postline.{service}"], self.env(service, number))
        self.wait_ready(timeout)

    def _instances(self, service: str) -> int:
        counts = {"sender": self.senders, "scheduler": self.schedulers, "ingress": self.ingresses}
        return counts.get(service, 1)

    def health_url(self, name: str) -> str | None:
        """The readiness URL of a process (``scheduler``, ``sender-2``, ``simulator``...)."""
        if name == "simulator":
            return f"http://{self.ports.simulator_control}/healthz"
        service, _, number = name.partition("-")
        if service not in SERVICES:
            return None
        return f"http://{self.ports.instance(int(number or 1)).health(service)}/readyz"

    def kill(self, name: str) -> int:
        """SIGKILL one process (a crash, for failover tests); it is then no longer managed."""
        proc = self.processes.pop(name)
        proc.kill()
        return proc.wait()

    def respawn(self, name: str) -> None:
        """Start a process again as it was first started (after it died or was killed)."""
        proc = self.processes.get(name)
        if proc is not None and proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        args, env = self.commands[name]
        self._spawn(name, args, env)

    def wait_ready(self, timeout: float) -> None:
        urls = {name: url for name in self.processes if (url := self.health_url(name))}
        deadline = time.monotonic() + timeout
        pending = set(urls)
        while pending:
            for name in list(pending):
                code = self.processes[name].poll()
                if code is not None:
                    raise RuntimeError(f"{name} exited with {code} while starting")
                if _http_ok(urls[name]):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM all, ingress first (nothing new comes in); reports and the simulator once the
        others are gone, so that their last events and spans still reach reports; SIGKILL the
        late ones. Each of the two groups has ``timeout`` (the shortest grace period the
        Kubernetes manifests give a service), so a slow first group does not leave reports
        none."""
        first = ["ingress", "scheduler", "sender", "bounce"]
        last = ["reports", "simulator"]
        codes: dict[str, int | None] = {}
        for group in (first, last):
            names = [n for base in group for n in self.processes if n.partition("-")[0] == base]
            signalled = time.monotonic()
            deadline = signalled + timeout
            for name in names:
                proc = self.processes[name]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for name in names:
                proc = self.processes[name]
                try:
                    codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    logger.warning("%s did not stop in %.0f s; killed", name, timeout)
                    proc.kill()
                    codes[name] = proc.wait()
                    continue
                if (took := time.monotonic() - signalled) > 5:
                    logger.warning("%s took %.1f s to stop", name, took)
        self.processes.clear()
        return codes

    def describe(self) -> str:
        p = self.ports
        return "\n".join(
            [
                "Postline is running:",
                f"  SMTP relay        {p.smtp}  (AUTH PLAIN/LOGIN, user dev / dev-secret)",
                f"  send API          http://{p.api}   (Bearer dev:dev-secret)",
                f"  reports + console http://{p.reports}/   (admin@example.test / admin, "
                "viewer@example.test / viewer)",
                f"  ingress gRPC      {p.ingress_grpc}",
                f"  scheduler gRPC    {p.scheduler_grpc}",
                f"  bounce SMTP       {p.bounce_smtp}",
                f"  bounce gRPC       {p.bounce_grpc}",
                f"  reports gRPC      {p.reports_grpc}",
                f"  spans (OTLP/HTTP) http://{p.otlp}   (into ClickHouse: the console's timelines)"
                if self.traces
                else "  spans             not recorded (--no-traces)",
                f"  simulator         {p.simulator} (every *.test domain), control http://{p.simulator_control}",
                f"  RabbitMQ          {redact_url(self.amqp_url)}",
                f"  ClickHouse        {self.clickhouse_dsn}",
                f"  policy            {self.policy}",
                "Ctrl-C stops everything.",
            ]
        )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

"""A private RabbitMQ node for tests that stop, restart or kill the broker.

The shared broker on 5672 serves every engineer's tests, so a test that restarts RabbitMQ
starts its own node: its own node name, AMQP and distribution ports, data and log directories
under a temporary directory, no plugins. ``rabbitmqctl -n <node>`` drives it. Ports follow
``POSTLINE_TEST_PORT_OFFSET`` (5672 + offset, and the next one for distribution), so suites
run side by side.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
PORT_OFFSET = int(os.environ.get("POSTLINE_TEST_PORT_OFFSET", "11000"))


def available() -> bool:
    return Path(SERVER).exists() and Path(CTL).exists()


class RabbitNode:
    def __init__(self, base: Path, *, port: int | None = None, name: str = "postline-test") -> None:
        self.base = base
        self.port = port if port is not None else 5672 + PORT_OFFSET
        self.node = f"{name}-{self.port}@localhost"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def new_vhost(self) -> str:
        """A fresh vhost on this node; its URL."""
        vhost = f"test-{uuid.uuid4().hex[:12]}"
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return f"{self.url}{vhost}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            # the node's Erlang cookie lives here, read by rabbitmqctl too
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 1),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.base / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, timeout: float = 90.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        log = open(self.base / "server.out", "ab")
        self._process = subprocess.Popen(
            [SERVER], env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_accepting(timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(
            [CTL, "-q", "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.decode()

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self, timeout: float = 60.0) -> None:
        self.ctl("start_app")
        self.wait_accepting(timeout)

    def restart(self, down_for: float = 0.0) -> None:
        """``rabbitmqctl stop_app``, ``down_for`` seconds, ``start_app``."""
        self.stop_app()
        if down_for:
            time.sleep(down_for)
        self.start_app()

    def close_connections(self, reason: str = "closed by the test") -> int:
        """Close every client connection (a lost connection, the broker staying up)."""
        listed = self.ctl("list_connections", "pid").split()
        pids = [p for p in listed if p.startswith("<")]
        for pid in pids:
            self.ctl("close_connection", pid, reason)
        return len(pids)

    def consumers(self, vhost: str = "/") -> dict[str, int]:
        """Queue name -> number of consumers."""
        return self._queue_column(vhost, "consumers")

    def messages(self, vhost: str = "/") -> dict[str, int]:
        """Queue name -> messages ready and unacknowledged."""
        return self._queue_column(vhost, "messages")

    def _queue_column(self, vhost: str, column: str) -> dict[str, int]:
        out = self.ctl("list_queues", "-p", vhost, "name", column)
        counts = {}
        for line in out.splitlines():
            name, _, count = line.rpartition("\t")
            if name and count.isdigit():
                counts[name] = int(count)
        return counts

    def wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = (self.base / "server.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"RabbitMQ node {self.node} exited:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                self.ctl("await_startup", timeout=timeout)
                return
            except (OSError, subprocess.CalledProcessError):
                time.sleep(0.3)
        raise TimeoutError(f"RabbitMQ node {self.node} not accepting after {timeout}s")

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            self.ctl("stop", timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

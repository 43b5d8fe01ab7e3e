"""What the fault suite needs around the stack: a client load that behaves like a real mail
client, faults to inject, and readers of the outcome through Postline's own interfaces.

- ``Load``: threads sending one message per SMTP session, each to one recipient whose local
  part picks the destination's behaviour (ordinary, slow, hang, garbage, drop, unknown user,
  spam rejection; see tools/simulator). A message without a ``250`` is sent again after a
  pause, as any client does; what got a ``250`` is *accepted* and must never be lost.
- ``Supervision``: the supervisor of ``make run`` in a thread, restarting what is killed.
- ``Ballast``: a tmpfs mounted at a ClickHouse data path and filled up (a full disk: inserts
  fail with NOT_ENOUGH_SPACE), then emptied.
- ``Outcome``: the delivery log (the reports API's CSV export), the statistics (its stats API)
  and what the destination simulator received, checked against what was accepted.
"""

from __future__ import annotations

import base64
import csv
import errno
import io
import json
import logging
import os
import random
import signal
import smtplib
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from postline.common.verp import VerpError, decode_verp
from postline.devstack import Stack
from postline.devstack.supervise import Supervisor
from postline.simulator.client import SimulatorClient

logger = logging.getLogger(__name__)

AUTH = f"Bearer dev:{'dev-secret'}"
FINAL = frozenset({"succeeded", "failed"})

# (share of the messages, local part, domain, the final status expected)
MIX = [
    (0.62, "user", "a.test", "succeeded"),
    (0.08, "slow", "s.test", "succeeded"),
    (0.06, "hang", "h.test", "succeeded"),  # never answered, then fine on a retry
    (0.06, "garbage", "g.test", "succeeded"),  # garbage then a drop, then fine
    (0.06, "drop", "d.test", "succeeded"),  # taken then dropped: sent twice
    (0.07, "user-unknown", "u.test", "failed"),
    (0.05, "reject", "r.test", "failed"),
]


def recipient(n: int) -> tuple[str, str]:
    """The recipient of message ``n`` and its expected final status (stable per ``n``)."""
    roll = random.Random(n).random()
    for share, local, domain, final in MIX:
        if roll < share:
            return f"{local}+{n}@{domain}", final
        roll -= share
    return f"user+{n}@a.test", "succeeded"


def api_data(run: str, n: int | str) -> str:
    return f"{run}-{n}"


def message(run: str, n: int, to: str) -> bytes:
    return (
        f"From: load@example.test\r\nTo: {to}\r\nSubject: fault load {n}\r\n"
        f"Message-ID: <{run}-{n}@fault.test>\r\nX-Api-Data: {api_data(run, n)}\r\n\r\n"
        f"Message {n} of the fault suite.\r\n"
    ).encode()


@dataclass
class Sent:
    n: int
    to: str
    expected: str
    attempts: int = 0
    queued_as: str = ""  # the message id of the 250 reply
    accepted_at: float = 0.0  # time.monotonic() of the 250
    refusals: Counter[str] = field(default_factory=Counter)


class Load:
    """``count`` messages from ``threads`` clients, at most ``rate`` per second in all."""

    def __init__(self, smtp: str, run: str, count: int, *, threads: int = 4, rate: float = 40):
        self.host, _, port = smtp.rpartition(":")
        self.port = int(port)
        self.run = run
        self.count = count
        self.threads = threads
        self.interval = threads / rate
        self.sent = {n: Sent(n, *recipient(n)) for n in range(count)}
        self._next = iter(range(count))
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.started = 0.0
        self.finished = 0.0

    @property
    def accepted(self) -> int:
        return sum(1 for s in self.sent.values() if s.queued_as)

    def accepted_between(self, start: float, end: float) -> int:
        """Messages whose 250 came between two ``time.monotonic()`` moments."""
        return sum(1 for s in self.sent.values() if s.queued_as and start <= s.accepted_at <= end)

    def start(self) -> None:
        self.started = time.monotonic()
        for i in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.1, deadline - time.monotonic()))
        if any(w.is_alive() for w in self._workers):
            raise TimeoutError(f"the load did not finish: {self.accepted}/{self.count} accepted")
        self.finished = time.monotonic()

    def _work(self) -> None:
        while True:
            with self._lock:
                n = next(self._next, None)
            if n is None:
                return
            started = time.monotonic()
            self._send(self.sent[n])
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def _send(self, item: Sent) -> None:
        body = message(self.run, item.n, item.to)
        pause = 0.2
        while not item.queued_as:
            item.attempts += 1
            try:
                refusal = self._session(item, body)
            except (OSError, smtplib.SMTPException) as exc:
                refusal = type(exc).__name__
            if refusal is None:
                return
            item.refusals[refusal] += 1
            time.sleep(pause)
            pause = min(2.0, pause * 2)

    def _session(self, item: Sent, body: bytes) -> str | None:
        """One try; None once accepted, else the refusal (a reply code)."""
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            smtp.login("dev", "dev-secret")
            code, _ = smtp.mail("load@example.test")
            if code == 250:
                code, _ = smtp.rcpt(item.to)
            if code != 250:
                return str(code)
            code, text = smtp.data(body)
            if code != 250:
                return str(code)
            item.queued_as = text.decode().rsplit(" ", 1)[-1]
            item.accepted_at = time.monotonic()
            return None


class Supervision:
    """The supervisor of ``make run`` (restart with backoff) running beside the test."""

    def __init__(self, stack: Stack) -> None:
        self.lines: list[str] = []
        self.supervisor = Supervisor(stack, say=self._say)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def _say(self, line: str) -> None:
        logger.warning("devstack: %s", line)
        self.lines.append(line)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self.supervisor.check()

    def __enter__(self) -> Supervision:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def kill(stack: Stack, name: str) -> None:
    """``kill -9`` a process of the stack (the supervisor starts it again)."""
    os.kill(stack.processes[name].pid, signal.SIGKILL)


def http(url: str, timeout: float = 5.0) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": AUTH})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as exc:
        return 0, repr(exc)


def readiness(stack: Stack) -> dict[str, tuple[int, str]]:
    return {
        name: http(url)
        for name in list(stack.processes)
        if (url := stack.health_url(name)) is not None and name != "simulator"
    }


def wait_ready(stack: Stack, what: str, timeout: float) -> None:
    """Wait until every service's ``/readyz`` says 200; fail naming those that did not and
    what their ``/readyz`` said last."""
    deadline = time.monotonic() + timeout
    while True:
        unready = {n: a for n, a in readiness(stack).items() if a[0] != 200}
        if not unready:
            return
        if time.monotonic() > deadline:
            said = "; ".join(f"{n}: {s} {body.strip()!r}" for n, (s, body) in unready.items())
            raise AssertionError(f"not ready {timeout:.0f}s after {what}: {said}")
        time.sleep(0.5)


class Ballast:
    """A full disk under a ClickHouse data path: a tmpfs of ``size`` mounted there before the
    stack starts, filled with a ballast file on ``fill`` — and kept full (ClickHouse frees
    room as it merges parts, which the ballast takes up again) — until ``drain``."""

    def __init__(self, path: Path, size: str = "768m") -> None:
        self.path = path
        self.size = size
        self.mounted = False
        self._full = threading.Event()
        self._thread: threading.Thread | None = None

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
            check=True,
            capture_output=True,
        )
        self.mounted = True

    @property
    def file(self) -> Path:
        return self.path / "ballast"

    def fill(self) -> None:
        self._top_up()
        self._full.set()
        self._thread = threading.Thread(target=self._keep_full, name="ballast", daemon=True)
        self._thread.start()

    def _top_up(self) -> None:
        stat = os.statvfs(self.path)
        free = stat.f_bavail * stat.f_frsize
        try:
            with open(self.file, "ab", buffering=0) as out:
                chunk = b"\0" * (1 << 20)
                while free > len(chunk):
                    out.write(chunk)
                    free -= len(chunk)
                out.write(b"\0" * max(0, free - 4096))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # ClickHouse wrote meanwhile: the disk is full, as wanted

    def _keep_full(self) -> None:
        while self._full.is_set():
            self._top_up()
            time.sleep(0.2)

    def drain(self) -> None:
        self._full.clear()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.file.unlink(missing_ok=True)

    def unmount(self) -> None:
        self.drain()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
            self.mounted = False


def can_mount(base: Path) -> bool:
    probe = base / "mount-probe"
    probe.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
    )
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(probe)], capture_output=True)
    return True


# -- the outcome ---------------------------------------------------------------------------------


def _days() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {
        "start": (today - timedelta(days=1)).isoformat(),
        "end": (today + timedelta(days=1)).isoformat(),
    }


def delivery_log(reports: str) -> list[dict[str, str]]:
    """Every row of the delivery log, through the reports API's CSV export."""
    status, body = http(
        f"http://{reports}/api/v1/deliveries.csv?{urllib.parse.urlencode(_days())}", timeout=60
    )
    if status != 200:
        raise RuntimeError(f"deliveries.csv answered {status}: {body[:200]}")
    return list(csv.DictReader(io.StringIO(body)))


def statistics(reports: str) -> dict[str, int]:
    """The delivery counts of the statistics API over the same days."""
    query = urllib.parse.urlencode({**_days(), "interval": "day"})
    status, body = http(f"http://{reports}/api/v1/stats/deliveries?{query}")
    if status != 200:
        raise RuntimeError(f"stats answered {status}: {body[:200]}")
    totals: Counter[str] = Counter()
    for row in json.loads(body)["rows"]:
        for column in ("queued", "deferred", "succeeded", "failed"):
            totals[column] += int(row.get(column, 0))
    return dict(totals)


def queued_by_sender(reports: str) -> dict[str, int]:
    """The statistics' queued deliveries per envelope sender (notices: the null sender)."""
    query = urllib.parse.urlencode({**_days(), "limit": 1000})
    status, body = http(f"http://{reports}/api/v1/stats/senders?{query}")
    if status != 200:
        raise RuntimeError(f"stats answered {status}: {body[:200]}")
    return {row["sender"]: int(row.get("queued", 0)) for row in json.loads(body)["rows"]}


@dataclass
class Outcome:
    """What became of the load, read from the reports API and the simulator."""

    log: list[dict[str, str]]
    stats: dict[str, int]
    received: Counter[str]  # delivery id -> copies the destination got
    notices_received: int  # messages with the null sender: Postline's own notices

    @classmethod
    def read(cls, reports: str, simulator: SimulatorClient) -> Outcome:
        received: Counter[str] = Counter()
        notices = 0
        for item in simulator.messages():
            if item["mail_from"] in ("", "<>"):
                notices += 1
                continue
            try:
                received[decode_verp(item["mail_from"])] += 1
            except VerpError:
                continue
        return cls(delivery_log(reports), statistics(reports), received, notices)

    def is_notice(self, row: dict[str, str]) -> bool:
        """A delivery of Postline's own notices: sent with the null sender (so no VERP)."""
        return not row["from"]

    def rows_by_api_data(self) -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        for row in self.log:
            found.setdefault(row["apiData"], []).append(row)
        return found

    def unsettled(self, load: Load) -> list[str]:
        """Accepted messages without a final status yet (or not in the log at all), and
        notices without one."""
        rows = self.rows_by_api_data()
        missing = []
        for item in load.sent.values():
            if not item.queued_as:
                continue
            found = rows.get(api_data(load.run, item.n), [])
            if not found or not any(r["status"] in FINAL for r in found):
                missing.append(api_data(load.run, item.n))
        # and the failure notices those made (the null sender), once each has its row
        notices = (r for r in self.log if self.is_notice(r))
        missing.extend(r["deliveryId"] for r in notices if r["status"] not in FINAL)
        return missing

    def log_counts(self) -> Counter[str]:
        return Counter(row["status"] for row in self.log)


def encode_plain(user: str, secret: str) -> str:
    return base64.b64encode(f"\0{user}\0{secret}".encode()).decode()

"""What running an unpacked MTA on this machine takes, whatever the MTA: a private mount (and
UTS) namespace where its compiled-in paths, users and host name are laid over the system's
(the system's files are never changed), a wait for its listener, the DNS check of a case's
unknown domain, and stopping every process it started.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .cases import Case

logger = logging.getLogger(__name__)

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass(frozen=True)
class Bind:
    """``source`` mounted over ``target`` (a copy of ``/etc/passwd``, a private ``/var``)."""

    source: Path
    target: str

    def command(self) -> str:
        return f"mount --bind {shlex.quote(str(self.source))} {self.target}"


def identities(folder: Path, users: Iterable[str], groups: Iterable[str]) -> tuple[Path, Path]:
    """Copies of the system's ``/etc/passwd`` and ``/etc/group`` in ``folder``, with the
    lines ``users`` and ``groups`` added: what an MTA run in a namespace sees of its own users
    when they are bound over the system's (:class:`Bind`); the system's files are unchanged."""
    passwd, group = folder / "passwd", folder / "group"
    passwd.write_text(Path("/etc/passwd").read_text() + "".join(f"{u}\n" for u in users))
    group.write_text(Path("/etc/group").read_text() + "".join(f"{g}\n" for g in groups))
    return passwd, group


@dataclass(frozen=True)
class Overlay:
    """``target`` seen through an overlay: with ``upper``, a writable layer (its work folder is
    ``<upper>-work``) over the system's ``target``; without, the read-only ``lower`` over it
    (an unpacked package's ``/usr``)."""

    target: str
    lower: Path | None = None
    upper: Path | None = None

    def command(self) -> str:
        if self.upper is None:
            layers = f"lowerdir={self.lower}:{self.target}"
        else:
            layers = f"lowerdir={self.target},upperdir={self.upper},workdir={self.upper}-work"
        return f"mount -t overlay overlay -o {shlex.quote(layers)} {self.target}"


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs of ``size`` mounted at ``target`` (a folder that exists) and filled to its last
    byte: a full disk, seen only in the namespace (round 39). ``folders`` are made in it first
    (open to every user), for what must exist before a delivery (a maildir's)."""

    target: Path
    size: str = "64k"
    folders: tuple[str, ...] = ()

    def command(self) -> str:
        target = shlex.quote(str(self.target))
        made = [f"mkdir -p -m 1777 {shlex.quote(str(self.target / f))}" for f in self.folders]
        fill = f"{{ head -c 100M /dev/zero > {target}/.fill 2>/dev/null; true; }}"
        mount = f"mount -t tmpfs -o size={self.size},mode=1777 tmpfs {target}"
        return " && ".join([mount, *made, fill])


Mount = Bind | Overlay | Tmpfs


def write_file(path: Path, text: str, mode: int = 0o644) -> Path:
    """``text`` written to ``path`` with ``mode`` (a daemon's configuration, a program it
    runs); the path."""
    path.write_text(text)
    path.chmod(mode)
    return path


def isolated(command: Sequence[str], mounts: Sequence[Mount] = (), hostname: str = "") -> list[str]:
    """``command`` run by the root of new namespaces: a mount namespace where ``mounts`` are
    laid (with any), a UTS namespace named ``hostname`` (with one)."""
    flags = (["--mount"] if mounts else []) + (["--uts"] if hostname else [])
    steps = [mount.command() for mount in mounts]
    if hostname:
        steps.append(f"hostname {shlex.quote(hostname)}")
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", *flags, "sh", "-c", script, "sh", *command]


class Namespace:
    """A namespace of :func:`isolated`'s held open by a ``sleep`` for as long as the context is
    open, for MTAs whose commands run one after another (``nsenter``). On leaving, processes
    still in it ``grace`` seconds later are killed, then the holder: the mounts go with it."""

    def __init__(
        self, what: str, mounts: Sequence[Mount], hostname: str = "", grace: float = 0.0
    ) -> None:
        self.what = what
        self._mounts = mounts
        self._hostname = hostname
        self._grace = grace
        self._holder: subprocess.Popen[bytes] | None = None
        self._namespace = ""

    def __enter__(self) -> Namespace:
        command = isolated(["sleep", "infinity"], self._mounts, self._hostname)
        self._holder = subprocess.Popen(command, start_new_session=True)
        try:
            self._namespace = self._entered()
        except BaseException:
            self._holder.kill()
            self._holder.wait()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._holder is not None
        deadline = time.monotonic() + self._grace
        while self._others() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in self._others():
            logger.warning("%s process %s outlived its stop: killed", self.what, pid)
            os.kill(pid, signal.SIGKILL)
        self._holder.kill()
        self._holder.wait()

    def inside(self, *command: str) -> list[str]:
        assert self._holder is not None
        flags = ["-m", "-u"] if self._hostname else ["-m"]
        return ["nsenter", "-t", str(self._holder.pid), *flags, *command]

    def run(self, *command: str, check: bool = True) -> None:
        subprocess.run(self.inside(*command), check=check, capture_output=True, timeout=60)

    def _entered(self, timeout: float = 10.0) -> str:
        """The holder's mount namespace, once it has laid the mounts and entered its own
        (``unshare`` runs first in the system's)."""
        assert self._holder is not None
        pid = self._holder.pid
        system = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):
                    found = os.readlink(f"/proc/{pid}/ns/mnt")
                    if found != system:
                        return found
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the namespace for {self.what} did not come up")

    def _others(self) -> list[int]:
        assert self._holder is not None
        return [p for p in processes("ns/mnt", self._namespace) if p != self._holder.pid]


def processes(link: str, target: str) -> list[int]:
    """Processes whose ``/proc/<pid>/<link>`` points at ``target`` (``exe``: a binary;
    ``ns/mnt``: a mount namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / link) == target:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@contextmanager
def listening(
    command: Sequence[str],
    port: int,
    what: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """An MTA's daemon, run in the foreground (``command``, its output to ``log``) in a process
    group of its own, once it listens on 127.0.0.1:``port`` (waited for up to ``timeout``
    seconds; an error, naming ``log``, if it exits with a failure first); stopped with its
    group on leaving."""
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            command, env=env, start_new_session=True, stdout=output, stderr=output
        )
    try:
        wait_listening(port, what, timeout, daemon=daemon, log=log)
        yield daemon
    finally:
        stop(daemon)


@contextmanager
def alongside(work: Callable[[threading.Event], None]) -> Iterator[None]:
    """``work`` run on a thread of its own while the context is open (a scheduler, a watcher
    of a log), handed an event that is set on leaving, and waited for: it returns once the
    event is set."""
    done = threading.Event()
    thread = threading.Thread(target=work, args=(done,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop ``process`` and its process group (started with ``start_new_session``: its
    children, privilege-separated processes and deliveries, stay in it)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_listening(
    port: int,
    what: str,
    timeout: float = 20.0,
    daemon: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; an error after ``timeout`` seconds,
    or as soon as ``daemon`` (if given) has exited with a failure (a daemon that forks and
    exits 0 is still waited for)."""
    seen = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            code = daemon.poll() if daemon else None
            if code:
                message = f"{what} exited ({code}) before listening on 127.0.0.1:{port}{seen}"
                raise RuntimeError(message) from None
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s{seen}")


def without_resolving(cases: list[Case], domain: str) -> list[Case]:
    """``cases``, less those sent to ``domain`` (an unknown domain's) if it resolves here: their
    notices would not be of an unknown domain."""
    try:
        socket.getaddrinfo(domain, 25)
    except socket.gaierror as error:
        if error.errno == socket.EAI_NONAME:
            return cases
    logger.warning("%s resolves here: its case would not be an unknown domain", domain)
    return [c for c in cases if not any(a.endswith("@" + domain) for a in c.recipients)]

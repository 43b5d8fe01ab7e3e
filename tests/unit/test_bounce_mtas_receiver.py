"""The sending side of the receiving-server rounds (``bench/bounce_accuracy/mtas/receiver.py``,
``exim.behind``, ``sendmail.behind`` and Postfix's ``configure_sending``), checked without root
and without an MTA: what each sending MTA is configured with (its listener, its local domain,
every recipient domain of the receiving side routed to its port of 127.0.0.1, the notices to
the capture server, the address its client binds to) and what ``run`` is handed. The packages,
the cases and the daemon's run are stood in for; the configuration is the modules' own. A
regeneration as root is what runs them for real (the rows of each ``<round>_exim`` and
``<round>_sendmail`` module).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.bounce_accuracy import mtas
from bench.bounce_accuracy.mtas import exim, postfix, sendmail
from bench.bounce_accuracy.mtas.cases import Case, load
from bench.bounce_accuracy.mtas.destination import Destination
from bench.bounce_accuracy.mtas.receiver import Receiver, Sending, prepared

LOOPBACK = "127.0.0.1"
SENDING_PORT = 9100  # the sending MTA's listener: distinct from every route's port below
ROUTES = {"oak.test": 9101, "pine.test": 9102}
CAPTURED = ("notices.test",)
CLIENT = "127.0.0.7"
LOCAL = "birch.test"


@dataclass
class Calls:
    """What the stand-ins were called with."""

    served: list[Sending] = field(default_factory=list)
    loaded: list[tuple[str, Path | None]] = field(default_factory=list)
    run: list[tuple[Any, ...]] = field(default_factory=list)
    run_options: list[dict[str, Any]] = field(default_factory=list)
    built: list[Case] = field(default_factory=list)  # what ``load`` answered

    def load(self, mta: str, path: Path | None = None) -> list[Case]:
        self.loaded.append((mta, path))
        return self.built

    def record_run(self, *args: Any, **options: Any) -> list[object]:
        self.run.append(args)
        self.run_options.append(options)
        return []


def receiver(calls: Calls, tmp_path: Path, **fields: Any) -> Receiver:
    @contextmanager
    def serving(sending: Sending) -> Iterator[str]:
        calls.served.append(sending)
        yield "receiving-side 1.0"

    values: dict[str, Any] = dict(
        cases=tmp_path / "cases.yaml",
        routes=lambda: dict(ROUTES),
        relay="relay",
        serving=serving,
        captured=CAPTURED,
        clients={"r_exim": CLIENT, "r_sendmail": CLIENT},
    )
    values.update(fields)
    return Receiver(**values)


@pytest.fixture
def destination() -> Iterator[Destination]:
    with Destination() as running:
        yield running


# receiver.py


def test_a_client_address_is_none_one_for_all_or_one_per_sending_module(tmp_path: Path) -> None:
    calls = Calls()
    assert receiver(calls, tmp_path, clients=None).client("r_exim") is None
    one = receiver(calls, tmp_path, clients="127.0.0.9")
    assert one.client("r_exim") == one.client("r_sendmail") == "127.0.0.9"
    each = receiver(calls, tmp_path, clients={"r_exim": "127.0.0.3", "r_sendmail": "127.0.0.4"})
    assert (each.client("r_exim"), each.client("r_sendmail")) == ("127.0.0.3", "127.0.0.4")


def test_exims_routes_to_the_captured_domains_are_numbered_in_order(tmp_path: Path) -> None:
    calls = Calls()
    two = receiver(calls, tmp_path, captured=("a.test", "b.test"))
    assert two.exim_captured() == {"sender0": "a.test", "sender1": "b.test"}
    named = receiver(calls, tmp_path, captured=("a.test",), captured_as="capture")
    assert named.exim_captured() == {"capture0": "a.test"}
    assert receiver(calls, tmp_path, captured=()).exim_captured() == {}


def test_prepared_runs_the_receiving_side_around_the_sending_one(
    tmp_path: Path, destination: Destination
) -> None:
    steps: list[str] = []

    def prepare() -> dict[str, str]:
        steps.append("prepare")
        return {"daemon": "2.5"}

    @contextmanager
    def receiving(out: Path, mta: str) -> Iterator[None]:
        steps.append(f"start for {mta} beside {out.name}")
        try:
            yield
        finally:
            steps.append("stop")

    serving = prepared(prepare, receiving, lambda made: f"daemon {made['daemon']}")
    sending = Sending("r_exim", [], destination, tmp_path / "r_exim", SENDING_PORT)
    with serving(sending) as words:
        assert words == "daemon 2.5"
        assert steps == ["prepare", "start for r_exim beside r_exim"]
    assert steps[-1] == "stop"
    with pytest.raises(RuntimeError), serving(sending):
        raise RuntimeError("the sending MTA failed")
    assert steps[-1] == "stop"  # the receiving side is stopped all the same


# Exim


def exim_sections(config: str) -> dict[str, dict[str, dict[str, str]]]:
    """The routers and transports of an Exim configuration: name, then option: value."""
    sections: dict[str, dict[str, dict[str, str]]] = {}
    for part in re.split(r"^begin ", config, flags=re.MULTILINE)[1:]:
        title, _, body = part.partition("\n")
        blocks = sections.setdefault(title.strip(), {})
        for block in re.split(r"\n\s*\n", body):
            lines = [line for line in block.splitlines() if line.strip()]
            if lines and lines[0].endswith(":") and not lines[0].startswith(" "):
                options = (line.strip().partition(" = ") for line in lines[1:])
                blocks[lines[0][:-1]] = {name: value for name, _, value in options}
    return sections


def exim_manual_routes(config: str) -> dict[str, tuple[str, str, str, str]]:
    """Each domain of a ``manualroute`` router: (router, host, port, interface)."""
    sections = exim_sections(config)
    routes = {}
    for name, router in sections["routers"].items():
        if router.get("driver") == "manualroute":
            transport = sections["transports"][router["transport"]]
            host = router["route_list"].split()[1]
            routes[router["domains"]] = (
                name,
                host,
                transport["port"],
                transport.get("interface", ""),
            )
    return routes


def exim_main(config: str) -> dict[str, str]:
    main = config.split("\nbegin ", 1)[0]
    return dict(line.partition(" = ")[::2] for line in main.splitlines() if " = " in line)


@pytest.fixture
def exim_stood_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Calls, list[tuple[Any, ...]]]]:
    calls, chowned = Calls(), []
    monkeypatch.setattr(exim, "load", calls.load)
    monkeypatch.setattr(exim, "unpack", lambda root: "4.96-15+deb12u7")
    monkeypatch.setattr(exim, "run", calls.record_run)
    # Exim's spool and log are its user's: a chown only root may make.
    monkeypatch.setattr(exim, "os", SimpleNamespace(chown=lambda *args: chowned.append(args)))
    yield calls, chowned


def test_exim_behind_a_receiver_routes_its_domains_to_their_ports(
    tmp_path: Path, destination: Destination, exim_stood_in: tuple[Calls, list[tuple[Any, ...]]]
) -> None:
    calls, chowned = exim_stood_in
    root, out = tmp_path / "exim", tmp_path / "out" / "r_exim"
    root.mkdir()
    got = exim.behind(
        receiver(calls, tmp_path), "r_exim", root, LOCAL, SENDING_PORT, out, destination
    )

    assert got == []
    assert calls.loaded == [("r_exim", tmp_path / "cases.yaml")]
    assert calls.served == [Sending("r_exim", calls.built, destination, out, SENDING_PORT)]
    config = root / "etc" / "exim.conf"
    [args] = calls.run
    version = "exim4-4.96-15+deb12u7; receiving-side 1.0"
    assert args == (root, SENDING_PORT, config, destination, calls.built, out, "r_exim", version)
    assert calls.run_options == [{"timeout": exim.TIMEOUT}]

    text = config.read_text()
    main = exim_main(text)
    assert main["daemon_smtp_ports"] == str(SENDING_PORT)
    assert main["local_interfaces"] == LOOPBACK
    assert (main["qualify_domain"], main["primary_hostname"]) == (LOCAL, f"mx.{LOCAL}")
    assert main["spool_directory"] == f"{root}/spool"
    capture = str(destination.capture_port)
    assert exim_manual_routes(text) == {
        "sender.test": ("capture", LOOPBACK, capture, ""),
        "notices.test": ("sender0", LOOPBACK, capture, ""),
        "oak.test": ("relay0", LOOPBACK, "9101", CLIENT),
        "pine.test": ("relay1", LOOPBACK, "9102", CLIENT),
    }
    # The routes come first; everything else by DNS after them.
    assert list(exim_sections(text)["routers"])[:5] == [
        "capture",
        "sender0",
        "relay0",
        "relay1",
        "dnslookup",
    ]
    assert "Debian-exim:x:" in (root / "passwd").read_text()
    assert {(Path(path).name, uid) for path, uid, _ in chowned} == {
        ("spool", exim.USER_ID),
        ("log", exim.USER_ID),
    }


def test_exim_behind_a_receiver_without_a_client_binds_nowhere_and_waits_its_time(
    tmp_path: Path, destination: Destination, exim_stood_in: tuple[Calls, list[tuple[Any, ...]]]
) -> None:
    calls, _ = exim_stood_in
    root = tmp_path / "exim"
    root.mkdir()
    quiet = receiver(calls, tmp_path, clients=None, exim_timeout=30.0, relay="milter")
    exim.behind(quiet, "r_exim", root, LOCAL, SENDING_PORT, tmp_path / "out", destination)

    routes = exim_manual_routes((root / "etc" / "exim.conf").read_text())
    assert routes["oak.test"] == ("milter0", LOOPBACK, "9101", "")
    assert routes["pine.test"] == ("milter1", LOOPBACK, "9102", "")
    assert calls.run_options == [{"timeout": 30.0}]


# Sendmail


def sendmail_routes(run: Path) -> dict[str, tuple[str, str, int]]:
    """Each mailer table key: (mailer, host, port), the port from the mailer's ``A=TCP $h``."""
    mc = (run / "sendmail.mc").read_text()
    ports = {name: int(port) for name, port in re.findall(r"^M(\w+),.*A=TCP \$h (\d+)$", mc, re.M)}
    routes = {}
    for line in (run / "mailertable").read_text().splitlines():
        domain, _, to = line.partition("\t")
        mailer, _, host = to.partition(":")
        routes[domain] = (mailer, host.strip("[]"), ports[mailer])
    return routes


@pytest.fixture
def sendmail_stood_in(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Calls, list[tuple[Any, ...]]]]:
    calls, commands = Calls(), []

    def m4(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        commands.append(("m4", *command))
        return subprocess.CompletedProcess(command, 0, stdout="# the cf m4 made\n")

    monkeypatch.setattr(sendmail, "load", calls.load)
    monkeypatch.setattr(sendmail, "unpacked", lambda: "8.17.1.9-2")
    monkeypatch.setattr(sendmail, "run", calls.record_run)
    monkeypatch.setattr(sendmail, "subprocess", SimpleNamespace(run=m4))
    # makemap and newaliases, each named after the local domain
    monkeypatch.setattr(
        sendmail,
        "_run",
        lambda local, program, *args, stdin=None: commands.append((local, program.name, *args)),
    )
    yield calls, commands


def test_sendmail_behind_a_receiver_routes_its_domains_to_their_ports(
    tmp_path: Path, destination: Destination, sendmail_stood_in: tuple[Calls, list[tuple[Any, ...]]]
) -> None:
    calls, commands = sendmail_stood_in
    folder, out = tmp_path / "sendmail-run", tmp_path / "out" / "r_sendmail"
    got = sendmail.behind(
        receiver(calls, tmp_path), "r_sendmail", folder, LOCAL, SENDING_PORT, out, destination
    )

    assert got == []
    assert calls.loaded == [("r_sendmail", tmp_path / "cases.yaml")]
    assert calls.served == [Sending("r_sendmail", calls.built, destination, out, SENDING_PORT)]
    version = "sendmail-8.17.1.9-2; receiving-side 1.0"
    assert calls.run == [
        (destination, calls.built, out, "r_sendmail", version, folder, LOCAL, SENDING_PORT)
    ]

    routes = sendmail_routes(folder)
    host, capture = destination.host, destination.capture_port
    assert routes["oak.test"] == ("extra0", LOOPBACK, 9101)
    assert routes["pine.test"] == ("extra1", LOOPBACK, 9102)
    assert routes["notices.test"] == ("extra2", host, capture)
    assert routes["sender.test"] == ("capture", host, capture)
    mc = (folder / "sendmail.mc").read_text()
    assert f"DAEMON_OPTIONS(`Port={SENDING_PORT}, Addr=127.0.0.1, Name=MTA')" in mc
    assert f"LOCAL_DOMAIN(`{LOCAL}')" in mc and f"`mx.{LOCAL}'" in mc
    assert f"define(`QUEUE_DIR', `{folder}/mqueue')" in mc
    assert sendmail.BESIDE in mc
    assert f"CLIENT_OPTIONS(`Family=inet, Addr={CLIENT}')" in mc
    assert (folder / "local-host-names").read_text() == f"{LOCAL}\n"
    assert (folder / "sendmail.cf").read_text() == "# the cf m4 made\n"
    cf = str(folder / "sendmail.cf")
    assert [c for c in commands if c[0] != "m4"] == [
        (LOCAL, "makemap", "-C", cf, "hash", str(folder / "mailertable")),
        (LOCAL, "sendmail", "-C", cf, "-bi"),
    ]


def test_sendmail_behind_a_receiver_takes_its_own_routes_when_it_has_them(
    tmp_path: Path, destination: Destination, sendmail_stood_in: tuple[Calls, list[tuple[Any, ...]]]
) -> None:
    calls, _ = sendmail_stood_in
    folder = tmp_path / "sendmail-run"
    own = receiver(
        calls, tmp_path, clients=None, captured=(), sendmail_routes=lambda: {".parent.test": 9103}
    )
    sendmail.behind(own, "r_sendmail", folder, LOCAL, SENDING_PORT, tmp_path / "out", destination)

    routes = sendmail_routes(folder)
    assert routes[".parent.test"] == ("extra0", LOOPBACK, 9103)
    assert not {"oak.test", "pine.test", "notices.test"} & set(routes)
    assert "CLIENT_OPTIONS" not in (folder / "sendmail.mc").read_text()


# Postfix (each round's first module calls its configure_sending and run itself)


def test_postfix_sending_routes_its_domains_to_their_ports(
    tmp_path: Path, destination: Destination, monkeypatch: pytest.MonkeyPatch
) -> None:
    chowned: list[tuple[Any, ...]] = []
    # The data folder is Postfix's user's: a chown only root may make.
    stand_in = SimpleNamespace(rmtree=shutil.rmtree, chown=lambda *args: chowned.append(args))
    monkeypatch.setattr(postfix, "shutil", stand_in)
    root = tmp_path / "postfix"
    captured = ("sender.test", *CAPTURED)
    postfix.configure_sending(
        root, LOCAL, SENDING_PORT, destination, ROUTES, captured=captured, client=CLIENT
    )

    transport = dict(
        line.split(" ", 1) for line in (root / "etc" / "transport").read_text().splitlines()
    )
    capture = f"smtp:[{destination.host}]:{destination.capture_port}"
    assert transport == {
        "sender.test": capture,
        "notices.test": capture,
        "oak.test": "smtp:[127.0.0.1]:9101",
        "pine.test": "smtp:[127.0.0.1]:9102",
    }
    master = (root / "etc" / "master.cf").read_text()
    assert master.startswith(f"127.0.0.1:{SENDING_PORT} inet n - n - - smtpd\n")
    main = (root / "etc" / "main.cf").read_text()
    assert f"\nmydestination = {LOCAL}\n" in main and f"\nmyhostname = mx.{LOCAL}\n" in main
    assert main.endswith(f"smtp_bind_address = {CLIENT}\nlocal_transport = discard:\n")
    assert chowned == [(root / "data", "postfix", "postfix")]

    postfix.configure_sending(root, LOCAL, SENDING_PORT, destination, ROUTES)
    main = (root / "etc" / "main.cf").read_text()
    assert "smtp_bind_address" not in main and "local_transport" not in main


# The rounds themselves


def receiving_rounds() -> Iterator[tuple[str, Receiver]]:
    """Each receiving-server round: its name and its first module's ``RECEIVER``."""
    for module in pkgutil.iter_modules(mtas.__path__):
        if module.name.endswith("_postfix"):
            found = importlib.import_module(f"{mtas.__name__}.{module.name}")
            if isinstance(getattr(found, "RECEIVER", None), Receiver):
                yield module.name.removesuffix("_postfix"), found.RECEIVER


ROUNDS = dict(receiving_rounds())


def test_the_receiving_rounds_are_found() -> None:
    assert len(ROUNDS) >= 14


@pytest.mark.parametrize("round_name", sorted(ROUNDS))
def test_each_sending_module_of_a_round_has_its_cases_its_client_and_a_port_of_its_own(
    round_name: str,
) -> None:
    """What each sending module reads of its round's receiver: its cases (none would
    make a regeneration with no row), its client address (a per-module table without it
    fails only as root, at the regeneration), and a listener no route of the round uses."""
    receiving = ROUNDS[round_name]
    ports = set(receiving.routes().values())
    for side in ("postfix", "exim", "sendmail"):
        module = importlib.import_module(f"{mtas.__name__}.{round_name}_{side}")
        assert load(module.MTA, receiving.cases), module.MTA
        receiving.client(module.MTA)  # no KeyError
        assert module.PORT not in ports, module.MTA

"""The destination simulator, over real SMTP sockets and its real control API."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import pytest

from postline.simulator import Simulator
from postline.simulator.client import SimulatorClient
from tests.polling import apoll_until
from tests.ports import free_port

T = TypeVar("T")

SLOW_SECONDS = 0.5


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, control_port=0, slow_seconds=SLOW_SECONDS)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def client(simulator: Simulator) -> SimulatorClient:
    return SimulatorClient(simulator.control_url)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The client blocks; the simulator runs on this loop, so call it from a thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def make_message(to: str, subject: str = "hello", extra: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    for name, value in (extra or {}).items():
        msg[name] = value
    msg["From"] = "sender@postline.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("body\n")
    return msg.as_bytes()


async def connect(sim: Simulator, **kwargs: Any) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sim.smtp_port, start_tls=False, **kwargs)
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def send(smtp: aiosmtplib.SMTP, rcpts: list[str], data: bytes | None = None) -> str:
    """One MAIL transaction on an open connection; returns the DATA reply text."""
    await smtp.mail("sender@postline.test")
    for rcpt in rcpts:
        await smtp.rcpt(rcpt)
    response = await smtp.data(data or make_message(rcpts[0]))
    assert response.code == 250
    return response.message


# local part behaviours


async def test_ehlo_advertises_extensions(simulator: Simulator) -> None:
    smtp = await connect(simulator)
    try:
        for extension in ("size", "8bitmime", "smtputf8", "pipelining"):
            assert smtp.supports_extension(extension), extension
        assert not smtp.supports_extension("starttls")
    finally:
        await smtp.quit()


async def test_ordinary_recipient_is_accepted_and_recorded(
    simulator: Simulator, client: SimulatorClient
) -> None:
    signed = {"DKIM-Signature": "v=1; a=rsa-sha256; d=postline.test; s=sel; b=abc"}
    smtp = await connect(simulator)
    try:
        reply = await send(smtp, ["Alice@Example.test"], make_message("alice", extra=signed))
    finally:
        await smtp.quit()
    assert reply.startswith("2.0.0")

    (message,) = await call(client.messages, raw=True)
    assert message["mail_from"] == "sender@postline.test"
    assert message["rcpt_tos"] == ["Alice@Example.test"]
    assert message["domains"] == ["example.test"]
    assert message["tls"] is False
    assert message["peer"].startswith("127.0.0.1:")
    assert message["size"] == len(message["raw"])
    assert message["raw"].startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert abs(message["arrived"] - time.time()) < 60
    (without_raw,) = await call(client.messages)
    assert "raw" not in without_raw


@pytest.mark.parametrize(
    ("rcpt", "reply"),
    [
        (
            "user-unknown@example.test",
            "550 5.1.1 <user-unknown@example.test>: Recipient address rejected: User unknown",
        ),
        (
            "User-Unknown+7@Example.test",
            "550 5.1.1 <User-Unknown+7@Example.test>: Recipient address rejected: User unknown",
        ),
        ("mailbox-full@example.test", "552 5.2.2 <mailbox-full@example.test>: Mailbox full"),
        ("reject@example.test", "554 5.7.1 Message rejected as spam"),
        ("REJECT+x@example.test", "554 5.7.1 Message rejected as spam"),
        ("greylist@example.test", "451 4.7.1 Greylisted, try again later"),
        ("tempfail@example.test", "421 4.4.2 try again later"),
    ],
)
async def test_rejections_answer_at_rcpt(
    simulator: Simulator, client: SimulatorClient, rcpt: str, reply: str
) -> None:
    smtp = await connect(simulator)
    try:
        await smtp.mail("sender@postline.test")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await smtp.rcpt(rcpt)
    finally:
        if smtp.is_connected:
            await smtp.quit()
    assert f"{refused.value.code} {refused.value.message}" == reply

    stats = await call(client.stats)
    assert stats["domains"]["example.test"]["rejected"] == 1
    assert stats["total"] == 0


async def test_tempfail_closes_the_connection_and_pipelining_works(simulator: Simulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.smtp_port)
    try:
        await reader.readline()  # greeting
        # One write, several commands: the client pipelines (RFC 2920).
        writer.write(
            b"EHLO client.test\r\n"
            b"MAIL FROM:<sender@postline.test>\r\n"
            b"RCPT TO:<someone@example.test>\r\n"
            b"RCPT TO:<tempfail@example.test>\r\n"
        )
        await writer.drain()
        replies = (await asyncio.wait_for(reader.read(), timeout=10)).decode().splitlines()
    finally:
        writer.close()
    assert replies[-3:] == ["250 OK", "250 2.1.5 OK", "421 4.4.2 try again later"]
    assert "250-PIPELINING" in replies


async def test_greylist_defers_once_per_address_until_reset(
    simulator: Simulator, client: SimulatorClient
) -> None:
    smtp = await connect(simulator)
    try:
        await smtp.mail("sender@postline.test")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as first:
            await smtp.rcpt("greylist+1@example.test")
        assert first.value.code == 451
        await smtp.rset()

        await send(smtp, ["greylist+1@example.test"])  # the retry is accepted

        await smtp.mail("sender@postline.test")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as other:
            await smtp.rcpt("greylist+2@example.test")  # another address: its own first time
        assert other.value.code == 451
        await smtp.rset()

        await call(client.reset)
        await smtp.mail("sender@postline.test")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as after_reset:
            await smtp.rcpt("greylist+1@example.test")
        assert after_reset.value.code == 451
    finally:
        await smtp.quit()


async def test_slow_recipient_delays_the_data_answer(simulator: Simulator) -> None:
    smtp = await connect(simulator)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await send(smtp, ["fast@example.test"])
        fast = loop.time() - started

        started = loop.time()
        await send(smtp, ["Slow+1@example.test"])
        slow = loop.time() - started
    finally:
        await smtp.quit()
    assert slow >= SLOW_SECONDS
    assert fast < SLOW_SECONDS


# sessions and concurrency


async def test_messages_on_one_connection_share_a_session_id(
    simulator: Simulator, client: SimulatorClient
) -> None:
    smtp = await connect(simulator)
    try:
        await send(smtp, ["one@a.test"])
        await send(smtp, ["two@a.test"])
    finally:
        await smtp.quit()
    smtp = await connect(simulator)
    try:
        await send(smtp, ["three@a.test"])
    finally:
        await smtp.quit()

    messages = await call(client.messages, domain="a.test")
    assert [m["rcpt_tos"] for m in messages] == [["one@a.test"], ["two@a.test"], ["three@a.test"]]
    first, second, third = (m["session_id"] for m in messages)
    assert first == second
    assert third != first


async def test_peak_concurrent_connections_per_domain(
    simulator: Simulator, client: SimulatorClient
) -> None:
    connections = [await connect(simulator) for _ in range(3)]
    try:
        for smtp in connections:
            await smtp.mail("sender@postline.test")
            await smtp.rcpt("someone@busy.test")
        other = connections[0]
        await other.rcpt("someone@other.test")

        stats = await call(client.stats)
        assert stats["domains"]["busy.test"]["current_connections"] == 3
        assert stats["domains"]["busy.test"]["peak_connections"] == 3
        assert stats["domains"]["other.test"]["peak_connections"] == 1
        assert stats["connections"]["current"] == 3

        await other.rset()  # RSET releases the domains that connection counted for

        async def released() -> bool:
            domains = (await call(client.stats))["domains"]
            return bool(
                domains["busy.test"]["current_connections"] == 2
                and domains["other.test"]["current_connections"] == 0
            )

        await apoll_until(released, "RSET to release the connection's domains")
    finally:
        for smtp in connections:
            await smtp.quit()

    async def all_closed() -> dict[str, Any] | None:
        stats = await call(client.stats)
        return stats if stats["connections"]["current"] == 0 else None

    stats = await apoll_until(all_closed, "every connection to close")
    assert stats["domains"]["busy.test"]["current_connections"] == 0
    assert stats["domains"]["busy.test"]["peak_connections"] == 3
    assert stats["connections"]["peak"] == 3
    assert stats["connections"]["total"] == 3


# STARTTLS


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        import subprocess

        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "1",
                "-subj", "/CN=mx.simulator.test",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key
    import datetime

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.simulator.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


async def test_starttls_is_offered_and_recorded(tmp_path: Path) -> None:
    cert, key = await asyncio.to_thread(_self_signed_cert, tmp_path)
    async with Simulator("127.0.0.1", 0, control_port=0, tls_cert=cert, tls_key=key) as sim:
        client = SimulatorClient(sim.control_url)
        smtp = await connect(sim, validate_certs=False)
        try:
            assert smtp.supports_extension("starttls")
            await smtp.starttls()
            await smtp.ehlo()
            assert not smtp.supports_extension("starttls")
            await send(smtp, ["secure@tls.test"])
            await send(smtp, ["again@tls.test"])
        finally:
            await smtp.quit()

        plain = await connect(sim)
        try:
            await send(plain, ["plain@tls.test"])
        finally:
            await plain.quit()

        messages = await call(client.messages, domain="tls.test")
        assert [(m["rcpt_tos"][0], m["tls"]) for m in messages] == [
            ("secure@tls.test", True),
            ("again@tls.test", True),
            ("plain@tls.test", False),
        ]
        # STARTTLS upgrades the connection; it stays one session.
        assert messages[0]["session_id"] == messages[1]["session_id"]


# control API


async def test_control_api_filters_stats_and_reset(
    simulator: Simulator, client: SimulatorClient
) -> None:
    assert await call(client.healthy)
    smtp = await connect(simulator)
    try:
        await send(smtp, ["one@a.test", "two@b.test"])
        between = time.time()
        await send(smtp, ["three@b.test"])
    finally:
        await smtp.quit()

    assert [m["id"] for m in await call(client.messages)] == [1, 2]
    assert len(await call(client.messages, rcpt="TWO@b.test")) == 1
    assert [m["rcpt_tos"] for m in await call(client.messages, domain="B.TEST")] == [
        ["one@a.test", "two@b.test"],
        ["three@b.test"],
    ]
    assert [m["rcpt_tos"] for m in await call(client.messages, since=between)] == [["three@b.test"]]
    assert await call(client.messages, rcpt="nobody@a.test") == []
    raw = await call(client.messages, rcpt="three@b.test", raw=True)
    assert b"Subject: hello" in raw[0]["raw"]

    stats = await call(client.stats)
    assert stats["total"] == 2
    assert stats["recipients"] == 3
    assert stats["domains"]["a.test"]["messages"] == 1
    assert stats["domains"]["b.test"]["messages"] == 2
    assert stats["domains"]["b.test"]["recipients"] == 2
    assert len(stats["domains"]["b.test"]["arrivals"]) == 2
    assert stats["domains"]["b.test"]["arrivals"] == sorted(stats["domains"]["b.test"]["arrivals"])

    await call(client.reset)
    stats = await call(client.stats)
    assert stats["total"] == 0
    assert stats["domains"] == {}
    assert await call(client.messages) == []


async def test_messages_endpoint_serves_base64_raw_only_on_request(
    simulator: Simulator, client: SimulatorClient
) -> None:
    import json
    import urllib.request

    smtp = await connect(simulator)
    try:
        await send(smtp, ["raw@c.test"])
    finally:
        await smtp.quit()

    def fetch(path: str) -> Any:
        with urllib.request.urlopen(simulator.control_url + path, timeout=10) as response:
            return json.loads(response.read())

    (plain,) = await call(fetch, "/messages?rcpt=raw@c.test")
    (with_raw,) = await call(fetch, "/messages?rcpt=raw@c.test&raw=1")
    assert "raw" not in plain
    assert base64.b64decode(with_raw["raw"]).startswith(b"From: sender@postline.test")
    assert await call(fetch, "/healthz") == {"status": "ok"}


# as a process


async def test_runs_as_a_process_and_stops_on_sigterm() -> None:
    smtp_port, control_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "postline.simulator",
        "--smtp",
        f"127.0.0.1:{smtp_port}",
        "--control",
        f"127.0.0.1:{control_port}",
        "--slow-seconds",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    client = SimulatorClient(f"http://127.0.0.1:{control_port}", timeout=2)
    try:

        async def healthy() -> bool:
            if process.returncode is not None:
                pytest.fail(f"simulator exited with {process.returncode}")
            return await call(client.healthy)

        await apoll_until(healthy, "the simulator process to answer /healthz", timeout=30)

        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
        await smtp.connect()
        try:
            await smtp.ehlo()
            await send(smtp, ["slow@proc.test"])
        finally:
            await smtp.quit()
        (message,) = await call(client.messages, domain="proc.test")
        assert message["rcpt_tos"] == ["slow@proc.test"]

        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"simulator stopping" in output


# broken servers (the first attempt to an address; "-always" every time)


async def test_hang_never_answers_rcpt_the_first_time(
    simulator: Simulator, client: SimulatorClient
) -> None:
    smtp = await connect(simulator, timeout=1.0)
    await smtp.mail("sender@postline.test")
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await smtp.rcpt("hang@a.test")
    smtp.close()
    smtp = await connect(simulator)
    try:
        await send(smtp, ["hang@a.test"])  # a working server the next time
    finally:
        await smtp.quit()
    assert [m["rcpt_tos"] for m in await call(client.messages)] == [["hang@a.test"]]


async def test_garbage_answers_rcpt_with_no_smtp_and_closes(simulator: Simulator) -> None:
    smtp = await connect(simulator)
    await smtp.mail("sender@postline.test")
    with pytest.raises((aiosmtplib.SMTPResponseException, aiosmtplib.SMTPServerDisconnected)):
        await smtp.rcpt("garbage-always@a.test")
    smtp.close()


async def test_drop_takes_the_message_then_drops_the_connection(
    simulator: Simulator, client: SimulatorClient
) -> None:
    smtp = await connect(simulator)
    await smtp.mail("sender@postline.test")
    await smtp.rcpt("drop@a.test")
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.data(make_message("drop@a.test"))
    smtp.close()
    smtp = await connect(simulator)
    try:
        await send(smtp, ["drop@a.test"])
    finally:
        await smtp.quit()
    # it got there twice: the first copy was kept though its sender heard no 250
    assert len(await call(client.messages, rcpt="drop@a.test")) == 2

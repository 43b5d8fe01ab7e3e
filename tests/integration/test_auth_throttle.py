"""Guessing credentials is throttled per account and per client address, in each door's own
terms: SMTP ``454 4.7.0``, HTTP ``429`` with ``Retry-After``, gRPC ``RESOURCE_EXHAUSTED``.
While locked, even the right secret is refused (it is not checked at all); once the lock has
passed it works again, and every refusal is logged."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterator

import grpc
import pytest

from postline.common.throttle import AuthThrottle
from postline.ingress.grpc_server import GrpcServer
from postline.v1 import send_pb2, send_pb2_grpc
from tests.integration import send_api_support
from tests.integration.send_api_support import bearer, harness
from tests.integration.smtp_support import SECRET, USER, LoopThread, Relay, policy, running_relay

FREE = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock) -> AuthThrottle:
    return AuthThrottle(free_failures=FREE, base_delay=2.0, max_delay=60.0, clock=clock)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def smtp_login(relay: Relay, user: str, secret: str) -> tuple[int, str]:
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
        smtp.ehlo("client.test")
        smtp.user, smtp.password = user, secret
        try:  # one AUTH PLAIN (smtplib's login() would try every mechanism in turn)
            code, text = smtp.auth("PLAIN", smtp.auth_plain)
        except smtplib.SMTPAuthenticationError as error:
            code, text = error.smtp_code, error.smtp_error
        return code, text.decode()


def test_smtp_auth_is_throttled(
    loop: LoopThread, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    relay = Relay(amqp_url, policy({"plain_auth_on_loopback": True}), throttle=throttle(clock))
    with running_relay(loop, relay), caplog.at_level(logging.INFO):
        for _ in range(FREE):
            assert smtp_login(relay, USER, "wrong")[0] == 535
        # the failure past the free ones locks the account and the address
        assert smtp_login(relay, USER, "wrong")[0] == 535
        code, text = smtp_login(relay, USER, SECRET)
        assert (code, text) == (
            454,
            "4.7.0 Error: too many failed authentications, try again in 2 seconds",
        )
        # another account from the same address is locked too (the address is)
        assert smtp_login(relay, "someone-else", "guess")[0] == 454
        clock.now += 2
        assert smtp_login(relay, USER, SECRET)[0] == 235
    assert "throttled for 2s after 4 failed authentications" in caplog.text
    assert f"AUTH PLAIN as '{USER}' refused: throttled for 2s" in caplog.text


async def test_http_auth_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    async with harness() as h:
        h.api.authenticator.throttle = throttle(clock)
        body = {"from": "a@example.test", "to": ["b@b.test"], "subject": "s", "text": "t"}
        for _ in range(FREE + 1):
            wrong = await h.client.post("/api/v1/send", json=body, headers=bearer(USER, "x"))
            assert wrong.status_code == 401
        with caplog.at_level(logging.INFO):
            locked = await h.client.post("/api/v1/send", json=body, headers=bearer())
        assert locked.status_code == 429
        assert locked.headers["Retry-After"] == "2"
        assert locked.json() == {
            "error": {
                "code": "too_many_failed_logins",
                "message": "too many failed authentications; try again in 2 s",
            }
        }
        assert f"API auth as {USER} refused: throttled for 2s" in caplog.text
        clock.now += 2
        # past the lock the right secret gets through (here to the unconnected broker: 503)
        allowed = await h.client.post("/api/v1/send", json=body, headers=bearer())
        assert allowed.status_code == 503


async def test_grpc_auth_is_throttled() -> None:
    clock = Clock()
    async with harness() as h:
        h.api.authenticator.throttle = throttle(clock)
        server = GrpcServer(h.api, "127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = send_pb2_grpc.SendServiceStub(channel)
                request = send_pb2.SendRequest(to=["b@b.test"], subject="s", text="t")
                wrong = (("authorization", f"Bearer {USER}:nope"),)
                right = (("authorization", f"Bearer {USER}:{send_api_support.SECRET}"),)
                for _ in range(FREE + 1):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.Send(request, metadata=wrong)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(grpc.aio.AioRpcError) as locked:
                    await stub.Send(request, metadata=right)
                assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                trailing = {str(k): str(v) for k, v in locked.value.trailing_metadata() or ()}
                assert trailing["retry-after"] == "2"
                assert trailing["postline-error-code"] == "too_many_failed_logins"
        finally:
            await server.stop(grace=1)

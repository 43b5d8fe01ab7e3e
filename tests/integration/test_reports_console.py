"""The console's access rules over real HTTP against real ClickHouse (chdb): log-in with
argon2 and TOTP, sessions and CSRF, roles, throttling, ``console.allowed_ips``, accounts that
persist across a restart and replicas, the operation log, and the suppression list through
the real bounce gRPC service. (The pages themselves are driven in a browser in
tests/browser.)"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from postline.bounce.grpc_server import GrpcServer as BounceGrpc
from postline.bounce.grpc_server import SuppressionsServicer
from postline.bounce.store import Store as BounceStore
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import EXCHANGE, SUPPRESSION_KEY
from postline.common.clickhouse import apply_migrations, connect
from postline.common.policy import Policy, hash_secret, parse_policy
from postline.common.runtime import HttpServer
from postline.common.throttle import AuthThrottle
from postline.reports.console.sessions import FULL, Sessions
from postline.reports.http import create_app
from postline.reports.queries import ReportQueries
from postline.reports.store import Store
from postline.reports.suppressions import SuppressionsClient
from tests.polling import poll_until
from tests.ports import free_port

TOTP_SECRET = pyotp.random_base32()


def up_to_today() -> dict[str, str]:
    """The days a test's own rows fall on, read when asked: from yesterday to today, so a suite
    running across midnight (UTC) still finds the rows it wrote a moment before."""
    today = datetime.now(UTC).date()
    return {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}


POLICY = """
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    api_users:
      - {{name: dev, secret: {{argon2: "{dev}"}}}}
  campaigns:
    return_path_domain: bounce.campaigns.test
console:
  allowed_ips: {allowed}
  accounts:
    - {{email: admin@example.test, role: admin, password: {{argon2: "{admin}"}}}}
    - {{email: viewer@example.test, role: viewer, password: {{argon2: "{viewer}"}},
        language: ja, timezone: Asia/Tokyo}}
    - {{email: totp@example.test, role: admin, password: {{argon2: "{totp}"}},
        totp: {{env: POSTLINE_TEST_TOTP}}}}
"""
HASHES = {name: hash_secret(name) for name in ("admin", "viewer", "totp")}
DEV_HASH = hash_secret("dev-secret")


def policy_text(allowed: str = '["127.0.0.0/8"]', **hashes: str) -> str:
    return POLICY.format(dev=DEV_HASH, allowed=allowed, **{**HASHES, **hashes})


class Running:
    """One reports HTTP app on its own loop thread (a replica)."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        suppressions: str | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = SuppressionsClient(suppressions, policy) if suppressions else None
        app = create_app(
            ReportQueries(store, policy),
            ready=lambda: True,
            suppressions=self.client,
            throttle=throttle or AuthThrottle(),
        )
        self.listen = f"127.0.0.1:{free_port()}"
        self.http = HttpServer(app, self.listen)
        self.call(self.http.start())
        self.base = f"http://{self.listen}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.call(self.http.stop())
        if self.client is not None:
            self.call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    path = tmp_path / "ch"
    client = connect(f"chdb://{path}")
    apply_migrations(client)
    client.close()
    return path


@pytest.fixture
def store(data_path: Path) -> Iterator[Store]:
    store = Store(f"chdb://{data_path}")
    yield store
    store.close()


@pytest.fixture
def console(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv("POSTLINE_TEST_TOTP", TOTP_SECRET)
    running = Running(store, parse_policy(policy_text()))
    yield running
    running.close()


@pytest.fixture
def still_console(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """The console with the default throttle on a clock that stands still: a lock (the first
    lasts 1 s) holds for as long as the test needs it, however slowly a loaded machine gets
    from one request to the next."""
    monkeypatch.setenv("POSTLINE_TEST_TOTP", TOTP_SECRET)
    running = Running(store, parse_policy(policy_text()), throttle=AuthThrottle(clock=lambda: 1e6))
    yield running
    running.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found[1]


def log_in(base: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return client


def test_log_in_sets_a_safe_session_cookie_and_log_out_revokes_it(console: Running) -> None:
    client = httpx.Client(base_url=console.base, timeout=30)
    assert client.get("/errors").headers["location"].startswith("/login?next=")
    page = client.get("/login")
    assert 'for="email"' in page.text and 'for="password"' in page.text
    token = csrf_of(page.text)
    wrong = client.post(
        "/login", data={"email": "admin@example.test", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    response = client.post(
        "/login",
        data={"email": "Admin@Example.test", "password": "admin", "csrf_token": token},
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "postline_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS the cookie is Secure
    assert "Max-Age=28800" in cookie
    errors = client.get("/errors")
    assert errors.status_code == 200 and "admin@example.test" in errors.text
    # the API takes the session too
    assert client.get("/api/v1/errors", params=up_to_today()).status_code == 200

    old = client.cookies.get("postline_session")
    missing = client.post("/logout", data={})
    assert missing.status_code == 403  # no CSRF token: refused
    out = client.post("/logout", data={"csrf_token": csrf_of(errors.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    stale = httpx.Client(base_url=console.base, cookies={"postline_session": old or ""})
    assert stale.get("/errors").status_code == 303  # the revoked session is gone
    assert stale.get("/api/v1/settings").status_code == 401


def test_log_in_form_needs_its_csrf_token(console: Running) -> None:
    client = httpx.Client(base_url=console.base, timeout=30)
    client.get("/login")
    forged = client.post(
        "/login", data={"email": "admin@example.test", "password": "admin", "csrf_token": "x"}
    )
    assert forged.status_code == 403 and "postline_session" not in forged.headers.get(
        "set-cookie", ""
    )


def test_viewer_reads_reports_and_every_change_is_403(console: Running) -> None:
    viewer = log_in(console.base, "viewer@example.test", "viewer")
    page = viewer.get("/errors")
    assert page.status_code == 200 and 'lang="ja"' in page.text and "エラーログ" in page.text
    token = csrf_of(page.text)
    assert viewer.get("/accounts").status_code == 403
    assert viewer.get("/operations").status_code == 403
    assert viewer.get("/api/v1/accounts").status_code == 403
    added = viewer.post("/suppressions", data={"address": "x@a.test", "csrf_token": token})
    assert added.status_code == 403
    created = viewer.post(
        "/accounts",
        data={"email": "n@example.test", "password": "password1", "role": "admin",
              "language": "en", "timezone": "UTC", "csrf_token": token},
    )  # fmt: skip
    assert created.status_code == 403
    api = viewer.post(
        "/api/v1/suppressions", json={"address": "x@a.test"}, headers={"X-CSRF-Token": token}
    )
    assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"
    # the nav has no administrator pages
    assert "/accounts" not in page.text and "/operations" not in page.text


def test_totp_accounts_need_the_one_time_code(console: Running) -> None:
    client = httpx.Client(base_url=console.base, timeout=30)
    token = csrf_of(client.get("/login").text)
    step = client.post(
        "/login", data={"email": "totp@example.test", "password": "totp", "csrf_token": token}
    )
    assert step.status_code == 303 and step.headers["location"].startswith("/login/code")
    assert client.get("/errors").status_code == 303  # not logged in yet
    form = client.get("/login/code")
    assert "One-time code" in form.text
    code_token = csrf_of(form.text)
    wrong = client.post("/login/code", data={"code": "000000", "csrf_token": code_token})
    assert wrong.status_code == 401 and "Wrong one-time code" in wrong.text
    right = client.post(
        "/login/code", data={"code": pyotp.TOTP(TOTP_SECRET).now(), "csrf_token": code_token}
    )
    assert right.status_code == 303
    assert client.get("/errors").status_code == 200


def test_failed_log_ins_are_throttled_per_account_and_logged(still_console: Running) -> None:
    client = httpx.Client(base_url=still_console.base, timeout=30)
    token = csrf_of(client.get("/login").text)
    statuses = []
    for _ in range(7):
        response = client.post(
            "/login", data={"email": "viewer@example.test", "password": "x", "csrf_token": token}
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert "Wait" in response.text and "seconds" in response.text
    # the right password is not even checked while the account is locked
    locked = client.post(
        "/login", data={"email": "viewer@example.test", "password": "viewer", "csrf_token": token}
    )
    assert locked.status_code == 429
    # the API's credentials from this address are throttled too: 429 with Retry-After
    api = httpx.get(
        f"{still_console.base}/api/v1/errors",
        params=up_to_today(),
        headers={"Authorization": "Bearer dev:wrong"},
    )
    assert api.status_code == 429 and int(api.headers["retry-after"]) >= 1
    assert api.json()["error"]["code"] == "too_many_attempts"
    admin = log_in_from_elsewhere(still_console)
    log = admin.get("/api/v1/operations", params=up_to_today()).json()
    actions = [(r["actor"], r["action"]) for r in log["results"]]
    assert ("viewer@example.test", "login_failed") in actions
    assert ("viewer@example.test", "login_throttled") in actions


def log_in_from_elsewhere(console: Running) -> httpx.Client:
    """An administrator whose own address is not locked (the throttle counts per IP)."""
    client = httpx.Client(
        base_url=console.base, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"email": "admin@example.test", "password": "admin", "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return client


def test_allowed_ips_guard_the_console_and_the_api(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = Running(store, parse_policy(policy_text(allowed='["10.0.0.0/8"]')))
    try:
        assert httpx.get(f"{running.base}/login").status_code == 403
        api = httpx.get(f"{running.base}/api/v1/errors", auth=("dev", "dev-secret"))
        assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"
        assert httpx.get(f"{running.base}/healthz").status_code == 200  # probes stay open
    finally:
        running.close()


def test_accounts_persist_across_restarts_and_replicas(
    store: Store, data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = parse_policy(policy_text())
    first, second = Running(store, policy), Running(store, policy)
    try:
        admin = log_in(first.base, "admin@example.test", "admin")
        token = csrf_of(admin.get("/accounts").text)
        created = admin.post(
            "/accounts",
            data={"email": "New@Example.test", "password": "s3cret-pass", "role": "viewer",
                  "language": "ja", "timezone": "Asia/Tokyo", "csrf_token": token},
        )  # fmt: skip
        assert created.status_code == 303
        short = admin.post(
            "/accounts",
            data={"email": "b@example.test", "password": "short", "role": "viewer",
                  "language": "en", "timezone": "UTC", "csrf_token": token},
        )  # fmt: skip
        assert short.status_code == 400 and "at least 8 characters" in short.text
        # the admin's own session works on the other replica
        other = httpx.Client(base_url=second.base, cookies=admin.cookies, timeout=30)
        assert other.get("/accounts").status_code == 200
        # the new account logs in on the other replica, changes its password
        new = log_in(second.base, "new@example.test", "s3cret-pass")
        page = new.get("/account")
        assert "マイアカウント" in page.text
        changed = new.post(
            "/account/password",
            data={"current_password": "s3cret-pass", "new_password": "an0ther-pass",
                  "confirm_password": "an0ther-pass", "csrf_token": csrf_of(page.text)},
        )  # fmt: skip
        assert changed.status_code == 303
        disabled = admin.post("/accounts/viewer@example.test/disable", data={"csrf_token": token})
        assert disabled.status_code == 303
        itself = admin.post("/accounts/admin@example.test/disable", data={"csrf_token": token})
        assert itself.status_code == 400
    finally:
        first.close()
        second.close()
    # a restart: a new process on the same data
    store.close()
    with closing(Store(f"chdb://{data_path}")) as restarted_store:
        restarted = Running(restarted_store, policy)
        try:
            log_in(restarted.base, "new@example.test", "an0ther-pass")
            client = httpx.Client(base_url=restarted.base, timeout=30)
            token = csrf_of(client.get("/login").text)
            refused = client.post(
                "/login",
                data={"email": "viewer@example.test", "password": "viewer", "csrf_token": token},
            )
            assert refused.status_code == 401  # disabled in the console, still disabled
            admin = log_in(restarted.base, "admin@example.test", "admin")
            accounts = {a["email"]: a for a in admin.get("/api/v1/accounts").json()["results"]}
            assert accounts["new@example.test"]["role"] == "viewer"
            assert accounts["new@example.test"]["inPolicy"] is False
            assert accounts["viewer@example.test"]["disabled"] is True
            log = admin.get("/api/v1/operations", params=up_to_today()).json()
            actions = {(r["actor"], r["action"], r["target"]) for r in log["results"]}
            assert ("admin@example.test", "account_created", "new@example.test") in actions
            assert ("new@example.test", "password_changed", "") in actions
            assert ("admin@example.test", "account_disabled", "viewer@example.test") in actions
            assert all(r["ip"] == "127.0.0.1" for r in log["results"])
        finally:
            restarted.close()
        # an operator who edits the policy entry (a new hash) takes the account back
        edited = parse_policy(policy_text(viewer=hash_secret("recovered")))
        recovered = Running(restarted_store, edited)
        try:
            log_in(recovered.base, "viewer@example.test", "recovered")
        finally:
            recovered.close()


# --- the suppression list through bounce's gRPC API --------------------------------------------


class Bounce:
    def __init__(self, amqp_url: str, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = BounceStore(f"chdb://{path}")
        self.call(self.store.run(apply_migrations))
        self.broker = Broker(amqp_url, Topology(2))
        self.call(self.broker.connect())
        policy = parse_policy(policy_text())

        async def serve() -> BounceGrpc:  # grpc.aio binds a server to the loop it is made in
            server = BounceGrpc(
                SuppressionsServicer(SuppressionList(self.store, self.broker), lambda: policy),
                "127.0.0.1:0",
            )
            await server.start()
            return server

        self.server = self.call(serve())
        self.call(self._a_scheduler())

    async def _a_scheduler(self) -> None:
        """A queue for the changes, as a scheduler has (bounce publishes none nobody gets)."""
        channel = await self.broker.connection.channel()
        changes = await channel.declare_queue(exclusive=True)
        await changes.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
        self.address = f"127.0.0.1:{self.server.port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.call(self.server.stop(0))
        self.call(self.broker.close())
        self.store.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def bounce(amqp_url: str, data_path: Path, store: Store) -> Iterator[Bounce]:
    # chdb opens one data path per process: bounce's tables are in every data path anyway
    running = Bounce(amqp_url, data_path)
    yield running
    running.close()


def test_suppressions_over_the_api_and_the_console(
    store: Store, bounce: Bounce, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = Running(store, parse_policy(policy_text()), suppressions=bounce.address)
    try:
        api = httpx.Client(base_url=running.base, auth=("dev", "dev-secret"), timeout=30)
        added = api.post("/api/v1/suppressions", json={"address": "Gone@A.test"})
        assert added.status_code == 201, added.text
        assert added.json()["address"] == "gone@a.test" and added.json()["server"] == "default"
        bad = api.post("/api/v1/suppressions", json={"address": "not an address"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "address"
        other = api.post(
            "/api/v1/suppressions", json={"address": "x@a.test", "server": "campaigns"}
        )
        assert other.status_code == 403  # an API user changes its own server only
        listed = api.get("/api/v1/suppressions").json()
        assert [s["address"] for s in listed["results"]] == ["gone@a.test"]

        admin = log_in(running.base, "admin@example.test", "admin")
        page = admin.get("/suppressions")
        assert "gone@a.test" in page.text
        token = csrf_of(page.text)
        no_csrf = admin.post("/suppressions", data={"address": "x@b.test", "server": "campaigns"})
        assert no_csrf.status_code == 403
        via_page = admin.post(
            "/suppressions",
            data={"address": "Someone@B.test", "server": "campaigns", "csrf_token": token},
        )
        assert via_page.status_code == 303
        campaigns = admin.get("/api/v1/suppressions", params={"server": "campaigns"}).json()
        assert [s["address"] for s in campaigns["results"]] == ["someone@b.test"]
        # a console session changing through the API needs its CSRF header
        plain = admin.delete("/api/v1/suppressions/gone@a.test", params={"server": "default"})
        assert plain.status_code == 400 and plain.json()["error"]["field"] == "csrf"
        removed = api.delete("/api/v1/suppressions/gone@a.test")
        assert removed.status_code == 200 and removed.json() == {"removed": True}
        assert api.delete("/api/v1/suppressions/gone@a.test").status_code == 404
        poll_until(
            lambda: api.get("/api/v1/suppressions").json()["total"] == 0,
            "the removal to show in the list",
        )
        log = admin.get("/api/v1/operations", params=up_to_today()).json()
        actions = {(r["actor"], r["action"], r["target"]) for r in log["results"]}
        assert ("dev", "suppression_added", "gone@a.test") in actions
        assert ("admin@example.test", "suppression_added", "someone@b.test") in actions
        assert ("dev", "suppression_removed", "gone@a.test") in actions
    finally:
        running.close()


def test_suppressions_without_bounce_are_503(store: Store) -> None:
    running = Running(store, parse_policy(policy_text()), suppressions="127.0.0.1:9")
    try:
        response = httpx.get(
            f"{running.base}/api/v1/suppressions", auth=("dev", "dev-secret"), timeout=30
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
    finally:
        running.close()


async def test_ending_every_session_asks_the_clock_that_lets_them_in(store: Store) -> None:
    # The reports host's clock two hours behind ClickHouse's: a session its clock still lets in
    # (for one hour) is one that ending all of an account's sessions (disabled, password reset)
    # ends, though by ClickHouse's clock it expired an hour ago.
    at = time.time() - 7200
    sessions = Sessions(store, ttl=3600, clock=lambda: at)
    token, _ = await sessions.start("admin@example.test", FULL, "127.0.0.1")
    assert await sessions.find(token) is not None
    await sessions.revoke_all("admin@example.test")
    assert await sessions.find(token) is None

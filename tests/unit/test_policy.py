"""The policy file: loading, the questions services ask it, and every kind of bad file."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from postline.common.cli import main as postline_cli
from postline.common.policy import (
    Destination,
    EnvSecret,
    FileSecret,
    ForwardAction,
    Policy,
    PolicyError,
    PriorityLevel,
    Rate,
    SecretError,
    TlsMode,
    load_policy,
    parse_policy,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = Path("/work/shared/postline.example.yaml")
DEV = REPO / "postline.dev.yaml"
FILES = Path(__file__).parent / "policy_files"
# Only the prefix is checked at load, as in the example file.
PLACEHOLDER_HASH = '{argon2: "$argon2id$v=19$m=65536,t=3,p=4$..."}'


def policy(body: str) -> Policy:
    return parse_policy(textwrap.dedent(body), "test.yaml")


def errors(body: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        policy(body)
    return str(info.value).splitlines()


@pytest.fixture(scope="module")
def dev() -> Policy:
    return load_policy(DEV)


# --- the shipped files ------------------------------------------------------------------------


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shared example file is not here")
def test_example_file_loads() -> None:
    example = load_policy(EXAMPLE)
    assert list(example.servers) == ["default"]
    assert example.find_api_user("dev") is not None
    # Its hashes are truncated placeholders: they load, and never verify.
    _, user = example.find_api_user("dev") or ("", None)
    assert user is not None and not user.verify("dev-secret")


def test_dev_file_loads(dev: Policy) -> None:
    assert dev.version == 1
    assert list(dev.servers) == ["default"]
    assert dev.api_user_count == 1
    server = dev.server("default")
    assert server.return_path_domain == "bounce.example.test"
    assert server.dkim == ()


def test_dev_user_verifies(dev: Policy) -> None:
    found = dev.find_api_user("dev")
    assert found is not None
    server_name, user = found
    assert server_name == "default"
    assert user.verify("dev-secret")
    assert not user.verify("dev-secret ")
    assert not user.verify("wrong")


def test_dev_console_admin_verifies(dev: Policy) -> None:
    account = dev.console.find_account("Admin@Example.test")
    assert account is not None
    assert account.role == "admin"
    assert account.verify("admin")
    assert not account.verify("dev-secret")


def test_authenticate_checks_name_secret_and_ip(dev: Policy) -> None:
    match = dev.authenticate("dev", "dev-secret", "127.0.0.1")
    assert match is not None and match.server_name == "default" and match.user.name == "dev"
    assert dev.authenticate("dev", "dev-secret", "::1") is not None
    assert dev.authenticate("dev", "dev-secret", "192.0.2.1") is None
    assert dev.authenticate("nobody", "dev-secret") is None


def test_dev_file_routes_test_domains_to_the_simulator(dev: Policy) -> None:
    route = dev.server("default").route_for("Example.TEST")
    assert route is not None
    assert route.to == Destination("127.0.0.1", 2600)
    assert route.tls is TlsMode.OPPORTUNISTIC
    assert dev.server("default").route_for("example.com") is None


def test_minimal_file_takes_defaults() -> None:
    minimal = load_policy(FILES / "minimal.yaml")
    server = minimal.server("main")
    assert minimal.retention_days == 40
    assert server.relay.max_message_size == 10 * 1024 * 1024
    assert server.relay.rate_per_ip == Rate(100, 1)
    assert server.relay.accepts_connection_from("203.0.113.9")
    assert server.retry_for({}, "r@x.test").interval == timedelta(minutes=10)
    assert server.priority_for({}, "r@x.test") is PriorityLevel.NORMAL
    assert server.speed_for("example.com").connections == 20
    assert minimal.source_addresses("main") == ()
    with pytest.raises(KeyError, match="unknown server 'nope'"):
        minimal.server("nope")


def test_policy_round_trips_through_json(dev: Policy) -> None:
    dumped = dev.model_dump(mode="json")
    assert dumped["servers"]["default"]["speed"][1]["rate"] == "600/min"
    assert dumped["servers"]["default"]["prohibited_hours"][0]["days"][0] == "mon"
    assert Policy.model_validate(dumped) == dev


# --- what services ask ------------------------------------------------------------------------


def test_speed_rules(dev: Policy) -> None:
    server = dev.server("default")
    mobile = server.speed_for("docomo.ne.jp")
    assert mobile.key == "group:jp-mobile"
    assert (mobile.connections, mobile.interval, mobile.rate) == (
        2,
        timedelta(seconds=1),
        Rate(600, 60),
    )
    # Omitted limits come from the "*" rule.
    assert mobile.messages_per_connection == 100 and mobile.source_ips == 1
    assert server.speed_for("EZWEB.ne.jp.").key == "group:jp-mobile"
    # The "*" rule stands first in the file but applies only when nothing else matches.
    other = server.speed_for("example.com")
    assert (other.key, other.connections, other.rate, other.rule) == (
        "domain:example.com",
        20,
        None,
        None,
    )
    assert server.uses_mx_rules
    google = server.speed_for("customer.example", ["aspmx.l.google.com"])
    assert (google.key, google.connections, google.interval) == ("group:google", 50, timedelta(0))
    assert server.speed_for("customer.example", ["mx.example.net"]).key == "domain:customer.example"


def test_speed_rule_inheritance_and_explicit_null_rate() -> None:
    server = policy(
        """
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            speed:
              - match: [slow.example]
                connections: 1
              - match: ["*"]
                rate: 60/min
                interval: 2s
              - match: [free.example]
                rate: null
        """
    ).server("s")
    slow = server.speed_for("slow.example")
    assert (slow.connections, slow.rate, slow.interval) == (1, Rate(60, 60), timedelta(seconds=2))
    assert server.speed_for("free.example").rate is None
    default = server.speed_for("any.example")
    assert (default.connections, default.messages_per_connection) == (20, 100)
    assert not server.uses_mx_rules


def test_domain_globs() -> None:
    server = policy(
        """
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            routes:
              - {match: ["*.example.com"], to: "[::1]:2600", tls: required}
              - {match: [example.com], to: mx.example.net}
        """
    ).server("s")
    sub = server.route_for("a.b.example.com")
    assert sub is not None and sub.to == Destination("::1", 2600) and sub.tls is TlsMode.REQUIRED
    exact = server.route_for("example.com")
    assert exact is not None and exact.to == Destination("mx.example.net", 25)
    assert server.route_for("notexample.com") is None


def test_priority_retry_forwarding(dev: Policy) -> None:
    server = dev.server("default")
    r = "user@example.test"
    assert server.priority_for({"X-Category": "receipt"}, r) is PriorityLevel.HIGH
    assert server.priority_for({"x-category": "campaign"}, r) is PriorityLevel.LOW
    assert server.priority_for({"X-Category": "newsletter"}, r) is PriorityLevel.NORMAL
    campaign = server.retry_for({"X-Category": "campaign"}, r)
    assert (campaign.interval, campaign.resend_period) == (
        timedelta(minutes=30),
        timedelta(hours=24),
    )
    plain = server.retry_for({}, r)
    assert (plain.interval, plain.resend_period) == (timedelta(minutes=10), timedelta(hours=4))
    rule = server.forwarding_for({"Subject": "Order confirmation #1"}, r)
    assert rule is not None and rule.action is ForwardAction.COPY
    assert rule.to == "archive@example.test"
    assert server.forwarding_for({"Subject": "Re: Order confirmation"}, r) is None


def test_prohibited_hours_cross_midnight(dev: Policy) -> None:
    server = dev.server("default")
    tokyo = ZoneInfo("Asia/Tokyo")
    campaign = {"X-Category": "campaign"}
    night = datetime(2025, 3, 3, 23, 30, tzinfo=tokyo)
    assert server.hold_until(campaign, "r@x.test", night) == datetime(
        2025, 3, 4, 8, 0, tzinfo=tokyo
    )
    early = datetime(2025, 3, 4, 7, 59, tzinfo=tokyo)
    assert server.hold_until(campaign, "r@x.test", early) == datetime(
        2025, 3, 4, 8, 0, tzinfo=tokyo
    )
    assert server.hold_until(campaign, "r@x.test", datetime(2025, 3, 4, 8, 0, tzinfo=tokyo)) is None
    assert server.hold_until({"X-Category": "receipt"}, "r@x.test", night) is None
    # The answer is in the caller's timezone: 23:30 JST is 14:30 UTC.
    held = server.hold_until(campaign, "r@x.test", night.astimezone(UTC))
    assert held == datetime(2025, 3, 3, 23, 0, tzinfo=UTC)
    assert held is not None and held.tzinfo is UTC


def test_prohibited_window_belongs_to_its_start_day() -> None:
    rule = (
        policy(
            """
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            prohibited_hours:
              - {header: To, pattern: ".", timezone: UTC, days: [fri], windows: ["21:00-08:00"]}
              - {header: X-Two, pattern: ".", windows: ["10:00-12:00", "12:00-13:00"]}
        """
        )
        .server("s")
        .prohibited_hours[0]
    )
    friday_night = datetime(2025, 3, 7, 22, 0, tzinfo=UTC)  # a Friday
    assert rule.release_at(friday_night) == datetime(2025, 3, 8, 8, 0, tzinfo=UTC)
    assert rule.release_at(datetime(2025, 3, 8, 7, 0, tzinfo=UTC)) is not None  # Saturday morning
    assert not rule.holds(datetime(2025, 3, 8, 22, 0, tzinfo=UTC))  # Saturday night
    assert not rule.holds(datetime(2025, 3, 7, 7, 0, tzinfo=UTC))  # Friday morning
    with pytest.raises(ValueError, match="aware"):
        rule.release_at(datetime(2025, 3, 7, 22, 0))


def test_back_to_back_windows_release_once() -> None:
    rule = (
        policy(
            """
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            prohibited_hours:
              - {header: X-Two, pattern: ".", windows: ["10:00-12:00", "12:00-13:00"]}
        """
        )
        .server("s")
        .prohibited_hours[0]
    )
    at = datetime(2025, 3, 7, 11, 0, tzinfo=UTC)
    assert rule.release_at(at) == datetime(2025, 3, 7, 13, 0, tzinfo=UTC)


def test_prohibited_hours_follow_wall_clock_across_dst() -> None:
    rule = (
        policy(
            """
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            prohibited_hours:
              - {header: To, pattern: ".", timezone: America/New_York, windows: ["21:00-08:00"]}
        """
        )
        .server("s")
        .prohibited_hours[0]
    )
    new_york = ZoneInfo("America/New_York")
    # DST starts on 2025-03-09 at 02:00: the night is an hour shorter, still ends at 08:00.
    release = rule.release_at(datetime(2025, 3, 8, 22, 0, tzinfo=new_york))
    assert release is not None
    assert release.astimezone(new_york).replace(tzinfo=None) == datetime(2025, 3, 9, 8, 0)


def test_secret_references_resolve_lazily_and_name_their_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "dkim.pem"
    loaded = policy(
        f"""
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            dkim:
              - {{domain: Example.test, selector: 20240101, key: {{file: {key_file}}}}}
        console:
          accounts:
            - email: a@example.test
              role: viewer
              password: {PLACEHOLDER_HASH}
              totp: {{env: POSTLINE_TEST_TOTP}}
        """
    )
    dkim = loaded.server("s").dkim_for("EXAMPLE.test")
    assert dkim is not None and dkim.selector == "20240101"
    assert isinstance(dkim.key, FileSecret)
    with pytest.raises(SecretError, match=r"^servers\.s\.dkim\[0\]\.key: .*dkim\.pem"):
        dkim.key.resolve()
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
    assert dkim.key.resolve() == "-----BEGIN PRIVATE KEY-----"

    totp = loaded.console.accounts[0].totp
    assert isinstance(totp, EnvSecret)
    monkeypatch.delenv("POSTLINE_TEST_TOTP", raising=False)
    with pytest.raises(SecretError, match=r"console\.accounts\[0\]\.totp: .*POSTLINE_TEST_TOTP"):
        totp.resolve()
    monkeypatch.setenv("POSTLINE_TEST_TOTP", "JBSWY3DPEHPK3PXP")
    assert totp.resolve() == "JBSWY3DPEHPK3PXP"


def test_unauthenticated_relay_networks() -> None:
    loaded = policy(
        """
        version: 1
        servers:
          a:
            return_path_domain: b.example.test
            relay: {relay_without_auth_from: [10.0.0.0/16]}
          b:
            return_path_domain: b.example.test
            relay: {relay_without_auth_from: ["10.1.2.3/16"]}
        """
    )
    assert loaded.unauthenticated_server("10.0.5.5") == "a"
    assert loaded.unauthenticated_server("::ffff:10.1.0.9") == "b"
    assert loaded.unauthenticated_server("192.0.2.1") is None


# --- bad files --------------------------------------------------------------------------------


def test_yaml_syntax_error_reports_its_line() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(FILES / "syntax_error.yaml")
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{FILES / 'syntax_error.yaml'}:7: YAML syntax error:")


def test_unknown_key_names_path_and_line() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(FILES / "unknown_key.yaml")
    assert str(info.value) == (
        f"{FILES / 'unknown_key.yaml'}:9: servers.default.speed[1].conections: "
        "unknown key (did you mean 'connections'?)"
    )


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    assert errors(
        """\
        version: 1
        zzz: 1
        servers: {s: {return_path_domain: b.example.test}}
        """
    ) == [
        "test.yaml:2: zzz: unknown key (expected one of: version, retention_days, "
        "source_ip_pools, servers, inbound, console)"
    ]


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(FILES / "many_errors.yaml")
    name = FILES / "many_errors.yaml"
    lines = str(info.value).splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{name}:2", "retention_days"],
        [f"{name}:7", "servers.default.relay.max_message_size"],
        [f"{name}:10", "servers.default.speed[0].connections"],
        [f"{name}:11", "servers.default.speed[0].interval"],
        [f"{name}:12", "servers.default.speed[0].rate"],
        [f"{name}:14", "servers.default.priority[0].pattern"],
    ]
    assert len(info.value.errors) == 6
    assert info.value.errors[0].line == 2


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "connections: many",
            "test.yaml:7: servers.s.speed[0].connections: Input should be a valid integer",
        ),
        ("interval: 10", "test.yaml:7: servers.s.speed[0].interval: invalid duration 10"),
        (
            "interval: 10 minutes",
            "test.yaml:7: servers.s.speed[0].interval: invalid duration '10 minutes'",
        ),
        ("rate: 600/fortnight", "test.yaml:7: servers.s.speed[0].rate: invalid rate"),
        ("rate: 600", "test.yaml:7: servers.s.speed[0].rate: invalid rate"),
        ("connections: 0", "test.yaml:7: servers.s.speed[0].connections: Input should be greater"),
        ("group: jp mobile", "test.yaml:7: servers.s.speed[0].group: invalid name 'jp mobile'"),
    ],
)
def test_bad_speed_values(snippet: str, expected: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            speed:
              - match: [example.com]
                {snippet}
        """
    )
    assert line.startswith(expected)


def test_bad_size() -> None:
    assert errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            relay:
              max_message_size: 10 parsecs
        """
    ) == [
        "test.yaml:6: servers.s.relay.max_message_size: invalid size '10 parsecs': "
        "expected bytes or e.g. 512KiB, 10MiB, 1GiB"
    ]


def test_bad_regex() -> None:
    (line,) = errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            priority:
              - {header: Subject, pattern: "[a-", level: high}
        """
    )
    assert line.startswith(
        "test.yaml:6: servers.s.priority[0].pattern: invalid regular expression '[a-': "
    )


def test_repeated_header_in_a_filter() -> None:
    assert errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            forwarding:
              - {header: Received, pattern: "x", action: copy, to: a@example.test}
        """
    ) == [
        "test.yaml:6: servers.s.forwarding[0].header: header Received can occur several times "
        "in one message, so it cannot be used in a filter"
    ]


def test_bad_enums() -> None:
    lines = errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            priority:
              - {header: X-Category, pattern: "x", level: urgent}
            routes:
              - {match: [a.test], to: "localhost:2600", tls: maybe}
            forwarding:
              - {header: Subject, pattern: "x", action: move, to: a@example.test}
        console:
          accounts:
            - {email: a@example.test, role: root, password: {argon2: "$argon2id$..."}, language: fr}
        """
    )
    assert lines == [
        "test.yaml:6: servers.s.priority[0].level: Input should be 'high', 'normal' or 'low'",
        "test.yaml:8: servers.s.routes[0].tls: Input should be 'none', 'opportunistic' or "
        "'required'",
        "test.yaml:10: servers.s.forwarding[0].action: Input should be 'copy' or 'rewrite'",
        "test.yaml:13: console.accounts[0].role: Input should be 'admin' or 'viewer'",
        "test.yaml:13: console.accounts[0].language: Input should be 'en' or 'ja'",
    ]


def test_plain_text_secret() -> None:
    (line,) = errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            api_users:
              - name: dev
                secret: dev-secret
        """
    )
    assert line.startswith(
        "test.yaml:7: servers.s.api_users[0].secret: secrets are never plain text"
    )


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("{env: DEV_SECRET}", "a credential Postline checks is stored as a hash"),
        ('{argon2: "hunter2"}', "not an argon2 hash"),
        ("{argon2: x, env: y}", "expected a secret with one key"),
        ("{password: x}", "unknown secret kind 'password'"),
    ],
)
def test_bad_credential_secrets(secret: str, message: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            api_users:
              - name: dev
                secret: {secret}
        """
    )
    assert line.startswith(f"test.yaml:7: servers.s.api_users[0].secret: {message}")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("pem-text", "secrets are never plain text"),
        (PLACEHOLDER_HASH, "Postline needs this secret itself, so it cannot be a hash"),
        ("{file: keys/a.pem}", "secret file path 'keys/a.pem' must be absolute"),
        ('{env: ""}', "{env: ...} needs a non-empty string"),
    ],
)
def test_bad_used_secrets(key: str, message: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            dkim:
              - domain: example.test
                selector: s1
                key: {key}
        """
    )
    assert line.startswith(f"test.yaml:8: servers.s.dkim[0].key: {message}")


def test_unknown_source_pool() -> None:
    assert errors(
        """\
        version: 1
        source_ip_pools:
          default: [192.0.2.1]
        servers:
          s:
            return_path_domain: b.example.test
            source_ip_pool: campaigns
        """
    ) == [
        "test.yaml:7: servers.s.source_ip_pool: unknown source IP pool 'campaigns' "
        "(source_ip_pools: default)"
    ]


def test_source_ips_beyond_the_pool() -> None:
    assert errors(
        """\
        version: 1
        source_ip_pools:
          default: [192.0.2.1, 192.0.2.2]
        servers:
          s:
            return_path_domain: b.example.test
            source_ip_pool: default
            speed:
              - {match: ["*"], source_ips: 3}
        """
    ) == [
        "test.yaml:9: servers.s.speed[0].source_ips: source_ips is 3 but the server's source "
        "IP pool has 2 address(es)"
    ]


def test_bad_timezone() -> None:
    assert errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
        console:
          accounts:
            - email: a@example.test
              role: admin
              password: {argon2: "$argon2id$..."}
              timezone: Asia/Tokio
        """
    ) == [
        "test.yaml:10: console.accounts[0].timezone: unknown timezone 'Asia/Tokio': "
        "expected an IANA name like Asia/Tokyo or UTC"
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('windows: ["21:00"]', "windows[0]: invalid time window '21:00'"),
        ('windows: ["25:00-08:00"]', "windows[0]: invalid time window '25:00-08:00'"),
        ('windows: ["08:00-08:00"]', "windows[0]: invalid time window '08:00-08:00': start and"),
        ('windows: ["00:00-24:00"]', "windows: the windows cover the whole week"),
        ('windows: ["00:00-12:00", "12:00-24:00"]', "windows: the windows cover the whole week"),
        ("windows: []", "windows: needs at least one window"),
        ('days: [monday], windows: ["01:00-02:00"]', "days[0]: Input should be 'mon'"),
        ('days: [], windows: ["01:00-02:00"]', "days: is empty"),
    ],
)
def test_bad_prohibited_hours(rule: str, message: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            prohibited_hours:
              - {{header: X-Category, pattern: x, {rule}}}
        """
    )
    assert line.startswith(f"test.yaml:6: servers.s.prohibited_hours[0].{message}")


def test_duplicate_user_in_a_server() -> None:
    assert errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            api_users:
              - {{name: dev, secret: {PLACEHOLDER_HASH}}}
              - {{name: dev, secret: {PLACEHOLDER_HASH}}}
        """
    ) == ["test.yaml:7: servers.s.api_users[1].name: duplicate 'dev' (also at api_users[0].name)"]


def test_same_user_in_two_servers() -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          a:
            return_path_domain: b.example.test
            api_users: [{{name: app, secret: {PLACEHOLDER_HASH}}}]
          b:
            return_path_domain: b.example.test
            api_users: [{{name: app, secret: {PLACEHOLDER_HASH}}}]
        """
    )
    assert line.startswith(
        "test.yaml:8: servers.b.api_users[0].name: api user 'app' is also defined at "
        "servers.a.api_users[0]"
    )


def test_cross_field_errors_are_reported_together() -> None:
    lines = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            speed:
              - match: ["*"]
              - match: [a.example, b.example]
                group: g
              - match: ["*"]
              - mx: ["*.example.net"]
                group: g
            dkim:
              - {{domain: example.test, selector: a, key: {{env: A}}}}
              - {{domain: example.test, selector: b, key: {{env: B}}}}
        console:
          accounts:
            - {{email: a@example.test, role: admin, password: {PLACEHOLDER_HASH}}}
            - {{email: A@example.test, role: viewer, password: {PLACEHOLDER_HASH}}}
        """
    )
    assert lines == [
        'test.yaml:9: servers.s.speed[2].match: a second "*" rule (the first is speed[0])',
        "test.yaml:11: servers.s.speed[3].group: duplicate 'g' (also at speed[1].group): "
        "a group is one shared limit: give it one rule",
        "test.yaml:14: servers.s.dkim[1].domain: duplicate 'example.test' (also at "
        "dkim[0].domain): only one key per domain",
        "test.yaml:18: console.accounts[1].email: duplicate 'a@example.test' (also at "
        "accounts[0].email)",
    ]


def test_server_checks_wait_for_valid_keys_but_other_sections_still_report() -> None:
    lines = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            speed:
              - {{match: ["*"]}}
              - {{match: ["*"]}}
              - {{connections: 3}}
              - {{match: [a.example], mx: [mx.a.example]}}
              - {{match: ["*", a.example]}}
              - {{mx: ["*"]}}
              - {{match: ["*"], group: all}}
        console:
          accounts:
            - {{email: a@example.test, role: admin, password: {PLACEHOLDER_HASH}}}
            - {{email: A@example.test, role: viewer, password: {PLACEHOLDER_HASH}}}
        """
    )
    # The second "*" rule is a server-level check: it waits until every rule is valid.
    assert lines == [
        "test.yaml:8: servers.s.speed[2]: a speed rule needs exactly one of match or mx",
        "test.yaml:9: servers.s.speed[3]: a speed rule needs exactly one of match or mx",
        'test.yaml:10: servers.s.speed[4].match[0]: "*" must be the only pattern of its rule',
        'test.yaml:11: servers.s.speed[5].mx[0]: for the default rule write match: ["*"]',
        'test.yaml:12: servers.s.speed[6].group: the "*" rule holds per-domain defaults; it '
        "cannot have a group",
        "test.yaml:16: console.accounts[1].email: duplicate 'a@example.test' (also at "
        "accounts[0].email)",
    ]


def test_overlapping_unauthenticated_networks() -> None:
    (line,) = errors(
        """\
        version: 1
        servers:
          a:
            return_path_domain: b.example.test
            relay: {relay_without_auth_from: [10.0.0.0/8]}
          b:
            return_path_domain: b.example.test
            relay: {relay_without_auth_from: [10.1.0.0/16]}
        """
    )
    assert line.startswith(
        "test.yaml:8: servers.b.relay.relay_without_auth_from: 10.1.0.0/16 overlaps 10.0.0.0/8"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[10.0.0.0/33]", "allowed_ips[0]: invalid IP network '10.0.0.0/33'"),
        ("10.0.0.0/8", "allowed_ips: Input should be a valid tuple"),
    ],
)
def test_bad_networks(value: str, message: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            relay:
              allowed_ips: {value}
        """
    )
    assert line.startswith(f"test.yaml:6: servers.s.relay.{message}")


def test_bad_destination_and_domain_pattern() -> None:
    lines = errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: bounce..example
            routes:
              - {match: ["foo*.com"], to: "127.0.0.1:99999"}
        """
    )
    assert lines == [
        "test.yaml:4: servers.s.return_path_domain: invalid domain 'bounce..example'",
        "test.yaml:6: servers.s.routes[0].match[0]: invalid domain pattern 'foo*.com': "
        "expected *, *.example.com or example.com",
        "test.yaml:6: servers.s.routes[0].to: invalid destination '127.0.0.1:99999': "
        "port 99999 out of range",
    ]


def test_missing_required_key_is_reported_on_its_parent() -> None:
    assert errors(
        """\
        version: 1
        servers:
          s:
            csv_download: false
        """
    ) == ["test.yaml:3: servers.s.return_path_domain: required key is missing"]


def test_wrong_version() -> None:
    assert errors(
        """\
        version: 2
        servers: whatever
        """
    ) == ["test.yaml:1: version: unsupported policy version 2: this Postline reads version 1"]


def test_missing_version() -> None:
    assert errors("servers: {s: {return_path_domain: b.example.test}}\n") == [
        "test.yaml:1: version: required key is missing"
    ]


def test_duplicate_yaml_key() -> None:
    assert errors(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            csv_download: true
            csv_download: false
        """
    ) == ["test.yaml:6: servers.s.csv_download: duplicate key (first on line 5)"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "test.yaml:1: the policy file is empty"),
        ("# nothing\n", "test.yaml:1: the policy file is empty"),
        ("- version: 1\n", "test.yaml:1: the policy file must be a mapping"),
        ("version: 1\n---\nversion: 1\n", "test.yaml:2: YAML syntax error"),
        ("version: 1\nservers: {}\n", "test.yaml:2: servers: needs at least one server"),
    ],
)
def test_degenerate_files(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "test.yaml")
    assert str(info.value).startswith(message)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "postline.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(missing)
    assert str(info.value) == f"{missing}: cannot read policy file: No such file or directory"


# --- command line -----------------------------------------------------------------------------


def test_cli_check_ok() -> None:
    result = CliRunner().invoke(postline_cli, ["policy", "check", str(DEV)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{DEV}: ok (1 servers, 1 api users)\n"


def test_cli_check_prints_every_error() -> None:
    path = FILES / "many_errors.yaml"
    result = CliRunner().invoke(postline_cli, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 6
    assert all(line.startswith(f"{path}:") for line in result.stderr.splitlines())


def test_cli_hash_reads_stdin_and_prints_a_usable_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(postline_cli, ["policy", "hash"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    secret_line = result.stdout.strip()
    assert secret_line.startswith('{argon2: "$argon2id$')
    loaded = policy(
        f"""
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            api_users: [{{name: u, secret: {secret_line}}}]
        """
    )
    found = loaded.find_api_user("u")
    assert found is not None and found[1].verify("s3cret")


# --- telling the sender: notices, webhooks, weekly summary, inbound ---------------------------


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shared example file is not here")
def test_example_file_has_every_notice_key() -> None:
    example = load_policy(EXAMPLE)
    server = example.server("default")
    assert server.notices_from == "mailer-daemon@bounce.example.test"
    assert server.notices.delay_warning_after == timedelta(minutes=30)
    (hook,) = server.webhooks
    assert hook.wants("failed") and not hook.wants("queued")
    assert server.weekly_summary is not None and server.weekly_summary.time.hour == 9
    assert example.inbound_for("IN.example.test") is not None
    assert example.inbound_for("example.test") is None
    assert example.console.find_account("viewer@example.test") is not None


def test_delay_warning_inherits_unless_a_profile_sets_it() -> None:
    server = policy(
        """\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            notices: {delay_warning_after: 1h}
            retry:
              profiles:
                - {header: X-Category, pattern: "^bulk$", delay_warning_after: null}
                - {header: X-Category, pattern: "^slow$", interval: 1h}
                - {header: X-Category, pattern: "^fast$", delay_warning_after: 5m}
        """
    ).server("s")
    to = "user@example.test"
    assert server.retry_for({}, to).delay_warning_after == timedelta(hours=1)
    assert server.retry_for({"X-Category": "bulk"}, to).delay_warning_after is None
    assert server.retry_for({"X-Category": "slow"}, to).delay_warning_after == timedelta(hours=1)
    assert server.retry_for({"X-Category": "fast"}, to).delay_warning_after == timedelta(minutes=5)
    assert server.notices_from == "mailer-daemon@b.example.test"


def test_notices_default_without_the_key() -> None:
    server = policy(
        """\
        version: 1
        servers: {s: {return_path_domain: b.example.test, notices: {from: pm@example.test}}}
        """
    ).server("s")
    assert server.notices_from == "pm@example.test"
    assert server.notices.failure and not server.notices.success
    assert server.webhooks == () and server.weekly_summary is None


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "webhooks: [{url: ftp://x.example, secret: {env: S}}]",
            "servers.s.webhooks[0].url: invalid URL 'ftp://x.example'",
        ),
        (
            "webhooks: [{url: https://x.example, events: [sent], secret: {env: S}}]",
            "servers.s.webhooks[0].events[0]: Input should be",
        ),
        (
            "webhooks: [{url: https://x.example, events: [], secret: {env: S}}]",
            "servers.s.webhooks[0].events: needs at least one event type",
        ),
        (
            "weekly_summary: {to: [a@example.test], time: '25:00'}",
            "servers.s.weekly_summary.time: invalid time of day '25:00'",
        ),
        ("weekly_summary: {to: []}", "servers.s.weekly_summary.to: needs at least one address"),
        ("notices: {delay_warning_after: soon}", "servers.s.notices.delay_warning_after"),
    ],
)
def test_bad_notice_values(snippet: str, expected: str) -> None:
    (line,) = errors(
        f"""\
        version: 1
        servers:
          s:
            return_path_domain: b.example.test
            {snippet}
        """
    )
    assert expected in line


def test_inbound_domains_are_unique() -> None:
    (line,) = errors(
        """\
        version: 1
        servers: {s: {return_path_domain: b.example.test}}
        inbound:
          - {domain: in.example.test, url: "https://a.example/in", secret: {env: A}}
          - {domain: IN.example.test, url: "https://b.example/in", secret: {env: B}}
        """
    )
    assert "inbound[1].domain: duplicate 'in.example.test'" in line


def test_every_check_across_the_file_reports_at_once() -> None:
    """The cross-file checks (``policy.cross_checks``) each report at their own key, all in
    one load, so a user fixes the file in one round."""
    lines = errors(
        f"""\
        version: 1
        source_ip_pools:
          empty: []
          twice: [10.0.0.1, 10.0.0.1]
        servers:
          a:
            return_path_domain: b.example.test
            source_ip_pool: missing
            api_users: [{{name: u, secret: {PLACEHOLDER_HASH}}}]
          b:
            return_path_domain: b.example.test
            api_users: [{{name: u, secret: {PLACEHOLDER_HASH}}}]
        """
    )
    text = "\n".join(lines)
    assert "source_ip_pools.empty: a pool needs at least one address" in text
    assert "source_ip_pools.twice[1]: duplicate" in text
    assert "servers.a.source_ip_pool: unknown source IP pool 'missing'" in text
    assert "servers.b.api_users[0].name: api user 'u' is also defined at servers.a" in text
    assert len(lines) == 4

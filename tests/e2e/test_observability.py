"""Observability of the running system: one trace per delivery across the five services, the
metrics every service serves, and a policy change picked up by every service.

The stack runs as ``make run`` does: every service exports its spans over OTLP/HTTP to the
reports service, which writes them to ClickHouse (``otel_traces``).
"""

from __future__ import annotations

import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.common import semconv
from postline.common.policy import hash_secret
from postline.common.verp import encode_verp
from postline.devstack import Stack
from postline.devstack.stack import SERVICES
from postline.simulator.client import SimulatorClient
from tests.e2e.bounce_support import dsn
from tests.e2e.conftest import ReportsClient, running
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

UNKNOWN = "user-unknown@stack.test"
RETURN_PATH_DOMAIN = "bounce.example.test"  # postline.dev.yaml


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def send(stack: Stack, rcpt: str, *, user: str = "dev", secret: str = "dev-secret") -> None:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login(user, secret)
        message = f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: Traced\r\n\r\nHello.\r\n"
        smtp.sendmail("app@example.test", [rcpt], message.encode())


def by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["span_id"]: s for s in spans}


def test_a_failed_delivery_is_one_trace_through_all_five_services(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    send(stack, UNKNOWN)
    [failed] = poll_until(
        lambda: reports.get("/api/v1/deliveries", address=UNKNOWN, status="failed")["results"],
        "the delivery failed (550 5.1.1 at the simulator)",
        60,
    )
    trace_id = failed["traceId"]
    history = reports.get(f"/api/v1/deliveries/{failed['deliveryId']}")
    assert history["traceId"] == trace_id, "the delivery's history names its trace"

    def stored() -> list[dict[str, Any]]:
        try:
            return list(reports.get(f"/api/v1/traces/{trace_id}")["spans"])
        except urllib.error.HTTPError as error:
            if error.code == 404:  # no span of it written yet
                return []
            raise

    def complete() -> list[dict[str, Any]]:
        spans = stored()
        services = {s["service"] for s in spans if not s["linked"]}
        return spans if services >= {f"postline-{s}" for s in SERVICES} else []

    spans = poll_until(complete, "spans of all five services in the delivery's trace", 60)

    own = [s for s in spans if not s["linked"]]
    assert all(s["trace_id"] == trace_id for s in own)
    names = {(s["service"], s["name"]) for s in own}
    assert {
        ("postline-ingress", semconv.SPAN_SMTP_TRANSACTION),
        ("postline-scheduler", semconv.SPAN_SCHEDULE),
        ("postline-sender", semconv.SPAN_ATTEMPT),
        ("postline-scheduler", semconv.SPAN_RESULT),
        ("postline-bounce", semconv.SPAN_CLASSIFY),
        ("postline-reports", semconv.SPAN_REPORT_INSERT),
    } <= names
    # Causal order: the answer is oldest first, the transaction is the root, and every span
    # starts after the span it was caused by.
    assert own[0]["name"] == semconv.SPAN_SMTP_TRANSACTION and not own[0]["parent_span_id"]
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    spans_by_id = by_id(own)
    for span in own[1:]:
        parent = spans_by_id[span["parent_span_id"]]
        assert parent["start"] <= span["start"], (parent, span)
    chain = {s["name"]: s for s in own}
    attempt = chain[semconv.SPAN_ATTEMPT]
    assert spans_by_id[attempt["parent_span_id"]]["name"] == semconv.SPAN_SCHEDULE
    assert attempt["attributes"][semconv.REPLY_CODE] == "550"
    assert attempt["status"] == "STATUS_CODE_ERROR"
    steps = [e["name"] for e in attempt["events"]]
    assert steps == [semconv.EVENT_MX_LOOKUP, semconv.EVENT_CONNECTED, semconv.EVENT_REPLY]
    assert attempt["events"][2]["attributes"][semconv.STAGE] == "rcpt"
    classify = chain[semconv.SPAN_CLASSIFY]
    assert spans_by_id[classify["parent_span_id"]]["name"] == semconv.SPAN_ATTEMPT
    assert classify["attributes"][semconv.ERROR_STATUS] == "2"

    # A bounce mail for the same delivery, later: its own SMTP transaction, linked to the
    # delivery's trace, so the timeline shows it.
    return_path = encode_verp(failed["deliveryId"], RETURN_PATH_DOMAIN)
    host, port = stack.ports.bounce_smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.sendmail("", [return_path], dsn(return_path))
    [linked] = poll_until(
        lambda: [s for s in stored() if s["linked"] and s["name"] == semconv.SPAN_BOUNCE_MAIL],
        "the bounce mail's span on the delivery's timeline",
        60,
    )
    # The failure notice sent to the submitter is a trace of its own, linked here too.
    assert any(s["linked"] and s["name"] == semconv.SPAN_NOTICE for s in stored())
    assert (linked["service"], linked["name"]) == ("postline-bounce", semconv.SPAN_BOUNCE_MAIL)
    assert linked["links"][0]["attributes"][semconv.DELIVERY_ID] == failed["deliveryId"]
    assert linked["start"] > own[-1]["start"]

    # Every metric the dashboards and alerts may use is served by a running service, and
    # those this traffic moves have moved.
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        smtp.mail("app@example.test")
        assert smtp.rcpt("bad..@")[0] == 553
    scraped = {
        service: http_get(f"http://{stack.ports.health(service)}/metrics")[1]
        for service in SERVICES
    }
    # A counter's family is named with or without _total, depending on the exposition format.
    declared = {
        v.removesuffix("_total") for k, v in vars(semconv).items() if k.startswith("METRIC_")
    }
    served = {
        line.split()[2].removesuffix("_total")
        for text in scraped.values()
        for line in text.splitlines()
        if line.startswith("# TYPE ")
    }
    missing = sorted(declared - served)
    assert not missing, f"declared in semconv, served by no service: {missing}"
    moved = {
        "ingress": [semconv.METRIC_ACCEPTED, semconv.METRIC_REJECTED],
        "scheduler": [semconv.METRIC_SCHEDULED, semconv.METRIC_DECISIONS],
        "sender": [semconv.METRIC_ATTEMPTS, semconv.METRIC_SMTP_SESSIONS],
        "bounce": [semconv.METRIC_CLASSIFIED, semconv.METRIC_BOUNCE_MAILS],
        "reports": [semconv.METRIC_INGESTED, semconv.METRIC_SPANS_RECEIVED],
    }
    for service, names_moved in moved.items():
        values = _samples(scraped[service])
        for name in names_moved:
            total = sum(v for (n, _), v in values.items() if n in (name, f"{name}_total"))
            assert total > 0, f"{service} serves {name} but it never moved"
    ingress, bounce = _samples(scraped["ingress"]), _samples(scraped["bounce"])
    assert ingress[(semconv.METRIC_REJECTED, 'code="553",interface="smtp"')] >= 1
    assert bounce[(semconv.METRIC_CLASSIFIED, 'source="smtp_reply",status="2"')] >= 1


def _samples(text: str) -> dict[tuple[str, str], float]:
    """(name, labels) -> value of a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        found[(name, labels.rstrip("}"))] = float(value)
    return found


# ---------------------------------------------------------------------------- policy reload


@pytest.fixture
def reloading(tmp_path: Path, amqp_url: str) -> Iterator[Stack]:
    yield from running(tmp_path, amqp_url, POSTLINE_POLICY_RELOAD_INTERVAL="0.5")


def versions(stack: Stack) -> dict[str, str]:
    """Each service's policy version, from its /readyz."""
    found = {}
    for service in SERVICES:
        status, body = http_get(f"http://{stack.ports.health(service)}/readyz")
        assert status == 200, f"{service}: {body}"
        found[service] = next(w for w in body.split("\n") if w.startswith("policy ")).split()[1]
    return found


def replace_file(path: Path, text: str) -> None:
    """As an editor or a ConfigMap swap does: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_changed_policy_file_is_picked_up_by_every_service(reloading: Stack) -> None:
    policy = reloading.policy
    before = versions(reloading)
    assert len(set(before.values())) == 1
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(reloading, "someone@a.test", user="ops", secret="ops-secret")

    text = policy.read_text()
    marker = "    api_users:\n"
    assert marker in text
    ops = (
        f"{marker}      - name: ops\n"
        f'        secret: {{argon2: "{hash_secret("ops-secret")}"}}\n'
        "        allowed_ips: [127.0.0.0/8]\n"
    )
    replace_file(policy, text.replace(marker, ops, 1))

    def all_moved() -> dict[str, str] | None:
        now = versions(reloading)
        moved = len(set(now.values())) == 1 and not set(now.values()) & set(before.values())
        return now if moved else None

    after = poll_until(all_moved, "every service on the new policy version")
    send(reloading, "someone@a.test", user="ops", secret="ops-secret")  # no restart

    replace_file(policy, policy.read_text().replace("max_recipients:", "max_recipents:", 1))
    log = reloading.log_dir / "ingress.log"  # type: ignore[operator]
    poll_until(lambda: "max_recipents: unknown key" in log.read_text(), "the error logged")
    send(reloading, "someone@a.test", user="ops", secret="ops-secret")
    for service in SERVICES:  # each says the file on disk is not the policy in use
        url = f"http://{reloading.ports.health(service)}/readyz"
        poll_until(lambda url=url: "invalid" in http_get(url)[1], f"{service}'s /readyz")
    assert versions(reloading) == after, "the broken file is not used"

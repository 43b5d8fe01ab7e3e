"""Standard Webhooks signatures: what Postline signs, the specification's Python library
verifies, from the same secret string; secrets that are not the specification's form are
refused with the policy key named."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from postline.common.policy.secrets import EnvSecret, SecretError
from postline.common.webhooks import SignatureKey, new_secret
from postline.common.webhooks.signing import key_of
from postline.reports.webhooks.events import event_json, webhook_event
from postline.v1 import events_pb2, webhooks_pb2


def _signed(secret: str, body: bytes) -> dict[str, str]:
    key = SignatureKey(key_of(secret))
    return key.headers("msg_1", int(time.time()), body)


@pytest.mark.parametrize("prefixed", [True, False])
def test_the_library_verifies_what_postline_signs(prefixed: bool) -> None:
    secret = new_secret()
    given = secret if prefixed else secret.removeprefix("whsec_")
    body = json.dumps({"type": "postline.events", "data": {"events": []}}).encode()
    headers = _signed(given, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("plain text secret", "whsec_<base64>"),
        ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 24 to 64 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "this one to 65"),
    ],
)
def test_other_secrets_are_refused_naming_the_policy_key(secret: str, why: str) -> None:
    ref = EnvSecret("HOOK", environ={"HOOK": secret})
    ref.key = "servers.default.webhooks[0].secret"
    with pytest.raises(SecretError, match=r"servers\.default\.webhooks\[0\]\.secret: .*") as err:
        SignatureKey.resolve(ref)
    assert why in str(err.value)
    assert secret not in str(err.value)  # never the secret itself


def test_postline_webhooks_secret_prints_a_usable_secret() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "postline.common.cli", "webhooks", "secret"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out.startswith("whsec_") and len(key_of(out)) == 32


def test_events_that_make_no_webhook_event() -> None:
    smtp_reply = events_pb2.ErrorClassified(event_id="e", source=events_pb2.ERROR_SOURCE_SMTP_REPLY)
    removal = events_pb2.SuppressionChange(action=events_pb2.SUPPRESSION_ACTION_REMOVE)
    assert webhook_event(smtp_reply) is None
    assert webhook_event(removal) is None
    assert webhook_event(events_pb2.DeliveryEvent(event_id="e")) is None  # no status


def test_a_suppression_keeps_its_id_when_redelivered() -> None:
    change = events_pb2.SuppressionChange(
        server="default", address="a@b.test", action=events_pb2.SUPPRESSION_ACTION_ADD
    )
    change.at.FromSeconds(1_800_000_000)
    change.expires_at.FromSeconds(1_800_086_400)
    first, again = (
        webhook_event(change),
        webhook_event(events_pb2.SuppressionChange.FromString(change.SerializeToString())),
    )
    assert isinstance(first, webhooks_pb2.WebhookEvent) and isinstance(
        again, webhooks_pb2.WebhookEvent
    )
    assert first.event_id == again.event_id
    body = event_json(first)
    assert body["type"] == "suppressed" and body["expires_at"] == "2027-01-16T08:00:00.000Z"
    assert body["time"] == "2027-01-15T08:00:00.000Z" and body["reply"] is None

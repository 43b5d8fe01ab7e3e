"""Forwarding rules: a copy is a new delivery of the same message, a rewrite replaces the
recipient, and neither is forwarded again."""

from __future__ import annotations

from pathlib import Path

from postline.common.policy import load_policy
from postline.scheduler.forwarding import Copy, Rewrite, copy_id, forwarding_for
from postline.v1 import delivery_pb2

POLICY = """
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    forwarding:
      - {header: Subject, pattern: "^Order confirmation", action: copy, to: archive@example.test}
      - {header: To, pattern: "^old@", action: rewrite, to: New@Moved.example}
      - {header: To, pattern: "^archive@", action: copy, to: old@example.test}
"""


def _server(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    return load_policy(path).server("default")


def _delivery(recipient: str, subject: str = "") -> delivery_pb2.AcceptedDelivery:
    return delivery_pb2.AcceptedDelivery(
        delivery_id="d1",
        message_id="m1",
        server="default",
        recipient=recipient,
        recipient_domain=recipient.rsplit("@", 1)[1].lower(),
        headers=[delivery_pb2.Header(name="Subject", value=subject)] if subject else [],
    )


def test_copy_is_a_new_delivery_of_the_same_message(tmp_path: Path) -> None:
    original = _delivery("buyer@shop.example", "Order confirmation #1")
    found = forwarding_for(_server(tmp_path), original)
    assert isinstance(found, Copy)
    copy = found.copy
    assert copy.recipient == "archive@example.test"
    assert copy.recipient_domain == "example.test"
    assert copy.message_id == "m1" and copy.delivery_id == copy_id("d1", "archive@example.test")
    assert copy.delivery_id != "d1" and len(copy.delivery_id) == 32
    assert copy.forwarded_from == "d1"
    assert original.recipient == "buyer@shop.example"  # untouched


def test_rewrite_replaces_the_recipient(tmp_path: Path) -> None:
    found = forwarding_for(_server(tmp_path), _delivery("old@shop.example"))
    assert isinstance(found, Rewrite)
    rewritten = found.delivery
    assert rewritten.delivery_id == "d1"
    assert rewritten.recipient == "New@moved.example"  # the policy lowercases domains
    assert rewritten.recipient_domain == "moved.example"
    assert rewritten.original_recipient == "old@shop.example"


def test_a_forwarded_delivery_is_not_forwarded_again(tmp_path: Path) -> None:
    server = _server(tmp_path)
    found = forwarding_for(server, _delivery("buyer@shop.example", "Order confirmation #1"))
    assert isinstance(found, Copy)
    # The copy goes to archive@, which the third rule would copy to old@ (then rewritten...).
    assert forwarding_for(server, found.copy) is None
    assert forwarding_for(server, _delivery("someone@else.example", "Hello")) is None


def test_copy_ids_are_stable(tmp_path: Path) -> None:
    assert copy_id("d1", "A@x.example") == copy_id("d1", "a@x.example")
    assert copy_id("d1", "a@x.example") != copy_id("d2", "a@x.example")

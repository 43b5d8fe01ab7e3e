"""VERP return paths: an envelope sender that names the delivery it belongs to.

A sender delivers each delivery with the envelope sender ``bounce-<delivery id>@<domain>``,
where ``<domain>`` is the server's ``return_path_domain`` (received by the bounce service).
A bounce mail (DSN) goes to that address (RFC 5321 §4.5.5: to the reverse-path), so the bounce
service ties it to its delivery with :func:`decode_verp`, whatever the bounce's content says.

Choices:

* The local part is an RFC 5321 Dot-string (lowercase letters, digits, ``-``, ``_``), so it is
  never quoted and survives any MTA on the way back.
* Decoding ignores letter case: some MTAs change the case of a local part they relay, so a
  delivery id is encoded only if it has no upper-case letter (Postline's ids are lowercase hex).
* No signature (HMAC) is appended: delivery ids carry 80 random bits (:mod:`postline.common.ids`)
  so a valid address cannot be guessed, and the only party that sees one is the recipient of
  that delivery, whose own bounce it would be. A signature would add a shared secret between
  the senders and the bounce service for no protection beyond that.
* Decoding does not check the domain: which domains are return-path domains is the policy's
  business (``servers.<name>.return_path_domain``), not this module's.

This API is stable: the sender encodes, the bounce service decodes.
"""

from __future__ import annotations

import re

from postline.common.addresses import AddressError, parse_address

__all__ = ["VERP_PREFIX", "VerpError", "decode_verp", "encode_verp"]

VERP_PREFIX = "bounce-"

# What a delivery id may be to travel in a local part and come back whatever its case.
_ID = re.compile(r"[0-9a-z_-]{1,64}")
_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*")


class VerpError(ValueError):
    """A delivery id or domain that cannot make a VERP address."""


def encode_verp(delivery_id: str, domain: str) -> str:
    """The return path for ``delivery_id``: ``bounce-<delivery_id>@<domain>`` (domain lowered)."""
    if _ID.fullmatch(delivery_id) is None:
        raise VerpError(
            f"delivery id {delivery_id!r} cannot be encoded: 1 to 64 of 0-9 a-z _ - expected"
        )
    if _DOMAIN.fullmatch(domain) is None:
        raise VerpError(f"{domain!r} is not a return-path domain")
    return f"{VERP_PREFIX}{delivery_id}@{domain.lower()}"


def decode_verp(address: str) -> str | None:
    """The delivery id a VERP address encodes, or None if ``address`` is not one.

    Accepts ``local@domain`` or an SMTP path ``<local@domain>``, in any letter case, with the
    local part quoted or not.
    """
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    try:
        parsed = parse_address(text)
    except AddressError:
        return None
    local = parsed.local.lower()
    if not local.startswith(VERP_PREFIX):
        return None
    delivery_id = local[len(VERP_PREFIX) :]
    return delivery_id if _ID.fullmatch(delivery_id) else None

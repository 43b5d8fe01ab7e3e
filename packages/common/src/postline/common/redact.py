"""Secrets out of what is logged or printed: URLs and DSNs without their passwords.

A RabbitMQ URL (``amqp://user:password@host/vhost``) or a ClickHouse DSN
(``http://user:password@host:8123``) names its password; every place that logs or prints one
passes it through :func:`redact_url` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "******"


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query value) replaced by a mask."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK  # not a URL we can read: show nothing of it
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.split(":", 1)[0]
        netloc = f"{name}:{MASK}@{host}"
    query = "&".join(
        f"{key}={MASK}" if key.lower() in ("password", "pass", "secret") else item
        for item in parts.query.split("&")
        if item
        for key in [item.partition("=")[0]]
    )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret (and urlunsplit would drop an empty ``//``)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

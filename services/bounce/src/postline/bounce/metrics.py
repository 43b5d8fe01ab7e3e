"""The bounce service's Prometheus metrics (names in ``postline.common.semconv``)."""

from __future__ import annotations

from prometheus_client import Counter

from postline.common.semconv import METRIC_BOUNCE_MAILS, METRIC_CLASSIFIED

# Where a classified failure came from.
SMTP_REPLY = "smtp_reply"
BOUNCE_MAIL = "bounce_mail"

CLASSIFIED = Counter(
    METRIC_CLASSIFIED,
    "failures classified, by error status (1..10, 99) and source (smtp_reply, bounce_mail)",
    ["status", "source"],
)
BOUNCE_MAILS = Counter(
    METRIC_BOUNCE_MAILS,
    "mails received on the return-path domains, by what they were: bounce (failed or delayed "
    "recipients), complaint (a feedback report), other (no failure in it: an auto-reply...)",
    ["kind"],
)

"""Submitting a message: the builder lives in ``postline.common.submission`` (the reports
service sends its weekly summaries through it too); the relay and the send API use it here."""

from postline.common.submission import (
    QUEUED_LINGER,
    Accepted,
    Submission,
    prepare_content,
    publish_deliveries,
    publish_queued,
    submit,
)

__all__ = [
    "QUEUED_LINGER",
    "Accepted",
    "Submission",
    "prepare_content",
    "publish_deliveries",
    "publish_queued",
    "submit",
]

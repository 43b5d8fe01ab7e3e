"""SMTP reply -> error status, by the rules in ``rules/smtp_replies.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Classification:
    status: int  # 1..10, 99 (see the design's table)
    permanent: bool


@dataclass(frozen=True)
class TextRule:
    status: int
    pattern: re.Pattern[str]
    sample: str


@dataclass(frozen=True)
class ReplyRules:
    text: tuple[TextRule, ...]
    enhanced: dict[str, int]
    code: dict[str, int]

    def classify(self, code: int, enhanced_status: str, text: str) -> Classification:
        permanent = code >= 500 or enhanced_status.startswith("5.")
        for rule in self.text:
            if rule.pattern.search(text):
                return Classification(rule.status, permanent)
        if enhanced_status:
            # The class digit says temporary/permanent; the subject.detail says what.
            detail = "5." + enhanced_status.split(".", 1)[1] if "." in enhanced_status else ""
            for key in (detail, detail.rsplit(".", 1)[0]):
                if key in self.enhanced:
                    return Classification(self.enhanced[key], permanent)
        return Classification(self.code.get(str(code)[:1], 99), permanent)


@cache
def reply_rules() -> ReplyRules:
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("smtp_replies.yaml").read_text("utf-8")
    )
    return ReplyRules(
        text=tuple(
            TextRule(r["status"], re.compile(r["pattern"], re.IGNORECASE), r["sample"])
            for r in raw["text"]
        ),
        enhanced={str(k): int(v) for k, v in raw["enhanced"].items()},
        code={str(k): int(v) for k, v in raw["code"].items()},
    )


def classify_reply(code: int, enhanced_status: str, text: str) -> Classification:
    return reply_rules().classify(code, enhanced_status, text)

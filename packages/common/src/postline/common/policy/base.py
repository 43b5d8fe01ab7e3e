"""What every policy model shares: strictness, and errors that point at a key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

Loc = tuple[str | int, ...]


class PolicyModel(BaseModel):
    """Unknown keys are errors (a misspelt key must not be silently ignored) and a loaded
    policy is frozen: handlers share it and a reload replaces it whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyIssues(ValueError):
    """Errors found by a cross-field check, each at its own key (``loc`` relative to the model
    that raised it). The loader turns each into its own ``file:line: key: message``."""

    def __init__(self, issues: list[tuple[Loc, str]]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{dotted(loc) or '(root)'}: {msg}" for loc, msg in issues))


def raise_issues(issues: list[tuple[Loc, str]]) -> None:
    if issues:
        raise PolicyIssues(issues)


def dotted(loc: Iterable[str | int]) -> str:
    """``("servers", "default", "speed", 1)`` -> ``servers.default.speed[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def find_duplicates(
    issues: list[tuple[Loc, str]], items: Iterable[tuple[Loc, Any]], why: str = ""
) -> None:
    """Add an issue for every value already seen, at the later occurrence."""
    seen: dict[Any, Loc] = {}
    for loc, value in items:
        if value in seen:
            suffix = f": {why}" if why else ""
            issues.append((loc, f"duplicate {value!r} (also at {dotted(seen[value])}){suffix}"))
        else:
            seen[value] = loc

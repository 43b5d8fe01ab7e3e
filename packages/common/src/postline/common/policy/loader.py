"""Reading postline.yaml: YAML with line numbers, validation, errors a user can act on.

Every problem becomes one line ``<file>:<line>: <dotted.key>: <message>``, e.g.
``postline.yaml:42: servers.default.speed[1].connections: Input should be a valid integer``,
and all the problems pydantic finds are reported together (cross-field checks run once every
key is individually valid).
"""

from __future__ import annotations

import difflib
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from postline.common.policy.model import Loc, Policy, PolicyIssues, dotted

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = 1
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class ErrorLine:
    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(Exception):
    """The policy file is unusable; ``errors`` holds one entry per problem and ``str()`` is
    one line per problem."""

    def __init__(self, errors: list[ErrorLine]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises :class:`PolicyError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PolicyError(
            [ErrorLine(source, None, "", f"cannot read policy file: {reason}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([ErrorLine(source, None, "", f"not UTF-8: {exc.reason}")]) from None
    policy = parse_policy(text, source)
    logger.info(
        "%s loaded: %s servers, %s api users", source, len(policy.servers), policy.api_user_count
    )
    return policy


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate policy YAML text; ``source`` names it in errors. Raises :class:`PolicyError`."""
    data, lines = _parse_yaml(text, source)
    if not isinstance(data, Mapping):
        raise PolicyError(
            [ErrorLine(source, 1, "", "the policy file must be a mapping (version, servers, ...)")]
        )
    version = data.get("version")
    if "version" in data and (version != SUPPORTED_VERSION or isinstance(version, bool)):
        # Another version may have another shape: reporting its keys would be noise.
        raise PolicyError(
            [
                ErrorLine(
                    source,
                    lines.get(("version",)),
                    "version",
                    f"unsupported policy version {version!r}: this Postline reads version "
                    f"{SUPPORTED_VERSION}",
                )
            ]
        )
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_error_lines(exc, source, lines)) from None


# --- YAML -------------------------------------------------------------------------------------


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader; a subclass so nothing we change leaks into yaml.SafeLoader."""


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([ErrorLine(source, 1, "", "the policy file is empty")])
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        duplicates: list[ErrorLine] = []
        # Walk before constructing: construction flattens merge keys ("<<") in place.
        _record_lines(node, (), lines, duplicates, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            started = exc.context_mark
            where = f" (line {started.line + 1})" if started and started != mark else ""
            message = f"{exc.problem}, {exc.context}{where}"
        raise PolicyError([ErrorLine(source, line, "", f"YAML syntax error: {message}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([ErrorLine(source, None, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if duplicates:
        # PyYAML keeps the last of duplicate keys silently; a user almost never means that.
        raise PolicyError(duplicates)
    return data, lines


def _record_lines(
    node: Node,
    path: Loc,
    lines: dict[Loc, int],
    duplicates: list[ErrorLine],
    source: str,
    active: set[int],
) -> None:
    """Map each key path to the line of its key (mapping) or item (sequence)."""
    if id(node) in active:  # a recursive alias; construction will reject or handle it
        return
    active.add(id(node))
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(
                    ErrorLine(
                        source,
                        line,
                        dotted((*path, key)),
                        f"duplicate key (first on line {seen[key]})",
                    )
                )
            seen.setdefault(key, line)
            lines.setdefault((*path, key), line)
            _record_lines(value_node, (*path, key), lines, duplicates, source, active)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault((*path, i), item.start_mark.line + 1)
            _record_lines(item, (*path, i), lines, duplicates, source, active)
    active.discard(id(node))


# --- validation errors ------------------------------------------------------------------------


def _error_lines(exc: ValidationError, source: str, lines: dict[Loc, int]) -> list[ErrorLine]:
    out: list[ErrorLine] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, PolicyIssues):
            for sub_loc, message in cause.issues:
                out.append(_line(source, lines, (*loc, *sub_loc), message))
            continue
        if error["type"] == "value_error" and cause is not None:
            message = str(cause)
        elif error["type"] == "extra_forbidden":
            message = _unknown_key(loc)
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"]
        out.append(_line(source, lines, loc, message))
    out.sort(key=lambda e: e.line or 0)
    return out


def _line(source: str, lines: dict[Loc, int], loc: Loc, message: str) -> ErrorLine:
    if loc and loc[-1] == "[key]":  # pydantic's marker for a bad dict key
        loc = loc[:-1]
        message = f"invalid key: {message}"
    return ErrorLine(source, _find_line(lines, loc), dotted(loc), message)


def _find_line(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest ancestor in the file (a missing key is reported
    on its parent's line)."""
    found: Loc = ()
    for part in loc:
        for candidate in ((*found, part), (*found, str(part))):
            if candidate in lines:
                found = candidate
                break
        else:
            break
    return lines.get(found)


def _unknown_key(loc: Loc) -> str:
    allowed = _allowed_keys(loc[:-1])
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, allowed, n=1) if allowed else []
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    if allowed:
        return f"unknown key (expected one of: {', '.join(allowed)})"
    return "unknown key"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model at ``loc`` accepts, found by following field annotations."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
            continue
        origin, args = typing.get_origin(current), typing.get_args(current)
        if origin is tuple and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation

"""The policy as it is now: the file watched, a changed file validated before it is used.

Kubernetes updates a mounted ConfigMap by swapping a symlink in the volume's directory
(``..data`` points at a new timestamped directory); the path the service was given and the
link's own mtime stay the same. So the file's *content* is read every ``interval`` seconds
(a policy file is a few kilobytes) and its digest compared: a swap, an in-place write or a
rename over the file all show. A changed file is parsed and validated in full first. Valid:
it becomes the policy every handler reads from then on. Invalid: every problem is logged, the
policy in use stays, and the file is looked at again only once its content changes again.

The active version (the first 12 hex digits of the content's SHA-256) is a metric,
``postline_policy_info{version}``, and part of each service's ``/readyz`` answer.

Handlers take a ``PolicySource`` (``LivePolicy`` in services; a plain ``Policy`` is a fixed
source of itself in tests and one-off commands) and call it each time they need the policy,
never keeping the object they saw at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from postline.common.policy.loader import ErrorLine, PolicyError, parse_policy
from postline.common.policy.model import Policy
from postline.common.semconv import (
    METRIC_POLICY_FILE_VALID,
    METRIC_POLICY_INFO,
    METRIC_POLICY_RELOADS,
)

logger = logging.getLogger(__name__)

PolicySource = Callable[[], Policy]

DEFAULT_INTERVAL = 5.0

POLICY_INFO = Gauge(
    METRIC_POLICY_INFO, "the policy version in use (1 for the active one)", ["version"]
)
POLICY_RELOADS = Counter(
    METRIC_POLICY_RELOADS, "changes of the policy file seen, by outcome", ["outcome"]
)
POLICY_FILE_VALID = Gauge(
    METRIC_POLICY_FILE_VALID, "0 while the policy file holds a change that failed validation"
)


def version_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]


def read_policy(path: Path) -> tuple[Policy, str]:
    """The policy in ``path`` and its version; raises :class:`PolicyError`."""
    content = _read(path)
    return _parse(content, path), version_of(content)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PolicyError(
            [ErrorLine(str(path), None, "", f"cannot read policy file: {reason}")]
        ) from None


def _parse(content: bytes, path: Path) -> Policy:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([ErrorLine(str(path), None, "", f"not UTF-8: {exc.reason}")]) from None
    return parse_policy(text, str(path))


class LivePolicy:
    """The policy file's valid content as of the last look; call it for the policy."""

    def __init__(self, path: str | Path, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.path = Path(path)
        self.interval = interval
        self._content = _read(self.path)
        self._policy = _parse(self._content, self.path)  # at start an invalid file is fatal
        self.version = version_of(self._content)
        self.error: str | None = None  # the problems of the file on disk, when it is invalid
        self._rejected: bytes | None = None
        self._listeners: list[Callable[[Policy], None]] = []
        self._task: asyncio.Task[None] | None = None
        POLICY_INFO.clear()
        POLICY_INFO.labels(self.version).set(1)
        POLICY_FILE_VALID.set(1)
        logger.info(
            "%s policy %s: %d servers, %d api users",
            self.path,
            self.version,
            len(self._policy.servers),
            self._policy.api_user_count,
        )

    def __call__(self) -> Policy:
        return self._policy

    @property
    def status(self) -> str:
        """One line for ``/readyz``: the version in use, and a rejected change if any."""
        if self.error is None:
            return f"policy {self.version}"
        return f"policy {self.version} (the file's newer content is invalid, kept this one)"

    def on_change(self, listener: Callable[[Policy], None]) -> None:
        """Call ``listener(policy)`` after each change was applied (on the event loop)."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """Look at the file once: True when a new valid policy was applied."""
        found = self._look()
        if found is not None:
            self._apply(*found)
        return found is not None

    def _reject(self, content: bytes | None, error: str) -> None:
        if self._rejected == content and self.error == error:
            return
        self._rejected = content
        self.error = error
        POLICY_RELOADS.labels("invalid").inc()
        POLICY_FILE_VALID.set(0)
        logger.error(
            "%s changed but is not valid; policy %s stays in use:\n%s",
            self.path,
            self.version,
            error,
        )

    def _apply(self, policy: Policy, content: bytes) -> None:
        previous = self.version
        self._policy = policy
        self._content = content
        self._rejected = None
        self.error = None
        self.version = version_of(content)
        POLICY_INFO.clear()
        POLICY_INFO.labels(self.version).set(1)
        POLICY_FILE_VALID.set(1)
        POLICY_RELOADS.labels("applied").inc()
        logger.info(
            "%s policy %s replaces %s: %d servers, %d api users",
            self.path,
            self.version,
            previous,
            len(policy.servers),
            policy.api_user_count,
        )
        for listener in self._listeners:
            try:
                listener(policy)
            except Exception:
                logger.exception("%s: a policy listener failed", self.path)

    def start(self) -> None:
        """Watch the file from now on (until ``stop()``); an interval of 0 never looks."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # Reading and validating take a few milliseconds: off the event loop. Only the
                # swap (and the listeners) run on it.
                found = await asyncio.to_thread(self._look)
                if found is not None:
                    self._apply(*found)
            except Exception:
                logger.exception("%s: looking at the policy file failed", self.path)

    def _look(self) -> tuple[Policy, bytes] | None:
        """A new valid policy, or None (unchanged, or rejected and logged)."""
        try:
            content = _read(self.path)
        except PolicyError as exc:
            # Mid-swap, or the volume is going away: keep what we have, say so once.
            self._reject(None, str(exc))
            return None
        if content == self._content:
            if self.error is not None:
                logger.info("%s is policy %s again", self.path, self.version)
                self._rejected = None
                self.error = None
                POLICY_FILE_VALID.set(1)
            return None
        if content == self._rejected:
            return None
        try:
            return _parse(content, self.path), content
        except PolicyError as exc:
            self._reject(content, str(exc))
            return None

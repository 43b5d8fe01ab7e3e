"""Secrets in postline.yaml: never plain text.

- ``{argon2: "<hash>"}`` for credentials Postline *checks* (API users, console passwords): the
  file holds only the hash, and :meth:`Argon2Hash.verify` compares a presented secret.
- ``{env: NAME}`` or ``{file: /path}`` for secrets Postline *uses* (DKIM keys, TOTP seeds).
  They are resolved lazily, when used, so a policy file can be checked on a machine that does
  not hold the secrets, and a rotated file is read again. Resolution errors name the policy key
  the reference came from.

Reading the environment here is the one exception to "only settings read ``os.environ``": the
policy file, not Postline's code, names the variable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

logger = logging.getLogger(__name__)

PLAIN_TEXT_ERROR = "secrets are never plain text"
_HASH_HINT = 'write {argon2: "<hash>"}; make the hash with `postline policy hash`'
_REF_HINT = "write {env: NAME} or {file: /path}"

# argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile); verification reads the
# parameters from the hash itself, so hashes made with other parameters still verify.
_hasher = PasswordHasher()


class SecretError(Exception):
    """A secret reference could not be resolved (unset variable, unreadable file)."""


def hash_secret(secret: str) -> str:
    """An argon2id hash of ``secret`` for the policy file."""
    return _hasher.hash(secret)


class Argon2Hash:
    """``{argon2: "<hash>"}``: a credential Postline checks but never stores."""

    __slots__ = ("hash",)

    def __init__(self, hash: str) -> None:
        self.hash = hash

    def verify(self, secret: str) -> bool:
        """True when ``secret`` matches. Costs tens of milliseconds by design: call it off the
        event loop. A malformed hash (e.g. the example file's ``...`` placeholder) never
        matches."""
        try:
            return _hasher.verify(self.hash, secret)
        except VerificationError:
            return False
        except InvalidHashError:
            logger.warning("argon2 hash %.20s... is malformed; verification fails", self.hash)
            return False

    def __repr__(self) -> str:
        return "Argon2Hash(...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Argon2Hash) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)


class SecretRef:
    """A secret Postline uses, resolved when needed. ``key`` is the dotted policy path it was
    loaded from (set by the policy model), so errors say which setting is broken."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key = ""

    def resolve(self) -> str:
        """The secret as text (surrounding whitespace and the final newline stripped)."""
        return self.resolve_bytes().decode().strip()

    def resolve_bytes(self) -> bytes:
        raise NotImplementedError

    def _error(self, reason: str) -> SecretError:
        where = f"{self.key}: " if self.key else ""
        return SecretError(f"{where}cannot resolve secret {self.describe()}: {reason}")

    def describe(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> dict[str, str]:
        """The reference as written in the file, e.g. ``{"env": "NAME"}``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class EnvSecret(SecretRef):
    """``{env: NAME}``: the value of an environment variable."""

    __slots__ = ("environ", "name")

    def __init__(self, name: str, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.name = name
        # Injected by tests; None means the process environment at resolution time.
        self.environ = environ

    def resolve_bytes(self) -> bytes:
        environ = os.environ if self.environ is None else self.environ
        value = environ.get(self.name)
        if value is None:
            raise self._error(f"environment variable {self.name} is not set")
        if not value:
            raise self._error(f"environment variable {self.name} is empty")
        return value.encode()

    def describe(self) -> str:
        return f"{{env: {self.name}}}"

    def as_dict(self) -> dict[str, str]:
        return {"env": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSecret) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("env", self.name))


class FileSecret(SecretRef):
    """``{file: /path}``: the content of a file (a mounted Kubernetes Secret, typically)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def resolve_bytes(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise self._error(exc.strerror or str(exc)) from exc
        if not data.strip():
            raise self._error(f"{self.path} is empty")
        return data

    def describe(self) -> str:
        return f"{{file: {self.path}}}"

    def as_dict(self) -> dict[str, str]:
        return {"file": str(self.path)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileSecret) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("file", self.path))


def _single_key(value: object, hint: str) -> tuple[str, Any]:
    if isinstance(value, str):
        raise ValueError(f"{PLAIN_TEXT_ERROR}: {hint}")
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"expected a secret with one key: {hint}")
    ((kind, content),) = value.items()
    return str(kind), content


def parse_argon2(value: object) -> Argon2Hash:
    """Validate ``{argon2: "<hash>"}``. Only the ``$argon2`` prefix is checked, so the example
    file with its truncated placeholder hashes loads; such a hash just never verifies."""
    if isinstance(value, Argon2Hash):
        return value
    kind, content = _single_key(value, _HASH_HINT)
    if kind in ("env", "file"):
        raise ValueError(
            f"a credential Postline checks is stored as a hash, not {{{kind}: ...}}: {_HASH_HINT}"
        )
    if kind != "argon2":
        raise ValueError(f"unknown secret kind {kind!r}: {_HASH_HINT}")
    if not isinstance(content, str) or not content.startswith("$argon2"):
        raise ValueError(f'not an argon2 hash (it starts with "$argon2"): {_HASH_HINT}')
    return Argon2Hash(content)


def parse_secret_ref(value: object) -> SecretRef:
    """Validate ``{env: NAME}`` or ``{file: /path}`` (nothing is read yet)."""
    if isinstance(value, SecretRef):
        return value
    kind, content = _single_key(value, _REF_HINT)
    if kind == "argon2":
        raise ValueError(f"Postline needs this secret itself, so it cannot be a hash: {_REF_HINT}")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"{{{kind}: ...}} needs a non-empty string: {_REF_HINT}")
    if kind == "env":
        return EnvSecret(content)
    if kind == "file":
        path = Path(content)
        if not path.is_absolute():
            raise ValueError(f"secret file path {content!r} must be absolute")
        return FileSecret(path)
    raise ValueError(f"unknown secret kind {kind!r}: {_REF_HINT}")

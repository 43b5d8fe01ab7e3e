"""Value types of the policy file and their pydantic field types.

Each ``Annotated`` alias parses the text users write (``10MiB``, ``127.0.0.0/8``,
``*.example.com``, ``21:00-08:00``) and serializes back to the same spelling. Parsers raise
``ValueError`` with a message for the user; the loader shows it next to the key and line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainSerializer, PlainValidator

from postline.common.policy.secrets import (
    Argon2Hash,
    SecretRef,
    parse_argon2,
    parse_secret_ref,
)
from postline.common.policy.units import (
    Rate,
    format_duration,
    parse_duration,
    parse_rate,
    parse_size,
)

IPNetworkValue = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddressValue = ipaddress.IPv4Address | ipaddress.IPv6Address

# Domain labels as Postline's address rules allow them (DESIGN.md "Addresses"): alphanumerics,
# "-" and "_", starting alphanumeric.
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


def _duration(value: object) -> timedelta:
    result = parse_duration(value)
    if result < timedelta(0):
        raise ValueError(f"invalid duration {value!r}: cannot be negative")
    return result


def _network(value: object) -> IPNetworkValue:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid IP network {value!r}: expected e.g. 10.0.0.0/8 or ::1/128")
    try:
        # strict=False: "10.1.2.3/8" means the /8 it belongs to, as in most firewall syntaxes.
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"invalid IP network {value!r}: expected e.g. 10.0.0.0/8 or ::1/128"
        ) from None


def _address(value: object) -> IPAddressValue:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def parse_domain(value: object) -> str:
    """A domain name, lower-cased, without a trailing dot."""
    value = _int_as_text(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid domain {value!r}")
    name = value.strip().lower().removesuffix(".")
    labels = name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"invalid domain {value!r}")
    return name


def _int_as_text(value: object) -> object:
    # YAML reads `selector: 20240101` or a server called `2024` as an integer.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _name(value: object) -> str:
    value = _int_as_text(value)
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"invalid name {value!r}: use letters, digits, '.', '_' and '-' (at most 64)"
        )
    return value


def _user_name(value: object) -> str:
    value = _int_as_text(value)
    # No ":" (Bearer "<user>:<secret>" and HTTP Basic split on it) and no white space.
    if not isinstance(value, str) or not _USER_NAME.fullmatch(value):
        raise ValueError(
            f"invalid api user name {value!r}: use letters, digits, '.', '_', '@', '+' and '-'"
        )
    return value


def _email(value: object) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise ValueError(f"invalid email address {value!r}")
    local, _, domain = value.strip().rpartition("@")
    if not local or any(c.isspace() for c in local):
        raise ValueError(f"invalid email address {value!r}")
    try:
        return f"{local}@{parse_domain(domain)}"
    except ValueError:
        raise ValueError(f"invalid email address {value!r}") from None


def _zone(value: object) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid timezone {value!r}: expected an IANA name like Asia/Tokyo")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r}: expected an IANA name like Asia/Tokyo or UTC"
        ) from None


@dataclass(frozen=True, slots=True)
class DomainPattern:
    """``*`` (every domain), ``*.example.com`` (every subdomain, not example.com itself) or an
    exact name. Matching is case-insensitive and ignores a trailing dot."""

    pattern: str

    @classmethod
    def parse(cls, value: object) -> DomainPattern:
        if isinstance(value, DomainPattern):
            return value
        if not isinstance(value, str):
            raise ValueError(f"invalid domain pattern {value!r}")
        text = value.strip().lower()
        if text == "*":
            return cls("*")
        bare = text.removeprefix("*.")
        try:
            parse_domain(bare)
        except ValueError:
            raise ValueError(
                f"invalid domain pattern {value!r}: expected *, *.example.com or example.com"
            ) from None
        return cls(text.removesuffix("."))

    def matches(self, name: str) -> bool:
        name = name.lower().removesuffix(".")
        if self.pattern == "*":
            return True
        if self.pattern.startswith("*."):
            return name.endswith(self.pattern[1:])
        return name == self.pattern

    def __str__(self) -> str:
        return self.pattern


@dataclass(frozen=True, slots=True)
class Destination:
    """A route's ``to``: ``host:port``, ``[v6]:port`` or ``host`` (port 25)."""

    host: str
    port: int = 25

    @classmethod
    def parse(cls, value: object) -> Destination:
        if isinstance(value, Destination):
            return value
        hint = "expected host:port, e.g. 127.0.0.1:2600 or [::1]:2600"
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"invalid destination {value!r}: {hint}")
        text = value.strip()
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s]+)(?::(\d+))?", text)
        if not match:
            raise ValueError(f"invalid destination {value!r}: {hint}")
        host = match.group(1) or match.group(3)
        port_text = match.group(2) or match.group(4)
        port = int(port_text) if port_text else 25
        if not 1 <= port <= 65535:
            raise ValueError(f"invalid destination {value!r}: port {port} out of range")
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            if match.group(1):
                raise ValueError(f"invalid destination {value!r}: {hint}") from None
            try:
                host = parse_domain(host)
            except ValueError:
                raise ValueError(f"invalid destination {value!r}: {hint}") from None
        return cls(host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``"HH:MM-HH:MM"`` in minutes since midnight; ``end <= start`` crosses midnight, and
    ``24:00`` is accepted as an end."""

    start: int
    end: int

    @classmethod
    def parse(cls, value: object) -> TimeWindow:
        if isinstance(value, TimeWindow):
            return value
        hint = 'expected "HH:MM-HH:MM", e.g. "21:00-08:00"'
        match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", str(value).strip())
        if not isinstance(value, str) or not match:
            raise ValueError(f"invalid time window {value!r}: {hint}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"invalid time window {value!r}: {hint}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(
                f"invalid time window {value!r}: start and end are equal; "
                'write "00:00-24:00" for a whole day'
            )
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def length(self) -> timedelta:
        end = self.end + 1440 if self.crosses_midnight else self.end
        return timedelta(minutes=end - self.start)

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def _time_of_day(value: object) -> time:
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip()) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f'invalid time of day {value!r}: expected "HH:MM", e.g. "09:00"')
    return time(int(match[1]), int(match[2]))


def _url(value: object) -> str:
    """An absolute http(s) URL with a host: where Postline POSTs webhooks."""
    if not isinstance(value, str):
        raise ValueError(f"invalid URL {value!r}: expected http:// or https://")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {value!r}: expected http:// or https:// with a host")
    return value.strip()


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """0 for Monday, as ``date.weekday()``."""
        return list(Weekday).index(self)


def _index(day: Weekday) -> int:
    return day.number


def _version(value: object) -> Literal[1]:
    if value != 1 or isinstance(value, bool):
        raise ValueError(f"unsupported policy version {value!r}: this Postline reads version 1")
    return 1


Duration = Annotated[timedelta, PlainValidator(_duration), PlainSerializer(format_duration)]
RateValue = Annotated[Rate, PlainValidator(parse_rate), PlainSerializer(str)]
Size = Annotated[int, PlainValidator(parse_size)]
IPNetwork = Annotated[IPNetworkValue, PlainValidator(_network), PlainSerializer(str)]
IPAddress = Annotated[IPAddressValue, PlainValidator(_address), PlainSerializer(str)]
Domain = Annotated[str, PlainValidator(parse_domain)]
Name = Annotated[str, PlainValidator(_name)]
Email = Annotated[str, PlainValidator(_email)]
UserName = Annotated[str, PlainValidator(_user_name)]
TimeZone = Annotated[ZoneInfo, PlainValidator(_zone), PlainSerializer(lambda z: z.key)]
DomainPatternField = Annotated[
    DomainPattern, PlainValidator(DomainPattern.parse), PlainSerializer(str)
]
DestinationField = Annotated[Destination, PlainValidator(Destination.parse), PlainSerializer(str)]
TimeWindowField = Annotated[TimeWindow, PlainValidator(TimeWindow.parse), PlainSerializer(str)]
TimeOfDay = Annotated[
    time, PlainValidator(_time_of_day), PlainSerializer(lambda t: t.strftime("%H:%M"))
]
Url = Annotated[str, PlainValidator(_url)]
Argon2Field = Annotated[
    Argon2Hash,
    PlainValidator(parse_argon2),
    PlainSerializer(lambda h: {"argon2": h.hash}),
]
SecretRefField = Annotated[
    SecretRef,
    PlainValidator(parse_secret_ref),
    PlainSerializer(lambda r: r.as_dict()),
]
Weekdays = Annotated[
    frozenset[Weekday], PlainSerializer(lambda days: [d.value for d in sorted(days, key=_index)])
]
Version = Annotated[Literal[1], PlainValidator(_version)]

ANY_NETWORK: tuple[IPNetworkValue, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)


def in_networks(ip: str | IPAddressValue, networks: tuple[IPNetworkValue, ...]) -> bool:
    """Whether ``ip`` (an IPv4-mapped IPv6 address counts as IPv4) is in any network."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)

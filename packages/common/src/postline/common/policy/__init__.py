"""The policy file, postline.yaml: model, loader, filters, secrets.

policy = load_policy(settings.policy)          # PolicyError lists every problem
live = LivePolicy(settings.policy)             # the same, reloaded when the file changes:
live()                                         # the policy as it is now
found = policy.find_api_user("dev")           # (server name, ApiUser) | None
server = policy.server("default")
server.speed_for("docomo.ne.jp")              # SpeedLimit
server.priority_for(headers, recipient)        # PriorityLevel
"""

from postline.common.policy.console import Console, ConsoleAccount, ConsoleRole, Language
from postline.common.policy.fields import Destination, DomainPattern, TimeWindow, Weekday
from postline.common.policy.filters import Filter, first_match, normalize_headers
from postline.common.policy.loader import ErrorLine, PolicyError, load_policy, parse_policy
from postline.common.policy.model import (
    ApiUser,
    ApiUserMatch,
    Blocking,
    DkimAlgorithm,
    DkimKey,
    ForwardAction,
    ForwardingRule,
    Policy,
    PriorityLevel,
    PriorityRule,
    Relay,
    Retry,
    RetryProfile,
    RetrySchedule,
    Route,
    Server,
    TlsMode,
)
from postline.common.policy.prohibited_hours import ProhibitedHours
from postline.common.policy.reload import LivePolicy, PolicySource
from postline.common.policy.secrets import (
    Argon2Hash,
    EnvSecret,
    FileSecret,
    SecretError,
    SecretRef,
    hash_secret,
)
from postline.common.policy.speed import BUILTIN_SPEED, SpeedLimit, SpeedRule
from postline.common.policy.units import Rate, parse_duration, parse_rate, parse_size

__all__ = [
    "BUILTIN_SPEED",
    "ApiUser",
    "ApiUserMatch",
    "Argon2Hash",
    "Blocking",
    "Console",
    "ConsoleAccount",
    "ConsoleRole",
    "Destination",
    "DkimAlgorithm",
    "DkimKey",
    "DomainPattern",
    "EnvSecret",
    "ErrorLine",
    "FileSecret",
    "Filter",
    "ForwardAction",
    "ForwardingRule",
    "Language",
    "LivePolicy",
    "Policy",
    "PolicyError",
    "PolicySource",
    "PriorityLevel",
    "PriorityRule",
    "ProhibitedHours",
    "Rate",
    "Relay",
    "Retry",
    "RetryProfile",
    "RetrySchedule",
    "Route",
    "SecretError",
    "SecretRef",
    "Server",
    "SpeedLimit",
    "SpeedRule",
    "TimeWindow",
    "TlsMode",
    "Weekday",
    "first_match",
    "hash_secret",
    "load_policy",
    "normalize_headers",
    "parse_duration",
    "parse_policy",
    "parse_rate",
    "parse_size",
]

"""One rule for a delivery's TLS mode, read by the scheduler (routes) and the sender."""

from __future__ import annotations

from postline.common.policy import TlsMode
from postline.common.tls_modes import (
    NONE,
    OPPORTUNISTIC,
    REQUIRED,
    TLS_MODES,
    route_tls,
    tls_mode_name,
)
from postline.scheduler import decisions
from postline.v1 import delivery_pb2
from tests.sender_support import sender_policy

ROUTES = """
routes:
  - {match: [plain.test], to: "relay.test:2525", tls: none}
  - {match: [strict.test], to: "relay.test:2525", tls: required}
  - {match: [default.test], to: "relay.test:2525"}
"""


def test_every_policy_mode_has_its_contract_value_and_back() -> None:
    assert set(TLS_MODES) == set(TlsMode)
    for mode, value in TLS_MODES.items():
        assert tls_mode_name(value) == mode.value
    assert tls_mode_name(delivery_pb2.TLS_MODE_UNSPECIFIED) == "opportunistic"


def test_routes_give_their_mode_and_no_route_is_opportunistic() -> None:
    server = sender_policy(ROUTES).server("default")
    assert route_tls(server.route_for("plain.test")) == NONE
    assert route_tls(server.route_for("strict.test")) == REQUIRED
    assert route_tls(server.route_for("default.test")) == OPPORTUNISTIC
    assert route_tls(None) == OPPORTUNISTIC
    # The scheduler's route decision carries the same values onto the task.
    assert decisions.route_for(server, "plain.test").tls == NONE
    assert decisions.route_for(server, "strict.test").tls == REQUIRED
    assert decisions.route_for(server, "elsewhere.test").tls == OPPORTUNISTIC

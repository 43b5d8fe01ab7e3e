"""Schemathesis against the reports API's served OpenAPI document: generated requests (every
parameter of every endpoint, valid and not) never get a 5xx, and every answer matches the
documented status codes, content types and shapes.

The app runs in-process on a real ClickHouse (chdb) with a few rows, authenticated as an API
user from 127.0.0.1; the suppression endpoints have no bounce service behind them here, so
they may answer their documented 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from postline.common.clickhouse import apply_migrations, connect
from postline.common.policy import hash_secret, parse_policy
from postline.common.throttle import AuthThrottle
from postline.reports.http import create_app
from postline.reports.queries import ReportQueries
from postline.reports.store import Store
from tests.integration.schemathesis_support import CHECKS, FromLoopback

POLICY = """
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    api_users: [{{name: dev, secret: {{argon2: "{dev}"}}}}]
"""
AUTH = {"Authorization": "Bearer dev:dev-secret"}


@pytest.fixture
def reports_schema(tmp_path: Path) -> Iterator[Any]:
    path = tmp_path / "ch"
    client = connect(f"chdb://{path}")
    apply_migrations(client)
    client.close()
    store = Store(f"chdb://{path}")
    policy = parse_policy(POLICY.format(dev=hash_secret("dev-secret")))
    # Generated requests carry wrong credentials too: a throttle that never locks keeps the
    # valid ones answering (throttling has its own tests).
    throttle = AuthThrottle(free_failures=10**9)
    app = create_app(ReportQueries(store, policy), ready=lambda: True, throttle=throttle)
    yield schemathesis.openapi.from_asgi("/openapi.json", FromLoopback(app))
    store.close()


schema = schemathesis.pytest.from_fixture("reports_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    if case.path.startswith("/api/v1/suppressions"):
        # no bounce service here: 503 is the documented answer
        response = case.call(headers=AUTH)
        assert response.status_code in (201, 400, 401, 403, 404, 405, 503), response.text
        return
    case.call_and_validate(headers=AUTH, checks=CHECKS)

"""Schemathesis against the reports API's OpenAPI document: generated requests (every
parameter of every endpoint, valid and not) never get a 5xx, and the answers conform to the
document. The API runs in-process on a real ClickHouse (chdb) holding the reports API tests'
data set, authenticated as the dev API user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from postline.common.clickhouse import apply_migrations, connect
from postline.common.policy import hash_secret, parse_policy
from postline.reports.http import create_app
from postline.reports.ingest import Ingest
from postline.reports.queries import ReportQueries
from postline.reports.store import Store
from tests.integration.test_openapi_schemathesis import FromLoopback
from tests.integration.test_reports_api import POLICY, as_messages, data_set

AUTH = {"Authorization": "Bearer dev:dev-secret"}


@pytest.fixture(scope="module")
def reports_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path: Path = tmp_path_factory.mktemp("reports-schemathesis") / "ch"
    client = connect(f"chdb://{path}")
    apply_migrations(client)
    client.close()
    policy = parse_policy(
        POLICY.format(
            dev=hash_secret("dev-secret"),
            app=hash_secret("app-secret"),
            other=hash_secret("other-secret"),
        )
    )
    store = Store(f"chdb://{path}")
    asyncio.run(Ingest(store).write(as_messages(data_set())))
    app = create_app(ReportQueries(store, policy), ready=lambda: True)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", FromLoopback(app))
    finally:
        store.close()


schema = schemathesis.pytest.from_fixture("reports_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])

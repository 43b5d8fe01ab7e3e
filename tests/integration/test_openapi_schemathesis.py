"""Schemathesis against the served OpenAPI document: generated requests never get a 5xx.

The app runs in-process (schemathesis drives ASGI apps on its own event loop thread, so the
broker connects in the app's lifespan, on that loop), authenticated as the dev API user from
127.0.0.1, and publishes to a real RabbitMQ vhost: requests that pass every check are sent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from postline.common.broker import Broker, Topology
from postline.ingress.api import SendApi
from postline.ingress.http import create_app
from tests.integration.schemathesis_support import CHECKS, FromLoopback
from tests.integration.send_api_support import SHARDS, bearer, policy


@pytest.fixture
def api_schema(amqp_url: str) -> Iterator[Any]:
    broker = Broker(amqp_url, Topology(SHARDS), publish_timeout=5.0)
    app = create_app(broker, SendApi(broker, policy(), "ingress.test"))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        yield
        await broker.close()

    app.router.lifespan_context = lifespan
    yield schemathesis.openapi.from_asgi("/openapi.json", FromLoopback(app))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    # A fresh key each time: generated keys repeat a lot, and a repeated key with another body
    # stops at idempotency_key_reused before the body's own checks (tested on their own).
    headers = {**bearer(), "Idempotency-Key": uuid.uuid4().hex}
    case.call_and_validate(headers=headers, checks=CHECKS)

"""The send API over a real socket: uvicorn as the service runs it, a real HTTP client."""

from __future__ import annotations

import httpx

from postline.common.runtime import HttpServer
from tests.integration.send_api_support import bearer, harness, inbound_count
from tests.ports import free_port


async def test_send_and_openapi_over_uvicorn(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        port = free_port()
        server = HttpServer(h.app, f"127.0.0.1:{port}")
        await server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                sent = await client.post(
                    "/api/v1/send",
                    json={"from": "a@example.test", "to": ["b@b.test"], "text": "over TCP"},
                    headers=bearer(),
                )
                refused = await client.post("/api/v1/send", json={})
                schema = await client.get("/openapi.json")
                docs = await client.get("/docs")
        finally:
            await server.stop()
    assert sent.status_code == 202, sent.text
    assert sent.json()["deliveries"][0]["recipient"] == "b@b.test"
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert schema.status_code == 200
    assert set(schema.json()["paths"]) == {"/api/v1/send", "/api/v1/send/bulk"}
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert await inbound_count(amqp_url) == 1

"""A small synchronous client of the control API (standard library only).

Do not call it from the event loop that runs an in-process simulator: it blocks. From async
code use ``await asyncio.to_thread(client.stats)``.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from typing import Any


class SimulatorClient:
    def __init__(self, base_url: str = "http://127.0.0.1:2601", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def messages(
        self,
        rcpt: str | None = None,
        domain: str | None = None,
        since: float | None = None,
        raw: bool = False,
    ) -> list[dict[str, Any]]:
        """Accepted messages; with ``raw=True`` each has ``raw`` as bytes."""
        query = {"rcpt": rcpt, "domain": domain, "since": since, "raw": 1 if raw else None}
        found: list[dict[str, Any]] = self._request("GET", "/messages", query)
        if raw:
            for message in found:
                message["raw"] = base64.b64decode(message["raw"])
        return found

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._request("GET", "/stats")
        return stats

    def reset(self) -> None:
        self._request("POST", "/reset")

    def healthy(self) -> bool:
        try:
            return bool(self._request("GET", "/healthz").get("status") == "ok")
        except OSError:
            return False

    def wait_for_messages(
        self,
        count: int,
        *,
        rcpt: str | None = None,
        domain: str | None = None,
        timeout: float = 30.0,
        interval: float = 0.1,
    ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` matching messages arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(rcpt=rcpt, domain=domain)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(found)} of {count} messages for rcpt={rcpt} domain={domain} "
                    f"after {timeout}s"
                )
            time.sleep(interval)

    def _request(self, method: str, path: str, query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

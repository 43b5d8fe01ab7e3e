"""``python -m postline.ingress``: the composition root of the ingress service."""

from __future__ import annotations

import asyncio
import logging
import ssl

from postline.common.broker import Broker, Topology
from postline.common.policy import load_policy
from postline.common.runtime import HttpServer, split_listen, stop_event
from postline.common.telemetry import setup_telemetry
from postline.ingress.http import create_app
from postline.ingress.settings import IngressSettings
from postline.ingress.smtp import RelayHandler, start_smtp

logger = logging.getLogger(__name__)


def _tls_context(settings: IngressSettings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def main() -> None:
    settings = IngressSettings()  # type: ignore[call-arg]
    setup_telemetry("ingress", settings.otel_exporter, settings.log_level)
    policy = load_policy(settings.policy)
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    await broker.connect()
    stop = stop_event()

    handler = RelayHandler(broker, policy, settings.hostname)
    smtp_host, smtp_port = split_listen(settings.smtp_listen)
    max_size = max(s.relay.max_message_size for s in policy.servers.values())
    smtp = await start_smtp(
        handler, smtp_host, smtp_port, tls_context=_tls_context(settings), max_message_size=max_size
    )
    http = HttpServer(create_app(broker), settings.http_listen)
    await http.start()
    logger.info("ingress SMTP on %s, HTTP on %s", settings.smtp_listen, settings.http_listen)

    await stop.wait()
    logger.info("ingress stopping")
    smtp.close()
    await smtp.wait_closed()
    await http.stop()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())

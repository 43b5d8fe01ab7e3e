"""``python -m postline.ingress``: the composition root of the ingress service."""

from __future__ import annotations

import logging

from postline.common.broker import Broker, Topology
from postline.common.policy import LivePolicy
from postline.common.runtime import HttpServer, run, split_listen, stop_event
from postline.common.telemetry import setup_telemetry, shutdown_telemetry
from postline.common.throttle import AuthThrottle
from postline.ingress.api import SendApi
from postline.ingress.grpc_server import GrpcServer
from postline.ingress.http import broker_readiness, create_app
from postline.ingress.relay import RelayHandler, start_smtp
from postline.ingress.settings import IngressSettings
from postline.ingress.tls import server_context

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = IngressSettings()  # type: ignore[call-arg]
    setup_telemetry("ingress", settings)
    policy = LivePolicy(settings.policy, interval=settings.policy_reload_interval)
    broker = Broker(
        settings.amqp_url,
        Topology(settings.shards, settings.queue_type),
        publish_timeout=settings.publish_timeout,
    )
    stop = stop_event()
    # Listening starts once the broker is there: a mail accepted meanwhile could not be kept.
    if not await broker.connect(until=stop):
        return
    policy.start()

    # One count of failed authentications for SMTP, HTTP and gRPC: a guesser gains nothing by
    # switching doors.
    throttle = AuthThrottle()
    handler = RelayHandler(broker, policy, settings.hostname, throttle=throttle)
    smtp_host, smtp_port = split_listen(settings.smtp_listen)
    tls = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        tls = server_context(settings.tls_cert, settings.tls_key)
    smtp = await start_smtp(
        handler, smtp_host, smtp_port, tls_context=tls, reuse_port=settings.smtp_reuse_port
    )
    send_api = SendApi(broker, policy, settings.hostname, throttle=throttle)
    readiness = broker_readiness(broker)
    readiness.note(lambda: policy.status)
    http = HttpServer(create_app(broker, send_api, readiness), settings.http_listen)
    await http.start()
    grpc_server = GrpcServer(send_api, settings.grpc_listen)
    await grpc_server.start()
    logger.info(
        "ingress SMTP on %s, HTTP on %s, gRPC on %s",
        settings.smtp_listen,
        settings.http_listen,
        settings.grpc_listen,
    )

    await stop.wait()
    logger.info("ingress stopping")
    await policy.stop()
    smtp.close()
    await smtp.wait_closed()
    await handler.drain()
    await grpc_server.stop()
    await http.stop()
    await broker.close()
    shutdown_telemetry()


if __name__ == "__main__":
    run(main)

"""``python -m postline.sender``: a sender's composition root (stateless; scale by replicas).

Senders are competing consumers of ``sender.tasks`` with a prefetch equal to their
concurrency (in broker messages: a batch of tasks granted together counts as one; the sender
runs at most ``concurrency`` deliveries at once). On SIGTERM (a Kubernetes rolling update) a
sender cancels its consumer, lets the deliveries in flight finish and publish their results
(``POSTLINE_SHUTDOWN_GRACE``), QUITs its idle SMTP sessions and exits 0; nothing it had taken
is lost. Senders count each other (``membership.py``) so that, together, they hold no more
SMTP sessions to a destination than its connection limit (``pool.py``).
"""

from __future__ import annotations

import functools
import logging

from prometheus_client import Counter

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import SENDER_TASKS
from postline.common.health import Readiness
from postline.common.policy import LivePolicy
from postline.common.resolver import make_resolver
from postline.common.runtime import run, serve_health, stop_event
from postline.common.semconv import METRIC_SMTP_SESSIONS
from postline.common.telemetry import setup_telemetry, shutdown_telemetry
from postline.sender.attempt import Deliverer
from postline.sender.handlers import Sender
from postline.sender.membership import Membership
from postline.sender.mx import MxResolver
from postline.sender.pool import SessionPool
from postline.sender.settings import SenderSettings
from postline.sender.smtp import Endpoint, SmtpSession
from postline.sender.tls import TlsContexts
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

SESSIONS = Counter(METRIC_SMTP_SESSIONS, "SMTP sessions opened", ["tls"])


async def main() -> None:
    settings = SenderSettings()  # type: ignore[call-arg]
    setup_telemetry("sender", settings)
    policy = LivePolicy(settings.policy, interval=settings.policy_reload_interval)
    open_session = functools.partial(
        SmtpSession.open,
        helo_name=settings.hostname,
        timeouts=settings.smtp_timeouts(),
        tls=TlsContexts(settings.tls_ca_file),
    )

    async def opener(endpoint: Endpoint) -> SmtpSession:
        session = await open_session(endpoint)
        SESSIONS.labels("yes" if session.tls else "no").inc()
        return session

    broker = Broker(settings.amqp_url, Topology(settings.shards, settings.queue_type))
    membership = Membership(
        broker, interval=settings.membership_interval, on_change=lambda: pool.reshare()
    )
    pool = SessionPool(opener, idle_timeout=settings.smtp_idle_timeout, share=membership.share)
    resolver = MxResolver(make_resolver(settings.dns_nameservers(), settings.dns_timeout))
    deliverer = Deliverer(policy, resolver, pool, smtp_port=settings.smtp_port)
    stop = stop_event()
    consuming = False
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    readiness.add("tasks", lambda: None if consuming else "joining the other senders")
    readiness.note(lambda: policy.status)
    health = await serve_health(settings.health_listen, readiness)
    if not await broker.connect(until=stop):
        await health.stop()
        return
    policy.start()
    # Counted among the senders before taking a task: see membership.py.
    await membership.join()
    sender = Sender(broker, deliverer, settings.concurrency)
    subscription = await broker.consume(
        SENDER_TASKS, delivery_pb2.DeliveryTask, sender.on_task, prefetch=settings.concurrency
    )
    consuming = True
    logger.info("sender consuming %s with concurrency %d", SENDER_TASKS, settings.concurrency)
    await stop.wait()
    logger.info("sender stopping: no new tasks, %d in flight", sender.in_flight)
    try:
        await subscription.cancel()
    except Exception as exc:  # the broker is gone: unacked tasks go back to the queue anyway
        logger.warning("cancelling the consumer failed: %s", exc)
    await sender.drain(settings.shutdown_grace)
    await pool.close()
    await membership.leave()
    await policy.stop()
    await health.stop()
    await broker.close()
    logger.info("sender stopped")
    shutdown_telemetry()


if __name__ == "__main__":
    run(main)

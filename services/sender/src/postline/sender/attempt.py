"""One delivery attempt over SMTP (aiosmtplib), reduced to a typed outcome.

2xx succeeded; 4xx, connection failures and timeouts deferred; 5xx failed.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import aiosmtplib
import dns.exception

from postline.common.timeutil import to_timestamp
from postline.sender.mx import NoMailHost, mail_hosts
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str
    stage: str

    @property
    def enhanced_status(self) -> str:
        match = _ENHANCED.match(self.text)
        return match[1] if match else ""

    @property
    def outcome(self) -> delivery_pb2.Outcome.ValueType:
        if 200 <= self.code < 300:
            return delivery_pb2.OUTCOME_SUCCEEDED
        if 500 <= self.code < 600:
            return delivery_pb2.OUTCOME_FAILED
        return delivery_pb2.OUTCOME_DEFERRED


def _tls_options(mode: delivery_pb2.TlsMode.ValueType) -> dict[str, object]:
    if mode == delivery_pb2.TLS_MODE_NONE:
        return {"start_tls": False}
    if mode == delivery_pb2.TLS_MODE_REQUIRED:
        return {"start_tls": True, "validate_certs": True}
    # Opportunistic TLS encrypts without authenticating the peer (RFC 7435), as MTAs do.
    return {"start_tls": None, "validate_certs": False}


async def attempt(
    task: delivery_pb2.DeliveryTask, *, hostname: str, timeout: float
) -> delivery_pb2.DeliveryResult:
    started = time.time()
    delivery = task.delivery
    result = delivery_pb2.DeliveryResult(task=task, started_at=to_timestamp(started))
    try:
        if task.route_host:
            hosts, port = [task.route_host], task.route_port or 25
        else:
            hosts, port = await mail_hosts(delivery.recipient_domain), 25
    except NoMailHost as exc:
        reply = Reply(550, f"5.1.2 {exc}", "dns")
        hosts, port = [], 25
    except dns.exception.DNSException as exc:
        reply = Reply(451, f"4.4.3 DNS lookup failed: {exc}", "dns")
        hosts, port = [], 25
    for host in hosts:
        reply, tls = await _send(task, host, port, hostname, timeout)
        result.mx_host = host
        result.tls = tls
        if reply.stage not in ("connect", "ehlo"):
            break  # the host answered; trying the next MX is only for unreachable ones
    result.outcome = reply.outcome
    result.reply_code = reply.code
    result.reply_text = reply.text
    result.enhanced_status = reply.enhanced_status
    result.stage = reply.stage
    result.source_ip = task.source_ip
    result.finished_at.CopyFrom(to_timestamp(time.time()))
    return result


async def _send(
    task: delivery_pb2.DeliveryTask, host: str, port: int, hostname: str, timeout: float
) -> tuple[Reply, bool]:
    delivery = task.delivery
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        local_hostname=hostname,
        timeout=timeout,
        source_address=(task.source_ip, 0) if task.source_ip else None,
        **_tls_options(task.tls),  # type: ignore[arg-type]
    )
    stage = "connect"
    try:
        await client.connect()
        stage = "mail"
        sender = task.return_path or delivery.envelope_from
        errors, response = await client.sendmail(sender, [delivery.recipient], delivery.content)
        if errors:
            response_ = next(iter(errors.values()))
            return Reply(response_.code, response_.message, "rcpt"), _tls(client)
        return Reply(250, response, "data"), _tls(client)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0]
        return Reply(refused.code, refused.message, "rcpt"), _tls(client)
    except aiosmtplib.SMTPSenderRefused as exc:
        return Reply(exc.code, exc.message, "mail"), _tls(client)
    except aiosmtplib.SMTPDataError as exc:
        return Reply(exc.code, exc.message, "data"), _tls(client)
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
        return Reply(421, f"4.4.1 connection to {host}:{port} failed: {exc}", "connect"), False
    except aiosmtplib.SMTPTimeoutError as exc:
        return Reply(421, f"4.4.2 timeout at {stage} with {host}: {exc}", stage), _tls(client)
    except aiosmtplib.SMTPServerDisconnected as exc:
        return Reply(421, f"4.4.2 {host} disconnected at {stage}: {exc}", stage), _tls(client)
    except aiosmtplib.SMTPResponseException as exc:
        return Reply(exc.code, exc.message, stage), _tls(client)
    except aiosmtplib.SMTPException as exc:
        return Reply(421, f"4.4.0 SMTP error with {host}: {exc}", stage), _tls(client)
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()


def _tls(client: aiosmtplib.SMTP) -> bool:
    return bool(client.is_connected and client.get_transport_info("sslcontext"))

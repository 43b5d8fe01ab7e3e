"""Sender settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from postline.common.resolver import parse_nameservers
from postline.common.settings import ServiceSettings
from postline.sender.smtp import SmtpTimeouts


class SenderSettings(ServiceSettings):
    concurrency: int = Field(default=20, ge=1, le=1000, description="simultaneous deliveries")
    health_listen: str = "127.0.0.1:9103"
    hostname: str = Field(default="postline.localhost", description="the EHLO name")
    # Port of MX hosts (25 on the internet; tests point MX records at a local simulator).
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # Idle SMTP sessions kept for reuse are closed after this (Postfix keeps them 2 s; a bit
    # longer suits bursts handed out by the scheduler a few at a time).
    smtp_idle_timeout: float = Field(default=5.0, gt=0)
    # RFC 5321 §4.5.3.2 minimum timeouts per step (seconds); connect and RSET/QUIT, which it
    # does not name, follow Postfix's defaults (smtp_connect_timeout, smtp_rset_timeout).
    smtp_timeout_connect: float = Field(default=30.0, gt=0)
    smtp_timeout_greeting: float = Field(default=300.0, gt=0)  # §4.5.3.2.1 initial 220
    smtp_timeout_ehlo: float = Field(default=300.0, gt=0)
    smtp_timeout_starttls: float = Field(default=300.0, gt=0)
    smtp_timeout_mail: float = Field(default=300.0, gt=0)  # §4.5.3.2.2
    smtp_timeout_rcpt: float = Field(default=300.0, gt=0)  # §4.5.3.2.3
    smtp_timeout_data_init: float = Field(default=120.0, gt=0)  # §4.5.3.2.4
    smtp_timeout_data_block: float = Field(default=180.0, gt=0)  # §4.5.3.2.5
    smtp_timeout_data_end: float = Field(default=600.0, gt=0)  # §4.5.3.2.6 final dot
    smtp_timeout_rset: float = Field(default=20.0, gt=0)
    smtp_timeout_quit: float = Field(default=10.0, gt=0)
    # DNS: empty uses the system's resolvers (/etc/resolv.conf); otherwise a comma-separated
    # list of ip[:port], e.g. 127.0.0.1:5353 (tests run their own DNS server).
    dns_servers: str = ""
    dns_timeout: float = Field(default=10.0, gt=0)
    # Trust anchors for required TLS (PEM); empty: the system's CA store.
    tls_ca_file: Path | None = None
    # How often a sender counts the senders sharing each destination's connection limit
    # (membership.py); a new sender waits a little over twice this before taking tasks.
    membership_interval: float = Field(default=1.0, gt=0)
    # SIGTERM: how long in-flight deliveries may take to finish before they are handed back
    # to the queue (keep it below the pod's terminationGracePeriodSeconds).
    shutdown_grace: float = Field(default=25.0, ge=0)

    def smtp_timeouts(self) -> SmtpTimeouts:
        return SmtpTimeouts(
            connect=self.smtp_timeout_connect,
            greeting=self.smtp_timeout_greeting,
            ehlo=self.smtp_timeout_ehlo,
            starttls=self.smtp_timeout_starttls,
            mail=self.smtp_timeout_mail,
            rcpt=self.smtp_timeout_rcpt,
            data_init=self.smtp_timeout_data_init,
            data_block=self.smtp_timeout_data_block,
            data_end=self.smtp_timeout_data_end,
            rset=self.smtp_timeout_rset,
            quit=self.smtp_timeout_quit,
        )

    def dns_nameservers(self) -> list[tuple[str, int]]:
        """``dns_servers`` as (ip, port) pairs; empty: the system's."""
        return parse_nameservers(self.dns_servers)

"""The far end of the MTA-made notices: what one MTA's cases leave there is not the next one's."""

from __future__ import annotations

import smtplib

from bench.bounce_accuracy.mtas.destination import Destination, Reply


def _send(port: int, to: str) -> None:
    with smtplib.SMTP(Destination.host, port, timeout=10) as client:
        client.sendmail("mailer-daemon@mta.test", [to], b"Subject: notice\r\n\r\nreturned\r\n")


def test_forget_drops_the_notices_scripts_and_deliveries_of_the_last_mta() -> None:
    with Destination() as destination:
        destination.script("nobody@remote.test", Reply("550 5.1.1 <{address}>: no such user"))
        _send(destination.capture_port, "bulletin-os-02@sender.test")
        _send(destination.port, "somebody@remote.test")
        assert len(destination.wait_for_notices("bulletin-os-02@sender.test", timeout=10)) == 1
        assert destination.delivered("somebody@remote.test")

        destination.forget()

        assert destination.notices("bulletin-os-02@sender.test") == []
        assert destination.delivered() == []
        assert destination.scripted("nobody@remote.test") is None
        _send(destination.capture_port, "bulletin-os-02@sender.test")
        assert len(destination.wait_for_notices("bulletin-os-02@sender.test", timeout=10)) == 1

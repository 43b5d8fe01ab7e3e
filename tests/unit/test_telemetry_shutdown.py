"""A service stops on time even when no span receiver is left (``make run``'s Ctrl-C, a rolling
update): ``shutdown_telemetry`` bounds the flush of buffered spans by its grace period."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import time
    from opentelemetry import trace
    from postline.common.settings import ServiceSettings
    from postline.common.telemetry import setup_telemetry, shutdown_telemetry

    setup_telemetry("test", ServiceSettings(amqp_url="amqp://x/", policy="p.yaml"))
    tracer = trace.get_tracer("test")
    for _ in range(5000):  # several export batches, each retried against a closed port
        with tracer.start_as_current_span("work"):
            pass
    started = time.monotonic()
    shutdown_telemetry(grace=1.0)
    print(round(time.monotonic() - started, 2))
    """
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_buffered_spans_do_not_hold_up_a_stop_when_the_receiver_is_gone() -> None:
    env = {
        **os.environ,
        "POSTLINE_OTEL_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) < 3.0  # the grace (1 s) and the exporter's stop
    assert time.monotonic() - started < 20  # and the process ended: no flush left running

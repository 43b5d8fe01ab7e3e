"""A span in a trace nobody samples is not made (``telemetry._Tracer``): the parent stays
current, so the trace id goes on; sampled traces, roots and other samplers get their spans as
before. Each case in a process of its own: telemetry is set up once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from postline.common.settings import ServiceSettings
    from postline.common.telemetry import extract_context, setup_telemetry, tracer

    setup_telemetry("test", ServiceSettings(amqp_url="amqp://x/", policy="p.yaml"))
    spans = tracer("test")
    found = {}
    for flags in ("00", "01"):
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-" + flags
        attached = extract_context({"traceparent": parent})
        with spans.start_as_current_span("child") as span:
            context = span.get_span_context()
            found[flags] = [
                format(context.trace_id, "032x"),
                format(context.span_id, "016x"),
                span.is_recording(),
            ]
        attached.detach()
    with spans.start_as_current_span("root") as span:
        found["root"] = [span.get_span_context().is_valid]
    print("found", json.dumps(found), flush=True)
    """
)
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _spans(env: dict[str, str]) -> dict[str, list[object]]:
    answer = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = next(x for x in answer.stdout.splitlines() if x.startswith("found "))
    return dict(json.loads(line.removeprefix("found ")))


@pytest.mark.parametrize(
    "env",
    [
        {"POSTLINE_OTEL_EXPORTER": "none"},
        {"POSTLINE_OTEL_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    ],
)
def test_no_span_is_made_under_an_unsampled_parent(env: dict[str, str]) -> None:
    found = _spans(env)
    assert found["00"] == [TRACE, PARENT, False]  # the parent itself: same trace, same span
    trace_id, span_id, recording = found["01"]  # a sampled parent: a span of its own
    assert (trace_id, recording) == (TRACE, True) and span_id != PARENT
    assert found["root"] == [True]  # a root still starts a trace of its own


def test_a_sampler_that_ignores_the_parent_still_gets_every_span() -> None:
    found = _spans({"POSTLINE_OTEL_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "always_on"})
    trace_id, span_id, recording = found["00"]
    assert (trace_id, recording) == (TRACE, True) and span_id != PARENT

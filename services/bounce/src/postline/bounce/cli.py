"""``postline bounce classify`` (offline) and ``postline suppression ...`` (the gRPC API).

    postline bounce classify FILE...        one JSON object per failed recipient
    postline bounce classify -              a bounce mail (or a notice's text) on standard input
    postline suppression check  --server S ADDRESS
    postline suppression list   [--server S] [--contains TEXT] [--page N] [--page-size N]
    postline suppression add    --server S ADDRESS [--reason TEXT] [--expires-in 30d]
    postline suppression remove --server S ADDRESS

Modules are imported inside the commands: ``postline`` loads every group at start-up.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

DEFAULT_GRPC = "127.0.0.1:50053"


@click.group("bounce")
def bounce() -> None:
    """Bounce classification."""


@bounce.command("classify")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
def classify(files: tuple[str, ...]) -> None:
    """Print one JSON object per failed recipient of each bounce mail (- = standard input).

    Fields: recipient (the address the mail was sent to), status (error status 1..10, 99),
    delivery (failed / deferred), reply_code, enhanced_status, reason; final_recipient when
    an alias or a forwarding led elsewhere; with several files also file. Mails that are no
    bounce (feedback reports, auto-replies, delivery receipts) print nothing; a line on
    standard error says what they are. A notice's text alone, without mail headers, is
    read by its words (the notice wordings of rules/mail_signs.yaml).
    """
    from postline.bounce.mail import Kind
    from postline.bounce.verdicts import classify_mail

    several = len(files) > 1
    failed = False
    for name in files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
        except OSError as exc:
            click.echo(f"{name}: {exc.strerror}", err=True)
            failed = True
            continue
        report, verdicts = classify_mail(raw)
        if report.kind is not Kind.BOUNCE:
            click.echo(f"{name}: {report.kind.value}, not a bounce", err=True)
        for verdict in verdicts:
            row: dict[str, Any] = verdict.as_json()
            if several:
                row["file"] = name
            click.echo(json.dumps(row, ensure_ascii=False))
    if failed:
        sys.exit(1)


@click.group("suppression")
@click.option(
    "--grpc",
    "address",
    default=DEFAULT_GRPC,
    envvar="POSTLINE_BOUNCE_GRPC",
    show_default=True,
    help="the bounce service's gRPC address [env POSTLINE_BOUNCE_GRPC]",
)
@click.pass_context
def suppression(ctx: click.Context, address: str) -> None:
    """The suppression list (delivery blocking), through the bounce service."""
    ctx.obj = address


def _call(address: str, method: str, request: Any) -> Any:
    import grpc

    from postline.v1 import suppression_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = suppression_pb2_grpc.SuppressionsStub(channel)
        try:
            return getattr(stub, method)(request, timeout=15)
        except grpc.RpcError as exc:
            raise click.ClickException(f"{address}: {exc.code().name}: {exc.details()}") from exc


def _row(item: Any) -> dict[str, Any]:
    from postline.common.timeutil import to_datetime

    return {
        "server": item.server,
        "address": item.address,
        "reason": item.reason,
        "created": to_datetime(item.created).isoformat(),
        "expires_at": to_datetime(item.expires_at).isoformat()
        if item.HasField("expires_at")
        else None,
    }


@suppression.command("check")
@click.option("--server", required=True)
@click.argument("address")
@click.pass_obj
def check(address_grpc: str, server: str, address: str) -> None:
    """Whether ADDRESS is suppressed for SERVER (exit status 0: yes, 1: no)."""
    from postline.v1 import suppression_pb2

    answer = _call(
        address_grpc, "Check", suppression_pb2.SuppressionKey(server=server, address=address)
    )
    if answer.suppressed:
        click.echo(json.dumps(_row(answer.suppression)))
        return
    click.echo(f"{address} is not suppressed for {server}")
    sys.exit(1)


@suppression.command("list")
@click.option("--server", default="", help="one server (default: every server)")
@click.option("--contains", default="", help="addresses containing this text")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def list_(address_grpc: str, server: str, contains: str, page: int, page_size: int) -> None:
    """Suppressed addresses, one JSON object a line, then a count on standard error."""
    from postline.v1 import suppression_pb2

    request = suppression_pb2.ListSuppressionsRequest(
        server=server, address_contains=contains, page=page, page_size=page_size
    )
    answer = _call(address_grpc, "List", request)
    for item in answer.suppressions:
        click.echo(json.dumps(_row(item)))
    click.echo(f"{len(answer.suppressions)} shown, {answer.total} in all", err=True)


@suppression.command("add")
@click.option("--server", required=True)
@click.option("--reason", default="added by an administrator", show_default=True)
@click.option("--expires-in", default=None, help="e.g. 30d, 12h (default: never)")
@click.argument("address")
@click.pass_obj
def add(address_grpc: str, server: str, reason: str, expires_in: str | None, address: str) -> None:
    """Suppress ADDRESS for SERVER."""
    import time

    from postline.common.policy import parse_duration
    from postline.common.timeutil import to_timestamp
    from postline.v1 import suppression_pb2

    item = suppression_pb2.Suppression(server=server, address=address, reason=reason)
    if expires_in:
        try:
            seconds = parse_duration(expires_in).total_seconds()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires-in") from exc
        item.expires_at.CopyFrom(to_timestamp(time.time() + seconds))
    answer = _call(address_grpc, "Add", suppression_pb2.AddSuppressionRequest(suppression=item))
    click.echo(json.dumps(_row(answer)))


@suppression.command("remove")
@click.option("--server", required=True)
@click.argument("address")
@click.pass_obj
def remove(address_grpc: str, server: str, address: str) -> None:
    """Remove ADDRESS from SERVER's list (exit status 1 when it was not on it)."""
    from postline.v1 import suppression_pb2

    answer = _call(
        address_grpc, "Remove", suppression_pb2.SuppressionKey(server=server, address=address)
    )
    if not answer.removed:
        click.echo(f"{address} was not suppressed for {server}")
        sys.exit(1)
    click.echo(f"{address} removed for {server}")

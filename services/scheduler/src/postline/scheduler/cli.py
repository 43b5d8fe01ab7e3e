"""``postline scheduler stats|pause|resume`` (a running scheduler's admin API) and
``postline policy explain`` (offline from the policy file, or asked of a running scheduler:
one function, :func:`postline.scheduler.explain.explain`, answers both)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
import grpc

from postline.common.policy import PolicyError, load_policy
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.scheduler.explain import explain
from postline.v1 import scheduler_pb2, scheduler_pb2_grpc

DEFAULT_GRPC = "127.0.0.1:50052"
TIMEOUT = 15.0


def _stub(address: str) -> scheduler_pb2_grpc.SchedulerAdminStub:
    return scheduler_pb2_grpc.SchedulerAdminStub(grpc.insecure_channel(address))


def _call(method: Any, request: Any) -> Any:
    try:
        return method(request, timeout=TIMEOUT)
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else "ERROR"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        raise click.ClickException(f"{code}: {details}") from None


def _iso(ts: Any) -> str:
    return datetime.fromtimestamp(from_timestamp(ts), tz=UTC).isoformat(timespec="seconds")


@click.group(name="scheduler")
def command() -> None:
    """A running scheduler: queue statistics, pause and resume a domain."""


@command.command()
@click.option("--grpc", "address", default=DEFAULT_GRPC, show_default=True)
@click.option("--domain", default="", help="only this domain (or the group it belongs to)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def stats(address: str, domain: str, as_json: bool) -> None:
    """Backlog, deliveries in flight and next release per speed key."""
    response = _call(_stub(address).QueueStats, scheduler_pb2.QueueStatsRequest(domain=domain))
    rows = [
        {
            "shard": d.shard,
            "server": d.server,
            "domain": d.domain,
            "speed_key": d.speed_key,
            "backlog": d.backlog,
            "in_flight": d.in_flight,
            "connections": d.connections,
            "rate": d.rate,
            "interval": d.interval,
            "next_release": _iso(d.next_release) if d.HasField("next_release") else None,
            "paused": d.paused,
            "held": d.held,
            "held_until": _iso(d.held_until) if d.HasField("held_until") else None,
            "domains": list(d.domains),
        }
        for d in response.domains
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "domains": rows,
                    "unknown_shards": list(response.unknown_shards),
                    "suppression_list_loaded": response.suppression_list_loaded,
                }
            )
        )
        return
    header = ("shard", "domain", "speed_key", "backlog", "in_flight", "next_release", "held")
    lines = [header]
    for row in rows:
        domain_text = row["domain"] + (" (paused)" if row["paused"] else "")
        lines.append(
            (
                str(row["shard"]),
                domain_text,
                row["speed_key"] or "-",
                str(row["backlog"]),
                f"{row['in_flight']}/{row['connections']}" if row["connections"] else "0",
                row["next_release"] or "-",
                f"{row['held']} until {row['held_until']}" if row["held"] else "0",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if response.unknown_shards:
        unknown = ", ".join(map(str, response.unknown_shards))
        click.echo(f"no report from shard(s) {unknown} (no owner right now?)", err=True)
    if not response.suppression_list_loaded:
        click.echo("the suppression list is not loaded from bounce yet", err=True)


@command.command()
@click.argument("domain")
@click.option("--grpc", "address", default=DEFAULT_GRPC, show_default=True)
def pause(domain: str, address: str) -> None:
    """Stop granting deliveries to DOMAIN (those in flight finish) until it is resumed."""
    response = _call(_stub(address).PauseDomain, scheduler_pb2.DomainRequest(domain=domain))
    click.echo(f"{response.domain}: {'paused' if response.paused else 'not paused'}")


@command.command()
@click.argument("domain")
@click.option("--grpc", "address", default=DEFAULT_GRPC, show_default=True)
def resume(domain: str, address: str) -> None:
    """Deliver to DOMAIN again, at its speed."""
    response = _call(_stub(address).ResumeDomain, scheduler_pb2.DomainRequest(domain=domain))
    click.echo(f"{response.domain}: {'paused' if response.paused else 'resumed'}")


@click.group(name="policy")
def policy_command() -> None:
    """Work with the policy file (postline.yaml)."""


def _parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r}: expected 'Name: value'", param_hint="--header")
        headers[name.strip()] = text.strip()
    return headers


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected ISO 8601, e.g. 2025-01-06T22:30:00+09:00", param_hint="--at"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@policy_command.command(name="explain")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="policy file")
@click.option("--server", "server_name", help="server name (default: the only one)")
@click.option("--to", "recipient", required=True, help="envelope recipient")
@click.option("--header", "headers", multiple=True, help="'Name: value' (repeatable)")
@click.option("--at", "at_text", help="ISO 8601 time (default now; no offset means UTC)")
@click.option("--mx", "mx_hosts", multiple=True, help="MX host, for speed rules with mx:")
@click.option("--shards", default=4, show_default=True, help="the deployment's shard count")
@click.option("--grpc", "address", help="ask a running scheduler (host:port) instead")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def explain_command(
    policy_file: str | None,
    server_name: str | None,
    recipient: str,
    headers: tuple[str, ...],
    at_text: str | None,
    mx_hosts: tuple[str, ...],
    shards: int,
    address: str | None,
    as_json: bool,
) -> None:
    """Say what the policy does with a delivery (priority, hold, speed, route, retry,
    forwarding) and why."""
    if "@" not in recipient:
        raise click.BadParameter(f"{recipient!r}: an address", param_hint="--to")
    header_map = _parse_headers(headers)
    at = _parse_at(at_text)
    if address:
        request = scheduler_pb2.ExplainRequest(
            server=server_name or "",
            recipient=recipient,
            headers=header_map,
            at=to_timestamp(at.timestamp()),
            mx_hosts=mx_hosts,
        )
        answer = _from_proto(_call(_stub(address).Explain, request), recipient, at)
    else:
        if policy_file is None:
            raise click.UsageError("give --policy FILE (offline) or --grpc ADDRESS")
        try:
            policy = load_policy(policy_file)
        except PolicyError as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(1)
        if server_name is None:
            if len(policy.servers) != 1:
                raise click.UsageError(f"--server: one of {', '.join(policy.servers)}")
            server_name = next(iter(policy.servers))
        if server_name not in policy.servers:
            raise click.BadParameter(
                f"{server_name!r}: servers are {', '.join(policy.servers)}", param_hint="--server"
            )
        answer = explain(
            server_name,
            policy.servers[server_name],
            recipient,
            header_map,
            at,
            shards=shards,
            mx_hosts=mx_hosts,
        ).as_dict()
        if answer["hold_until"]:
            hold = datetime.fromisoformat(str(answer["hold_until"])).astimezone(UTC)
            answer["hold_until"] = hold.isoformat(timespec="seconds")
    if as_json:
        click.echo(json.dumps(answer))
        return
    for key in ("server", "recipient", "at", "priority", "hold_until", "speed_rule"):
        click.echo(f"{key.replace('_', ' '):<12}{answer[key] or '-'}")
    click.echo(f"{'speed key':<12}{answer['speed_key']} (shard {answer['shard']})")
    for key in ("route", "retry_profile", "forwarding"):
        click.echo(f"{key.replace('_', ' '):<12}{answer[key] or '-'}")
    suppressed = "yes" if answer["suppressed"] else "no"
    if not answer["suppression_checked"]:
        suppressed = "not checked"
    click.echo(f"{'suppressed':<12}{suppressed}")
    click.echo("why:")
    for reason in answer["reasons"]:
        click.echo(f"  - {reason}")


def _from_proto(
    response: scheduler_pb2.ExplainResponse, recipient: str, at: datetime
) -> dict[str, Any]:
    return {
        "server": response.server,
        "recipient": recipient,
        "at": at.astimezone(UTC).isoformat(),
        "priority": response.priority,
        "hold_until": _iso(response.hold_until) if response.HasField("hold_until") else None,
        "speed_rule": response.speed_rule,
        "speed_key": response.speed_key,
        "route": response.route,
        "retry_profile": response.retry_profile,
        "forwarding": response.forwarding,
        "shard": response.shard,
        "suppressed": response.suppressed,
        "suppression_checked": response.suppression_checked,
        "reasons": list(response.reasons),
    }

"""``python -m postline.simulator``: run the destination simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from postline.simulator.simulator import (
    DEFAULT_CONTROL_PORT,
    DEFAULT_SLOW_SECONDS,
    DEFAULT_SMTP_PORT,
    Simulator,
)

logger = logging.getLogger(__name__)


def host_port(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[V6]:PORT`` for IPv6)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m postline.simulator",
        description="Destination simulator: an SMTP server answering by recipient local part.",
    )
    parser.add_argument(
        "--smtp",
        type=host_port,
        default=("127.0.0.1", DEFAULT_SMTP_PORT),
        metavar="HOST:PORT",
        help=f"SMTP listen address (default 127.0.0.1:{DEFAULT_SMTP_PORT})",
    )
    parser.add_argument(
        "--control",
        type=host_port,
        default=("127.0.0.1", DEFAULT_CONTROL_PORT),
        metavar="HOST:PORT",
        help=f"control API listen address (default 127.0.0.1:{DEFAULT_CONTROL_PORT})",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="certificate (PEM) for STARTTLS")
    parser.add_argument("--tls-key", metavar="FILE", help="private key (PEM) for STARTTLS")
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=DEFAULT_SLOW_SECONDS,
        metavar="SECONDS",
        help=f"how long slow@ waits before answering DATA (default {DEFAULT_SLOW_SECONDS:g})",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="log level (default INFO; DEBUG shows SMTP lines)"
    )
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    return args


async def run(args: argparse.Namespace) -> None:
    simulator = Simulator(
        args.smtp[0],
        args.smtp[1],
        control_host=args.control[0],
        control_port=args.control[1],
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        slow_seconds=args.slow_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await simulator.start()
    except OSError as exc:
        logger.error("simulator cannot listen: %s", exc)
        raise SystemExit(1) from exc
    logger.info(
        "simulator ready: SMTP %s:%s, control %s",
        simulator.smtp_host,
        simulator.smtp_port,
        simulator.control_url,
    )
    try:
        await stop.wait()
        logger.info("simulator stopping")
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP line at INFO; keep that for DEBUG runs.
    logging.getLogger("mail.log").setLevel(max(level, logging.WARNING))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

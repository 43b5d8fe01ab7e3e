"""``python -m postline.devstack``: what ``make run`` starts and keeps running.

A process that dies is started again (see ``supervise``); Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from postline.devstack.stack import Ports, Stack
from postline.devstack.supervise import Supervisor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", type=Path, default=Path("postline.dev.yaml"))
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="shift every port listened on (the policy's routes stay as written)",
    )
    parser.add_argument(
        "--no-traces",
        dest="traces",
        action="store_false",
        help="record no spans (by default every service sends them to reports' ClickHouse)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stack = Stack(
        policy=args.policy.resolve(),
        data_dir=args.data_dir.resolve(),
        amqp_url=args.amqp_url,
        shards=args.shards,
        ports=Ports(offset=args.port_offset),
        traces=args.traces,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    supervisor = Supervisor(stack, say=lambda line: print(f"devstack: {line}", flush=True))
    try:
        stack.start()
        print(stack.describe(), flush=True)
        while True:
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())

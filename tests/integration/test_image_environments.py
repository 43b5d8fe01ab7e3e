"""Each image's environment, installed for real the way the Dockerfile's builder installs it.

`uv sync --frozen --no-dev --no-editable --package postline-<service>` into a fresh virtual
environment (there is no Docker engine here, but this is the step that decides what an image
carries): the service imports, `postline` works where it is installed, and ClickHouse support
is there only for reports and bounce; the embedded engine in no image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy_support import IMAGES, ROOT

USES_CLICKHOUSE = {"reports", "bounce"}


def sync(service: str, environment: Path) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("no uv on PATH (scripts/bootstrap.sh installs it)")
    command = [uv, "sync", "--frozen", "--no-dev", "--no-editable", "--package"]
    # uv caches a built workspace member by its pyproject.toml, not its sources: rebuild ours
    # so the environment holds the code of this checkout, as an image build from it would.
    rebuild = [
        arg
        for member in ("postline-contracts", "postline-common", f"postline-{service}")
        for arg in ("--reinstall-package", member)
    ]
    done = subprocess.run(
        [*command, f"postline-{service}", *rebuild, "--quiet"],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment), "UV_NO_PROGRESS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return environment / "bin"


def python(bin_dir: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("service", IMAGES)
def test_image_environment_carries_its_service_and_no_more(service: str, tmp_path: Path) -> None:
    bin_dir = sync(service, tmp_path / "venv")
    imported = python(bin_dir, f"import postline.{service}.__main__")
    assert imported.returncode == 0, imported.stderr
    assert python(bin_dir, "import chdb").returncode != 0, "the embedded engine is in no image"
    clickhouse = python(bin_dir, "import clickhouse_connect").returncode == 0
    assert clickhouse == (service in USES_CLICKHOUSE)
    if service == "simulator":
        return  # a development tool without postline-common
    commands = subprocess.run(
        [str(bin_dir / "postline"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert commands.returncode == 0, commands.stderr
    assert "migrate" in commands.stdout and "policy" in commands.stdout
    policy = subprocess.run(
        [str(bin_dir / "postline"), "policy", "check", str(ROOT / "postline.dev.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert policy.returncode == 0, policy.stdout + policy.stderr


@pytest.mark.parametrize("service", ["ingress", "reports"])
def test_postline_migrate_says_what_is_missing(service: str, tmp_path: Path) -> None:
    """Where ClickHouse support is not installed, `postline migrate` says so and fails; where it
    is, a chdb:// DSN without the embedded engine is refused the same way."""
    bin_dir = sync(service, tmp_path / "venv")
    dsn = "http://127.0.0.1:9/" if service == "ingress" else f"chdb://{tmp_path / 'ch'}"
    done = subprocess.run(
        [str(bin_dir / "postline"), "migrate", "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    expected = "ClickHouse support is not installed" if service == "ingress" else "postline-common"
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

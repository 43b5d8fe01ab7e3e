"""Where the console's files are: its own static files (in the package) and the charting
library from npm (``services/reports/console/package.json``, installed by ``npm ci`` in
``scripts/bootstrap.sh`` and the Dockerfile's reports image; never copied into the repository)."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

# The npm files the console serves, by their URL name under /static/vendor/.
VENDOR_FILES = {"chart.umd.min.js": "chart.js/dist/chart.umd.min.js"}


def static_dir() -> Path:
    return Path(str(resources.files("postline.reports.console").joinpath("static")))


def node_modules(configured: str) -> Path:
    """The directory holding the npm packages: the setting, else the repository's."""
    if configured:
        return Path(configured)
    # services/reports/src/postline/reports/console/assets.py -> services/reports/console
    return Path(__file__).resolve().parents[4] / "console" / "node_modules"


def vendor_file(configured: str, name: str) -> Path | None:
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return None
    path = node_modules(configured) / relative
    return path if path.is_file() else None


def check_vendor(configured: str) -> None:
    """Say at start-up when charts will be missing (the pages still work without them)."""
    for name in VENDOR_FILES:
        if vendor_file(configured, name) is None:
            logger.warning(
                "console: %s not found under %s (run `npm ci` in services/reports/console): "
                "pages will show tables without charts",
                name,
                node_modules(configured),
            )

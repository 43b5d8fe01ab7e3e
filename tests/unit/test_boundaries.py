"""Services meet only through contracts: no service imports another service's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingress", "scheduler", "sender", "bounce", "reports")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_no_other_service(service: str) -> None:
    others = {f"postline.{s}" for s in SERVICES if s != service}
    for path in (ROOT / "services" / service / "src").rglob("*.py"):
        bad = {n for n in _imports(path) if any(n == o or n.startswith(o + ".") for o in others)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_shared_packages_import_no_service() -> None:
    services = {f"postline.{s}" for s in SERVICES}
    for path in (ROOT / "packages").rglob("*.py"):
        bad = {n for n in _imports(path) if any(n == s or n.startswith(s + ".") for s in services)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_an_entry_point(service: str) -> None:
    base = ROOT / "services" / service
    assert (base / "src" / "postline" / service / "__main__.py").is_file()


def test_proto_is_the_only_contract_source() -> None:
    # __cache__: where the embedded ClickHouse caches a schema sent with an insert, and var/
    # (run-time data, e.g. a fault run's ClickHouse kept by make faults): copies, ignored
    skipped = {".venv", "__cache__", "var"}
    protos = {p.relative_to(ROOT) for p in ROOT.rglob("*.proto") if not skipped & set(p.parts)}
    assert protos and all(p.parts[:3] == ("proto", "postline", "v1") for p in protos)

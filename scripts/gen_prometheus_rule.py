"""Write the Kubernetes PrometheusRule from Postline's Prometheus rule file.

deploy/observability/prometheus/rules/postline.rules.yaml is the one source of the recording
and alerting rules (compose's Prometheus and `promtool` read it as it is); the
prometheus-operator wants the same groups inside a PrometheusRule, which this writes to
deploy/k8s/components/observability/prometheus-rule.yaml.

python scripts/gen_prometheus_rule.py          # rewrite the PrometheusRule
python scripts/gen_prometheus_rule.py --check  # exit 1 if it is stale (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "observability" / "prometheus" / "rules" / "postline.rules.yaml"
OUT = ROOT / "deploy" / "k8s" / "components" / "observability" / "prometheus-rule.yaml"
HEADER = """\
# Generated from deploy/observability/prometheus/rules/postline.rules.yaml by
# scripts/gen_prometheus_rule.py (`make observability`): edit that file, not this one.
"""


class _Literal(str):
    """A multi-line string written as a YAML block (the PromQL stays readable)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


def _blocks(value: object) -> object:
    if isinstance(value, dict):
        return {key: _blocks(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blocks(item) for item in value]
    if isinstance(value, str) and "\n" in value:
        return _Literal(value)
    return value


def render() -> str:
    rules = yaml.safe_load(RULES.read_text())
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "postline"},
        "spec": {"groups": rules["groups"]},
    }
    dumper = yaml.SafeDumper
    dumper.add_representer(_Literal, _literal)
    body = yaml.dump(_blocks(resource), Dumper=dumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            sys.stderr.write(f"{OUT.relative_to(ROOT)} is stale: run make observability\n")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

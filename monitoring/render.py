"""Render the cluster's monitoring manifests from the one declaration in monitoring/.

``python monitoring/render.py`` writes k8s/monitoring/prometheusrule.yaml (the groups of
monitoring/alerts.yaml, as a prometheus-operator PrometheusRule) and
k8s/monitoring/grafana-dashboard.yaml (monitoring/grafana/driftloop.json in a ConfigMap that
Grafana's dashboard sidecar provisions). kustomize cannot read files outside its folder, so
these two are rendered, committed, and kept identical by tests/monitoring.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "monitoring" / "alerts.yaml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "driftloop.json"
OUT = ROOT / "k8s" / "monitoring"
HEADER = "# Rendered by `python monitoring/render.py` from {source}: edit that, then render.\n"


def prometheus_rule() -> dict:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "driftloop", "labels": {"app.kubernetes.io/name": "driftloop",
                                                         "role": "alert-rules"}},
            "spec": yaml.safe_load(ALERTS.read_text())}


def dashboard_configmap() -> dict:
    dashboard = json.loads(DASHBOARD.read_text())
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "driftloop-grafana-dashboard",
                         # kube-prometheus-stack's Grafana sidecar loads ConfigMaps so labelled.
                         "labels": {"grafana_dashboard": "1"}},
            "data": {"driftloop.json": json.dumps(dashboard, indent=2) + "\n"}}


def rendered() -> dict[Path, str]:
    dump = lambda doc: yaml.safe_dump(doc, sort_keys=False, width=100)  # noqa: E731
    return {
        OUT / "prometheusrule.yaml": HEADER.format(source="monitoring/alerts.yaml")
        + dump(prometheus_rule()),
        OUT / "grafana-dashboard.yaml": HEADER.format(source="monitoring/grafana/driftloop.json")
        + dump(dashboard_configmap()),
    }


def main() -> int:
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

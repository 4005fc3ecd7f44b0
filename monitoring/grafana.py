"""Grafana building blocks the dashboards share: the datasource, the namespace
and Ray-cluster scope every query carries, the replica -> pool join, panels,
rows and their layout (monitoring/build_dashboards.py composes them).

Kept apart from the three dashboards so each file stays one concept: how a
panel is made here, what the dashboards show there.
"""

from __future__ import annotations

import re

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
APP = 'application="longctx"'
# Every series a panel reads is narrowed to the namespace and Ray cluster
# chosen on the dashboard: on Kubernetes two releases (namespaces), or the old
# and new RayCluster of a NewCluster upgrade, would otherwise add up in one
# line. namespace is prometheus-operator's target label, ray_io_cluster the
# chart's PodMonitor copy of KubeRay's pod label ray.io/cluster. A local
# Prometheus has neither: "All" is ".*", which also matches a missing label.
SCOPE = 'namespace=~"$namespace", ray_io_cluster=~"$cluster"'
SERIES = re.compile(r"(?<![\w:])(ray_[A-Za-z0-9_]+)(\{([^}]*)\})?")

# vLLM's series name the Serve replica (ReplicaId) but not the pool: two pools
# can serve one model. Serve's per-replica gauge maps replica -> deployment
# "pool-<name>"; joining through it gives every engine figure a pool label.
# Inlined rather than using the longctx:replica_pool recording rule so the
# dashboards also work on a Prometheus without this project's rules.
POOL_MAP = (
    'group by (ReplicaId, pool) (label_replace(label_replace('
    f'ray_serve_replica_processing_queries{{{APP}, deployment=~"pool-($pool)"}}, '
    '"ReplicaId", "$1", "replica", "(.+)"), "pool", "$1", "deployment", "pool-(.+)"))'
)
ALL_POOLS_MAP = POOL_MAP.replace("pool-($pool)", "pool-.+")


def by_pool(series: str, pool_map: str = POOL_MAP) -> str:
    return f"{series} * on (ReplicaId) group_left (pool) {pool_map}"


def or_idle_zero(expr: str, pool_map: str = POOL_MAP) -> str:
    """Show 0, not "No data", for pools whose engines are idle.

    Ray's metrics agent drops a gauge that has not been set for two export
    intervals, and vLLM sets its gauges only when the engine steps: an idle
    pool's running/waiting/KV series vanish rather than read 0.
    """
    return f"({expr}) or on (pool) (0 * group by (pool) ({pool_map}))"


def quantile(q: float, bucket: str, by: str, pool_map: str | None = POOL_MAP) -> str:
    rate = f"rate({bucket}[$__rate_interval])"
    if pool_map:
        rate = by_pool(rate, pool_map)
    return f"histogram_quantile({q}, sum by ({by}, le) ({rate}))"


def scoped(expr: str) -> str:
    """Add the namespace and cluster matchers to every ray_* selector of expr."""
    def add(match: re.Match) -> str:
        matchers = match.group(3)
        return f"{match.group(1)}{{{matchers + ', ' if matchers else ''}{SCOPE}}}"

    return SERIES.sub(add, expr)


def target(expr: str, legend: str = "", ref: str = "A", **extra) -> dict:
    return {"refId": ref, "datasource": DATASOURCE, "expr": scoped(expr), "legendFormat": legend, **extra}


def quantile_targets(bucket: str, by: str, legend: str, pool_map: str | None = POOL_MAP) -> list[dict]:
    return [
        target(quantile(q, bucket, by, pool_map), f"{legend} p{int(q * 100)}", ref)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def panel(title: str, description: str, targets: list[dict], unit: str = "short",
          kind: str = "timeseries", defaults: dict | None = None, custom: dict | None = None,
          **options) -> dict:
    field_defaults = {"unit": unit, **(defaults or {})}
    if custom:
        field_defaults["custom"] = custom
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
        "options": options,
    }


def row(title: str, description: str) -> dict:
    """A row header: a full-width line that groups the panels after it."""
    return {"type": "row", "title": title, "description": description, "collapsed": False, "panels": []}


def layout(panels: list[dict], width: int = 12, height: int = 8) -> list[dict]:
    """Two panels a row (stats: four; row headers: a line of their own), ids in reading order."""
    x = y = 0
    row_height = 0
    for i, p in enumerate(panels, start=1):
        w = {"stat": 6, "row": 24}.get(p["type"], width)
        h = {"stat": 4, "row": 1}.get(p["type"], height)
        if x + w > 24 or (p["type"] == "row" and x > 0):
            x, y = 0, y + row_height
            row_height = 0
        p["id"] = i
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_height = max(row_height, h)
    return panels


def datasource_variable() -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def scope_variable(name: str, label: str, title: str, selector: str) -> dict:
    """A namespace or Ray cluster filter: All by default, and All is ".*"."""
    query = f"label_values({selector}, {label})"
    return {
        "name": name,
        "label": title,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "regex": "",
        "includeAll": True,
        "multi": True,
        # ".*" also matches a series without the label: a local Prometheus.
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
    }


def scope_variables() -> list[dict]:
    healthy = "ray_serve_deployment_replica_healthy"
    return [
        scope_variable("namespace", "namespace", "Namespace", f"{healthy}{{{APP}}}"),
        scope_variable("cluster", "ray_io_cluster", "Ray cluster",
                       f'{healthy}{{{APP}, namespace=~"$namespace"}}'),
    ]


def pool_variable() -> dict:
    query = (f'label_values(ray_serve_replica_processing_queries{{{APP}, deployment=~"pool-.+", {SCOPE}}}, '
             "deployment)")
    return {
        "name": "pool",
        "label": "Pool",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "regex": "/^pool-(.+)$/",
        "includeAll": True,
        "multi": True,
        # Panels match deployment=~"pool-($pool)": "All" must be a regex.
        "allValue": ".+",
        "current": {},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["longctx"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [{"title": "longctx", "type": "dashboards", "tags": ["longctx"], "asDropdown": True}],
        "templating": {"list": [datasource_variable(), *scope_variables(), *variables]},
        "panels": layout(panels),
    }

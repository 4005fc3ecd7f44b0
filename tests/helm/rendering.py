"""Rendering the chart with Helm's own Go engine (helm-python-sdk), for the chart tests."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="pip install helm-python-sdk (requirements.txt)")

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm"
K8S_VERSION = "1.30.0"
CI_FILES = sorted((CHART / "ci").glob("*.yaml"))
# (values, case id) of every values file: the defaults and helm/ci/*.yaml.
CASES = [pytest.param({}, "default", id="default")] + [
    pytest.param(yaml.safe_load(f.read_text()), f.stem, id=f"ci/{f.name}") for f in CI_FILES
]
# Every GPU profile in deployments/, each deployed whole and alone, as
# `helm install --set-file clusterYaml=deployments/<name>.yaml` does.
GPU_PROFILES = sorted(
    f for f in (REPO / "deployments").glob("*.yaml")
    if (yaml.safe_load(f.read_text()) or {}).get("device", "gpu") == "gpu"
)
PROFILE_CASES = [pytest.param(f.stem, id=f"deployments/{f.name}") for f in GPU_PROFILES]


def profile_values(name: str) -> dict:
    """The values of `--set-file clusterYaml=deployments/<name>.yaml` and nothing else."""
    return {"clusterYaml": (REPO / "deployments" / f"{name}.yaml").read_text()}


def load_sync_tool():
    spec = importlib.util.spec_from_file_location("helm_sync", CHART / "tools" / "sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(chart, values, name="lc", namespace="llm") -> list[dict]:
    manifests = chart.render(copy.deepcopy(values), name=name, namespace=namespace)
    docs = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = path
                docs.append(doc)
    return docs


def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def the(docs, kind):
    found = kinds(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def app_profile(app: dict):
    """The profile the Serve app runs with: its args, plus each pool's replica bounds, which
    reach Serve as deployment options (the ingress's user_config) rather than in the args
    (deployments/serve_options.py; tests/helm/test_scaling.py)."""
    from cluster.config import load_config
    from deployments.serve_options import pool_replicas_from_user_config

    cluster = load_config(app["args"]["cluster"], app["args"].get("overrides", []), env={})
    (ingress,) = [d for d in app.get("deployments", []) if d["name"] == "ingress"]
    for name, replicas in pool_replicas_from_user_config(ingress["user_config"]).items():
        cluster.pool(name).replicas = replicas
    return cluster


def without_shape_resources(profile: dict) -> dict:
    """The app's profile less the chart's one addition to each pool, its worker group's resource
    `longctx-group-<group>` (tests/helm/test_shapes.py): a pool that had no worker_resources gets none back."""
    stripped = copy.deepcopy(profile)
    default = {"GPU": 1} if stripped.get("device", "gpu") == "gpu" else {"CPU": 1}
    for pool in stripped["pools"]:
        resources = {k: v for k, v in pool.pop("worker_resources", {}).items() if not k.startswith("longctx-group-")}
        if resources != default:
            pool["worker_resources"] = resources
    return stripped

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

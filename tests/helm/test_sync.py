"""helm/tools/sync.py: the chart's generated parts (embedded profiles, values schema)."""

from __future__ import annotations

import json
import shutil

import yaml

from tests.helm.rendering import CHART, REPO, load_sync_tool


def test_chart_is_in_sync_with_the_repository():
    stale = load_sync_tool().drift()
    assert stale == [], "run `make generate`:\n" + "\n".join(stale)


def test_sync_tool_detects_and_fixes_drift(tmp_path):
    tool = load_sync_tool()
    repo, chart = tmp_path / "repo", tmp_path / "repo" / "helm"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("tools"))
    shutil.copytree(REPO / "deployments", repo / "deployments",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__", "rope", "routing"))
    assert tool.drift(repo, chart) == []
    profile = repo / "deployments" / "h100-80g.yaml"
    profile.write_text(profile.read_text().replace("max_num_seqs: 16", "max_num_seqs: 12"))
    (chart / "values.schema.json").write_text("{}\n")
    stale = tool.drift(repo, chart)
    assert any("ci/h100-80g.yaml" in s for s in stale) and any("values.schema.json" in s for s in stale)
    tool.write(repo, chart)
    assert tool.drift(repo, chart) == []
    embedded = yaml.safe_load((chart / "ci" / "h100-80g.yaml").read_text())["clusterYaml"]
    assert yaml.safe_load(embedded) == yaml.safe_load(profile.read_text())


def test_schema_is_the_hand_written_part_plus_the_profile_schema():
    tool = load_sync_tool()
    base = json.loads(tool.SCHEMA_BASE.read_text())
    schema = tool.values_schema()
    assert base.pop("$defs") == {} and "$comment" in base
    assert "$comment" not in schema and "ClusterConfig" in schema["$defs"]
    assert {k: v for k, v in schema.items() if k != "$defs"} == {k: v for k, v in base.items() if k != "$comment"}

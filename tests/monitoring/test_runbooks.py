"""Every alert's runbook_url names a runbook in docs/operations.md, and each runbook is one an SRE can follow on Kubernetes."""

from __future__ import annotations

import re
import sys

import pytest

from tests.monitoring import promql

OPERATIONS = promql.REPO / "docs" / "operations.md"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def sections() -> dict[str, str]:
    """Anchor -> the text under that heading, up to the next heading of the same or a higher level."""
    lines = OPERATIONS.read_text().splitlines()
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            found.append((i, len(match.group(1)), github_anchor(match.group(2))))
    result = {}
    for n, (i, level, anchor) in enumerate(found):
        end = next((j for j, other, _ in found[n + 1:] if other <= level), len(lines))
        result[anchor] = "\n".join(lines[i + 1:end])
    return result


def runbook_anchor(alert: dict) -> str:
    url = alert["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "docs/operations.md" and anchor, f"{alert['alert']}: {url} is not docs/operations.md#<anchor>"
    return anchor


def test_anchor_rules():
    assert github_anchor("LongctxMetricsDown") == "longctxmetricsdown"
    assert github_anchor("What to `scrape` (K8s)") == "what-to-scrape-k8s"
    assert github_anchor("Proxies and timeouts in front of the cluster") == "proxies-and-timeouts-in-front-of-the-cluster"


@pytest.mark.parametrize("alert", promql.alerts(), ids=lambda a: a["alert"])
def test_runbook_url_resolves_to_a_heading(alert):
    assert runbook_anchor(alert) in sections(), f"docs/operations.md has no heading for #{runbook_anchor(alert)}"


@pytest.mark.parametrize("alert", promql.alerts(), ids=lambda a: a["alert"])
def test_runbook_says_what_it_means_where_to_look_and_how_to_fix(alert):
    text = sections()[runbook_anchor(alert)]
    for part in ("**What it means.**", "**What to look at.**", "**How to fix.**"):
        assert part in text, f"{alert['alert']}: runbook lacks {part}"
    assert "kubectl" in text, f"{alert['alert']}: no kubectl command"
    # Inside a pod, not on a laptop: no /tmp/ray paths, Ray's CLIs only through kubectl exec.
    for line in text.splitlines():
        assert "/tmp/ray" not in line, f"{alert['alert']}: {line}"
        for command in re.findall(r"\b(?:ray|serve) status\b", line):
            assert "kubectl" in line and "exec" in line, f"{alert['alert']}: `{command}` without kubectl exec: {line}"


def test_a_missing_heading_is_caught(tmp_path, monkeypatch):
    copy = tmp_path / "operations.md"
    copy.write_text(OPERATIONS.read_text().replace("### LongctxMetricsDown\n", "### Metrics down\n"))
    monkeypatch.setattr(sys.modules[__name__], "OPERATIONS", copy)
    assert "longctxmetricsdown" not in sections()
    assert "metrics-down" in sections()


def test_every_alert_of_the_table_has_its_runbook():
    names = {alert["alert"] for alert in promql.alerts()}
    runbooks = sections()["runbooks"]
    assert {m.lower() for m in re.findall(r"^### (\w+)$", runbooks, re.MULTILINE)} == {n.lower() for n in names}

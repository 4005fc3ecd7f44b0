"""Read the PromQL out of the chart's monitoring files: dashboard targets, variables and rules.

Shared by the static tests (tests/monitoring) and the real-Prometheus test
(tests/e2e/test_prometheus.py), so both judge exactly the same expressions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# Local tooling: the dashboard builder, Prometheus config, promtool unit tests.
MONITORING = REPO / "monitoring"
RULE_TESTS = MONITORING / "tests"
# Dashboards and rules live in the chart, their only home.
DASHBOARDS = REPO / "helm" / "monitoring" / "dashboards"
RULES = REPO / "helm" / "monitoring" / "rules"

# What Grafana would put in place of its variables. "$pool", "$namespace" and
# "$cluster" take their variable's "All" value (a regex): see its allValue.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "15m",
    "$pool": ".+",
    "$namespace": ".*",
    "$cluster": ".*",
}

COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)")
SET_OPERATOR = re.compile(r"\b(and|or|unless)\b")
# Vector matching that follows a binary operator: `> on (pool) group_left () x`.
MATCHING_PREFIX = re.compile(
    r"^\s*(bool\s+)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?"
)
NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
METRIC_NAME = re.compile(r"\b(ray_[A-Za-z0-9_]+|longctx[A-Za-z0-9_]*:[A-Za-z0-9_:]+|up)\b(?!\s*\()")


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard title / panel title / refId" or "rule NAME"
    expr: str


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def substitute(expr: str) -> str:
    # Longest names first: "$__range" must not eat into "$__rate_interval".
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def dashboard_expressions() -> list[Expression]:
    found = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append(Expression(f"{board['title']} / {panel['title']} / {target['refId']}",
                                        substitute(target["expr"])))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                # label_values(<selector>, <label>) is Grafana's, not PromQL: check its selector.
                match = re.match(r"label_values\((.*),\s*\w+\)$", variable["definition"])
                assert match, f"{name}: variable {variable['name']} is not label_values(selector, label)"
                found.append(Expression(f"{board['title']} / variable {variable['name']}",
                                        substitute(match.group(1))))
    return found


def rule_groups() -> list[dict]:
    groups = []
    for path in sorted(RULES.glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def rule_expressions() -> list[Expression]:
    return [Expression(f"rule {rule.get('alert') or rule['record']}", rule["expr"].strip()) for rule in rules()]


def _top_level_split(expr: str, pattern: re.Pattern) -> list[str]:
    """Split on operators outside (), {}, [] and quotes."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            match = pattern.match(expr, i)
            # "=~" and "!~" only occur inside braces, so never at depth 0.
            if match:
                parts.append(expr[start:i])
                start = i = match.end()
                continue
        i += 1
    parts.append(expr[start:])
    return parts


def without_thresholds(expr: str) -> list[str]:
    """The vector operands of an alert condition, comparisons and set operators removed.

    `A > 0.9` gives [A]; `(A / B) > 0.2 and C > 10` gives [(A / B), C];
    `A > on (pool) group_left () (T or D)` gives [A, (T or D)]. An alert's
    condition is empty while all is well; its operands should not be.
    """
    operands = []
    for part in _top_level_split(expr, SET_OPERATOR):
        for operand in _top_level_split(part, COMPARISON):
            operand = MATCHING_PREFIX.sub("", operand, count=1).strip()
            if operand and not NUMBER.match(operand):
                operands.append(operand)
    return operands


# Where label names stand: inside a selector's braces, and in the label lists
# of aggregations and vector matching (ray_io_cluster is a label, not a series).
LABEL_PLACES = re.compile(r"\{[^}]*\}|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """Series names an expression reads (project-wide naming: ray_*, recording rules, up)."""
    return set(METRIC_NAME.findall(LABEL_PLACES.sub(" ", expr)))

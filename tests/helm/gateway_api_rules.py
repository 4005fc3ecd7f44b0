"""The Gateway API's CEL rules for an HTTPRoute, ported by hand for the chart tests.

The HTTPRoute CRD (v1.6.1, tests/helm/gateway_api_httproute_v1.6.1.schema.json) carries its
cross-field rules as CEL (``x-kubernetes-validations``), which the API server runs after the
OpenAPI schema and which jsonschema cannot. Each rule on a field the chart renders is one
function here, named in RULES by the rule's own message (tests/helm/test_gateway_api.py checks
every message of the vendored schema is either ported or on a field the chart never writes).
Rules run as the API server runs them: on the object with the schema's defaults applied
(a parentRef's group and kind, a backendRef's group and kind).
"""

from __future__ import annotations

import re
from typing import Callable

# GEP-2257 durations (the schema's pattern): up to four <1-5 digits><unit> parts.
_DURATION_PART = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")


def duration_ms(value: str) -> int:
    """CEL's duration() of a Gateway API Duration, in milliseconds."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a Gateway API duration: {value!r}")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def _parent(ref: dict) -> tuple:
    return (ref.get("group", "gateway.networking.k8s.io"), ref.get("kind", "Gateway"), ref["name"],
            ref.get("namespace") or "")


# --- spec.parentRefs -----------------------------------------------------------------


def section_names_when_shared(route: dict) -> bool:
    """Two refs to one parent either both name a section or neither does."""
    refs = route["spec"].get("parentRefs", [])
    return all(bool(a.get("sectionName")) == bool(b.get("sectionName"))
               for a in refs for b in refs if _parent(a) == _parent(b))


def section_names_unique(route: dict) -> bool:
    """Each (parent, sectionName) once."""
    keys = [(_parent(r), r.get("sectionName") or "") for r in route["spec"].get("parentRefs", [])]
    return len(keys) == len(set(keys))


# --- spec.rules ----------------------------------------------------------------------


def _rules(route: dict) -> list[dict]:
    return route["spec"].get("rules", [])


def total_matches(route: dict) -> bool:
    return sum(len(rule.get("matches", [])) for rule in _rules(route)) <= 128


def service_backends_have_ports(route: dict) -> bool:
    return all(ref.get("port") is not None for rule in _rules(route) for ref in rule.get("backendRefs", [])
               if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service")


def backend_timeout_within_request(route: dict) -> bool:
    for rule in _rules(route):
        timeouts = rule.get("timeouts") or {}
        if "request" in timeouts and "backendRequest" in timeouts and duration_ms(timeouts["request"]) != 0 \
                and duration_ms(timeouts["backendRequest"]) > duration_ms(timeouts["request"]):
            return False
    return True


def _prefix_paths(route: dict) -> list[str]:
    return [match["path"].get("value", "/") for rule in _rules(route) for match in rule.get("matches", [])
            if "path" in match and match["path"].get("type", "PathPrefix") in ("Exact", "PathPrefix")]


def _every_path(check: Callable[[str], bool]) -> Callable[[dict], bool]:
    return lambda route: all(check(path) for path in _prefix_paths(route))


def _path_types(route: dict) -> bool:
    return all(match["path"].get("type", "PathPrefix") in ("Exact", "PathPrefix", "RegularExpression")
               for rule in _rules(route) for match in rule.get("matches", []) if "path" in match)


WHEN = "when type one of ['Exact', 'PathPrefix']"
# The rule's message in the CRD -> its port.
RULES: dict[str, Callable[[dict], bool]] = {
    "sectionName must be specified when parentRefs includes 2 or more references to the same parent":
        section_names_when_shared,
    "sectionName must be unique when parentRefs includes 2 or more references to the same parent":
        section_names_unique,
    "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in "
    "a route must be less than 128": total_matches,
    "Must have port for Service reference": service_backends_have_ports,
    "backendRequest timeout cannot be longer than request timeout": backend_timeout_within_request,
    f"value must be an absolute path and start with '/' {WHEN}": _every_path(lambda p: p.startswith("/")),
    f"must not contain '//' {WHEN}": _every_path(lambda p: "//" not in p),
    f"must not contain '/./' {WHEN}": _every_path(lambda p: "/./" not in p),
    f"must not contain '/../' {WHEN}": _every_path(lambda p: "/../" not in p),
    f"must not contain '%2f' {WHEN}": _every_path(lambda p: "%2f" not in p),
    f"must not contain '%2F' {WHEN}": _every_path(lambda p: "%2F" not in p),
    f"must not contain '#' {WHEN}": _every_path(lambda p: "#" not in p),
    f"must not end with '/..' {WHEN}": _every_path(lambda p: not p.endswith("/..")),
    f"must not end with '/.' {WHEN}": _every_path(lambda p: not p.endswith("/.")),
    "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']": _path_types,
    "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) "
    "for types ['Exact', 'PathPrefix']": _every_path(lambda p: bool(_PATH_CHARS.match(p))),
}
# Fields the chart never renders (filters: redirects, rewrites, mirrors, CORS). The rules on them,
# and those on a rule that hold whenever it has no filters (a redirect beside backendRefs, a
# prefix rewrite with one PathPrefix match), are not ported: the test checks the rendered route
# has none of these fields.
UNRENDERED_FIELDS = ("filters",)


def violations(route: dict) -> list[str]:
    """The messages of every ported rule the route breaks; empty when the API server would admit it."""
    return [message for message, rule in RULES.items() if not rule(route)]

"""Kubernetes' name, label and version checks, as KubeRay calls them.

A port of the few k8s.io/apimachinery helpers that KubeRay v1.7.0's
validation.go uses (util/validation: IsDNS1035Label, IsDNS1123Label,
IsQualifiedName, IsValidLabelValue; util/version: ParseGeneric), and of Go's
time.ParseDuration, for tests/helm/kuberay_validation.py. Each returns a list
of problems, empty when the value is valid, as the Go functions do.
"""

from __future__ import annotations

import re

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# util/version's versionMatchRE: leading v, dot-separated numbers, anything after.
_GENERIC_VERSION = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)*)(.*)$")
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_GO_DURATION_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
LABEL_MAX = 63


def dns1035_label(value: str) -> list[str]:
    """validation.IsDNS1035Label: a lowercase RFC 1035 label, at most 63 characters."""
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(f"must be no more than {LABEL_MAX} characters")
    if not _DNS1035.match(value):
        errs.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                    "start with an alphabetic character, and end with an alphanumeric character")
    return errs


def dns1123_label(value: str) -> list[str]:
    """validation.IsDNS1123Label: a lowercase RFC 1123 label, at most 63 characters."""
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(f"must be no more than {LABEL_MAX} characters")
    if not _DNS1123_LABEL.match(value):
        errs.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                    "or '-', and must start and end with an alphanumeric character")
    return errs


def qualified_name(value: str) -> list[str]:
    """validation.IsQualifiedName: an optional DNS subdomain prefix and '/', then a name."""
    prefix, sep, name = value.rpartition("/")
    errs = []
    if sep:
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            errs.append("prefix part must be a lowercase RFC 1123 subdomain")
        if "/" in prefix:
            errs.append("a qualified name has at most one '/'")
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > LABEL_MAX:
        errs.append(f"name part must be no more than {LABEL_MAX} characters")
    elif not _QUALIFIED_NAME.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                    "start and end with an alphanumeric character")
    return errs


def label_value(value: str) -> list[str]:
    """validation.IsValidLabelValue: empty, or at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends."""
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(f"must be no more than {LABEL_MAX} characters")
    if not _LABEL_VALUE.match(value):
        errs.append("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
    return errs


def generic_version(value: str) -> tuple[int, ...]:
    """version.ParseGeneric: at least two dot-separated numbers; what follows them is ignored.

    Raises ValueError where Go returns an error.
    """
    match = _GENERIC_VERSION.match(value)
    if not match:
        raise ValueError(f"could not parse {value!r} as version")
    parts = tuple(int(p) for p in match.group(1).split("."))
    if len(parts) < 2:
        raise ValueError(f"illegal version string {value!r}")
    return parts


def go_duration_seconds(value: str) -> float:
    """time.ParseDuration (e.g. "90s", "1h30m"), in seconds; ValueError where Go errs."""
    if value in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.match(value):
        raise ValueError(f"invalid duration {value!r}")
    sign = -1.0 if value.startswith("-") else 1.0
    total = sum(float(num) * _GO_DURATION_UNIT_S[unit]
                for num, _, unit in re.findall(r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", value))
    return sign * total

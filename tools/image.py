"""The project's container image: its name, and the Dockerfile's install steps.

  python3 tools/image.py ref                       the image reference
  python tools/image.py pins CONSTRAINTS SNAPSHOT  (in the Dockerfile) pins for pip
  python tools/image.py verify SNAPSHOT            (in the Dockerfile) the base is intact

``ref`` prints ``<image.repository>:<tag>`` exactly as the chart's
``longctx.image`` helper renders it: ``image.tag`` from helm/values.yaml, or
the chart's appVersion when that is empty. The chart is the one place the name
is kept; ``make image`` tags the build with this, and tests/image checks
that the rendered chart agrees.

``pins`` and ``verify`` run inside the build, on the base image's Python.
``pins`` writes the base image's installed distributions (``name==version``)
to SNAPSHOT and prints pip constraints: every installed distribution at its
installed version, then the lines of CONSTRAINTS (constraints-gpu.txt) for
what the base lacks. pip therefore keeps everything the base has and takes
only missing packages, at the project's pinned versions. It fails when the
base's Ray or vLLM is not the pinned one. ``verify`` fails if any distribution
in SNAPSHOT changed version or vanished, or if the project's vLLM plugin entry
point is missing; then it imports the plugin and the Serve app.

Standard library only (plus ``packaging`` in the image), so ``ref`` runs
with any python3 and before any venv exists.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm"
# Distributions that define the pin set: the base must have exactly these.
CORE = ("ray", "vllm")
PLUGIN_GROUP, PLUGIN_NAME = "vllm.general_plugins", "internlm_rope"
APP_MODULE = "deployments.app"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _scalar(value: str) -> str:
    """A YAML plain or quoted scalar on one line, without a trailing comment."""
    value = value.strip()
    if value[:1] in ("'", '"'):
        return value[1:value.index(value[0], 1)]
    return value.split(" #", 1)[0].strip()


def image_ref(chart: Path = CHART) -> str:
    """``repository:tag`` as the chart renders it by default."""
    app_version = None
    for line in (chart / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            app_version = _scalar(line.partition(":")[2])
    image: dict[str, str] = {}
    in_image = False
    for line in (chart / "values.yaml").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            in_image = line.rstrip() == "image:"
            continue
        if in_image and re.match(r"^  [a-zA-Z]", line):
            key, _, value = line.strip().partition(":")
            image[key] = _scalar(value)
    if not image.get("repository") or not (image.get("tag") or app_version):
        raise SystemExit(f"{chart}: no image.repository, or neither image.tag nor appVersion")
    return f"{image['repository']}:{image.get('tag') or app_version}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Canonical name -> version of each distribution Python would import."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def pinned(constraints: Path) -> dict[str, list[str]]:
    """Canonical name -> its requirement lines in a constraints file (one per marker set)."""
    lines: dict[str, list[str]] = {}
    for raw in constraints.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip().rstrip("\\").strip()
        match = _NAME.match(line)
        if line and not line.startswith(("#", "-")) and match:
            lines.setdefault(canonical(match.group(1)), []).append(line)
    return lines


def _applies(line: str) -> bool:
    from packaging.requirements import Requirement

    marker = Requirement(line).marker
    return marker is None or marker.evaluate()


def _pinned_version(lines: list[str]) -> str | None:
    """The ``==`` version of the line that applies to this Python, if any."""
    from packaging.requirements import Requirement

    for line in lines:
        if _applies(line):
            for spec in Requirement(line).specifier:
                if spec.operator in ("==", "==="):
                    return spec.version
    return None


def _same(installed_version: str, pinned_version: str | None) -> bool:
    """Equal public versions (``2.13.0+cu130`` is the pin ``2.13.0``)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(installed_version).public == Version(pinned_version).public
    except InvalidVersion:
        return installed_version == pinned_version


def cmd_pins(args) -> int:
    from packaging.version import InvalidVersion, Version

    base = installed()
    wanted = pinned(Path(args.constraints))
    # The image is only meaningful if the base is the pin set's Ray and vLLM.
    wrong = []
    for name in CORE:
        want = _pinned_version(wanted.get(name, []))
        if name not in base or want is None or not _same(base[name], want):
            wrong.append(f"{name}: base has {base.get(name, 'nothing')}, {args.constraints} pins {want}")
    if wrong:
        raise SystemExit("the base image does not match the pin set:\n  " + "\n  ".join(wrong))
    Path(args.snapshot).write_text("".join(f"{n}=={v}\n" for n, v in sorted(base.items())))
    out = ["# The base image, as installed: pip must not change any of it."]
    for name, version in sorted(base.items()):
        try:
            Version(version)
        except InvalidVersion:
            continue  # pip cannot express it; `verify` still checks it
        out.append(f"{name}=={version}")
    out.append(f"# From {args.constraints}: what the base lacks.")
    out += [line for name, lines in sorted(wanted.items()) if name not in base for line in lines]
    differs = []
    for name in sorted(set(wanted) & set(base)):
        want = _pinned_version(wanted[name])
        if want is not None and not _same(base[name], want):
            differs.append(f"{name} {base[name]} (pin set: {want})")
    if differs:
        print("kept the base image's versions of: " + ", ".join(differs), file=sys.stderr)
    print("\n".join(out))
    return 0


def cmd_verify(args) -> int:
    base = dict(line.split("==", 1) for line in Path(args.snapshot).read_text().splitlines())
    now = installed()
    problems = [
        f"{name}: {version} in the base image, {now.get(name, 'removed')} now"
        for name, version in base.items()
        if now.get(name) != version
    ]
    # vLLM's engine subprocesses find the RoPE fix only through this entry point.
    plugins = metadata.entry_points(group=PLUGIN_GROUP)
    if PLUGIN_NAME not in plugins.names:
        problems.append(f"entry point {PLUGIN_GROUP}:{PLUGIN_NAME} is not installed")
    if problems:
        raise SystemExit("the image is wrong:\n  " + "\n  ".join(problems))
    plugins[PLUGIN_NAME].load()
    importlib.import_module(APP_MODULE)  # RayService's import_path: fail the build, not a pod
    added = sorted(set(now) - set(base))
    print("added to the base image: " + ", ".join(f"{n}=={now[n]}" for n in added))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ref", help="print the image reference the chart deploys by default")
    pins = sub.add_parser("pins", help="pip constraints that keep the base image as it is")
    pins.add_argument("constraints", help="the pin set, e.g. constraints-gpu.txt")
    pins.add_argument("snapshot", help="where to write the base image's name==version list")
    verify = sub.add_parser("verify", help="fail if the base image's packages changed")
    verify.add_argument("snapshot")
    args = parser.parse_args(argv)
    if args.command == "ref":
        print(image_ref())
        return 0
    return {"pins": cmd_pins, "verify": cmd_verify}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

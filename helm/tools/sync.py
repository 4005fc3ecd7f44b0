"""Keep the chart's generated parts in step with the repository.

  python helm/tools/sync.py            write them
  python helm/tools/sync.py --check    exit 1 and list what is stale

Two things are generated rather than hand-kept, because each has a single
source elsewhere in the repository (``make generate`` runs this, ``make check``
runs ``--check``):

* the profiles embedded in ``values.yaml`` (``cluster:``, from
  deployments/a100-80g.yaml) and ``ci/*.yaml`` (``clusterYaml: |``, from the
  profile of the same name): the text after the marker line is the profile;
* ``helm/values.schema.json``: the hand-written ``tools/values.schema.base.json``
  with ``$defs`` filled from ``cluster.config.ClusterConfig``, so the
  ``cluster`` value is validated with the profile schema and ``helm install``
  rejects a profile typo before any pod starts.

The dashboards and rules under ``helm/monitoring/`` are not copies: that is
their only home (Helm's ``.Files`` reads only inside the chart), written by
``monitoring/build_dashboards.py`` and by hand respectively.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[1]
REPO = CHART.parent
# The hand-written part of values.schema.json (tools/ never ships in the chart).
SCHEMA_BASE = Path(__file__).with_name("values.schema.base.json")
# file in the chart -> (profile, marker line after which the profile is embedded)
EMBEDDED_PROFILES = {
    "values.yaml": ("a100-80g", "cluster:\n"),
    "ci/h100-80g.yaml": ("h100-80g", "clusterYaml: |\n"),
    "ci/h200-141g.yaml": ("h200-141g", "clusterYaml: |\n"),
}
# values.yaml continues after its embedded profile; ci files end with it.
_EMBED_END = "\n# Whole profile as YAML text"


def embed_profile(text: str, profile_text: str, marker: str) -> str:
    """``text`` with the block after ``marker`` replaced by ``profile_text`` indented by 2."""
    head, sep, rest = text.partition(marker)
    if not sep:
        raise ValueError(f"marker {marker!r} not found")
    end = rest.find(_EMBED_END)
    tail = rest[end:] if end >= 0 else ""
    if marker.startswith("cluster:"):
        # A map under `cluster:`: the profile body without its header comment.
        profile_text = profile_text[profile_text.index("device:"):]
    body = "".join(("  " + line if line.strip() else line) for line in profile_text.splitlines(True))
    if tail and not body.endswith("\n"):
        body += "\n"
    return head + sep + body.rstrip("\n") + "\n" + (tail if tail else "")


def values_schema() -> dict:
    """The chart's values schema: the hand-written part, with ``$defs`` from ClusterConfig."""
    from cluster.config import ClusterConfig

    schema = json.loads(SCHEMA_BASE.read_text())
    if schema.pop("$defs", None) != {}:
        raise ValueError(f"{SCHEMA_BASE.name}: `$defs` must be an empty placeholder; it is generated")
    schema.pop("$comment", None)
    cluster = ClusterConfig.model_json_schema(ref_template="#/$defs/{model}")
    defs = cluster.pop("$defs")
    defs["ClusterConfig"] = cluster
    # $defs keeps its place in the file: after `type`, before `properties`.
    ordered: dict = {}
    for key, value in schema.items():
        if key == "properties":
            ordered["$defs"] = defs
        ordered[key] = value
    return ordered


def render_schema() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=False) + "\n"


def drift(repo: Path = REPO, chart: Path = CHART) -> list[str]:
    """What is stale; empty when the chart is in step."""
    stale = []
    for name, (profile, marker) in EMBEDDED_PROFILES.items():
        path = chart / name
        source = repo / "deployments" / f"{profile}.yaml"
        if path.read_text() != embed_profile(path.read_text(), source.read_text(), marker):
            stale.append(f"{name}: embedded profile differs from deployments/{profile}.yaml")
    schema = chart / "values.schema.json"
    if not schema.is_file() or schema.read_text() != render_schema():
        stale.append(f"values.schema.json differs from tools/{SCHEMA_BASE.name} + cluster.config.ClusterConfig")
    return stale


def write(repo: Path = REPO, chart: Path = CHART) -> None:
    for name, (profile, marker) in EMBEDDED_PROFILES.items():
        path = chart / name
        source = repo / "deployments" / f"{profile}.yaml"
        path.write_text(embed_profile(path.read_text(), source.read_text(), marker))
    (chart / "values.schema.json").write_text(render_schema())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift()
        for line in stale:
            print(f"stale: {line}", file=sys.stderr)
        if stale:
            print("run: make generate", file=sys.stderr)
        return 1 if stale else 0
    write()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())

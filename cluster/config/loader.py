"""Loading a profile: YAML, ${ENV} references, relative paths and ``key=value`` overrides."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from cluster.config.cluster import ClusterConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# The profiles that ship with the package (deployments/*.yaml).
BUNDLED_PROFILES = Path(__file__).resolve().parents[2] / "deployments"


def _expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in strings, so profiles can name
    user-supplied weight directories without editing the file."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, env) for v in value]
    return value


def _resolve_relative_paths(raw: dict, base: Path) -> None:
    """Paths starting ./ or ../ are relative to the profile file, not to the
    working directory of whichever process (a Ray worker) reads them."""

    def resolve(node, key):
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value.startswith(("./", "../")):
            node[key] = str((base / value).resolve())

    for model in (raw.get("models") or {}).values():
        resolve(model, "path")
        resolve(model, "tokenizer")
        resolve(model, "thinking_system_prompt_file")
    resolve(((raw.get("documents") or {}).get("store") or {}), "data_dir")


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``dotted.path=value`` override; pools are addressed by name.

    ``pools.il25-short.replicas.max=4`` or ``models.m.default_max_tokens=64``.
    The value is parsed as YAML, so numbers, booleans and lists work.
    """
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} is not of the form key.path=value")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            matches = [item for item in node if isinstance(item, dict) and item.get("name") == part]
            if not matches:
                raise ValueError(f"override {key!r}: no entry named {part!r}")
            node = matches[0]
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(text)


def load_config(
    source: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ClusterConfig:
    """Load a profile from a YAML path or an already-parsed mapping.

    Overrides come from ``overrides`` and then from ``LONGCTX_SET`` in the
    environment (``;``-separated ``key=value`` assignments).
    """
    env = os.environ if env is None else env
    if isinstance(source, Mapping):
        raw = json.loads(json.dumps(source))
        base = Path.cwd()
    else:
        path = Path(source)
        raw = yaml.safe_load(path.read_text()) or {}
        base = path.resolve().parent
    raw = _expand_env(raw, env)
    _resolve_relative_paths(raw, base)
    env_overrides = [s for s in env.get("LONGCTX_SET", "").split(";") if s.strip()]
    for assignment in [*overrides, *env_overrides]:
        apply_override(raw, assignment)
    return ClusterConfig.model_validate(raw)


def profile_path(name_or_path: str) -> Path:
    """Resolve a profile name (``cpu-demo``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    bundled = BUNDLED_PROFILES / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    raise FileNotFoundError(f"no profile {name_or_path!r} (looked for {candidate} and {bundled})")

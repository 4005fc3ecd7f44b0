"""A GPU stage's JSON record, rewritten after every measurement: a stage cut off by the machine's limit keeps it."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path


class StageLog:
    """One stage's JSON, rewritten after every measurement."""

    def __init__(self, results: Path, stage: str, command: str):
        results.mkdir(parents=True, exist_ok=True)
        self.path = results / f"{stage}.json"
        self.data: dict = {"stage": stage, "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "versions": versions()}

    def rename(self, name: str) -> None:
        """Write to ``RESULTS/<name>.json`` instead: a stage run in parts (e.g. one command per prompt length)."""
        self.path = self.path.with_name(f"{name}.json")

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.flush()

    def append(self, key: str, value) -> None:
        self.data.setdefault(key, []).append(value)
        self.flush()

    def flush(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def versions() -> dict:
    """The Python, Ray, vLLM, torch and transformers versions and the GPU a stage ran on."""
    out = {"python": platform.python_version()}
    for name in ("ray", "vllm", "torch", "transformers"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            out[name] = f"unavailable: {type(exc).__name__}"
    try:
        import torch

        out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        out["gpu_count"] = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        out["gpu"] = "unknown"
    return out

"""What the GPU validation stages share: stage logs, checkpoints, the local cluster, HTTP timing."""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path

MODEL = "internlm2_5-7b-chat-1m"
FULL_CHECKPOINT = "internlm2_5-7b-chat-1m-random"
REDUCED_LAYERS = 4
# Token ids the offline tokenizer defines, past its special tokens.
ID_RANGE = (16, 8000)


def progress(msg: str) -> None:
    print(f"[validate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class StageLog:
    """One stage's JSON, rewritten after every measurement."""

    def __init__(self, results: Path, stage: str, command: str):
        results.mkdir(parents=True, exist_ok=True)
        self.path = results / f"{stage}.json"
        self.data: dict = {"stage": stage, "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "versions": versions()}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.flush()

    def append(self, key: str, value) -> None:
        self.data.setdefault(key, []).append(value)
        self.flush()

    def flush(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def versions() -> dict:
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


def random_ids(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(*ID_RANGE) for _ in range(n)]


def rotary_in_model(model) -> dict:
    """The first rotary embedding of a loaded vLLM model: its class and cos/sin cache rows.

    Runs inside the engine's worker (``LLM.apply_model``): which class a
    config override or plugin really gave the engine, and how many positions
    its cache covers, is what the stock stage's diagnosis rests on.
    """
    for module in model.modules():
        cache = getattr(module, "cos_sin_cache", None)
        if cache is not None:
            return {"class": type(module).__name__, "cache_rows": int(cache.shape[0]),
                    "base": float(getattr(module, "ntk_base", getattr(module, "base", 0.0)))}
    return {"class": None}


# --- checkpoints ------------------------------------------------------------------------


def ensure_checkpoints(models: Path, *, model: str = MODEL, reduced: bool = True, full: bool = True) -> dict:
    from cluster.real_size import build_real_size

    out = {}
    if os.environ.get("VALIDATE_SKIP_CHECKPOINTS"):  # CPU dry runs of this script
        return out
    for layers, wanted in ((REDUCED_LAYERS, reduced), (None, full)):
        if not wanted:
            continue
        started = time.perf_counter()
        path = build_real_size(model, models, layers=layers)
        out[path.name] = round(time.perf_counter() - started, 1)
        progress(f"checkpoint {path} ready in {out[path.name]} s")
    return out


def use_full_checkpoint(models: Path, model: str = MODEL) -> dict:
    """Build the model's full-depth checkpoint and point its profiles at it."""
    from benchmarks.gpu.validated import VALIDATED_MODELS
    from cluster.real_size import spec_for

    os.environ[VALIDATED_MODELS[model].checkpoint_env] = str(models / spec_for(model).name)
    return ensure_checkpoints(models, model=model, reduced=False)


# --- the cluster ------------------------------------------------------------------------


def replica_restarts() -> dict:
    """Dead Serve replica actors per deployment in the connected Ray cluster: a restart leaves one behind."""
    # The GCS actor table (a developer API): the state API needs the
    # dashboard, which the cluster does not start.
    from ray._private.state import actors

    dead = actors(actor_state_name="DEAD").values()
    counts: dict[str, int] = {}
    for actor in dead:
        name = actor.get("Name") or ""
        if name.startswith("SERVE_REPLICA::"):  # SERVE_REPLICA::<app>#<deployment>#<id>
            deployment = name.split("::")[1].split("#")[1]
            counts[deployment] = counts.get(deployment, 0) + 1
    return counts


class LocalCluster:
    """The real stack (Ray, Serve, pools, ingress) for one profile, in this process."""

    def __init__(self, profile: Path, overrides: list[str] | None = None):
        from benchmarks.common.ports import free_loopback_port

        self.port = free_loopback_port()
        self.profile = profile
        self.overrides = [f"ingress.port={self.port}", *(overrides or [])]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LocalCluster":
        from cluster.cli import start_cluster
        from benchmarks.common.ports import free_loopback_port
        from cluster.config import load_config

        self.config = load_config(self.profile, self.overrides)
        progress(f"starting {self.profile.name} ...")
        started = time.perf_counter()
        self.metrics_port = free_loopback_port()
        start_cluster(self.config, str(self.profile), self.overrides, address=None,
                      metrics_port=self.metrics_port)
        self.startup_s = time.perf_counter() - started
        progress(f"cluster up in {self.startup_s:.0f} s")
        return self

    def replica_restarts(self) -> dict:
        return replica_restarts()

    def __exit__(self, *exc) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        progress("cluster stopped")


class DirectPool:
    """Completions straight to a pool deployment's Serve handle, from the driver: the engine-only baseline.

    The handle lives on one event loop of our own, created with it: with
    ``RAY_SERVE_THROUGHPUT_OPTIMIZED`` Serve runs a handle's router on the
    loop that created it (not a separate one), so a handle made outside a loop
    and driven by ``asyncio.run`` per call would fail; one loop also keeps the
    loop's set-up out of the timed calls.
    """

    def __init__(self, deployment: str, app_name: str, model: str):
        import asyncio

        self.model = model
        self._loop = asyncio.new_event_loop()

        async def make():
            from ray import serve

            return serve.get_deployment_handle(deployment, app_name=app_name).options(stream=True)

        self._handle = self._loop.run_until_complete(make())

    def complete(self, ids: list[int], max_tokens: int = 1) -> float:
        """One request; seconds until its stream ended."""
        from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest

        async def once():
            request = CompletionRequest(model=self.model, prompt=ids, max_tokens=max_tokens, add_special_tokens=False)
            async for _ in self._handle.completions.remote(request, None):
                pass

        started = time.perf_counter()
        self._loop.run_until_complete(once())
        return time.perf_counter() - started

    def close(self) -> None:
        """Shut the handle's router down on its loop. The loop stays open:
        ``serve.shutdown()`` later shuts cached handles down again, scheduling
        on this loop, which must then still exist."""
        self._loop.run_until_complete(self._handle.shutdown_async())


def stream_completion(client, body: dict) -> dict:
    """POST a streaming completion; time to the first token and the headers."""
    started = time.perf_counter()
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "error": response.read().decode()[:500]}
        ttft = None
        for line in response.iter_lines():
            if ttft is None and line.startswith("data: {") and '"text"' in line:
                ttft = time.perf_counter() - started
        return {
            "status": 200, "ttft_s": ttft, "total_s": time.perf_counter() - started,
            "pool": response.headers.get("x-pool"), "replica": response.headers.get("x-replica"),
            "prompt_tokens": int(response.headers.get("x-prompt-tokens", 0)),
            "server_timing": response.headers.get("server-timing"),
        }


def server_timing_ms(header: str | None) -> dict[str, float]:
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if "dur=" in rest:
            out[name] = float(rest.split("dur=")[1])
    return out




def stage_parser(doc: str | None, stages: dict):
    """The arguments every stage script takes: the stage, its results folder, the checkpoints."""
    import argparse  # only the stage scripts need it

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=list(stages))
    parser.add_argument("--results", type=Path, required=True, help="folder of the stage JSONs")
    parser.add_argument("--models", type=Path, default=Path("/root/models"), help="checkpoint folder")
    return parser


def run_stage(stages: dict, args, script: str, argv: list[str] | None, log_prefix: str = "") -> int:
    """Run ``args.stage`` of a stage script; every stage but ``summary`` gets a StageLog."""
    command = f"python {script} " + " ".join(argv if argv is not None else sys.argv[1:])
    log = None if args.stage == "summary" else StageLog(args.results, f"{log_prefix}{args.stage}", command)
    stages[args.stage](args, log)
    return 0

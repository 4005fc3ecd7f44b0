"""Command line: `python -m cluster <command>`.

  build-demo            write the tiny demo checkpoints (idempotent)
  build-real-size MODEL random checkpoint with the real dimensions (GPU validation)
  validate PROFILE      load and validate a profile, print its pools
  run PROFILE           start Ray (or join one) and serve the profile
  plan PROFILE          capacity plan: does each pool fit its GPUs?
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from cluster.config import ClusterConfig, load_config, profile_path
from cluster.demo import build_all
from cluster.planner import add_plan_parser

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = REPO / "build" / "models"
APP_NAME = "longctx"


def _load(profile: str, overrides: list[str]) -> ClusterConfig:
    try:
        return load_config(profile_path(profile), overrides)
    except ValidationError as exc:
        raise SystemExit(f"profile {profile} is invalid:\n{exc}") from None
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"profile {profile}: {exc}") from None


def pool_table(cluster: ClusterConfig) -> str:
    header = f"{'pool':<14} {'model':<26} {'band':>22} {'tp':>3} {'max_model_len':>13} {'replicas':>9}"
    lines = [header, "-" * len(header)]
    for pool in cluster.pools:
        band = f"[{pool.min_tokens}, {pool.max_tokens}]"
        replicas = f"{pool.replicas.min}-{pool.replicas.max}"
        lines.append(
            f"{pool.name:<14} {pool.model:<26} {band:>22} {pool.engine.tensor_parallel_size:>3} "
            f"{pool.engine.max_model_len:>13} {replicas:>9}"
        )
    return "\n".join(lines)


def cmd_build_demo(args) -> int:
    build_all(Path(args.out), force=args.force)
    return 0


def cmd_build_real_size(args) -> int:
    from cluster.real_size import build_real_size

    print(build_real_size(args.model, Path(args.out), layers=args.layers))
    return 0


def cmd_validate(args) -> int:
    cluster = _load(args.profile, args.set)
    print(pool_table(cluster))
    return 0


def ray_logical_cpus(cluster: ClusterConfig) -> int | None:
    """Logical CPUs for a local Ray on a CPU profile.

    Every engine replica and TP worker takes a CPU bundle; on a 2-core box the
    placement groups would never fit, so advertise more logical CPUs than
    cores (the engines share the cores; vLLM pins its threads itself).
    """
    if cluster.device != "cpu":
        return None
    bundles = sum(p.engine.tensor_parallel_size + 1 for p in cluster.pools for _ in range(p.replicas.max))
    return max(bundles + cluster.ingress.replicas + 4, os.cpu_count() or 1)


DEFAULT_METRICS_PORT = 8080


def start_cluster(
    cluster: ClusterConfig,
    profile: str,
    overrides: list[str],
    address: str | None,
    metrics_port: int = DEFAULT_METRICS_PORT,
):
    """Start (or join) Ray and deploy the app; returns when it is healthy.

    A local Ray exports every metric (ray_serve_*, ray_vllm_*, ray_longctx_*)
    in Prometheus format on 127.0.0.1:metrics_port/metrics.
    """
    # Imported here, not with the module: Ray and the app (which loads vLLM)
    # take seconds, and validate / plan / build-demo need neither.
    import ray
    from ray import serve

    from deployments.app import build_app

    if address:
        ray.init(address=address)
    else:
        ray.init(
            num_cpus=ray_logical_cpus(cluster),
            include_dashboard=False,
            _metrics_export_port=metrics_port,
        )
    serve.start(http_options={"host": cluster.ingress.host, "port": cluster.ingress.port})
    serve.run(
        build_app({"profile": profile, "overrides": overrides}),
        name=APP_NAME,
        route_prefix="/",
    )


def cmd_run(args) -> int:
    cluster = _load(args.profile, args.set)
    print(pool_table(cluster), flush=True)
    start_cluster(cluster, str(profile_path(args.profile)), args.set, args.address, args.metrics_port)
    url = f"http://{cluster.ingress.host}:{cluster.ingress.port}"
    model = next(iter(cluster.models))
    print(
        f"\nServing on {url}\n\n"
        f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], \"max_tokens\": 16}}'\n\n"
        f"  curl {url}/v1/pools\n\n"
        f"Prometheus metrics: http://127.0.0.1:{args.metrics_port}/metrics\nCtrl-C stops the cluster.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    from ray import serve

    serve.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-demo", help="build the tiny demo checkpoints")
    p.add_argument("--out", default=str(DEFAULT_MODELS_DIR))
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_build_demo)

    from cluster.real_size import REAL_SIZE_MODELS

    p = sub.add_parser("build-real-size", help="random checkpoint with a model's real dimensions")
    p.add_argument("model", choices=sorted(REAL_SIZE_MODELS))
    p.add_argument("--out", required=True, help="folder the checkpoint folder goes into")
    p.add_argument("--layers", type=int, default=None, help="fewer layers, same width (reference checks)")
    p.set_defaults(func=cmd_build_real_size)

    for name, func, help_ in (
        ("validate", cmd_validate, "validate a profile and print its pools"),
        ("run", cmd_run, "serve a profile on Ray"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("profile", nargs="?", default="cpu-demo", help="profile name or YAML path")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a profile value, e.g. pools.il25-short.replicas.max=2")
        if name == "run":
            p.add_argument("--address", default=None,
                           help="join an existing Ray cluster (e.g. 'auto') instead of starting one")
            p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                           help="Ray's Prometheus export port when starting a local Ray")
        p.set_defaults(func=func)

    add_plan_parser(sub, _load)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

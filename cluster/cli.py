"""Command line: `python -m cluster <command>`.

  build-demo            write the tiny demo checkpoints (idempotent)
  build-real-size MODEL random checkpoint with the real dimensions (GPU validation)
  validate PROFILE      load and validate a profile, print its pools
  run PROFILE           start Ray (or join one) and serve the profile
  plan PROFILE          capacity plan: does each pool fit its GPUs?
  drain-node            drain this Ray node, waiting for its requests (the chart's preStop)
  smoke                 one completion per pool and a document round trip (the chart's `helm test`)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Literal, get_args

from pydantic import ValidationError

from cluster.config import ClusterConfig, load_config, profile_path
from cluster.demo import build_all
from cluster.direct_ingress import enable_for_local_ray, ingress_replica_urls, missing_on_cluster_warning
from cluster.planner import add_plan_parser, timeout_warnings

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

# Ray's switch for single-machine mode (the mode it always runs in on macOS and
# Windows): the node IP stays 127.0.0.1, and with a loopback node IP Ray binds
# its gRPC servers (GCS, raylet, workers), its agents and the metrics export to
# 127.0.0.1 instead of every interface. Read by ray_constants at import.
RAY_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
RayBind = Literal["loopback", "all"]
RAY_BIND_CHOICES: tuple[str, ...] = get_args(RayBind)


def prepare_ray_env(address: str | None, ray_bind: RayBind = "loopback") -> None:
    """Set what Ray reads from the environment once, when it is imported.

    Call before anything imports ray (``python -m cluster run`` does). Token
    auth is explicit rather than left to the Ray version's default: Ray 2.60
    turns it on for a new local cluster only, and never for a client given an
    explicit address, which would then connect without sending the token.
    ``RAY_AUTH_MODE=disabled`` in the environment still opts out.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if not address and ray_bind == "loopback":
        os.environ[RAY_SINGLE_MACHINE_ENV] = "0"


def _init_local_ray(cluster: ClusterConfig, metrics_port: int, ray_bind: RayBind) -> None:
    import ray
    from ray._private import ray_constants

    kwargs = {}
    enable_for_local_ray(cluster)
    if ray_bind == "loopback":
        # The environment is for the processes Ray starts; this process's copy
        # of the constant was read when ray was first imported, possibly before
        # prepare_ray_env (tests and benchmarks import ray early), and Ray reads
        # the module attribute at call time.
        os.environ[RAY_SINGLE_MACHINE_ENV] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        kwargs["_node_ip_address"] = "127.0.0.1"
    ray.init(
        num_cpus=ray_logical_cpus(cluster),
        include_dashboard=False,
        _metrics_export_port=metrics_port,
        **kwargs,
    )


def connect_ray(address: str) -> None:
    """Join an existing Ray cluster; a token-auth cluster needs the token.

    Ray takes it from RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, or
    ~/.ray/auth_token, and sends it only with RAY_AUTH_MODE=token.
    """
    import ray

    try:
        ray.init(address=address)
    except Exception as exc:  # Ray wraps the cause; see _refused_for_auth
        if not _refused_for_auth(exc):
            raise
        raise SystemExit(
            f"Ray at {address}: no token, or not the cluster's. Every node and client needs "
            "RAY_AUTH_MODE=token and the cluster's token, RAY_AUTH_TOKEN_PATH=<token file> "
            "(or RAY_AUTH_TOKEN); see docs/configuration.md, Multi-node."
        ) from None


def _refused_for_auth(exc: BaseException) -> bool:
    """Whether ray.init failed for want of the right token.

    A missing token raises AuthenticationError before connecting; a wrong one
    comes back from the GCS wrapped in a ConnectionError around a RuntimeError
    that carries the AuthenticationError only as traceback text.
    """
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError) or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def start_cluster(
    cluster: ClusterConfig,
    profile: str,
    overrides: list[str],
    address: str | None,
    metrics_port: int = DEFAULT_METRICS_PORT,
    ray_bind: RayBind = "loopback",
):
    """Start (or join) Ray and deploy the app; returns when it is healthy.

    A local Ray exports every metric (ray_serve_*, ray_vllm_*, ray_longctx_*)
    in Prometheus format on 127.0.0.1:metrics_port/metrics. With ray_bind
    "loopback" (the default) every port the local Ray opens is on 127.0.0.1;
    "all" is Ray's own default (every interface, protected by its token only).
    The HTTP API listens on the profile's ingress.host either way.
    """
    if ray_bind not in RAY_BIND_CHOICES:
        raise ValueError(f"ray_bind must be one of {RAY_BIND_CHOICES}, not {ray_bind!r}")
    # Imported here, not with the module: Ray and the app (which loads vLLM)
    # take seconds, and validate / plan / build-demo need neither.
    from ray import serve

    from deployments.app import build_app

    if address:
        connect_ray(address)
    else:
        _init_local_ray(cluster, metrics_port, ray_bind)
    serve.start(http_options={"host": cluster.ingress.host, "port": cluster.ingress.port})
    serve.run(
        build_app({"profile": profile, "overrides": overrides}),
        name=APP_NAME,
        route_prefix="/",
    )


def _metrics_line(args) -> str:
    if args.address:
        return "Prometheus metrics: every node's metrics export port (see docs/operations.md, What to scrape)"
    return f"Prometheus metrics: http://127.0.0.1:{args.metrics_port}/metrics"


def cmd_run(args) -> int:
    cluster = _load(args.profile, args.set)
    print(pool_table(cluster), flush=True)
    for line in timeout_warnings(cluster):
        print(f"WARNING: {line}", file=sys.stderr, flush=True)
    prepare_ray_env(args.address, args.ray_bind)
    start_cluster(cluster, str(profile_path(args.profile)), args.set, args.address, args.metrics_port,
                  args.ray_bind)
    url = f"http://{cluster.ingress.host}:{cluster.ingress.port}"
    model = next(iter(cluster.models))
    direct_urls = ingress_replica_urls(APP_NAME)
    warning = missing_on_cluster_warning(cluster, direct_urls)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    direct_line = (f"Ingress replicas' own servers (direct ingress, no Serve proxy): {', '.join(direct_urls)}\n"
                   if direct_urls else "")
    print(
        f"\nServing on {url}\n{direct_line}\n"
        f"  curl {url}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], \"max_tokens\": 16}}'\n\n"
        f"  curl {url}/v1/pools\n\n"
        f"{_metrics_line(args)}\nCtrl-C stops the cluster.",
        flush=True,
    )
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        print("WARNING: RAY_AUTH_MODE=disabled: whoever reaches Ray's ports can run code here.",
              file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    # Serve, Ray, then any engine process left behind, within 30 s (cluster/shutdown.py).
    from cluster.shutdown import stop_cluster

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand half a stop
    print("Stopping the cluster...", file=sys.stderr, flush=True)
    killed = stop_cluster()
    for line in killed:
        print(f"WARNING: killed a process left running after ray.shutdown(): {line}", file=sys.stderr, flush=True)
    return 0


def cmd_drain_node(args) -> int:
    import logging

    from cluster.drain import DrainRefused, drain_node

    if args.deadline_s <= 0:
        raise SystemExit("--deadline-s must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s drain-node: %(message)s")
    import ray

    # A driver of its own: Ray's token (KubeRay's env in a pod) as for any client.
    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        return drain_node(args.node_id, args.deadline_s, args.reason)
    except DrainRefused as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        ray.shutdown()


def cmd_smoke(args) -> int:
    from cluster.smoke import api_key_from_file, run_smoke

    key = api_key_from_file(Path(args.api_key_file)) if args.api_key_file else None
    return 1 if run_smoke(args.base_url, key, args.timeout_s, say=lambda line: print(line, flush=True)) else 0


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
            p.add_argument("--ray-bind", choices=RAY_BIND_CHOICES, default="loopback",
                           help="interfaces a local Ray listens on: loopback (default: nothing "
                                "reachable from other machines) or all (Ray's default: its gRPC "
                                "ports are then protected by its token alone, the metrics port "
                                "by nothing)")
        p.set_defaults(func=func)

    add_plan_parser(sub, _load)

    p = sub.add_parser("drain-node", help="drain this Ray node through Ray and wait until Serve has moved "
                                          "its replicas and their requests have finished (cluster/drain.py)")
    p.add_argument("--deadline-s", type=float, required=True,
                   help="seconds until the node is taken away (the pod's grace period left); Serve stops "
                        "replicas here at the latest this long less their graceful_shutdown_timeout_s")
    p.add_argument("--address", default="auto", help="the Ray cluster to join (default: this node's)")
    p.add_argument("--node-id", default=None, help="hex id of the node to drain (default: this process's node)")
    p.add_argument("--reason", default="pod terminating (preStop)", help="message recorded with the drain")
    p.set_defaults(func=cmd_drain_node)

    p = sub.add_parser("smoke", help="check a running cluster: one completion per pool, a document uploaded, "
                                     "asked and deleted (cluster/smoke.py; the chart's helm test)")
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="the API's URL, without /v1")
    p.add_argument("--api-key-file", default=None,
                   help="a keys file (the cluster's format); its first key is sent as the bearer token")
    p.add_argument("--timeout-s", type=float, default=300.0,
                   help="how long the whole check may wait on a full or starting pool (429/503) and on a reply")
    p.set_defaults(func=cmd_smoke)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

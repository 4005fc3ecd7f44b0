"""What the single-machine cluster exposes to the network, and Ray's token.

The cluster fixture starts Ray the way `make run` does (cluster.cli.start_cluster,
loopback by default), so the sockets listed here are the ones a laptop opens.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
# One connection attempt per second; the GCS answers a bad token at once, so a
# refused client need not wait out Ray's default 20 attempts.
FAST_REFUSAL = {"RAY_gcs_server_port_wait_time_s": "2"}


def _listening(processes: list[psutil.Process]) -> list[tuple[str, int, str]]:
    found = []
    for proc in processes:
        try:
            sockets = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(s.laddr.ip, s.laddr.port, name) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _routable_ip() -> str:
    """An address of this machine that other machines could connect to."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name == "AF_INET" and not _is_loopback(address.address):
                return address.address
    return "127.0.0.1"  # no network: the check below still runs, on loopback


def _grpc_status(port: int, token: str | None):
    """Status of a call to a Serve replica's inter-deployment gRPC service."""
    import grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(f"{_routable_ip()}:{port}") as channel:
        call = channel.unary_unary("/ray.serve.ASGIService/HandleRequest")
        try:
            call(b"", metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_only_token_protected_ray_ports_listen_beyond_loopback(cluster, token_file):
    import grpc

    # Ray's processes (GCS, raylet, agents, workers, the engines they spawn)
    # all descend from this process, which started them with ray.init.
    me = psutil.Process()
    sockets = _listening([me, *me.children(recursive=True)])
    ports = {port for _, port, _ in sockets}
    # Sanity: these are the cluster's sockets (the API, Ray's metrics export,
    # the GCS and raylets).
    assert urlsplit(cluster.base_url).port in ports
    assert urlsplit(cluster.metrics_url).port in ports
    assert {"gcs_server", "raylet"} <= {name for _, _, name in sockets}
    exposed = sorted(s for s in sockets if not _is_loopback(s[0]))
    # Ray Serve 2.60 binds each replica's inter-deployment gRPC server to
    # [::]:0 whatever the node IP (serve/_private/replica.py); nothing else may.
    assert all(name.startswith("ray::ServeReplica:") for _, _, name in exposed), exposed
    token = token_file.read_text()
    for _, port, name in exposed:
        # Ray's auth interceptor refuses a call without the token before the
        # replica sees it; with the token the call gets through to the replica
        # (which then rejects the empty request).
        assert _grpc_status(port, None) == grpc.StatusCode.UNAUTHENTICATED, name
        assert _grpc_status(port, token) not in (grpc.StatusCode.UNAUTHENTICATED,
                                                 grpc.StatusCode.UNAVAILABLE), name


def _client_env(tmp_path: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    # A HOME without ~/.ray/auth_token, so Ray cannot find the token by itself.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return clean | FAST_REFUSAL | {"HOME": str(home), "PYTHONPATH": str(REPO)} | env


def _run(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=REPO)


@pytest.fixture(scope="module")
def gcs_address(cluster) -> str:
    import ray

    return ray.get_runtime_context().gcs_address


@pytest.fixture(scope="module")
def token_file(cluster, tmp_path_factory) -> Path:
    # Ray's own CLI prints the token this process's cluster was started with.
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    token = subprocess.run([ray_cli, "get-auth-token"], capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip()
    assert len(token) >= 32
    path = tmp_path_factory.mktemp("token") / "auth_token"
    path.write_text(token)
    path.chmod(0o600)
    return path


PLAIN_CLIENT = "import ray, sys; ray.init(address=sys.argv[1]); print('nodes', len(ray.nodes()))"
# The path `python -m cluster run --address` takes to join a cluster.
CLI_CLIENT = ("import sys, ray; from cluster.cli import connect_ray; connect_ray(sys.argv[1]); "
              "print('nodes', len(ray.nodes()))")


def test_gcs_refuses_a_client_without_the_token(gcs_address, tmp_path):
    refused = _run(PLAIN_CLIENT, _client_env(tmp_path, RAY_AUTH_MODE="disabled"), gcs_address)
    assert refused.returncode != 0
    assert "InvalidAuthToken" in refused.stderr, refused.stderr[-2000:]
    assert "nodes" not in refused.stdout


def test_cli_join_with_a_wrong_token_exits_with_the_fix(gcs_address, tmp_path):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 32)
    result = _run(CLI_CLIENT, _client_env(tmp_path, RAY_AUTH_MODE="token",
                                          RAY_AUTH_TOKEN_PATH=str(wrong)), gcs_address)
    assert result.returncode == 1
    assert "RAY_AUTH_TOKEN_PATH" in result.stderr and "Traceback" not in result.stderr[-600:]
    assert "nodes" not in result.stdout


def test_cli_joins_with_the_token_from_a_file(gcs_address, token_file, tmp_path):
    result = _run(CLI_CLIENT, _client_env(tmp_path, RAY_AUTH_MODE="token",
                                          RAY_AUTH_TOKEN_PATH=str(token_file)), gcs_address)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nodes 1" in result.stdout

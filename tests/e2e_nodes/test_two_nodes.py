"""A pool is rescaled, a node dies, a node drains: what clients of a pool spread over two Ray nodes see.

In order (each uses what the one before leaves):

0. The pool's replicas.max changes in the serve config, as a `helm upgrade`
   changes it: Serve applies it to the live deployments (the ingress's
   admission limit and /v1/pools follow), and no replica restarts.
1. The worker node is killed outright (every process of it, as a host that
   dies) while a request runs on its replica: the request ends with a 503
   engine_failed and Retry-After, and the pool keeps answering from the
   replica on the surviving node.
2. A new worker node joins and takes the pool's missing replica. It is drained
   through `python -m cluster drain-node`, the Helm chart's preStop, while a
   long streamed request runs there: new requests go to the other node at once,
   the long one finishes whole, and the command returns once the node has no
   replica left.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest

from tests.e2e.helpers import engine_requests_in_progress, wait_until
from tests.e2e_nodes.conftest import APP, GRACEFUL_SHUTDOWN_S, MODEL, POOL, START_S, app_running
from tests.e2e_nodes.nodes import node_id_with
from deployments.errors import ErrorCode

pytestmark = [pytest.mark.e2e]

DEPLOYMENT = f"pool-{POOL}"
LONG_TOKENS = 3000


def replicas_by_node() -> dict[str, str]:
    """The pool's live replicas, as the x-replica header names them, and their node ids."""
    from ray._private.state import actors

    return {
        info["Name"].split("#", 1)[1]: info["Address"]["NodeID"]
        for info in actors(actor_state_name="ALIVE").values()
        if info["ActorClassName"] == f"ServeReplica:{APP}:{DEPLOYMENT}"
    }


def replica_states() -> dict[str, int]:
    from ray import serve

    return dict(serve.status().applications[APP].deployments[DEPLOYMENT].replica_states)


def running_on(*nodes: str) -> dict[str, str] | None:
    """Replica -> node once exactly one RUNNING replica is on each of ``nodes``."""
    where = replicas_by_node()
    if sorted(where.values()) == sorted(nodes) and replica_states().get("RUNNING") == len(nodes):
        return where
    return None


def prompt_for(client: httpx.Client, replica: str) -> str:
    """A prompt whose first 16 tokens (its affinity key) lead to ``replica``."""
    for i in range(200):
        prompt = f"route {i} " + "alpha " * 24
        response = client.post("/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 1})
        assert response.status_code == 200, response.text
        if response.headers["x-replica"] == replica:
            return prompt
    raise AssertionError(f"no prompt of 200 was routed to {replica}")


def long_body(prompt: str, *, stream: bool) -> dict:
    return {"model": MODEL, "prompt": prompt, "max_tokens": LONG_TOKENS, "ignore_eos": True, "stream": stream}


@pytest.fixture(scope="module")
def client(two_nodes):
    with httpx.Client(base_url=two_nodes.base_url, timeout=900) as http:
        yield http


def serve_replicas(deployment: str) -> set[str]:
    """Actor ids of a deployment's live replicas: a restart gives new ones."""
    from ray._private.state import actors

    return {actor_id for actor_id, info in actors(actor_state_name="ALIVE").items()
            if info["ActorClassName"] == f"ServeReplica:{APP}:{deployment}"}


def test_a_pools_new_max_reaches_serve_without_a_restart(two_nodes, client):
    import copy

    from ray.serve.context import _get_global_client

    worker_id = node_id_with("e2e_node_w1")
    wait_until(lambda: running_on(*_nodes_with_replicas(worker_id)), START_S, "one pool replica on each node")
    before = {name: serve_replicas(name) for name in (DEPLOYMENT, "ingress")}
    assert all(before.values())

    rescaled = copy.deepcopy(two_nodes.profile)
    rescaled["pools"][0]["replicas"]["max"] = 3
    two_nodes.deploy(rescaled)

    def pool_view_max():
        (row,) = [r for r in client.get("/v1/pools").json()["data"] if r["name"] == POOL]
        return row["replicas"]["max"] == 3

    wait_until(pool_view_max, 120, "the ingress to take the new bound (its reconfigure)")
    details = _get_global_client().get_serve_details()["applications"][APP]["deployments"][DEPLOYMENT]
    assert details["deployment_config"]["autoscaling_config"]["max_replicas"] == 3
    # Serve reports the app DEPLOYING while it applies the config, then RUNNING again.
    wait_until(app_running, 120, "the app to run again after the new config")
    # The same replicas, pool and ingress: nothing was restarted.
    assert {name: serve_replicas(name) for name in before} == before
    answer = client.post("/v1/completions", json={"model": MODEL, "prompt": "still here", "max_tokens": 2})
    assert answer.status_code == 200, answer.text


def test_a_killed_node_ends_its_requests_with_503_and_the_pool_serves_on(two_nodes, client):
    worker = two_nodes.workers[0]
    worker_id = node_id_with("e2e_node_w1")
    where = wait_until(lambda: running_on(*_nodes_with_replicas(worker_id)), START_S,
                       "one pool replica on each node")
    (on_worker,) = [r for r, node in where.items() if node == worker_id]
    (on_head,) = [r for r, node in where.items() if node != worker_id]
    prompt = prompt_for(client, on_worker)

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        response=client.post("/v1/completions", json=long_body(prompt, stream=False))), daemon=True)
    thread.start()
    worker_metrics = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    wait_until(lambda: _safe(engine_requests_in_progress, worker_metrics) >= 1, 300,
               "the long request running on the worker node's engine")
    assert thread.is_alive(), "the long request finished before its node could be killed"
    worker.kill()

    thread.join(300)
    assert not thread.is_alive(), "the request on the killed node hung"
    response = result["response"]
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == ErrorCode.ENGINE_FAILED and POOL in error["message"]
    assert int(response.headers["retry-after"]) > 0

    # The pool answers again, from the surviving node's replica; meanwhile only 503s, never a 500 or a hang.
    def pool_serves():
        answer = client.post("/v1/completions", json={"model": MODEL, "prompt": "back?", "max_tokens": 2})
        assert answer.status_code in (200, 503), answer.text
        return answer if answer.status_code == 200 else None

    answer = wait_until(pool_serves, 300, "the pool to answer from the surviving node")
    assert answer.headers["x-replica"] == on_head


def test_a_drained_node_finishes_its_long_request_while_new_ones_go_elsewhere(two_nodes, client):
    worker, worker_id = two_nodes.add_worker("w2")
    where = wait_until(lambda: running_on(*_nodes_with_replicas(worker_id)), START_S,
                       "the pool's missing replica to start on the new node")
    (on_worker,) = [r for r, node in where.items() if node == worker_id]
    (on_head,) = [r for r, node in where.items() if node != worker_id]
    prompt = prompt_for(client, on_worker)

    stream: dict = {"lines": []}
    first = threading.Event()
    done = threading.Event()

    def read_stream():
        with client.stream("POST", "/v1/completions", json=long_body(prompt, stream=True)) as response:
            stream["status"], stream["replica"] = response.status_code, response.headers.get("x-replica")
            for line in response.iter_lines():
                if line.startswith("data:"):
                    stream["lines"].append(line)
                    first.set()
        done.set()

    threading.Thread(target=read_stream, daemon=True).start()
    assert first.wait(300), "the long stream did not start"
    assert stream["replica"] == on_worker

    # The preStop's command, as the chart renders it, pointed at the worker node.
    deadline_s = GRACEFUL_SHUTDOWN_S // 2
    drain = subprocess.Popen(
        [sys.executable, "-m", "cluster", "drain-node", "--address", two_nodes.gcs_address,
         "--node-id", worker_id, "--deadline-s", str(deadline_s)],
        env=two_nodes.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Serve stops the drained node's replica (it cannot finish a replacement
        # before the deadline): it takes no new request and finishes its own.
        wait_until(lambda: replica_states().get("RUNNING") == 1, 300, "Serve to stop the drained node's replica")
        for _ in range(3):
            answer = client.post("/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 2})
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-replica"] == on_head
        assert not done.is_set(), "the long request ended before the new ones were sent"

        assert done.wait(600), "the long request on the drained node did not finish"
        assert stream["status"] == 200
        assert stream["lines"][-1] == "data: [DONE]"
        assert not any('"error"' in line for line in stream["lines"]), "the drain cut the long request"
        assert any('"finish_reason":"length"' in line.replace(" ", "") for line in stream["lines"]), \
            "the long request did not run to its max_tokens"

        output, _ = drain.communicate(timeout=deadline_s)
        print(output)  # the command's own account: when the node drained, and how long it took
        assert drain.returncode == 0, output
        assert "drained" in output
        assert worker_id not in replicas_by_node().values()
    finally:
        if drain.poll() is None:
            drain.kill()


def _nodes_with_replicas(worker_id: str) -> tuple[str, str]:
    """The head's id and ``worker_id``: where the pool's two replicas belong."""
    import ray

    head = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "e2e_slot" in n["Resources"]
            and n["NodeID"] != worker_id and not any(k.startswith("e2e_node_") for k in n["Resources"])]
    return (head[0], worker_id) if head else ("", worker_id)


def _safe(read, *args) -> float:
    try:
        return read(*args)
    except httpx.HTTPError:
        return 0.0

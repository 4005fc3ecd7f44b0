"""How `make test` shares two workers (pytest-xdist, ``--dist loadgroup``).

Most of the suite's time is two real clusters: the e2e package's (tests/e2e)
and the two-node one (tests/e2e_nodes). Each runs on one worker, the e2e
cluster first (it is the longest); the other worker takes the two-node
cluster and then every other module, a module at a time (its module-scoped
fixtures are set up once).

Three rules keep the workers from disturbing each other:

* **Sessions:** each worker starts a session of its own, because the clean
  stop (cluster/shutdown.py) sweeps the engine processes of its session; two
  workers in one session would sweep each other's engines.
* **Priority:** the e2e cluster's worker is the longest; the other worker
  runs at nice ``SECOND_WORKER_NICE`` from its first test on (and so does
  what it starts: the two-node cluster, engines), so that the two clusters'
  start-ups, which together need more than two cores, do not hold the e2e
  one back. Both clusters' Ray workers run at their starter's priority
  (``RAY_WORKER_ENV``; Ray's own nice 15 let the other worker's tests
  starve Serve's proxy until it failed its health checks).
* **Quiet machine:** tests marked ``quiet_machine`` derive deadlines from a
  prefill time they measure (tests/e2e/test_cancel_prefill.py hangs up one
  chunk into a prefill). While one runs, with its fixtures' setup, the other
  worker starts no test: every test holds a shared lock and a quiet one an
  exclusive lock, taken through a turnstile so that a stream of short tests
  cannot starve it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

E2E_GROUPS = ("e2e", "e2e_nodes")
QUIET_MARK = "quiet_machine"
# For every Ray the tests start (RayConfig reads RAY_<name>): its workers at
# the starter's priority, not at nice 15.
RAY_WORKER_ENV = {"RAY_worker_niceness": "0"}
CPU_KV_BLOCK_TOKENS = 128  # vLLM's CPU backend's block size


def kv_blocks(tokens: int) -> int:
    """The test engines' KV cache, as ``num_gpu_blocks_override``: ``tokens``
    tokens, not the 1 GiB of VLLM_CPU_KVCACHE_SPACE (0.5-1M tokens of the demo
    models), which vLLM zero-fills and so keeps resident in every worker; at
    that size the two clusters and an engine module would not fit together."""
    return -(-tokens // CPU_KV_BLOCK_TOKENS)


def parallel(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker of a ``--dist loadgroup`` run
    (xdist hands a worker ``--dist loadgroup`` as ``option.loadgroup``)."""
    return hasattr(config, "workerinput") and bool(getattr(config.option, "loadgroup", False))


def group_of(nodeid: str) -> str:
    """An e2e package's name, or the test's module: what one worker runs whole."""
    path = nodeid.split("::", 1)[0]
    parts = Path(path).parts
    if len(parts) > 1 and parts[0] == "tests" and parts[1] in E2E_GROUPS:
        return parts[1]
    return path


# Modules that start engines or Ray clusters of their own: run early on the
# second worker, so that by the time the e2e worker reaches its quiet tests
# (ordered late in tests/e2e/conftest.py) only short tests are left here.
HEAVY_MODULES = ("tests/deployments/rope/test_request_bases.py", "tests/monitoring/test_container_logs.py")


def order(items: list[pytest.Item]) -> None:
    """The clusters' tests first, then the other heavy modules: xdist hands
    groups out in the order they first appear, and the e2e cluster's is the
    longest."""
    rank = {group: i for i, group in enumerate(E2E_GROUPS + HEAVY_MODULES)}
    items.sort(key=lambda item: rank.get(group_of(item.nodeid), len(rank)))


def make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` with groups by path (group_of), not by
    ``xdist_group`` marks: xdist 3.8 groups marked tests by rewriting
    ``item._nodeid``, which pytest 9.2 no longer reads (Node.nodeid comes
    from ``_id``), so marks would spread a cluster's tests over both workers."""
    from xdist.scheduler import LoadScopeScheduling

    # Groups in collection order (order()), not largest first: the two-node
    # cluster's few tests would otherwise run last, beside the e2e tests.
    config.option.loadscopereorder = False

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return LaneScheduling(config, log)


def own_session() -> None:
    os.setsid()


# A quarter of the CPU against nice-0 work (the kernel's weights 335 : 1024),
# enough for Serve's health checks on the second worker's cluster.
SECOND_WORKER_NICE = 5
_PRIORITY_SET = pytest.StashKey[bool]()


def set_priority(item: pytest.Item) -> None:
    """On a worker's first test: lower its priority unless it runs the e2e cluster."""
    config = item.config
    if not parallel(config) or config.stash.get(_PRIORITY_SET, False):
        return
    config.stash[_PRIORITY_SET] = True
    if group_of(item.nodeid) != "e2e":
        os.nice(SECOND_WORKER_NICE)


def shared_dir(config: pytest.Config) -> Path:
    """A folder both workers of this run see: beside their basetemps
    (``<pytest's basetemp>/popen-gwN``), kept and pruned as pytest keeps those."""
    path = Path(config.option.basetemp).parent / "lanes"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def machine_share(config: pytest.Config, *, quiet: bool):
    """The machine, shared with the other worker, or to this test alone."""
    if not parallel(config):
        yield
        return
    folder = shared_dir(config)
    with open(folder / "turnstile", "a+") as turnstile, open(folder / "machine", "a+") as machine:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if quiet:
            # Held while the shared holders drain: new ones wait at the turnstile.
            fcntl.flock(machine, fcntl.LOCK_EX)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(machine, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(machine, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)

"""Engines on one node start one at a time.

Why, as seen on the H200 with two pools sharing the GPU (ray 2.58 + vLLM 0.26):

* vLLM's Ray executor picks the torch.distributed TCPStore port of a
  non-data-parallel engine by probing upward from a fixed start (port 100).
  Two engines probing together both find it free; the second dies with
  EADDRINUSE and Serve restarts its replica (pools healthy only after
  ~230-270 s instead of ~130 s). The port cannot be moved per replica:
  Ray Serve LLM builds the engine config in a separate Ray task whose
  environment is the deployment's, shared by all replicas. Once one engine
  holds the port, the next probe simply moves past it, so serialising the
  start removes the race.
* vLLM sizes its KV cache from the free GPU memory it measures around a
  profiling pass; an engine starting beside another on the same GPU sees the
  other's allocations come and go (and fails its consistency check when the
  other frees memory mid-profile).

The lock is an exclusive ``flock`` on a node-local file, released by the
kernel when the holder exits, crashed or not. The cost: k engines on one node
start one after another rather than together, so only engines that take GPUs
hold it: both reasons are GPU ones, and CPU engines (vLLM's multiprocessing
executor, a KV cache of a configured size) start side by side.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Mapping

DEFAULT_LOCK_PATH = Path("/tmp/longctx-engine-start.lock")


@asynccontextmanager
async def engine_start_lock(path: Path = DEFAULT_LOCK_PATH) -> AsyncIterator[None]:
    """Hold the node's engine-start lock; waiting does not block the event loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def starts_one_at_a_time(placement_bundles: Iterable[Mapping[str, Any]]) -> bool:
    """Whether an engine with these placement-group bundles takes the lock: it does when it takes a GPU."""
    return any(float(bundle.get("GPU", 0)) > 0 for bundle in placement_bundles)

"""A clean stop: Serve, then Ray, then whatever engine process is left behind.

``python -m cluster run`` (on SIGTERM or Ctrl-C) and the e2e fixture stop the
cluster they started the same way:

1. ``serve.shutdown()``, bounded (Serve waits for replicas to drain);
2. ``ray.shutdown()``, which stops the local Ray this process started;
3. a sweep of the Ray and vLLM processes this process started: its
   descendants that are Ray's (its binaries, ``ray::`` workers, anything run
   from the ``ray`` package) or vLLM's (``VLLM::``), noted before step 1 (a
   process orphaned by its parent's death is no longer a descendant
   afterwards), plus ``VLLM::`` / ``ray::`` processes of this process's
   session created since it started (orphaned earlier in the run). Other
   children (a test's Redis server, multiprocessing helpers) are not the
   cluster's and are left alone.
   What is still alive after a grace period is terminated, then killed, each
   with a logged warning: seen in practice, a ``VLLM::Worker`` outliving its
   engine for minutes after client disconnects.

The whole stop takes at most ``timeout_s`` (30 s).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import psutil

logger = logging.getLogger("longctx.shutdown")

ENGINE_PREFIXES = ("VLLM::", "ray::")
SERVE_SHUTDOWN_S = 15.0
GRACE_S = 10.0  # Ray's idle workers notice their raylet's exit within seconds
KILL_WAIT_S = 3.0


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:80] or proc.name()}"
    except psutil.Error:
        return str(proc.pid)


def _is_engine(proc: psutil.Process) -> bool:
    try:
        text = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return False
    return text.startswith(ENGINE_PREFIXES)


RAY_BINARIES = ("raylet", "gcs_server")


def _is_ray(proc: psutil.Process) -> bool:
    """A process Ray started: its binaries, a ray:: worker, or a script of the ray package."""
    try:
        cmdline = proc.cmdline()
        name = proc.name()
    except psutil.Error:
        return False
    text = " ".join(cmdline) or name
    return (text.startswith(ENGINE_PREFIXES) or name in RAY_BINARIES
            or any(f"{os.sep}ray{os.sep}" in part for part in cmdline))


def started_processes() -> set[psutil.Process]:
    """Ray and vLLM processes this one started: Ray's descendants, and engine
    processes of its session created since it started."""
    me = psutil.Process()
    found = {proc for proc in me.children(recursive=True) if _is_ray(proc)}
    try:
        session = os.getsid(0)
    except OSError:
        return found
    for proc in psutil.process_iter(["create_time"]):
        try:
            if (proc.pid != me.pid and proc.info["create_time"] >= me.create_time()
                    and os.getsid(proc.pid) == session and _is_engine(proc)):
                found.add(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _bounded(fn, seconds: float, what: str) -> None:
    thread = threading.Thread(target=fn, name=what, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        logger.warning("%s did not return within %.0f s; stopping processes directly", what, seconds)


def alive(procs: set[psutil.Process]) -> set[psutil.Process]:
    living = set()
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                living.add(proc)
        except psutil.Error:
            continue
    return living


def stop_cluster(*, stop_serve: bool = True, timeout_s: float = 30.0) -> list[str]:
    """Stop Serve and Ray, then kill leftovers; returns what had to be killed."""
    deadline = time.monotonic() + timeout_s
    before = started_processes()
    import ray

    if stop_serve and ray.is_initialized():
        from ray import serve

        _bounded(serve.shutdown, min(SERVE_SHUTDOWN_S, timeout_s / 2), "serve.shutdown()")
    if ray.is_initialized():
        ray.shutdown()
    candidates = before | started_processes()
    grace_end = min(time.monotonic() + GRACE_S, deadline - KILL_WAIT_S - 1)
    leftovers = alive(candidates)
    while leftovers and time.monotonic() < grace_end:
        _, still = psutil.wait_procs(list(leftovers), timeout=0.5)
        leftovers = alive(set(still))
    killed = []
    for proc in leftovers:
        killed.append(_describe(proc))
        logger.warning("process outlived ray.shutdown(); killing it: %s", killed[-1])
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(list(leftovers), timeout=max(0.5, min(KILL_WAIT_S, deadline - time.monotonic())))
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return killed

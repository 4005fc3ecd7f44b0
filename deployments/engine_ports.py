"""Disjoint torch.distributed port windows for engines that share a node.

Why: vLLM 0.26's Ray executor (the Ray 2.58 compatibility pins) picks the
TCPStore port of a non-data-parallel engine by probing upward from
``VLLM_DP_MASTER_PORT + 100``, i.e. from port 100 when the variable is unset.
Two engines starting together on one node both find port 100 free; the
second then fails with EADDRINUSE and Serve restarts its replica (seen on the
H200: pools healthy only after ~225 s). Each replica therefore claims a
node-wide slot and starts its engine with a port window of its own.

A slot is an exclusive ``flock`` on a file under a node-local directory: the
kernel releases it when the replica process exits, crashed or not, so no slot
leaks and no coordinator is needed. vLLM 0.29 binds its store on a free port
itself and ignores the window, so the claim is harmless there.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SLOT_DIR = Path("/tmp/longctx-engine-port-slots")
# Below Linux's ephemeral range (32768+), so no outgoing connection takes them.
BASE_PORT = 20000
WINDOW = 64  # vLLM probes 32 ports from the window's start
SLOTS = 128
# vLLM starts its probe this far above VLLM_DP_MASTER_PORT.
_VLLM_PROBE_OFFSET = 100


class NoPortSlotError(RuntimeError):
    pass


@dataclass
class PortSlot:
    """A claimed slot; holds its lock until ``release`` or process exit."""

    index: int
    fd: int

    @property
    def first_port(self) -> int:
        return BASE_PORT + self.index * WINDOW

    def engine_env(self) -> dict[str, str]:
        """Environment that moves the engine's port probe into this slot's window."""
        return {"VLLM_DP_MASTER_PORT": str(self.first_port - _VLLM_PROBE_OFFSET)}

    def release(self) -> None:
        os.close(self.fd)


def claim_port_slot(directory: Path = DEFAULT_SLOT_DIR, slots: int = SLOTS) -> PortSlot:
    """Claim the lowest free slot on this node."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(slots):
        fd = os.open(directory / f"slot-{index}", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return PortSlot(index=index, fd=fd)
    raise NoPortSlotError(f"all {slots} engine port slots under {directory} are held")

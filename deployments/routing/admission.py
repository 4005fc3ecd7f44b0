"""Admission control: a bounded number of in-flight requests per pool.

Long-band pools run one or two sequences at once (a 1M-token request takes a
whole TP group for minutes), so an unbounded queue in front of them only turns
into timeouts. Each ingress replica admits up to the pool's max_in_flight and
answers the rest 429 with Retry-After; a pool with no healthy replica answers
503 at once instead of parking requests until one comes back.
"""

from __future__ import annotations

from typing import Callable, Mapping


class PoolFull(Exception):
    def __init__(self, pool: str, limit: int, retry_after_s: int):
        self.pool, self.limit, self.retry_after_s = pool, limit, retry_after_s
        super().__init__(
            f"pool {pool} is at its limit of {limit} requests in flight; retry after {retry_after_s} s"
        )


class PoolUnavailable(Exception):
    def __init__(self, pool: str):
        self.pool = pool
        super().__init__(f"pool {pool} has no healthy replica right now; retry later")


class Ticket:
    """One admitted request; release() is idempotent so every exit path may call it."""

    def __init__(self, release: Callable[[], None]):
        self._release = release
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release()


class AdmissionController:
    """Counts in-flight requests per pool and refuses past the bound."""

    def __init__(
        self,
        limits: Mapping[str, int],
        retry_after_s: Mapping[str, int],
        on_depth: Callable[[str, int], None] = lambda pool, depth: None,
    ):
        self._limits = dict(limits)
        self._retry_after = dict(retry_after_s)
        self._depth = {pool: 0 for pool in limits}
        # None = not known yet (start-up): admit, as Serve's handle will wait.
        self._healthy: dict[str, int | None] = {pool: None for pool in limits}
        self._on_depth = on_depth

    def set_limit(self, pool: str, limit: int) -> None:
        """A new bound (the pool was rescaled); requests already admitted stay."""
        self._limits[pool] = limit

    def depth(self, pool: str) -> int:
        return self._depth[pool]

    def set_healthy_replicas(self, pool: str, count: int | None) -> None:
        self._healthy[pool] = count

    def healthy_replicas(self, pool: str) -> int | None:
        return self._healthy[pool]

    def acquire(self, pool: str) -> Ticket:
        if self._healthy[pool] == 0:
            raise PoolUnavailable(pool)
        if self._depth[pool] >= self._limits[pool]:
            raise PoolFull(pool, self._limits[pool], self._retry_after[pool])
        self._depth[pool] += 1
        self._on_depth(pool, self._depth[pool])
        return Ticket(lambda: self._leave(pool))

    def _leave(self, pool: str) -> None:
        self._depth[pool] -= 1
        self._on_depth(pool, self._depth[pool])

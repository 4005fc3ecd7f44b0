"""The marker a pool replica puts first in its completions stream."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaTag:
    """Names the engine replica serving a request (the `x-replica` header)."""

    replica: str

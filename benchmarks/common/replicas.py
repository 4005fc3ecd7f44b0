"""Serve replica restarts in the connected Ray cluster: a benchmark's figures hold only without them."""

from __future__ import annotations


def replica_restarts() -> dict[str, int]:
    """Dead Serve replica actors per deployment in the connected Ray cluster: a restart leaves one behind."""
    # The GCS actor table (a developer API): the state API needs the
    # dashboard, which the cluster does not start.
    from ray._private.state import actors

    dead = actors(actor_state_name="DEAD").values()
    counts: dict[str, int] = {}
    for actor in dead:
        name = actor.get("Name") or ""
        if name.startswith("SERVE_REPLICA::"):  # SERVE_REPLICA::<app>#<deployment>#<id>
            deployment = name.split("::")[1].split("#")[1]
            counts[deployment] = counts.get(deployment, 0) + 1
    return counts

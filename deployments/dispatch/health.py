"""Pool health: Serve's count of running replicas per pool, fed to admission.

Serve's handle would park a request for a pool with no running replica until
one comes back; knowing it lets the ingress answer 503 at once. The same
loop re-sets the ingress's gauges, which Ray drops when left unset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Mapping

from ray import serve

from deployments.metrics import RouterMetrics
from deployments.routing.admission import AdmissionController

logger = logging.getLogger("longctx.ingress")

HEALTH_POLL_S = 2.0


class PoolHealth:
    """Polls Serve's status and keeps the admission controller's view of healthy replicas."""

    def __init__(self, deployments: Mapping[str, str], admission: AdmissionController, metrics: RouterMetrics):
        """``deployments``: the Serve deployment name of each pool."""
        self._deployments = dict(deployments)
        self._admission = admission
        self._metrics = metrics
        self._checked_at = 0.0

    def age_s(self) -> float:
        """Seconds since the last successful look at Serve's status."""
        return time.monotonic() - self._checked_at

    async def poll(self, count_documents: Callable[[], int]) -> None:
        """Refresh every HEALTH_POLL_S until cancelled (a no-op outside a Serve replica)."""
        while await self.refresh():
            for pool in self._deployments:
                self._metrics.set_in_flight(pool, self._admission.depth(pool))
            try:
                self._metrics.documents_stored(await asyncio.to_thread(count_documents))
            except Exception:
                logger.warning("document count failed", exc_info=True)
            await asyncio.sleep(HEALTH_POLL_S)

    async def refresh(self) -> bool:
        """One look at Serve's replica states; False outside a Serve replica."""
        try:
            app_name = serve.get_replica_context().app_name
        except Exception:  # in-process tests: no controller to ask
            return False
        try:
            status = await asyncio.to_thread(serve.status)
            deployments = status.applications[app_name].deployments
            for pool, name in self._deployments.items():
                deployment = deployments.get(name)
                running = deployment.replica_states.get("RUNNING", 0) if deployment else None
                self._admission.set_healthy_replicas(pool, running)
            self._checked_at = time.monotonic()
        except Exception:  # the controller may be restarting: keep the last view
            logger.warning("pool health poll failed", exc_info=True)
        return True

"""The ingress as a Serve deployment: one FastAPI app per replica."""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve

from deployments.ingress.http import create_app
from deployments.ingress.service import Ingress
from deployments.serve_options import pool_replicas_from_user_config


@serve.deployment(name="ingress", max_ongoing_requests=1000)
@serve.ingress()
class IngressDeployment(Ingress):
    """The Serve deployment; the FastAPI app is built per replica."""

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self)

    def reconfigure(self, user_config: dict) -> None:
        """Serve's call with the deployment's user_config: every pool's live replica bounds
        (deployments/serve_options.py), at start and whenever a pool is rescaled."""
        self.apply_pool_replicas(pool_replicas_from_user_config(user_config))

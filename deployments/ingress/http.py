"""The ingress's FastAPI app: routes, each delegating to the ingress service."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from deployments.documents.api import document_routes
from deployments.errors import ErrorCode, install_error_handlers
from deployments.dispatch.keepalive import requested_heartbeat
from deployments.ingress.middleware import install_middlewares
from deployments.ingress.service import Ingress
from deployments.responses import (
    BODY_ERRORS, ENGINE_ERRORS, ChatCompletion, Completion, Health, ModelList, PoolList, answers,
)
from deployments.schemas import ChatCompletionBody, CompletionBody


def create_app(ingress: Ingress) -> FastAPI:
    """The HTTP face of one ingress replica; the pool-health poll runs for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        poller = asyncio.create_task(ingress.health.poll(ingress.documents.count))
        yield
        poller.cancel()

    app = FastAPI(title="longctx cluster", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_middlewares(app, keys=ingress.keys, metrics=ingress.metrics,
                        max_body_bytes=ingress.cluster.ingress.max_body_bytes)

    @app.get("/healthz", responses=answers(Health, auth=False))
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/models", responses=answers(ModelList))
    async def models():
        return ingress.models()

    @app.get("/v1/pools", responses=answers(PoolList))
    async def pools():
        return ingress.pools()

    app.include_router(document_routes(ingress.documents))

    @app.post("/v1/chat/completions", responses=answers(
        ChatCompletion, BODY_ERRORS, ErrorCode.INVALID_PARAMETER_COMBINATION, ErrorCode.THINKING_NOT_CONFIGURED,
        ENGINE_ERRORS, stream=True, keepalive=True))
    async def chat(body: ChatCompletionBody, request: Request):
        return await ingress.chat(body, request.state, requested_heartbeat(request.headers))

    @app.post("/v1/completions", responses=answers(
        Completion, BODY_ERRORS, ErrorCode.INVALID_PARAMETER_COMBINATION, ErrorCode.INVALID_TOKEN_ID,
        ENGINE_ERRORS, stream=True, keepalive=True))
    async def completions(body: CompletionBody, request: Request):
        return await ingress.completions(body, request.state, requested_heartbeat(request.headers))

    return app

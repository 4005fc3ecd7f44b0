"""The ingress service: the models and pools views, chat and completions.

It owns the per-replica state (metrics, admission, API keys, pool health)
and hands it to the request path, which chat, completions and document
questions all travel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.responses import Response

from cluster.config import ClusterConfig, ReplicaConfig
from deployments.auth import KeyRing
from deployments.documents.api import DocumentService
from deployments.documents.backends.factory import open_store
from deployments.errors import APIError, ErrorCode
from deployments.dispatch.health import PoolHealth
from deployments.dispatch.keepalive import HeartbeatChoice
from deployments.dispatch.request_path import RequestPath, ServerTimings
from deployments.metrics import RouterMetrics
from deployments.routing.admission import AdmissionController
from deployments.schemas import ChatCompletionBody, CompletionBody
from deployments.tokens import PromptTokenizer, ThinkingUnsupported


class Ingress:
    """Counts tokens, picks the pool, and relays the pool's answer."""

    def __init__(self, cluster: dict, pool_handles: dict[str, Any]):
        self.cluster = ClusterConfig.model_validate(cluster)
        self._created = int(time.time())
        self.metrics = RouterMetrics(
            {model: [p.name for p in self.cluster.pools_of(model)] for model in self.cluster.models}
        )
        self.admission = AdmissionController(
            limits={p.name: p.max_in_flight for p in self.cluster.pools},
            retry_after_s={p.name: p.admission.retry_after_s for p in self.cluster.pools},
            on_depth=self.metrics.set_in_flight,
        )
        # Serve's replica logger: its lines reach the replica's log and stderr (kubectl logs).
        self.keys = KeyRing.from_config(
            self.cluster.ingress.auth, observer=self.metrics, logger=logging.getLogger("ray.serve")
        )
        self.health = PoolHealth(
            {name: handle.deployment_name for name, handle in pool_handles.items()}, self.admission, self.metrics
        )
        tokenizers = {name: PromptTokenizer(name, model) for name, model in self.cluster.models.items()}
        self.path = RequestPath(self.cluster, tokenizers, pool_handles, self.admission, self.metrics, self.health)
        self.documents = DocumentService(self.path, open_store(self.cluster.documents.store), self.cluster.documents)

    def apply_pool_replicas(self, bounds: dict[str, ReplicaConfig]) -> None:
        """Take the pools' live replica bounds (the deployment's user_config) and their admission limits.

        Set on the one config every part of this replica reads, so the request
        path, /v1/pools and admission agree; Serve calls this before the first
        request and again, without a restart, when a pool is rescaled.
        """
        for name, replicas in bounds.items():
            pool = self.cluster.pool(name)
            pool.replicas = replicas
            self.admission.set_limit(name, pool.max_in_flight)

    # --- read-only views -------------------------------------------------

    def models(self) -> dict:
        bands = self.path.bands
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": self._created,
                    "owned_by": "longctx",
                    "max_model_len": bands.limit(name),
                    "native_context": model.native_context,
                    "thinking": model.thinking_system_prompt_file is not None,
                    "pools": [p.name for p in bands.pools_of(name)],
                }
                for name, model in self.cluster.models.items()
            ],
        }

    def pools(self) -> dict:
        rows = _pool_view(self.cluster)
        for row in rows:
            row["healthy_replicas"] = self.admission.healthy_replicas(row["name"])
            row["in_flight"] = self.admission.depth(row["name"])
        return {"object": "list", "data": rows}

    # --- engine requests ---------------------------------------------------

    async def chat(self, body: ChatCompletionBody, state, heartbeat: HeartbeatChoice | None = None) -> Response:
        timings = ServerTimings()
        tokenizer = self.path.tokenizer_for(body.model, state)
        messages = body.message_dicts()
        if body.thinking:
            try:
                messages = tokenizer.with_thinking(messages)
            except ThinkingUnsupported as exc:
                raise APIError(ErrorCode.THINKING_NOT_CONFIGURED, str(exc), param="thinking") from None
        started = time.perf_counter()
        prompt_ids = await asyncio.to_thread(tokenizer.chat_ids, messages)
        timings.add("tokenize", time.perf_counter() - started)
        decision = self.path.route(body.model, len(prompt_ids), body.max_tokens, timings)
        body.check_min_tokens(decision.max_tokens)
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        request = self.path.engine_request(body.model, decision, prompt_ids, body.engine_sampling(), logprobs)
        return await self.path.dispatch(decision, request, timings, chat=True, heartbeat=heartbeat)

    async def completions(self, body: CompletionBody, state,
                          heartbeat: HeartbeatChoice | None = None) -> Response:
        timings = ServerTimings()
        tokenizer = self.path.tokenizer_for(body.model, state)
        started = time.perf_counter()
        if isinstance(body.prompt, str):
            prompt_ids = await asyncio.to_thread(tokenizer.text_ids, body.prompt)
        else:
            prompt_ids = list(body.prompt)
            bad = [i for i in prompt_ids if not 0 <= i < tokenizer.vocab_size]
            if bad:
                raise APIError(
                    ErrorCode.INVALID_TOKEN_ID,
                    f"prompt token id {bad[0]} is outside the vocabulary of {body.model}: ids are "
                    f"0 to {tokenizer.vocab_size - 1}",
                    param="prompt",
                )
        timings.add("tokenize", time.perf_counter() - started)
        decision = self.path.route(body.model, len(prompt_ids), body.max_tokens, timings, prompt_param="prompt")
        body.check_min_tokens(decision.max_tokens)
        request = self.path.engine_request(body.model, decision, prompt_ids, body.engine_sampling(), body.logprobs)
        if body.echo:
            request.echo = True
        return await self.path.dispatch(decision, request, timings, chat=False, heartbeat=heartbeat)


def _pool_view(cluster: ClusterConfig) -> list[dict[str, Any]]:
    rows = []
    for pool in cluster.pools:
        model = cluster.models[pool.model]
        rows.append(
            {
                "name": pool.name,
                "model": pool.model,
                "min_tokens": pool.min_tokens,
                "max_tokens": pool.max_tokens,
                "tensor_parallel_size": pool.engine.tensor_parallel_size,
                "replicas": pool.replicas.model_dump(),
                "max_model_len": pool.engine.max_model_len,
                "max_num_seqs": pool.engine.max_num_seqs,
                "native_context": model.native_context,
                "rope_scaling": model.rope_scaling,
                "model_path": model.path,
                "accelerator_type": pool.accelerator_type,
            }
        )
    return rows

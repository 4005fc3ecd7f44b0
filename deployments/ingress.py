"""The HTTP ingress: one Serve deployment in front of every pool.

Request path, one hop per step:
  parse (schemas) -> token count (tokens) -> pool choice (routing.bands)
  -> replica choice (the pool deployment's Serve request router)
  -> engine (ray.serve.llm LLMServer) -> response shape (chat_format).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from ray import serve
from starlette.responses import JSONResponse, Response, StreamingResponse

from cluster.config import ClusterConfig
from deployments.chat_format import ChatStreamRewriter, chat_response, sse_texts
from deployments.errors import APIError, install_error_handlers, sse_error_event
from deployments.metrics import RouterMetrics
from deployments.routing.bands import BandPolicy, NoPoolFits, RouteDecision, UnknownModel
from deployments.schemas import ChatCompletionBody, CompletionBody
from deployments.tokens import PromptTokenizer, ThinkingUnsupported

POOL_HEADER = "x-pool"


class _Timings:
    """Server-Timing header: where the ingress spent its time."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self._marks.append((name, seconds))

    @property
    def marks(self) -> list[tuple[str, float]]:
        return list(self._marks)

    def header(self) -> str:
        return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in self._marks)


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


def create_app(ingress: "Ingress") -> FastAPI:
    """FastAPI routes; each delegates to the Ingress instance."""
    app = FastAPI(title="longctx cluster", version="0.1.0")
    install_error_handlers(app)

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        declared = request.headers.get("content-length")
        limit = ingress.cluster.ingress.max_body_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            return APIError(
                413, f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                code="body_too_large",
            ).response()
        return await call_next(request)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/v1/") and request.method == "POST":
            ingress.observe(
                getattr(request.state, "model", "unknown"),
                response.headers.get(POOL_HEADER, ""),
                response.status_code,
                getattr(request.state, "error_code", None),
            )
        return response

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return ingress.models()

    @app.get("/v1/pools")
    async def pools():
        return {"object": "list", "data": _pool_view(ingress.cluster)}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionBody, request: Request):
        return await ingress.chat(body, request.state)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request):
        return await ingress.completions(body, request.state)

    return app


class Ingress:
    """Counts tokens, picks the pool, and relays the pool's answer."""

    def __init__(self, cluster: dict, pool_handles: dict[str, Any]):
        self.cluster = ClusterConfig.model_validate(cluster)
        self._bands = BandPolicy(self.cluster)
        self._tokenizers = {
            name: PromptTokenizer(name, model) for name, model in self.cluster.models.items()
        }
        # Reuse configured handles: each .options() call creates a new handle
        # with its own metrics pusher.
        self._pools = {name: handle.options(stream=True) for name, handle in pool_handles.items()}
        self._created = int(time.time())
        self.metrics = RouterMetrics(
            {model: [p.name for p in self.cluster.pools_of(model)] for model in self.cluster.models}
        )

    def observe(self, model: str, pool: str, status: int, error_code: str | None) -> None:
        """Account one answered request (called by the HTTP middleware)."""
        self.metrics.answered(model, pool, status)
        if status < 400:
            return
        if status == 413 and error_code == "context_length_exceeded":
            reason = "over_length"
        elif error_code == "model_not_found":
            reason = "unknown_model"
        elif status == 429:
            reason = "overload"
        elif status in (503, 504):
            reason = "unavailable"
        elif status < 500:
            reason = "bad_request"
        else:
            return
        self.metrics.rejected(model, reason)

    # --- read-only views -------------------------------------------------

    def models(self) -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": self._created,
                    "owned_by": "longctx",
                    "max_model_len": self._bands.limit(name),
                    "native_context": model.native_context,
                    "thinking": model.thinking_system_prompt is not None,
                    "pools": [p.name for p in self._bands.pools_of(name)],
                }
                for name, model in self.cluster.models.items()
            ],
        }

    # --- request path ----------------------------------------------------

    def _tokenizer(self, model: str, state) -> PromptTokenizer:
        try:
            tokenizer = self._tokenizers[model]
            state.model = model
            return tokenizer
        except KeyError:
            raise APIError(
                404,
                f"model {model!r} does not exist; available models: {', '.join(sorted(self._tokenizers))}",
                code="model_not_found",
                param="model",
            ) from None

    def _route(self, model: str, prompt_tokens: int, requested: int | None, timings: _Timings) -> RouteDecision:
        started = time.perf_counter()
        try:
            max_tokens = self._bands.completion_budget(
                model, prompt_tokens, requested, self.cluster.models[model].default_max_tokens
            )
            return self._bands.choose(model, prompt_tokens, max_tokens)
        except NoPoolFits as exc:
            # The count is the expensive part of the ingress: report it even
            # on refusal (benchmarks/ingress_overhead.py reads it).
            raise APIError(
                413, str(exc), code="context_length_exceeded", param="messages",
                headers={"x-prompt-tokens": str(prompt_tokens), "server-timing": timings.header()},
            ) from None
        except UnknownModel as exc:
            raise APIError(404, str(exc), code="model_not_found", param="model") from None
        finally:
            timings.add("route", time.perf_counter() - started)

    def _engine_request(self, body, decision: RouteDecision, prompt_ids: list[int], logprobs: int | None):
        from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest

        stop_ids = sorted(set(self.cluster.models[body.model].stop_token_ids))
        return CompletionRequest(
            model=body.model,
            prompt=prompt_ids,
            max_tokens=decision.max_tokens,
            add_special_tokens=False,
            stop_token_ids=stop_ids,
            logprobs=logprobs,
            **body.engine_sampling(),
        )

    async def chat(self, body: ChatCompletionBody, state) -> Response:
        timings = _Timings()
        tokenizer = self._tokenizer(body.model, state)
        messages = body.message_dicts()
        if body.thinking:
            try:
                messages = tokenizer.with_thinking(messages)
            except ThinkingUnsupported as exc:
                raise APIError(400, str(exc), code="thinking_unsupported", param="thinking") from None
        started = time.perf_counter()
        prompt_ids = await asyncio.to_thread(tokenizer.chat_ids, messages)
        timings.add("tokenize", time.perf_counter() - started)
        decision = self._route(body.model, len(prompt_ids), body.max_tokens, timings)
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        request = self._engine_request(body, decision, prompt_ids, logprobs)
        return await self._dispatch(decision, request, timings, chat=True)

    async def completions(self, body: CompletionBody, state) -> Response:
        timings = _Timings()
        tokenizer = self._tokenizer(body.model, state)
        started = time.perf_counter()
        if isinstance(body.prompt, str):
            prompt_ids = await asyncio.to_thread(tokenizer.text_ids, body.prompt)
        else:
            prompt_ids = list(body.prompt)
            bad = [i for i in prompt_ids if i >= tokenizer.vocab_size]
            if bad:
                raise APIError(
                    400,
                    f"prompt token id {bad[0]} is outside the vocabulary of {body.model} "
                    f"(size {tokenizer.vocab_size})",
                    code="invalid_token_id",
                    param="prompt",
                )
        timings.add("tokenize", time.perf_counter() - started)
        decision = self._route(body.model, len(prompt_ids), body.max_tokens, timings)
        request = self._engine_request(body, decision, prompt_ids, body.logprobs)
        if body.echo:
            request.echo = True
        return await self._dispatch(decision, request, timings, chat=False)

    async def _dispatch(self, decision: RouteDecision, request, timings: _Timings, *, chat: bool) -> Response:
        from ray.llm._internal.serve.core.configs.openai_api_models import ErrorResponse

        model, pool = request.model, decision.pool.name
        for stage, seconds in timings.marks:
            self.metrics.stage(model, stage, seconds)
        self.metrics.routed(model, pool, decision.prompt_tokens)
        headers = {
            POOL_HEADER: pool,
            "x-prompt-tokens": str(decision.prompt_tokens),
            "server-timing": timings.header(),
        }
        if not request.stream:
            with self.metrics.in_flight(pool):
                first, stream = await self._first_item(pool, request)
            payload = first.model_dump(mode="json")
            self.metrics.completed(model, pool, (payload.get("usage") or {}).get("completion_tokens", 0))
            return JSONResponse(chat_response(payload) if chat else payload, headers=headers)
        first, stream = await self._first_item(pool, request)
        return StreamingResponse(
            self._relay(pool, first, stream, chat=chat),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _first_item(self, pool: str, request):
        """Start the engine call; raise the engine's own refusal as a client error."""
        from ray.llm._internal.serve.core.configs.openai_api_models import ErrorResponse

        stream = self._pools[pool].completions.remote(request, None)
        timeout = self.cluster.ingress.request_timeout_s
        try:
            async with asyncio.timeout(timeout):
                first = await stream.__anext__()
        except TimeoutError:
            stream.cancel()
            raise APIError(504, f"no answer from pool {pool} within {timeout:.0f} s", code="timeout") from None
        first_item = first[0] if isinstance(first, list) and first else first
        if isinstance(first_item, ErrorResponse):
            stream.cancel()
            error = first_item.error
            status = int(error.code) if str(error.code).isdigit() else 400
            raise APIError(status, error.message, code=str(error.type))
        return (first_item if not request.stream else first), stream

    async def _relay(self, pool: str, first, stream, *, chat: bool) -> AsyncIterator[str]:
        with self.metrics.in_flight(pool):
            async for text in self._sse(first, stream, chat=chat):
                yield text

    async def _sse(self, first, stream, *, chat: bool) -> AsyncIterator[str]:
        rewriter = ChatStreamRewriter() if chat else None
        done = False

        async def items():
            yield first
            async for item in stream:
                yield item

        try:
            async for item in items():
                for text in sse_texts(item):
                    if rewriter is not None:
                        text = rewriter.rewrite(text)
                    done = done or "data: [DONE]" in text
                    if text:
                        yield text
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except Exception as exc:  # the engine died mid-stream: tell the client, don't hang
            yield sse_error_event(503, f"the engine failed while streaming: {type(exc).__name__}",
                                  code="engine_failure")
        if not done:
            yield "data: [DONE]\n\n"


@serve.deployment(name="ingress", max_ongoing_requests=1000)
@serve.ingress()
class IngressDeployment(Ingress):
    """The Serve deployment; the FastAPI app is built per replica."""

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self)

"""The HTTP ingress: one Serve deployment in front of every pool.

Request path, one hop per step:
  parse (schemas) -> token count (tokens) -> pool choice (routing.bands)
  -> replica choice (the pool deployment's Serve request router)
  -> engine (ray.serve.llm LLMServer) -> response shape (chat_format).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
import time
from array import array
from collections import OrderedDict
from typing import Any, AsyncIterator

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from ray import serve
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse

from cluster.config import ClusterConfig
from deployments.chat_format import ChatStreamRewriter, chat_response, merge_choices, reindex_choices, sse_texts
from deployments.auth import KeyRing
from deployments.documents.api import DocumentService, document_routes
from deployments.documents.backends.factory import open_store
from deployments.engines import pool_deployment_name
from deployments.errors import APIError, install_error_handlers, sse_error_event
from deployments.http_limits import BodyLimitMiddleware
from deployments.metrics import RouterMetrics
from deployments.replica_tag import ReplicaTag
from deployments.routing.admission import AdmissionController, PoolFull, PoolUnavailable, Ticket
from deployments.routing.bands import BandPolicy, NoPoolFits, RouteDecision, UnknownModel
from deployments.schemas import ChatCompletionBody, CompletionBody
from deployments.tokens import PromptTokenizer, ThinkingUnsupported

logger = logging.getLogger("longctx.ingress")

POOL_HEADER = "x-pool"
REPLICA_HEADER = "x-replica"
# Paths a load balancer or kubelet probes without a key.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})
HEALTH_POLL_S = 2.0
AFFINITY_MEMORY = 100_000


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

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        poller = asyncio.create_task(ingress.poll_pool_health())
        yield
        poller.cancel()

    app = FastAPI(title="longctx cluster", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=ingress.cluster.ingress.max_body_bytes)

    @app.middleware("http")
    async def _authenticate(request: Request, call_next):
        if ingress.keys is None or request.url.path in UNAUTHENTICATED_PATHS:
            request.state.principal = None
            return await call_next(request)
        principal = ingress.keys.principal(request.headers.get("authorization"))
        if principal is None:
            request.state.error_code = "invalid_api_key"
            return APIError(
                401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key", headers={"www-authenticate": "Bearer"},
            ).response()
        request.state.principal = principal
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
        rows = _pool_view(ingress.cluster)
        for row in rows:
            row["healthy_replicas"] = ingress.admission.healthy_replicas(row["name"])
            row["in_flight"] = ingress.admission.depth(row["name"])
        return {"object": "list", "data": rows}

    app.include_router(document_routes(ingress.documents))

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
        self.bands = BandPolicy(self.cluster)
        self.tokenizers = {
            name: PromptTokenizer(name, model) for name, model in self.cluster.models.items()
        }
        # Reuse configured handles: each .options() call creates a new handle
        # with its own metrics pusher.
        self._pools = {name: handle.options(stream=True) for name, handle in pool_handles.items()}
        self._created = int(time.time())
        self.metrics = RouterMetrics(
            {model: [p.name for p in self.cluster.pools_of(model)] for model in self.cluster.models}
        )
        self.admission = AdmissionController(
            limits={p.name: p.max_in_flight for p in self.cluster.pools},
            retry_after_s={p.name: p.admission.retry_after_s for p in self.cluster.pools},
            on_depth=self.metrics.set_in_flight,
        )
        self.keys = KeyRing.from_config(self.cluster.ingress.auth)
        self._health_checked_at = 0.0
        self.documents = DocumentService(self, open_store(self.cluster.documents.store))
        # Last replica per affinity key, to count follow-ups that met their
        # cache (affinity hits); bounded so it cannot grow without limit.
        self._last_replica: OrderedDict[str, str] = OrderedDict()

    async def poll_pool_health(self) -> None:
        """Keep the admission controller's view of healthy replicas current.

        Serve's handle would park a request for a pool with no running replica
        until one comes back; knowing it lets the ingress answer 503 at once.
        The same loop re-sets the gauges, which Ray drops when left unset.
        """
        while await self.refresh_pool_health():
            for pool in self.cluster.pools:
                self.metrics.set_in_flight(pool.name, self.admission.depth(pool.name))
            try:
                self.metrics.documents_stored(await asyncio.to_thread(self.documents.count))
            except Exception:
                logger.warning("document count failed", exc_info=True)
            await asyncio.sleep(HEALTH_POLL_S)

    async def refresh_pool_health(self) -> bool:
        """One look at Serve's replica states; False outside a Serve replica."""
        try:
            app_name = serve.get_replica_context().app_name
        except Exception:  # in-process tests: no controller to ask
            return False
        try:
            status = await asyncio.to_thread(serve.status)
            deployments = status.applications[app_name].deployments
            for pool in self.cluster.pools:
                deployment = deployments.get(pool_deployment_name(pool.name))
                running = deployment.replica_states.get("RUNNING", 0) if deployment else None
                self.admission.set_healthy_replicas(pool.name, running)
            self._health_checked_at = time.monotonic()
        except Exception:  # the controller may be restarting: keep the last view
            logger.warning("pool health poll failed", exc_info=True)
        return True

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
                    "max_model_len": self.bands.limit(name),
                    "native_context": model.native_context,
                    "thinking": model.thinking_system_prompt is not None,
                    "pools": [p.name for p in self.bands.pools_of(name)],
                }
                for name, model in self.cluster.models.items()
            ],
        }

    # --- request path ----------------------------------------------------

    def tokenizer_for(self, model: str, state) -> PromptTokenizer:
        try:
            tokenizer = self.tokenizers[model]
            state.model = model
            return tokenizer
        except KeyError:
            raise APIError(
                404,
                f"model {model!r} does not exist; available models: {', '.join(sorted(self.tokenizers))}",
                code="model_not_found",
                param="model",
            ) from None

    def route(self, model: str, prompt_tokens: int, requested: int | None, timings: _Timings) -> RouteDecision:
        started = time.perf_counter()
        try:
            max_tokens = self.bands.completion_budget(
                model, prompt_tokens, requested, self.cluster.models[model].default_max_tokens
            )
            return self.bands.choose(model, prompt_tokens, max_tokens)
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

    def engine_request(self, model: str, decision: RouteDecision, prompt_ids: list[int],
                       sampling: dict[str, Any], logprobs: int | None = None):
        """The token-id completion request the pool's engine runs."""
        from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest

        return CompletionRequest(
            model=model,
            prompt=prompt_ids,
            max_tokens=decision.max_tokens,
            add_special_tokens=False,
            stop_token_ids=sorted(set(self.cluster.models[model].stop_token_ids)),
            logprobs=logprobs,
            **sampling,
        )

    async def chat(self, body: ChatCompletionBody, state) -> Response:
        timings = _Timings()
        tokenizer = self.tokenizer_for(body.model, state)
        messages = body.message_dicts()
        if body.thinking:
            try:
                messages = tokenizer.with_thinking(messages)
            except ThinkingUnsupported as exc:
                raise APIError(400, str(exc), code="thinking_unsupported", param="thinking") from None
        started = time.perf_counter()
        prompt_ids = await asyncio.to_thread(tokenizer.chat_ids, messages)
        timings.add("tokenize", time.perf_counter() - started)
        decision = self.route(body.model, len(prompt_ids), body.max_tokens, timings)
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        request = self.engine_request(body.model, decision, prompt_ids, body.engine_sampling(), logprobs)
        return await self._dispatch(decision, request, timings, chat=True)

    async def completions(self, body: CompletionBody, state) -> Response:
        timings = _Timings()
        tokenizer = self.tokenizer_for(body.model, state)
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
        decision = self.route(body.model, len(prompt_ids), body.max_tokens, timings)
        request = self.engine_request(body.model, decision, prompt_ids, body.engine_sampling(), body.logprobs)
        if body.echo:
            request.echo = True
        return await self._dispatch(decision, request, timings, chat=False)

    async def _admit(self, pool: str) -> Ticket:
        if self.admission.healthy_replicas(pool) == 0 and time.monotonic() - self._health_checked_at > 0.5:
            # Refuse only on a fresh view: the poll may predate a replica
            # that has just become ready.
            await self.refresh_pool_health()
        try:
            return self.admission.acquire(pool)
        except PoolFull as exc:
            raise APIError(429, str(exc), code="pool_overloaded",
                           headers={"retry-after": str(exc.retry_after_s)}) from None
        except PoolUnavailable as exc:
            raise APIError(503, str(exc), code="pool_unavailable",
                           headers={"retry-after": str(int(HEALTH_POLL_S * 5))}) from None

    def _timeout(self, pool: str) -> float:
        return self.cluster.pool(pool).request_timeout_s or self.cluster.ingress.request_timeout_s

    def _affinity_key(self, pool: str, prompt_ids: list[int], document_key: str | None) -> str | None:
        """Key that keeps requests sharing a prefix on one replica (see routing.affinity)."""
        if document_key:
            return f"doc:{document_key}"
        prefix = self.cluster.pool(pool).routing.prefix_tokens
        if len(prompt_ids) < prefix:
            return None
        digest = hashlib.blake2b(array("I", prompt_ids[:prefix]).tobytes(), digest_size=12).hexdigest()
        return f"prefix:{digest}"

    async def _dispatch(self, decision: RouteDecision, request, timings: _Timings, *, chat: bool) -> Response:
        started = await self._start(decision, request, timings)
        return self._respond([started], timings, chat=chat)

    async def dispatch_many(
        self, decisions: list[RouteDecision], requests: list, timings: _Timings, *, document_key: str | None
    ) -> Response:
        """Several prompts answered as one chat completion, choice i for prompt i.

        They run concurrently (sharing the document prefix, they meet on one
        replica's cache); if any cannot start, the others are stopped.
        """
        base_id = uuid.uuid4().hex
        for index, request in enumerate(requests):
            # vLLM needs a distinct id per sequence; by default all would get
            # the HTTP request's.
            request.request_id = f"{base_id}-{index}"
        tasks = [
            asyncio.ensure_future(self._start(d, r, timings, document_key=document_key, sub_request=i))
            for i, (d, r) in enumerate(zip(decisions, requests))
        ]
        try:
            started = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is None:
                    task.result().abort()
                else:
                    task.cancel()
            raise
        return self._respond(started, timings, chat=True)

    async def _start(self, decision: RouteDecision, request, timings: _Timings, *,
                     document_key: str | None = None, sub_request: int | None = None) -> "_Started":
        """Admission, affinity, and the engine call up to its first item.

        The engine's own refusals (vLLM validation) become client errors here.
        """
        from ray.llm._internal.serve.core.configs.openai_api_models import ErrorResponse

        if sub_request is not None:
            _isolate_serve_request(sub_request)

        model, pool = request.model, decision.pool.name
        for stage, seconds in timings.marks:
            self.metrics.stage(model, stage, seconds)
        ticket = await self._admit(pool)
        self.metrics.routed(model, pool, decision.prompt_tokens)
        handle = self._pools[pool]
        key = self._affinity_key(pool, request.prompt, document_key)
        if key:
            handle = handle.options(session_id=key)
        stream = handle.completions.remote(request, None)
        timeout = self._timeout(pool)
        replica = ""
        try:
            async with asyncio.timeout(timeout):
                first = await stream.__anext__()
                if isinstance(first, ReplicaTag):
                    replica = first.replica
                    first = await stream.__anext__()
        except TimeoutError:
            stream.cancel()
            ticket.release()
            raise APIError(504, f"no answer from pool {pool} within its timeout of {timeout:.0f} s",
                           code="timeout") from None
        except BaseException:
            # Includes the client going away during a long prefill: stop the engine.
            stream.cancel()
            ticket.release()
            raise
        if key and replica:
            self._record_affinity(pool, key, replica)
        first_item = first[0] if isinstance(first, list) and first else first
        if isinstance(first_item, ErrorResponse):
            stream.cancel()
            ticket.release()
            error = first_item.error
            status = int(error.code) if str(error.code).isdigit() else 400
            raise APIError(status, error.message, code=str(error.type))
        return _Started(decision, request, ticket, replica, first_item if not request.stream else first,
                        stream, timeout)

    def _record_affinity(self, pool: str, key: str, replica: str) -> None:
        previous = self._last_replica.pop(key, None)
        if previous is not None:
            self.metrics.affinity(pool, previous == replica)
        self._last_replica[key] = replica
        if len(self._last_replica) > AFFINITY_MEMORY:
            self._last_replica.popitem(last=False)

    def _respond(self, started: list["_Started"], timings: _Timings, *, chat: bool) -> Response:
        lead = started[0]
        headers = {
            POOL_HEADER: ",".join(dict.fromkeys(s.decision.pool.name for s in started)),
            REPLICA_HEADER: ",".join(dict.fromkeys(s.replica for s in started)),
            "x-prompt-tokens": ",".join(str(s.decision.prompt_tokens) for s in started),
            "server-timing": timings.header(),
        }
        if not lead.request.stream:
            payloads = []
            for s in started:
                s.ticket.release()
                payload = s.first.model_dump(mode="json")
                self.metrics.completed(s.request.model, s.decision.pool.name,
                                       (payload.get("usage") or {}).get("completion_tokens", 0))
                payloads.append(chat_response(payload) if chat else payload)
            return JSONResponse(merge_choices(payloads) if len(payloads) > 1 else payloads[0], headers=headers)
        body = self._relay(lead, chat=chat) if len(started) == 1 else self._relay_many(started)
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers=headers,
            # Also released here in case the stream is never iterated.
            background=BackgroundTask(lambda: [s.ticket.release() for s in started]),
        )

    async def _relay(self, started: "_Started", *, chat: bool) -> AsyncIterator[str]:
        rewriter = ChatStreamRewriter() if chat else None
        try:
            async for text in started.sse():
                yield rewriter.rewrite(text) if rewriter is not None else text
        finally:
            started.ticket.release()

    async def _relay_many(self, started: list["_Started"]) -> AsyncIterator[str]:
        """Interleave several chat streams; choice index = the prompt's position."""
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(index: int, item: "_Started"):
            rewriter = ChatStreamRewriter()
            try:
                async for text in item.sse(final_done=False):
                    await queue.put(reindex_choices(rewriter.rewrite(text), index))
            finally:
                item.ticket.release()
                await queue.put(None)

        pumps = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(started)]
        try:
            remaining = len(pumps)
            while remaining:
                text = await queue.get()
                if text is None:
                    remaining -= 1
                elif text:
                    yield text
            yield "data: [DONE]\n\n"
        finally:
            for task in pumps:
                task.cancel()


def _isolate_serve_request(index: int) -> None:
    """Give one of several engine calls of a single HTTP request its own
    Serve routing id.

    Serve tags every handle call with the calling request's internal id, and
    the pool's request router fulfils pending requests by that id: calls
    sharing it would see only one of them routed, the rest waiting forever.
    Runs inside the call's own asyncio task, whose context copy it changes.
    """
    from ray.serve import context as serve_context

    current = serve_context._get_serve_request_context()
    serve_context._serve_request_context.set(
        dataclasses.replace(current, _internal_request_id=f"{current._internal_request_id}-{index}")
    )


class _Started:
    """An engine call that produced its first item, and what it holds."""

    def __init__(self, decision: RouteDecision, request, ticket: Ticket, replica: str, first, stream,
                 timeout: float):
        self.decision, self.request, self.ticket = decision, request, ticket
        self.replica, self.first, self.stream, self.timeout = replica, first, stream, timeout

    def abort(self) -> None:
        self.stream.cancel()
        self.ticket.release()

    async def sse(self, *, final_done: bool = True) -> AsyncIterator[str]:
        """The engine's SSE text; errors become an error event, never a hang."""
        stream, timeout = self.stream, self.timeout
        done = False
        finished = False

        async def items():
            yield self.first
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        item = await stream.__anext__()
                except StopAsyncIteration:
                    return
                yield item

        try:
            async for item in items():
                for text in sse_texts(item):
                    if "data: [DONE]" in text:
                        done = True
                        if not final_done:
                            text = text.replace("data: [DONE]\n\n", "")
                    if text:
                        yield text
            finished = True
        except TimeoutError:
            yield sse_error_event(504, f"the engine sent nothing for {timeout:.0f} s", code="timeout")
        except Exception as exc:  # the engine died mid-stream: tell the client, don't hang
            yield sse_error_event(503, f"the engine failed while streaming: {type(exc).__name__}",
                                  code="engine_failure")
        finally:
            if not finished:
                # Client gone (cancelled or closed) or engine failed: make sure
                # the engine stops working on an answer nobody will read.
                stream.cancel()
        if final_done and not done:
            yield "data: [DONE]\n\n"


@serve.deployment(name="ingress", max_ongoing_requests=1000)
@serve.ingress()
class IngressDeployment(Ingress):
    """The Serve deployment; the FastAPI app is built per replica."""

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self)

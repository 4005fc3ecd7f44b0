"""The request path: from a model name and prompt ids to an engine's first answer.

One hop per step, shared by chat, completions and document questions:
  tokenizer lookup -> pool choice (routing.bands) -> admission (routing.admission)
  -> affinity key (routing.affinity) -> the pool's Serve handle, whose request
  router picks the replica -> the engine's first item (relay.EngineCall).

Every touch of Ray's private modules is here (``_ray_llm_types`` and
``_isolate_serve_request``), so a Ray upgrade that moves them breaks one file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from typing import Any, Callable, Mapping

from ray.exceptions import RayError
from ray.serve import context as serve_context
from starlette.responses import Response

from cluster.config import ClusterConfig
from deployments.errors import APIError, ErrorCode
from deployments.dispatch.health import HEALTH_POLL_S, PoolHealth
from deployments.dispatch.keepalive import PENDING_REPLICA, HeartbeatChoice, committed_response, request_heartbeat
from deployments.dispatch.relay import POOL_HEADER, REPLICA_HEADER, EngineCall, respond, rope_headers
from deployments.metrics import RouterMetrics
from deployments.replica_tag import read_replica_tag
from deployments.routing.admission import AdmissionController, PoolFull, PoolUnavailable, Ticket
from deployments.routing.affinity.hits import AffinityHits
from deployments.routing.affinity.key import affinity_key
from deployments.routing.bands import BandPolicy, NoPoolFits, RouteDecision, UnknownModel
from deployments.routing.rope_base import RopeBasePolicy
from deployments.tokens import PromptTokenizer

# A pool seen without healthy replicas is refused only on a view at most this
# old: the poll may predate a replica that has just become ready.
FRESH_HEALTH_S = 0.5


class ServerTimings:
    """Server-Timing header: where a request's time went up to its first
    answer item: the ingress's steps, the hop to the replica, the replica's
    and vLLM's own spans (docs/operations.md lists them)."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self._marks.append((name, seconds))

    @property
    def marks(self) -> list[tuple[str, float]]:
        return list(self._marks)

    def header(self) -> str:
        return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in self._marks)


class RequestPath:
    """Tokenizer lookup, pool choice, admission and the engine call of every request."""

    def __init__(
        self,
        cluster: ClusterConfig,
        tokenizers: Mapping[str, PromptTokenizer],
        pool_handles: Mapping[str, Any],
        admission: AdmissionController,
        metrics: RouterMetrics,
        health: PoolHealth,
    ):
        self.cluster = cluster
        self.bands = BandPolicy(cluster)
        self.rope = RopeBasePolicy(cluster)
        self.tokenizers = dict(tokenizers)
        # Reuse configured handles: each .options() call creates a new handle
        # with its own metrics pusher.
        self._pools = {name: handle.options(stream=True) for name, handle in pool_handles.items()}
        self._admission = admission
        self._metrics = metrics
        self._health = health
        self._affinity_hits = AffinityHits(metrics.affinity)

    def tokenizer_for(self, model: str, state) -> PromptTokenizer:
        """The model's tokenizer; records the model on the request for the metrics."""
        try:
            tokenizer = self.tokenizers[model]
            state.model = model
            return tokenizer
        except KeyError:
            raise APIError(
                ErrorCode.MODEL_NOT_FOUND,
                f"model {model!r} does not exist; available models: {', '.join(sorted(self.tokenizers))}",
                param="model",
            ) from None

    def route(self, model: str, prompt_tokens: int, requested: int | None, timings: ServerTimings,
              prompt_param: str = "messages", document_seq_len: int | None = None) -> RouteDecision:
        """The pool for this prompt and its rotary length; ``prompt_param`` names the request
        field an over-length error points at; ``document_seq_len``: a document question's shared
        rotary length (routing.rope_base)."""
        started = time.perf_counter()
        try:
            max_tokens = self.bands.completion_budget(
                model, prompt_tokens, requested, self.cluster.models[model].default_max_tokens
            )
            return self.with_rope(self.bands.choose(model, prompt_tokens, max_tokens), document_seq_len)
        except NoPoolFits as exc:
            # The count is the expensive part of the ingress: report it even
            # on refusal (benchmarks/cpu/ingress_overhead.py reads it).
            raise APIError(
                ErrorCode.CONTEXT_LENGTH_EXCEEDED, str(exc), param=prompt_param,
                headers={"x-prompt-tokens": str(prompt_tokens), "server-timing": timings.header()},
            ) from None
        except UnknownModel as exc:
            raise APIError(ErrorCode.MODEL_NOT_FOUND, str(exc), param="model") from None
        finally:
            timings.add("route", time.perf_counter() - started)

    def with_rope(self, decision: RouteDecision, document_seq_len: int | None = None) -> RouteDecision:
        """The decision with the rotary length its pool's engine rotates it with."""
        rope = self.rope.choose(decision.pool, decision.prompt_tokens, document_seq_len=document_seq_len)
        return dataclasses.replace(decision, rope=rope)

    def engine_request(self, model: str, decision: RouteDecision, prompt_ids: list[int],
                       sampling: dict[str, Any], logprobs: int | None = None):
        """The token-id completion request the pool's engine runs.

        The rotary length rides in ``vllm_xargs`` (beside the client's own) and
        in ``cache_salt`` (before the client's own), so KV computed under one
        base is never reused under another."""
        completion_request, _ = _ray_llm_types()
        if decision.rope is not None:
            sampling = {**sampling, "vllm_xargs": {**(sampling.get("vllm_xargs") or {}), **decision.rope.xargs()},
                        "cache_salt": decision.rope.cache_salt(sampling.get("cache_salt"))}
        try:
            # The ids are the ingress's own count (its tokenizer, a document's
            # stored ids, or a client's ids its schema checked): validating
            # them again is a pass over the whole prompt per request (0.5 s at
            # 1M tokens, benchmarks/cpu/warm_path.py). vLLM's model validates
            # every other field on a one-token prompt; the ids go in after.
            request = completion_request(
                model=model,
                prompt=prompt_ids[:1],
                max_tokens=decision.max_tokens,
                add_special_tokens=False,
                stop_token_ids=sorted(set(self.cluster.models[model].stop_token_ids)),
                logprobs=logprobs,
                **sampling,
            )
            request.prompt = prompt_ids
            return request
        except Exception as exc:
            # vLLM's request model refused what the ingress's schemas admitted
            # (its VLLMClientError, or pydantic's ValidationError, a ValueError):
            # the client's request, so a 400 rather than an opaque 500.
            from vllm.exceptions import VLLMClientError

            if not isinstance(exc, (ValueError, VLLMClientError)):
                raise
            raise APIError(ErrorCode.ENGINE_REJECTED, f"the engine's request model refused it: {exc}") from None

    async def dispatch(self, decision: RouteDecision, request, timings: ServerTimings, *, chat: bool,
                       heartbeat: HeartbeatChoice | None = None) -> Response:
        """One prompt, answered as a chat completion (``chat``) or a completion;
        ``heartbeat`` is the request's ``x-stream-heartbeat`` choice, if any."""
        return await self._answer([decision], [request], timings, chat=chat, document_key=None,
                                  heartbeat=heartbeat)

    async def dispatch_many(
        self, decisions: list[RouteDecision], requests: list, timings: ServerTimings, *, document_key: str | None,
        heartbeat: HeartbeatChoice | None = None,
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
        return await self._answer(decisions, requests, timings, chat=True, document_key=document_key,
                                  heartbeat=heartbeat)

    async def prefill(self, decision: RouteDecision, request, *, document_key: str | None,
                      on_replica: Callable[[str], None] | None = None) -> str:
        """Run a non-streaming request to its end only to fill an engine's
        prefix cache (a document's warm-up), as any request: admission,
        affinity key, the pool's replica router. Returns the replica that ran
        it; ``on_replica`` hears it as soon as the replica takes the request.

        Runs as its own Serve request: the HTTP request that started it may
        be answered (or gone) long before.
        """
        _isolate_serve_request("prefill")
        call = await self._start(decision, request, ServerTimings(), document_key=document_key,
                                 on_replica=on_replica)
        return call.replica

    async def _answer(self, decisions: list[RouteDecision], requests: list, timings: ServerTimings, *,
                      chat: bool, document_key: str | None, heartbeat: HeartbeatChoice | None) -> Response:
        """Start the engine calls; answer as usual if they produce their first
        item within the pool's heartbeat, else commit a 200 and keep the
        connection alive until they do (deployments/dispatch/keepalive.py)."""
        started = time.monotonic()
        replicas: dict[int, str] = {}
        task = asyncio.ensure_future(self._start_all(decisions, requests, timings, document_key, replicas))
        stream = bool(requests[0].stream)
        beat = request_heartbeat(self.cluster, decisions[0].pool.name, stream=stream, choice=heartbeat)
        try:
            done, _ = await asyncio.wait({task}, timeout=beat.interval_s or None)
        except BaseException:
            task.cancel()  # the client left: the start's cleanup stops the engine
            raise
        if done:
            return respond(task.result(), timings.header(), self._metrics, chat=chat)
        headers = {
            POOL_HEADER: ",".join(dict.fromkeys(d.pool.name for d in decisions)),
            REPLICA_HEADER: ",".join(dict.fromkeys(replicas.get(i) or PENDING_REPLICA for i in range(len(decisions)))),
            "x-prompt-tokens": ",".join(str(d.prompt_tokens) for d in decisions),
            **rope_headers(decisions),
            "server-timing": timings.header(),
        }
        return committed_response(task, heartbeat=beat, started=started, stream=stream, chat=chat,
                                  headers=headers, metrics=self._metrics)

    async def _start_all(self, decisions: list[RouteDecision], requests: list, timings: ServerTimings,
                         document_key: str | None, replicas: dict[int, str]) -> list[EngineCall]:
        """Start call i for prompt i; ``replicas[i]`` names its replica as soon as one takes it."""

        async def start(index: int) -> EngineCall:
            if len(requests) > 1:
                _isolate_serve_request(index)
            return await self._start(decisions[index], requests[index], timings, document_key=document_key,
                                     on_replica=functools.partial(replicas.__setitem__, index))

        if len(requests) == 1:
            return [await start(0)]
        tasks = [asyncio.ensure_future(start(i)) for i in range(len(requests))]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is None:
                    task.result().abort()
                else:
                    task.cancel()
            raise

    async def _admit(self, pool: str) -> Ticket:
        if self._admission.healthy_replicas(pool) == 0 and self._health.age_s() > FRESH_HEALTH_S:
            await self._health.refresh()
        try:
            return self._admission.acquire(pool)
        except PoolFull as exc:
            raise APIError(ErrorCode.POOL_OVERLOADED, str(exc),
                           headers={"retry-after": str(exc.retry_after_s)}) from None
        except PoolUnavailable as exc:
            raise APIError(ErrorCode.POOL_UNAVAILABLE, str(exc),
                           headers={"retry-after": str(int(HEALTH_POLL_S * 5))}) from None

    def timeout_s(self, pool: str) -> float:
        """The pool's request timeout (its own, else the ingress default)."""
        return self.cluster.pool(pool).request_timeout_s or self.cluster.ingress.request_timeout_s

    async def _start(self, decision: RouteDecision, request, timings: ServerTimings, *,
                     document_key: str | None, on_replica: Callable[[str], None] | None) -> EngineCall:
        """Admission, affinity, and the engine call up to its first item;
        ``on_replica`` hears the replica as soon as it takes the request.

        The returned call holds the admission ticket while its engine works
        (a stream); anything raised on the way gives it back. The engine's
        own refusals (vLLM validation) become client errors here.
        """
        model, pool = request.model, decision.pool.name
        for stage, seconds in timings.marks:
            self._metrics.stage(model, stage, seconds)
        call = EngineCall(decision, request, await self._admit(pool), self.timeout_s(pool))
        with call.aborted_on_error():
            self._metrics.routed(model, pool, decision.prompt_tokens)
            handle = self._pools[pool]
            # Serve's session_id is what the pool's replica router reads the key from.
            key = affinity_key(request.prompt, self.cluster.pool(pool).routing.prefix_tokens, document_key)
            if key:
                handle = handle.options(session_id=key)
            sent = tagged = time.perf_counter()

            def heard(replica: str) -> None:
                nonlocal tagged
                tagged = time.perf_counter()
                if on_replica is not None:
                    on_replica(replica)

            replica_spans: list[tuple[str, float]] = []
            call.stream = handle.completions.remote(request, None)
            call.replica, first = await self._first_item(call, heard, replica_spans.extend)
            # Where the first answer's time went (docs/operations.md, Server-Timing).
            timings.add("handle", tagged - sent)
            timings.add("first_item", time.perf_counter() - tagged)
            for name, seconds in replica_spans:
                timings.add(name, seconds)
            if key and call.replica:
                self._affinity_hits.record(pool, key, call.replica)
            first_item = first[0] if isinstance(first, list) and first else first
            _, error_response = _ray_llm_types()
            if isinstance(first_item, error_response):
                raise engine_refusal(first_item.error)
        if request.stream:
            call.first = first
        else:
            call.first = first_item
            call.close()  # the engine's work is done: its whole answer is this item
        return call

    async def _first_item(self, call: EngineCall, on_replica: Callable[[str], None] | None,
                          on_spans: Callable[[tuple], None] | None = None) -> tuple[str, Any]:
        """The replica and first item of a started call (``on_spans`` hears the
        replica's timing of it); the pool's timeout and a failed engine become
        client errors."""
        pool = call.decision.pool.name
        try:
            async with asyncio.timeout(call.timeout):
                return await read_replica_tag(call.stream, on_tag=on_replica, on_spans=on_spans)
        except TimeoutError:
            raise APIError(ErrorCode.TIMEOUT,
                           f"no answer from pool {pool} within its timeout of {call.timeout:.0f} s") from None
        except RayError as exc:
            # The pool's replica or its engine failed (vLLM's EngineDeadError
            # after a CUDA out-of-memory, on the H200): a server fault the
            # client may retry once Serve has replaced the replica, as when a
            # replica is down, rather than an opaque 500.
            cause = getattr(exc, "cause", None) or exc
            raise APIError(ErrorCode.ENGINE_FAILED, f"the engine of pool {pool} failed before answering "
                           f"({type(cause).__name__}); retry once the pool is healthy again",
                           headers={"retry-after": str(int(HEALTH_POLL_S * 5))}) from exc


def engine_refusal(error) -> APIError:
    """The client's answer to an engine's own error response (vLLM's
    ErrorInfo: ``message``, ``type``, ``code`` as an HTTP status). A 4xx is
    a request the ingress admitted and the engine refused (its checks should
    have caught it: a gap in deployments/schemas.py); anything else is the
    engine failing."""
    status = int(error.code) if str(error.code).isdigit() else 500
    code = ErrorCode.ENGINE_REJECTED if 400 <= status < 500 else ErrorCode.ENGINE_FAILED
    return APIError(code, f"{error.type}: {error.message}")


def _ray_llm_types() -> tuple[type, type]:
    """Ray Serve LLM's ``CompletionRequest`` and ``ErrorResponse`` (a private module).

    Imported on first use rather than with this module: it loads vLLM and
    torch (seconds, and about a GiB per ingress replica), which an ingress
    that only refuses requests or serves metadata never needs.
    """
    from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest, ErrorResponse

    return CompletionRequest, ErrorResponse


def _isolate_serve_request(index: int | str) -> None:
    """Give one of several engine calls of a single HTTP request its own
    Serve routing id.

    Serve tags every handle call with the calling request's internal id, and
    the pool's request router fulfils pending requests by that id: calls
    sharing it would see only one of them routed, the rest waiting forever.
    Runs inside the call's own asyncio task, whose context copy it changes.
    """
    current = serve_context._get_serve_request_context()
    serve_context._serve_request_context.set(
        dataclasses.replace(current, _internal_request_id=f"{current._internal_request_id}-{index}")
    )

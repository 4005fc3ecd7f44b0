"""Router metrics: one object, created per ingress replica and passed in.

Built on ``ray.serve.metrics`` so each series carries Serve's deployment,
replica and application tags and is exported on Ray's metrics endpoint next
to ``ray_serve_*`` and vLLM's ``ray_vllm_*`` (Ray prefixes every name with
``ray_``). Names and labels are the contract of monitoring/ (dashboards,
alert rules); change them together.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from deployments.errors import ErrorCode

# Powers of two from 16 to 2^20 (1,048,576): one bucket per doubling of
# context, so every band boundary of every profile lands near a bucket edge.
TOKEN_BUCKETS = [float(2**k) for k in range(4, 21)]
SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]

REJECTION_REASONS = ("over_length", "overload", "unknown_model", "bad_request", "unavailable")

# Codes with a reason of their own; every other 4xx code is a bad request,
# and internal_error (a fault of the ingress itself) is no refusal.
_REASONS = {
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: "over_length",
    ErrorCode.MODEL_NOT_FOUND: "unknown_model",
    ErrorCode.POOL_OVERLOADED: "overload",
    ErrorCode.POOL_UNAVAILABLE: "unavailable",
    ErrorCode.ENGINE_FAILED: "unavailable",
    ErrorCode.STORE_UNAVAILABLE: "unavailable",
    ErrorCode.TIMEOUT: "unavailable",
}


def rejection_reason(status: int, error_code: ErrorCode | None) -> str | None:
    """The ``longctx_rejections`` reason of an answered request, or None when
    it was not refused (a success, or a 5xx fault of the ingress itself).

    ``error_code`` is the answer's code; only an answer that carries none
    (a response no error handler made) is judged by its status alone.
    """
    if status < 400:
        return None
    if error_code is None:
        return "bad_request" if status < 500 else None
    code = ErrorCode(error_code)
    return _REASONS.get(code, "bad_request" if code.status < 500 else None)


class RouterMetrics:
    """Counters, histograms and gauges of the request path."""

    def __init__(self, pools_by_model: Mapping[str, Sequence[str]]):
        from ray.serve.metrics import Counter, Gauge, Histogram

        self._requests = Counter(
            "longctx_requests", "Requests answered by the ingress, by model, pool and HTTP status.",
            tag_keys=("model", "pool", "status"),
        )
        self._routed = Counter(
            "longctx_routed_requests", "Routing decisions: requests sent to each pool (band).",
            tag_keys=("model", "pool"),
        )
        self._rejections = Counter(
            "longctx_rejections", "Requests refused by the ingress, by reason.",
            tag_keys=("model", "reason"),
        )
        self._prompt_tokens = Histogram(
            "longctx_prompt_tokens", "Prompt tokens per routed request.",
            boundaries=TOKEN_BUCKETS, tag_keys=("model", "pool"),
        )
        self._completion_tokens = Histogram(
            "longctx_completion_tokens", "Completion tokens per finished non-streaming request.",
            boundaries=TOKEN_BUCKETS, tag_keys=("model", "pool"),
        )
        self._stage_seconds = Histogram(
            "longctx_ingress_stage_seconds", "Ingress time per stage (tokenize, route).",
            boundaries=SECONDS_BUCKETS, tag_keys=("model", "stage"),
        )
        self._in_flight = Gauge(
            "longctx_in_flight_requests", "Requests in flight per pool at this ingress replica: the admission queue depth.", tag_keys=("pool",),
        )
        self._documents = Gauge("longctx_documents", "Documents in the store.")
        self._affinity = Counter(
            "longctx_affinity_routing",
            "Keyed requests (documents, long prefixes) by whether they went to the key's ring owner.",
            tag_keys=("pool", "result"),
        )
        # API keys (deployments/auth.py): which generation of the keys file each
        # replica has in force, so a rotation can be seen to have reached them all.
        self._api_keys_generation = Gauge(
            "longctx_api_keys_generation",
            "API keys generation in force at this ingress replica: 1 at start, +1 per reload that took effect.",
        )
        self._api_keys = Gauge("longctx_api_keys", "API keys in force at this ingress replica.")
        self._api_keys_failures = Counter(
            "longctx_api_keys_reload_failures",
            "Keys files that could not be read or parsed (the keys in force stayed).",
        )
        _zero(self._api_keys_failures, {})
        self._initialise(pools_by_model)

    def _initialise(self, pools_by_model: Mapping[str, Sequence[str]]) -> None:
        """Emit zeros for every known label set: 'none yet' is a series, not an absence."""
        for model, pools in pools_by_model.items():
            for pool in pools:
                _zero(self._routed, {"model": model, "pool": pool})
                _zero(self._requests, {"model": model, "pool": pool, "status": "200"})
                self._in_flight.set(0, tags={"pool": pool})
                for result in ("hit", "miss"):
                    _zero(self._affinity, {"pool": pool, "result": result})
            for reason in REJECTION_REASONS:
                _zero(self._rejections, {"model": model, "reason": reason})

    def stage(self, model: str, stage: str, seconds: float) -> None:
        self._stage_seconds.observe(seconds, tags={"model": model, "stage": stage})

    def routed(self, model: str, pool: str, prompt_tokens: int) -> None:
        self._routed.inc(tags={"model": model, "pool": pool})
        self._prompt_tokens.observe(prompt_tokens, tags={"model": model, "pool": pool})

    def completed(self, model: str, pool: str, completion_tokens: int) -> None:
        self._completion_tokens.observe(completion_tokens, tags={"model": model, "pool": pool})

    def answered(self, model: str, pool: str, status: int, error_code: str | None) -> None:
        """One answered request, and its refusal reason if it was refused."""
        self._requests.inc(tags={"model": model, "pool": pool or "none", "status": str(status)})
        reason = rejection_reason(status, error_code)
        if reason is not None:
            self._rejections.inc(tags={"model": model, "reason": reason})

    def documents_stored(self, count: int) -> None:
        self._documents.set(count)

    def affinity(self, pool: str, hit: bool) -> None:
        self._affinity.inc(tags={"pool": pool, "result": "hit" if hit else "miss"})

    def set_in_flight(self, pool: str, depth: int) -> None:
        self._in_flight.set(depth, tags={"pool": pool})

    def api_keys_loaded(self, generation: int, keys: int, principals: int) -> None:
        self._api_keys_generation.set(generation)
        self._api_keys.set(keys)

    def api_keys_reload_failed(self) -> None:
        self._api_keys_failures.inc()


def _zero(counter, tags: dict[str, str]) -> None:
    """Create a counter's series at 0.

    Ray's Counter.inc refuses 0 (value must be > 0), so inc(0) would crash the
    ingress at start; recording 0 below that check adds nothing to the sum but
    makes the exporter emit the label set.
    """
    counter._record(0, tags=tags)

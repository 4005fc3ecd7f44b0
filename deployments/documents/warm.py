"""Documents warmed ahead of their first question.

``POST /v1/documents`` with ``"warm": true``, or ``POST /v1/documents/{id}/warm``,
prefills the stored ``[system][document]`` prefix on the replica the
affinity router picks for the document, so the first question reads it from
the prefix cache like a follow-up does. The call returns at once; an ingress
task sends one ``max_tokens=1`` request through the normal request path
(admission counts it, the document's affinity key picks the replica) and
records its progress with the document:

    pending -> warming (a replica took it) -> ready | failed

A pool that is full (429) is retried after its ``Retry-After`` until the
pool's timeout. ``ready`` means the prefix was computed on that replica; vLLM
may later evict it under memory pressure, as it would any cached prefix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from pydantic import BaseModel, ConfigDict, Field

from deployments.documents.records import DocumentMeta, WarmState
from deployments.documents.store import DocumentStore
from deployments.errors import APIError, ErrorCode
from deployments.dispatch.request_path import RequestPath
from deployments.routing.bands import NoPoolFits, RouteDecision

logger = logging.getLogger("longctx.documents.warm")


class WarmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="Warm the prefix of this model (default: the one questions default to)."
    )


class Warmer:
    """Starts warm-ups and keeps their tasks until they finish."""

    def __init__(self, path: RequestPath, store: DocumentStore):
        self._path = path
        self._store = store
        self._tasks: set[asyncio.Task] = set()

    def decision(self, model: str, prefix_tokens: int, question_budget: int) -> RouteDecision:
        """The pool the document's questions go to, with the rotary length of
        those past the native window (so the warm-up fills the cache they
        read), and a one-token answer; 413 when no pool holds it."""
        try:
            decision = self._path.bands.choose(model, prefix_tokens, question_budget)
        except NoPoolFits as exc:
            raise APIError(ErrorCode.DOCUMENT_TOO_LARGE, f"document does not fit any pool of {model}: {exc}",
                           param="model") from None
        seq_len = prefix_tokens + question_budget
        rope = self._path.rope.choose(decision.pool, seq_len, document_seq_len=seq_len)
        return dataclasses.replace(decision, max_tokens=1, rope=rope)

    async def start(self, meta: DocumentMeta, owner: str | None, model: str, prefix_ids: list[int],
                    decision: RouteDecision) -> WarmState:
        """Record the document as pending and start its warm-up; returns at once."""
        state = WarmState(status="pending", model=model, pool=decision.pool.name, updated=int(time.time()))
        if not await asyncio.to_thread(self._store.set_warm, meta.id, owner, state):
            raise APIError(ErrorCode.DOCUMENT_NOT_FOUND, f"document {meta.id} does not exist", param="id")
        task = asyncio.create_task(self._run(meta, owner, state, prefix_ids, decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return state

    async def _run(self, meta: DocumentMeta, owner: str | None, state: WarmState, prefix_ids: list[int],
                   decision: RouteDecision) -> None:
        marks: list[asyncio.Task] = []

        def on_replica(replica: str) -> None:
            marks.append(asyncio.ensure_future(self._save(meta.id, owner, state, "warming", replica=replica)))

        request = self._path.engine_request(state.model, decision, prefix_ids, {"temperature": 0.0, "stream": False})
        deadline = time.monotonic() + self._path.timeout_s(decision.pool.name)
        final: dict = {}
        try:
            while True:
                try:
                    replica = await self._path.prefill(decision, request, document_key=meta.affinity_key,
                                                       on_replica=on_replica)
                    final = {"status": "ready", "replica": replica}
                    break
                except APIError as exc:
                    retry_s = int(exc.headers.get("retry-after", "0") or 0)
                    if exc.code != ErrorCode.POOL_OVERLOADED or time.monotonic() + retry_s > deadline:
                        raise
                    await asyncio.sleep(retry_s)  # the pool is full: wait for its Retry-After
        except APIError as exc:
            final = {"status": "failed", "error": f"{exc.code}: {exc.message}"}
        except asyncio.CancelledError:
            final = {"status": "failed", "error": "cancelled: the ingress replica stopped"}
            raise
        except Exception as exc:  # noqa: BLE001 - the engine died: the state says so
            final = {"status": "failed", "error": f"{ErrorCode.ENGINE_FAILED}: {type(exc).__name__}: {exc}"[:2000]}
        finally:
            for mark in marks:
                await asyncio.gather(mark, return_exceptions=True)
            replica = final.pop("replica", None)
            if replica is None:
                named = [m.result() for m in marks if not m.cancelled() and m.exception() is None]
                replica = named[-1] if named else None
            await self._save(meta.id, owner, state, final.pop("status", "failed"), replica=replica, **final)

    async def _save(self, doc_id: str, owner: str | None, state: WarmState, status: str, **changes) -> str | None:
        """Record a new status; returns its replica (None if it has none)."""
        new = state.model_copy(update={"status": status, "updated": int(time.time()), **changes})
        new = WarmState.model_validate(new.model_dump())
        try:
            await asyncio.to_thread(self._store.set_warm, doc_id, owner, new)
        except Exception:  # noqa: BLE001 - a background task: log, never raise
            logger.exception("could not record warm state %s of %s", status, doc_id)
        return new.replica

"""Long-document QA over HTTP: upload once, ask many.

    POST   /v1/documents             JSON {text, model?, metadata?} or multipart (file=...)
    GET    /v1/documents             ?limit=&after=   (the caller's documents, oldest first)
    GET    /v1/documents/{id}
    DELETE /v1/documents/{id}
    POST   /v1/documents/{id}/ask    {question | questions, model?, max_tokens, temperature, stream}
    POST   /v1/documents/{id}/warm   {model?}  (202: prefill the prefix now; also ``"warm": true`` on upload)

An upload is tokenized once per model into the prefix [system][document];
the ids are stored with it, so a question costs only its own tokens, and the
question travels the same path as chat (pool choice, admission, engine) with
the document's affinity key, so it lands on the replica holding the prefix.
A warm-up (deployments.documents.warm) fills that replica's cache before the
first question.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import JSONResponse, Response

from deployments.documents.ids_cache import PrefixIdsCache
from deployments.documents.layout import DocumentLayout, decode_ids, encode_ids
from cluster.config.documents import DocumentsConfig, StoreLimits
from deployments.documents.errors import (
    DocumentStoreError, DocumentTooLarge, DuplicateDocument, InvalidCursor, InvalidDocument, NotUTF8, StoreFull,
    StoreUnavailable,
)
from deployments.documents.records import Document, DocumentMeta
from deployments.documents.store import DocumentStore
from deployments.documents.warm import Warmer, WarmBody
from deployments.errors import APIError, ErrorCode, combination_error, validation_error
from deployments.documents.responses import DocumentCreated, DocumentDeleted, DocumentList, DocumentView, DocumentWarm
from deployments.responses import BODY_ERRORS, ENGINE_ERRORS, ChatCompletion, answers
from deployments.dispatch.keepalive import requested_heartbeat
from deployments.dispatch.request_path import RequestPath, ServerTimings
from deployments.routing.bands import NoPoolFits
from deployments.schemas import RequestBody, StopString, StreamOptions


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The document (UTF-8).")
    model: str | None = Field(default=None, description="Count for this model only (default: all).")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Client JSON object, stored as-is.")
    warm: bool = Field(default=False, description="Prefill the document's prefix on the replica its questions "
                       "will reach, in the background (as POST /v1/documents/{id}/warm).")


class AskBody(RequestBody):
    question: str | None = Field(default=None, min_length=1)
    questions: list[str] | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, description="Default: the first model the document was counted for.")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63, description="Sampling seed (a signed 64-bit integer).")
    stop: StopString | list[StopString] | None = Field(default=None, description="Non-empty strings.")
    stream: bool = False
    stream_options: StreamOptions | None = Field(default=None, description="Only with `stream: true`.")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.question is None) == (self.questions is None):
            raise ValueError("give exactly one of question or questions")
        if self.questions is not None and any(not q for q in self.questions):
            raise ValueError("questions must not be empty strings")
        if self.stream_options is not None and not self.stream:
            raise combination_error("stream_options", "only allowed with stream: true")
        return self

    def all_questions(self) -> list[str]:
        return [self.question] if self.question is not None else list(self.questions)

    def sampling(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("temperature", "top_p", "seed", "stop") if getattr(self, k) is not None}
        out["stream"] = self.stream
        if self.stream_options is not None:
            out["stream_options"] = self.stream_options.model_dump()
        return out


def check_document_tokens(limits: StoreLimits, tokens: int) -> None:
    """Raise DocumentTooLarge if a token count is over max_document_tokens.

    The store never tokenizes, so this one limit is the API's to check, after
    counting the document for a model.
    """
    if tokens > limits.max_document_tokens:
        raise DocumentTooLarge(
            "max_document_tokens", limits.max_document_tokens, tokens, "document has too many tokens"
        )


# The store's refusals in the API's vocabulary; each code's status is the
# class's http_status (tests/deployments/documents/test_api.py checks).
STORE_ERROR_CODES: dict[type[DocumentStoreError], ErrorCode] = {
    NotUTF8: ErrorCode.INVALID_ENCODING,
    InvalidDocument: ErrorCode.INVALID_DOCUMENT,
    DocumentTooLarge: ErrorCode.DOCUMENT_TOO_LARGE,
    StoreFull: ErrorCode.STORE_FULL,
    DuplicateDocument: ErrorCode.DOCUMENT_EXISTS,
    InvalidCursor: ErrorCode.INVALID_CURSOR,
    StoreUnavailable: ErrorCode.STORE_UNAVAILABLE,
}


def _store_error(exc: DocumentStoreError) -> APIError:
    code = next((STORE_ERROR_CODES[c] for c in type(exc).__mro__ if c in STORE_ERROR_CODES),
                ErrorCode.INTERNAL_ERROR)
    return APIError(code, str(exc))


async def _stored(call, *args):
    """A store read in a thread; its refusals (the backend unreachable) in the API's vocabulary."""
    try:
        return await asyncio.to_thread(call, *args)
    except DocumentStoreError as exc:
        raise _store_error(exc) from None


def _meta_view(meta: DocumentMeta) -> dict[str, Any]:
    view = meta.model_dump(exclude={"owner"})
    view["object"] = "document"
    return view


class DocumentService:
    """Documents of the ingress: store, layout, and questions over the request path."""

    def __init__(self, path: RequestPath, store: DocumentStore, config: DocumentsConfig):
        self._path = path
        self._store = store
        self._layout = DocumentLayout(config.system_prompt)
        self._max_questions = config.max_questions
        self._layout_keys = {name: self._layout.key(tok) for name, tok in path.tokenizers.items()}
        self._ids_cache = PrefixIdsCache(config.ids_cache_tokens)
        self._warmer = Warmer(path, store)

    def count(self) -> int:
        return self._store.count()

    # --- upload ------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        owner = request.state.principal
        text, model, metadata, warm = await self._read_upload(request)
        if model is not None:
            self._path.tokenizer_for(model, request.state)
        models = [model] if model is not None else list(self._path.tokenizers)
        try:
            doc = Document.new(text, owner=owner, metadata=metadata)
        except DocumentStoreError as exc:
            raise _store_error(exc) from None
        limits = self._store.limits
        if doc.bytes > limits.max_document_bytes:
            raise APIError(ErrorCode.DOCUMENT_TOO_LARGE, f"document is {doc.bytes} bytes, over the limit of "
                           f"{limits.max_document_bytes} bytes")
        ids_by_model = dict(zip(models, await asyncio.gather(*[
            asyncio.to_thread(self._layout.prefix_ids, self._path.tokenizers[m], doc.text) for m in models
        ])))
        tokens, pools, refusals = {}, {}, []
        for name, ids in ids_by_model.items():
            try:
                check_document_tokens(limits, len(ids))
                decision = self._path.bands.choose(name, len(ids), self._question_budget(name))
            except (NoPoolFits, DocumentStoreError) as exc:
                refusals.append(str(exc))
                continue
            tokens[name], pools[name] = len(ids), decision.pool.name
        if not tokens:
            raise APIError(ErrorCode.DOCUMENT_TOO_LARGE, "document does not fit any pool: " + "; ".join(refusals))
        doc = doc.model_copy(update={"tokens": tokens, "pools": pools})
        blobs = {self._layout_keys[m]: encode_ids(ids_by_model[m]) for m in tokens}
        try:
            await asyncio.to_thread(self._store.put, doc, token_ids=blobs)
        except DocumentStoreError as exc:
            raise _store_error(exc) from None
        for name in tokens:
            self._ids_cache.put(doc.id, self._layout_keys[name], ids_by_model[name])
        state = None
        if warm:
            # The model questions default to: the upload's, else the first that fits.
            name = next(iter(tokens))
            decision = self._warmer.decision(name, tokens[name], self._question_budget(name))
            state = await self._warmer.start(doc.meta(), owner, name, ids_by_model[name], decision)
        return JSONResponse(
            {"id": doc.id, "object": "document", "tokens": tokens, "pool": pools,
             "created": doc.created, "bytes": doc.bytes,
             "warm": None if state is None else state.model_dump(mode="json")},
            status_code=201,
        )

    def _question_budget(self, model: str) -> int:
        """Room a document must leave for a question and its answer."""
        return self._path.cluster.models[model].default_max_tokens + 64

    async def _read_upload(self, request: Request) -> tuple[str | bytes, str | None, dict, bool]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            return await self._read_form(request)
        # No content type at all is read as JSON, as FastAPI does for chat.
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            raise APIError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"content type {media_type!r} is not accepted; send "
                           "application/json or multipart/form-data")
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise APIError(ErrorCode.INVALID_ENCODING, f"request body is not valid UTF-8 at position {exc.start}; "
                           "JSON bodies must be UTF-8 encoded") from None
        try:
            body = UploadBody.model_validate_json(text)
        except ValidationError as exc:
            raise validation_error(exc.errors()) from None
        return body.text, body.model, body.metadata, body.warm

    @staticmethod
    async def _read_form(request: Request) -> tuple[bytes, str | None, dict, bool]:
        form = await request.form()
        upload = form.get("file")
        if upload is None:
            raise APIError(ErrorCode.INVALID_REQUEST, "multipart upload needs a 'file' part", param="file")
        # A file part (curl -F file=@doc.txt), or the text as a plain field (-F file=...).
        raw = upload.encode("utf-8", "surrogatepass") if isinstance(upload, str) else await upload.read()
        metadata = form.get("metadata")
        try:
            parsed = json.loads(metadata) if isinstance(metadata, str) and metadata else {}
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise APIError(ErrorCode.INVALID_REQUEST, "metadata must be a JSON object", param="metadata")
        model = form.get("model")
        warm = form.get("warm", "false")
        if warm not in ("true", "false"):
            raise APIError(ErrorCode.INVALID_REQUEST, "warm must be true or false", param="warm")
        return raw, model if isinstance(model, str) and model else None, parsed, warm == "true"

    # --- read / delete -------------------------------------------------------

    async def list(self, request: Request, limit: int, after: str | None) -> dict:
        try:
            page = await asyncio.to_thread(self._store.list, request.state.principal, limit, after)
        except DocumentStoreError as exc:
            raise _store_error(exc) from None
        return {"object": "list", "data": [_meta_view(m) for m in page.items],
                "next_cursor": page.next_cursor, "has_more": page.next_cursor is not None}

    async def _meta(self, request: Request, doc_id: str) -> DocumentMeta:
        meta = await _stored(self._store.get_meta, doc_id, request.state.principal)
        if meta is None:
            raise APIError(ErrorCode.DOCUMENT_NOT_FOUND, f"document {doc_id} does not exist", param="id")
        return meta

    async def get(self, request: Request, doc_id: str) -> dict:
        return _meta_view(await self._meta(request, doc_id))

    async def delete(self, request: Request, doc_id: str) -> dict:
        if not await _stored(self._store.delete, doc_id, request.state.principal):
            raise APIError(ErrorCode.DOCUMENT_NOT_FOUND, f"document {doc_id} does not exist", param="id")
        self._ids_cache.discard(doc_id)
        return {"id": doc_id, "object": "document", "deleted": True}

    # --- warm --------------------------------------------------------------

    async def warm(self, request: Request, doc_id: str, body: WarmBody) -> Response:
        meta = await self._meta(request, doc_id)
        model = body.model or next(iter(meta.tokens), None) or next(iter(self._path.tokenizers))
        self._path.tokenizer_for(model, request.state)
        prefix = await self._prefix_ids(request, meta, model)
        decision = self._warmer.decision(model, len(prefix), self._question_budget(model))
        state = await self._warmer.start(meta, request.state.principal, model, prefix, decision)
        return JSONResponse({"id": doc_id, "object": "document.warm", **state.model_dump(mode="json")},
                            status_code=202)

    # --- ask ---------------------------------------------------------------

    async def ask(self, request: Request, doc_id: str, body: AskBody) -> Response:
        heartbeat = requested_heartbeat(request.headers)
        questions = body.all_questions()
        if len(questions) > self._max_questions:
            raise APIError(ErrorCode.INVALID_REQUEST,
                           f"{len(questions)} questions in one call; the limit is {self._max_questions}",
                           param="questions")
        meta = await self._meta(request, doc_id)
        model = body.model or next(iter(meta.tokens), None) or next(iter(self._path.tokenizers))
        tokenizer = self._path.tokenizer_for(model, request.state)
        timings = ServerTimings()
        started = time.perf_counter()
        prefix = await self._prefix_ids(request, meta, model)
        prompts = await asyncio.to_thread(
            lambda: [self._layout.question_ids(tokenizer, prefix, q) for q in questions]
        )
        timings.add("tokenize", time.perf_counter() - started)
        question_param = "questions" if body.questions else "question"
        # One rotary length for every question on the document (routing.rope_base),
        # so each reads the prefix the others cached.
        document_seq_len = len(prefix) + self._question_budget(model)
        decisions = [self._path.route(model, len(ids), body.max_tokens, timings, prompt_param=question_param,
                                      document_seq_len=document_seq_len)
                     for ids in prompts]
        requests = [
            self._path.engine_request(model, d, ids, body.sampling())
            for d, ids in zip(decisions, prompts)
        ]
        return await self._path.dispatch_many(decisions, requests, timings, document_key=meta.affinity_key,
                                              heartbeat=heartbeat)

    async def _prefix_ids(self, request: Request, meta: DocumentMeta, model: str) -> list[int]:
        """The prefix ids (``meta`` was read for this caller: the document is
        theirs): this replica's cached copy, else the stored ones; counted now
        (once) if the upload skipped this model."""
        owner = request.state.principal
        layout_key = self._layout_keys[model]
        cached = self._ids_cache.get(meta.id, layout_key)
        if cached is not None:
            return cached
        blob = await _stored(self._store.get_token_ids, meta.id, owner, layout_key)
        if blob is not None:
            ids = decode_ids(blob)
            self._ids_cache.put(meta.id, layout_key, ids)
            return ids
        doc = await _stored(self._store.get, meta.id, owner)
        if doc is None:
            raise APIError(ErrorCode.DOCUMENT_NOT_FOUND, f"document {meta.id} does not exist", param="id")
        ids = await asyncio.to_thread(self._layout.prefix_ids, self._path.tokenizers[model], doc.text)
        try:
            await asyncio.to_thread(self._store.put_token_ids, meta.id, owner, layout_key, encode_ids(ids))
            await asyncio.to_thread(self._store.update_counts, meta.id, owner, tokens={model: len(ids)})
        except DocumentStoreError as exc:
            raise _store_error(exc) from None
        self._ids_cache.put(meta.id, layout_key, ids)
        return ids


# POST /v1/documents reads its body itself (JSON or multipart), so its
# OpenAPI request body is written out here.
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": UploadBody.model_json_schema()},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "description": "The document (UTF-8 text): a file part, or a plain field."},
            "model": {"type": "string"},
            "metadata": {"type": "string", "description": "A JSON object, as text."},
            "warm": {"type": "string", "enum": ["true", "false"]},
        },
    }},
}}}
STORE_ERRORS = (ErrorCode.STORE_UNAVAILABLE,)
# A document id holding a `/` makes another path: no route, or one without this method.
FOUND_ERRORS = (ErrorCode.INVALID_REQUEST, ErrorCode.DOCUMENT_NOT_FOUND, ErrorCode.NOT_FOUND,
                ErrorCode.METHOD_NOT_ALLOWED, *STORE_ERRORS)


def document_routes(service: DocumentService) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/documents", status_code=201, openapi_extra=UPLOAD_BODY, responses=answers(
        DocumentCreated, BODY_ERRORS, ErrorCode.UNSUPPORTED_MEDIA_TYPE, ErrorCode.INVALID_DOCUMENT,
        ErrorCode.MODEL_NOT_FOUND, ErrorCode.DOCUMENT_TOO_LARGE, ErrorCode.STORE_FULL, ErrorCode.DOCUMENT_EXISTS,
        STORE_ERRORS, status=201))
    async def upload(request: Request):
        return await service.upload(request)

    @router.get("/v1/documents", responses=answers(
        DocumentList, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_CURSOR, STORE_ERRORS))
    async def list_documents(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None):
        return await service.list(request, limit, after)

    @router.get("/v1/documents/{doc_id}", responses=answers(DocumentView, FOUND_ERRORS))
    async def get_document(request: Request, doc_id: str):
        return await service.get(request, doc_id)

    @router.delete("/v1/documents/{doc_id}", responses=answers(DocumentDeleted, FOUND_ERRORS))
    async def delete_document(request: Request, doc_id: str):
        return await service.delete(request, doc_id)

    @router.post("/v1/documents/{doc_id}/ask", responses=answers(
        ChatCompletion, BODY_ERRORS, FOUND_ERRORS, ErrorCode.INVALID_PARAMETER_COMBINATION, ENGINE_ERRORS,
        stream=True, keepalive=True))
    async def ask(request: Request, doc_id: str, body: AskBody):
        return await service.ask(request, doc_id, body)

    @router.post("/v1/documents/{doc_id}/warm", status_code=202, responses=answers(
        DocumentWarm, BODY_ERRORS, FOUND_ERRORS, ErrorCode.MODEL_NOT_FOUND, ErrorCode.DOCUMENT_TOO_LARGE,
        ErrorCode.POOL_UNAVAILABLE, status=202))
    async def warm(request: Request, doc_id: str, body: WarmBody | None = None):
        return await service.warm(request, doc_id, body or WarmBody())

    return router

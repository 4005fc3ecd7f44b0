"""Long-document QA: the document store (backend, limits) and the question layout.

The store's runtime lives in ``deployments.documents``; its settings live
here, with the rest of the schema, so a profile is validated in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cluster.config.base import StrictModel

# Redis refuses strings over 512 MiB (proto-max-bulk-len), so a larger
# per-document limit could never be honoured by every backend.
HARD_MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
# Token ids are stored as array("I", ids).tobytes(): 4 bytes each.
TOKEN_ID_BYTES = 4


class StoreLimits(StrictModel):
    """Limits the store enforces on put (token limits are the API's: it knows
    the pools)."""

    max_document_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        le=HARD_MAX_DOCUMENT_BYTES,
        description="Largest document text in UTF-8 bytes (1M tokens of prose is "
        "about 4 MiB). Uploads over it get 413.",
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        description="Largest metadata object, as compact JSON. Listings return "
        "metadata, so it must stay small.",
    )
    max_document_tokens: int = Field(
        default=1_048_576,
        gt=0,
        description="Most tokens a document may have for any model; checked by the "
        "API after tokenizing.",
    )
    max_token_id_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        le=HARD_MAX_DOCUMENT_BYTES,
        description="Largest stored token-id entry (one document, one layout) in "
        "bytes, at 4 bytes per token: 8 MiB holds a max_document_tokens document "
        "plus its prompt layout with room to spare. Must be at least "
        "4 x max_document_tokens.",
    )
    max_documents: int = Field(
        default=10_000,
        gt=0,
        description="Most documents in the whole store, across owners: the bound "
        "that protects the backend's disk or memory.",
    )
    max_documents_per_owner: int | None = Field(
        default=None,
        gt=0,
        description="Most documents one owner (API key) may keep, so one key "
        "cannot fill the store for everyone; None for no per-owner bound.",
    )
    max_total_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Most text bytes in the whole store (size Redis memory with "
        "it); None for no bound besides max_documents x max_document_bytes.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StoreLimits:
        if self.max_documents_per_owner is not None and self.max_documents_per_owner > self.max_documents:
            raise ValueError("max_documents_per_owner must be <= max_documents")
        if self.max_total_bytes is not None and self.max_total_bytes < self.max_document_bytes:
            raise ValueError("max_total_bytes must be >= max_document_bytes")
        # Otherwise every document near max_document_tokens would pass the
        # token check and then fail when its ids are stored.
        if self.max_token_id_bytes < TOKEN_ID_BYTES * self.max_document_tokens:
            raise ValueError(
                f"max_token_id_bytes must be >= {TOKEN_ID_BYTES} x max_document_tokens "
                f"({TOKEN_ID_BYTES * self.max_document_tokens})"
            )
        return self


class DocumentStoreConfig(StrictModel):
    """Where documents live. SQLite for one ingress replica (the config refuses
    it with more), Redis for several, which may run on different nodes."""

    backend: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="`sqlite` (embedded, one node) or `redis` (shared)."
    )
    data_dir: str = Field(
        default="./data/documents",
        description="SQLite only: directory of the database file, created if absent. "
        "Relative paths resolve against the process's working directory; use an "
        "absolute path on a local (not network) disk in production.",
    )
    url: str | None = Field(
        default=None,
        description="Redis only: `redis://[:password@]host:port/db`, `rediss://...` "
        "or `unix:///path`. Use a ${ENV} reference for the password.",
    )
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Redis only: environment variable holding the server's password (e.g. from "
        "a Kubernetes Secret, as the Helm chart sets it), read where the store opens, so the "
        "password is in neither the profile nor the Serve config and needs no URL escaping. "
        "The variable must be set there; a password in the URL wins over it.",
    )
    key_prefix: str = Field(
        default="longctx:docs:",
        min_length=1,
        description="Redis only: prefix of every key, so clusters can share a server.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Redis socket timeout, and how long SQLite waits for a lock.",
    )
    limits: StoreLimits = Field(default_factory=StoreLimits, description="Size and count limits.")

    @model_validator(mode="after")
    def _backend_needs(self) -> DocumentStoreConfig:
        if self.backend == "redis":
            if not self.url:
                raise ValueError("documents.url is required when backend is redis")
            if not self.url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("documents.url must start with redis://, rediss:// or unix://")
        elif self.password_env is not None:
            raise ValueError("documents.store.password_env is for backend redis only")
        return self


DEFAULT_DOCUMENT_SYSTEM_PROMPT = (
    "You answer questions about the document the user gives you. Base every answer on the "
    "document, quote it where that helps, and say so when the document does not contain the answer."
)


class DocumentsConfig(StrictModel):
    """Long-document QA: where documents live and how questions are laid out."""

    store: DocumentStoreConfig = Field(default_factory=DocumentStoreConfig)
    system_prompt: str = Field(
        default=DEFAULT_DOCUMENT_SYSTEM_PROMPT,
        min_length=1,
        description="System prompt before every document (part of the cached prefix).",
    )
    max_questions: int = Field(default=16, ge=1, le=64, description="Questions per ask call.")
    ids_cache_tokens: int = Field(
        default=4_194_304,
        ge=0,
        description="Prefix token ids of recently asked documents each ingress replica keeps in "
        "memory (about 36 bytes a token), so a question does not read its document back from the "
        "store. 0: read it back every time.",
    )

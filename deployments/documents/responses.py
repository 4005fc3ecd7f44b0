"""The document endpoints' answer bodies, for the OpenAPI document (deployments/responses.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from deployments.documents.records import WarmState
from deployments.responses import OpenBody


class DocumentView(OpenBody):
    id: str
    object: str = Field(description="`document`")
    metadata: dict[str, Any]
    created: int
    bytes: int
    tokens: dict[str, int]
    pools: dict[str, str]
    warm: WarmState | None = None


class DocumentCreated(OpenBody):
    id: str
    object: str
    tokens: dict[str, int]
    pool: dict[str, str]
    created: int
    bytes: int
    warm: WarmState | None = None


class DocumentList(BaseModel):
    object: str
    data: list[DocumentView]
    next_cursor: str | None
    has_more: bool


class DocumentDeleted(BaseModel):
    id: str
    object: str
    deleted: bool


class DocumentWarm(OpenBody):
    id: str
    object: str = Field(description="`document.warm`")
    status: str
    model: str
    pool: str

"""SQLite backend: the embedded default, one database file under data_dir.

Metadata, text and token ids live in separate tables so listings and
``get_meta`` never page megabytes of text or ids in. WAL lets reads run while
a put writes, and several ingress processes on one node may share the file
(local disk only: SQLite's locks are unreliable on network filesystems).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from cluster.config.documents import StoreLimits
from deployments.documents.backends.common import (
    Prepared, check_layout, check_page_size, check_store_capacity, check_token_ids, check_warm, dumps,
    merge_counts, prepare, prepare_token_ids,
)
from deployments.documents.errors import DuplicateDocument, StoreUnavailable
from deployments.documents.records import (
    ANY_OWNER, DOCUMENT_ID, AnyOwner, Document, DocumentMeta, Page, WarmState, decode_cursor,
)

DB_FILE = "documents.sqlite3"
# 1: documents, texts. 2: token_ids. 3: warm.
SCHEMA_VERSION = 3

# Every statement is idempotent, so one script both creates a new database and
# migrates any older version: a version only ever adds tables.
_SCHEMA = [
    """
CREATE TABLE IF NOT EXISTS documents (
    id           TEXT PRIMARY KEY,
    owner        TEXT,
    created      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    metadata     TEXT NOT NULL,
    tokens       TEXT NOT NULL,
    pools        TEXT NOT NULL,
    affinity_key TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS documents_by_owner ON documents (owner, created, id)",
    """
CREATE TABLE IF NOT EXISTS texts (
    id   TEXT PRIMARY KEY,
    text TEXT NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS token_ids (
    id     TEXT NOT NULL,
    layout TEXT NOT NULL,
    ids    BLOB NOT NULL,
    PRIMARY KEY (id, layout)
)""",
    """
CREATE TABLE IF NOT EXISTS warm (
    id    TEXT PRIMARY KEY,
    state TEXT NOT NULL
)""",
]
_META_COLUMNS = "id, owner, created, bytes, metadata, tokens, pools, affinity_key"
# Reads of metadata: documents ``d`` with their warm state (``w``, if any).
_META_FIELDS = "d.id, d.owner, d.created, d.bytes, d.metadata, d.tokens, d.pools, d.affinity_key, w.state"
_META_FROM = "FROM documents d LEFT JOIN warm w ON w.id = d.id"
_META_SELECT = f"SELECT {_META_FIELDS} {_META_FROM}"


def _meta_fields(row: tuple) -> dict[str, Any]:
    id, owner, created, size, metadata, tokens, pools, affinity_key, warm = row
    return {
        "id": id,
        "owner": owner,
        "created": created,
        "bytes": size,
        "metadata": json.loads(metadata),
        "tokens": json.loads(tokens),
        "pools": json.loads(pools),
        "affinity_key": affinity_key,
        "warm": None if warm is None else json.loads(warm),
    }


class SQLiteDocumentStore:
    """Thread-safe: each call borrows a connection from a small pool, so
    reads on different threads do not queue behind each other."""

    def __init__(self, data_dir: str | Path, limits: StoreLimits | None = None, *, timeout_s: float = 30.0):
        self._limits = limits or StoreLimits()
        self._timeout_s = timeout_s
        self.path = Path(data_dir).expanduser().resolve() / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        try:
            with self._connection() as conn:
                # WAL is a property of the file; setting it needs no other
                # connection open, which holds here at start-up.
                conn.execute("PRAGMA journal_mode=WAL")
                self._migrate(conn)
        except BaseException:
            self.close()  # the caller never gets the object to close
            raise

    @property
    def limits(self) -> StoreLimits:
        return self._limits

    # ------------------------------------------------------------ plumbing

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, so the
        # capacity check and the inserts share one BEGIN IMMEDIATE.
        conn = sqlite3.connect(
            self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
        )
        # FULL: an upload is rare and large, so one more fsync per put is
        # noise, and an acknowledged upload then survives power loss too.
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("document store is closed")
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        except sqlite3.OperationalError as e:
            # Locked past the timeout, disk full, I/O error: the request may
            # succeed later, the document is not at fault.
            raise StoreUnavailable(f"SQLite document store: {e}") from e
        finally:
            if conn is not None:
                if conn.in_transaction:
                    conn.rollback()
                with self._lock:
                    if self._closed:
                        conn.close()
                    else:
                        self._idle.append(conn)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            # IMMEDIATE takes the write lock before the first read, so checks
            # made inside hold until COMMIT, across threads and processes.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # One IMMEDIATE transaction (not executescript, which commits first),
        # so processes opening the file together migrate it once and
        # user_version never names tables that are not there.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                # Older code writing to a newer schema could break invariants
                # it does not know about (e.g. leave token ids on delete).
                raise StoreUnavailable(
                    f"{self.path} has schema version {version}; this code supports up to {SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # These are separate steps (rather than inlined) so tests can inject a
    # failure between them.
    def _insert_meta(self, conn: sqlite3.Connection, p: Prepared) -> None:
        d = p.doc
        conn.execute(
            f"INSERT INTO documents ({_META_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (d.id, d.owner, d.created, d.bytes, p.metadata_json, p.tokens_json, p.pools_json, d.affinity_key),
        )
        if p.warm_json is not None:
            conn.execute("INSERT INTO warm (id, state) VALUES (?, ?)", (d.id, p.warm_json))

    def _insert_text(self, conn: sqlite3.Connection, p: Prepared) -> None:
        conn.execute("INSERT INTO texts (id, text) VALUES (?, ?)", (p.doc.id, p.doc.text))

    def _insert_token_ids(self, conn: sqlite3.Connection, id: str, token_ids: Mapping[str, bytes]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO token_ids (id, layout, ids) VALUES (?, ?, ?)",
            [(id, layout, ids) for layout, ids in token_ids.items()],
        )

    # ---------------------------------------------------------- interface

    def put(self, doc: Document, token_ids: Mapping[str, bytes] | None = None) -> None:
        p = prepare(doc, self._limits)
        ids = prepare_token_ids(token_ids, self._limits)
        with self._write() as conn:
            existing = conn.execute(
                "SELECT owner, affinity_key FROM documents WHERE id = ?", (doc.id,)
            ).fetchone()
            if existing is not None:
                if existing == (doc.owner, doc.affinity_key):
                    # A retried put: the first attempt may have run without
                    # these ids (or the caller passed new ones).
                    self._insert_token_ids(conn, doc.id, ids)
                    return
                conn.execute("ROLLBACK")
                raise DuplicateDocument(f"document {doc.id} already exists")
            total, total_bytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM documents"
            ).fetchone()
            owner_total = 0
            if self._limits.max_documents_per_owner is not None:
                (owner_total,) = conn.execute(
                    "SELECT COUNT(*) FROM documents WHERE owner IS ?", (doc.owner,)
                ).fetchone()
            check_store_capacity(
                self._limits, total=total, owner_total=owner_total, total_bytes=total_bytes, new_bytes=doc.bytes
            )
            # Code from before token ids deletes documents but not their ids;
            # if such orphans share this id (a re-put of a deleted document),
            # they must not come back attached to it.
            conn.execute("DELETE FROM token_ids WHERE id = ?", (doc.id,))
            conn.execute("DELETE FROM warm WHERE id = ?", (doc.id,))
            self._insert_meta(conn, p)
            self._insert_text(conn, p)
            self._insert_token_ids(conn, doc.id, ids)

    def get(self, id: str, owner: str | None) -> Document | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_META_FIELDS}, t.text {_META_FROM} JOIN texts t ON t.id = d.id "
                "WHERE d.id = ? AND d.owner IS ?",
                (id, owner),
            ).fetchone()
        if row is None:
            return None
        return Document.model_validate({**_meta_fields(row[:-1]), "text": row[-1]})

    def get_meta(self, id: str, owner: str | None) -> DocumentMeta | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._connection() as conn:
            row = conn.execute(f"{_META_SELECT} WHERE d.id = ? AND d.owner IS ?", (id, owner)).fetchone()
        return None if row is None else DocumentMeta.model_validate(_meta_fields(row))

    def list(self, owner: str | None, limit: int = 100, after: str | None = None) -> Page:
        check_page_size(limit)
        created, last_id = decode_cursor(after) if after is not None else (-1, "")
        with self._connection() as conn:
            rows = conn.execute(
                f"{_META_SELECT} WHERE d.owner IS ? AND (d.created, d.id) > (?, ?) "
                "ORDER BY d.created, d.id LIMIT ?",
                (owner, created, last_id, limit + 1),
            ).fetchall()
        items = [DocumentMeta.model_validate(_meta_fields(r)) for r in rows[:limit]]
        return Page(items, items[-1].cursor if len(rows) > limit else None)

    def update_counts(self, id: str, owner: str | None, *, tokens: Mapping[str, int] | None = None,
                      pools: Mapping[str, str] | None = None) -> DocumentMeta | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._write() as conn:
            row = conn.execute(f"{_META_SELECT} WHERE d.id = ? AND d.owner IS ?", (id, owner)).fetchone()
            if row is None:
                return None
            meta = DocumentMeta.model_validate(_meta_fields(row))
            new_tokens, new_pools = merge_counts(meta, tokens, pools)
            conn.execute(
                "UPDATE documents SET tokens = ?, pools = ? WHERE id = ?",
                (dumps(new_tokens), dumps(new_pools), id),
            )
        return meta.model_copy(update={"tokens": new_tokens, "pools": new_pools})

    def delete(self, id: str, owner: str | None) -> bool:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._write() as conn:
            gone = conn.execute("DELETE FROM documents WHERE id = ? AND owner IS ?", (id, owner)).rowcount
            if gone:
                conn.execute("DELETE FROM texts WHERE id = ?", (id,))
                conn.execute("DELETE FROM token_ids WHERE id = ?", (id,))
                conn.execute("DELETE FROM warm WHERE id = ?", (id,))
        return bool(gone)

    def set_warm(self, id: str, owner: str | None, warm: WarmState) -> bool:
        state = check_warm(warm)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._write() as conn:
            if not _owned(conn, id, owner):
                return False
            conn.execute("INSERT OR REPLACE INTO warm (id, state) VALUES (?, ?)", (id, state))
        return True

    def put_token_ids(self, id: str, owner: str | None, layout: str, ids: bytes) -> bool:
        data = check_token_ids(layout, ids, self._limits)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._write() as conn:
            # Inside the write transaction, so a concurrent delete cannot
            # remove the document between this check and the insert.
            if not _owned(conn, id, owner):
                return False
            self._insert_token_ids(conn, id, {layout: data})
        return True

    def get_token_ids(self, id: str, owner: str | None, layout: str) -> bytes | None:
        check_layout(layout)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._connection() as conn:
            row = conn.execute(
                "SELECT t.ids FROM token_ids t JOIN documents d ON d.id = t.id "
                "WHERE t.id = ? AND t.layout = ? AND d.owner IS ?",
                (id, layout, owner),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def count(self, owner: str | None | AnyOwner = ANY_OWNER) -> int:
        with self._connection() as conn:
            if owner is ANY_OWNER:
                (n,) = conn.execute("SELECT COUNT(*) FROM documents").fetchone()
            else:
                (n,) = conn.execute("SELECT COUNT(*) FROM documents WHERE owner IS ?", (owner,)).fetchone()
        return n

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> SQLiteDocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _owned(conn, id: str, owner: str | None) -> bool:
    """The document exists and belongs to ``owner`` (checked inside the caller's transaction)."""
    return conn.execute("SELECT 1 FROM documents WHERE id = ? AND owner IS ?", (id, owner)).fetchone() is not None

"""Redis backend: one store shared by ingress replicas on several nodes.

Key layout (``p`` is the configured prefix)::

    {p}meta:{id}     hash: id, owner (absent for None), created, bytes,
                     metadata (JSON), affinity_key, tok:{model}, pool:{model},
                     warm (JSON, absent if never warmed)
    {p}text:{id}     string: the text, apart so listings never load it
    {p}ids:{id}      hash: layout -> token ids (binary), absent if none
    {p}owner:-       sorted set of the anonymous owner's documents
    {p}owner:k:{o}   sorted set of owner o's documents
    {p}count         number of documents, for max_documents
    {p}bytes         sum of text bytes, for max_total_bytes

Writes are Lua scripts, so each is atomic with respect to other clients and
its limit checks cannot race. A single Redis primary (optionally with
replicas or Sentinel) is assumed: the scripts touch keys in different hash
slots, which Redis Cluster would refuse. Persistence (AOF or RDB) is the
server's configuration, not ours.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import redis

from cluster.config.documents import StoreLimits
from deployments.documents.backends.common import (
    check_layout, check_page_size, check_store_capacity, check_token_ids, check_warm, merge_counts, prepare,
    prepare_token_ids,
)
from deployments.documents.errors import (
    DocumentStoreError, DuplicateDocument, StoreFull, StoreOutOfMemory, StoreUnavailable,
)
from deployments.documents.records import (
    ANY_OWNER, DOCUMENT_ID, AnyOwner, Document, DocumentMeta, Page, WarmState, decode_cursor, encode_cursor,
)

# Redis does not roll back a script that fails half-way, so every command
# that can fail on existing data (WRONGTYPE on the index, a counter that is
# not a number) runs before the first write. The writes that follow target
# keys just checked to be absent or of the right type.
#
# ARGV[10] is the number of token-id arguments (layout, ids pairs) that follow
# it; the metadata hash fields come after those.
# Writing scripts carry `#!lua` (Redis 7+): flagged, they are refused whole at
# maxmemory, where unflagged ones run past it. Deletes stay unflagged.
_PUT = """#!lua
local meta, text, index, count, total_bytes, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local n_ids = tonumber(ARGV[10])
if redis.call('EXISTS', meta) == 1 then
  local o = redis.call('HMGET', meta, 'owner', 'affinity_key')
  local same_owner = (ARGV[1] == '1' and o[1] == ARGV[2]) or (ARGV[1] == '0' and not o[1])
  if same_owner and o[2] == ARGV[3] then
    -- A retried put: the ids are its only write, so a failure (WRONGTYPE)
    -- still leaves nothing half-done.
    if n_ids > 0 then redis.call('HSET', ids, unpack(ARGV, 11, 10 + n_ids)) end
    return {'exists'}
  end
  return {'duplicate'}
end
if redis.call('EXISTS', text) == 1 then return {'duplicate'} end
local owner_n = redis.call('ZCARD', index)
local n = tonumber(redis.call('GET', count) or '0')
local b = tonumber(redis.call('GET', total_bytes) or '0')
if not n or not b then return redis.error_reply('document store counters are corrupt') end
local size = tonumber(ARGV[5])
if n + 1 > tonumber(ARGV[6])
   or (ARGV[7] ~= '' and owner_n + 1 > tonumber(ARGV[7]))
   or (ARGV[8] ~= '' and b + size > tonumber(ARGV[8])) then
  return {'full', n, owner_n, b}
end
-- Ids orphaned by a delete from code that predates them (a rolling
-- upgrade) must not attach to a re-put of the same document. DEL cannot
-- fail, and it leaves the key absent, so the HSET below cannot either.
redis.call('DEL', ids)
redis.call('HSET', meta, unpack(ARGV, 11 + n_ids))
redis.call('SET', text, ARGV[9])
if n_ids > 0 then redis.call('HSET', ids, unpack(ARGV, 11, 10 + n_ids)) end
redis.call('ZADD', index, 0, ARGV[4])
redis.call('INCR', count)
redis.call('INCRBY', total_bytes, size)
return {'ok'}
"""

_DELETE = """
local o = redis.call('HMGET', KEYS[1], 'owner', 'created', 'bytes', 'id')
if not o[2] then return 0 end
if not ((ARGV[1] == '1' and o[1] == ARGV[2]) or (ARGV[1] == '0' and not o[1])) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[6])
redis.call('ZREM', KEYS[3], string.format('%012d:%s', tonumber(o[2]), o[4]))
redis.call('DECR', KEYS[4])
redis.call('DECRBY', KEYS[5], tonumber(o[3]))
return 1
"""

# The owner check and the write in one script, so a concurrent delete cannot
# land between them and leave ids without a document.
_PUT_TOKEN_IDS = """#!lua
local o = redis.call('HMGET', KEYS[1], 'owner', 'id')
if not o[2] then return 0 end
if not ((ARGV[1] == '1' and o[1] == ARGV[2]) or (ARGV[1] == '0' and not o[1])) then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""

_UPDATE = """#!lua
local o = redis.call('HMGET', KEYS[1], 'owner', 'created')
if not o[2] then return {} end
if not ((ARGV[1] == '1' and o[1] == ARGV[2]) or (ARGV[1] == '0' and not o[1])) then return {} end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
return redis.call('HGETALL', KEYS[1])
"""


def _index_member(created: int, id: str) -> str:
    # All members score 0 and sort by this string (ZRANGE BYLEX): fixed-width
    # created then id gives exactly the (created, id) order SQLite uses, and
    # a cursor maps to one exclusive lex bound.
    return f"{created:012d}:{id}"


def _owner_args(owner: str | None) -> list[str]:
    return ["0", ""] if owner is None else ["1", owner]


def _count_fields(tokens: Mapping[str, int], pools: Mapping[str, str]) -> list[str]:
    fields: list[str] = []
    for model, n in tokens.items():
        fields += [f"tok:{model}", str(n)]
    for model, pool in pools.items():
        fields += [f"pool:{model}", pool]
    return fields


def _parse_meta(h: Mapping[str, str]) -> DocumentMeta:
    warm = h.get("warm")
    tokens = {k[4:]: int(v) for k, v in h.items() if k.startswith("tok:")}
    pools = {k[5:]: v for k, v in h.items() if k.startswith("pool:")}
    return DocumentMeta.model_validate(
        {
            "id": h["id"],
            "owner": h.get("owner"),
            "created": int(h["created"]),
            "bytes": int(h["bytes"]),
            "metadata": json.loads(h["metadata"]),
            "tokens": tokens,
            "pools": pools,
            "affinity_key": h["affinity_key"],
            "warm": None if warm is None else json.loads(warm),
        }
    )


class RedisDocumentStore:
    """Thread-safe: redis-py's client draws a connection per command from
    its pool."""

    def __init__(
        self,
        url: str,
        limits: StoreLimits | None = None,
        *,
        key_prefix: str = "longctx:docs:",
        timeout_s: float = 30.0,
        password: str | None = None,
    ):
        self._limits = limits or StoreLimits()
        self._p = key_prefix
        def connect(decode_responses: bool) -> redis.Redis:
            # redis-py: a password in the URL wins over this one.
            return redis.Redis.from_url(
                url,
                password=password,
                decode_responses=decode_responses,
                socket_timeout=timeout_s,
                socket_connect_timeout=min(timeout_s, 5.0),
                health_check_interval=30,
            )

        self._redis = connect(decode_responses=True)
        self._put = self._redis.register_script(_PUT)
        self._delete = self._redis.register_script(_DELETE)
        self._update = self._redis.register_script(_UPDATE)
        self._put_token_ids = self._redis.register_script(_PUT_TOKEN_IDS)
        # Token ids are binary, which the decoding client would mangle on the
        # way back; a second pool (connections open on first use) reads them.
        self._binary = connect(decode_responses=False)
        self._closed = threading.Event()

    @property
    def limits(self) -> StoreLimits:
        return self._limits

    # ------------------------------------------------------------ plumbing

    def _meta_key(self, id: str) -> str:
        return f"{self._p}meta:{id}"

    def _text_key(self, id: str) -> str:
        return f"{self._p}text:{id}"

    def _ids_key(self, id: str) -> str:
        return f"{self._p}ids:{id}"

    def _index_key(self, owner: str | None) -> str:
        # "-" cannot collide with "k:..." so None stays distinct from every
        # real owner, including one literally named "-".
        return f"{self._p}owner:-" if owner is None else f"{self._p}owner:k:{owner}"

    def _keys(self, id: str, owner: str | None) -> list[str]:
        return [
            self._meta_key(id),
            self._text_key(id),
            self._index_key(owner),
            f"{self._p}count",
            f"{self._p}bytes",
            self._ids_key(id),
        ]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        if self._closed.is_set():
            raise StoreUnavailable("document store is closed")
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise StoreUnavailable(f"Redis document store: {e}") from e
        except redis.OutOfMemoryError as e:  # at maxmemory with noeviction: full, not a fault
            raise StoreOutOfMemory(f"Redis: {e}") from e
        except redis.RedisError as e:
            raise DocumentStoreError(f"Redis document store: {e}") from e

    @staticmethod
    def _owned(h: Mapping[str, str], owner: str | None) -> bool:
        return bool(h) and h.get("owner") == owner

    # ---------------------------------------------------------- interface

    def put(self, doc: Document, token_ids: Mapping[str, bytes] | None = None) -> None:
        p = prepare(doc, self._limits)
        ids = prepare_token_ids(token_ids, self._limits)
        lim = self._limits
        fields = ["id", doc.id, "created", str(doc.created), "bytes", str(doc.bytes)]
        fields += ["metadata", p.metadata_json, "affinity_key", doc.affinity_key]
        if doc.owner is not None:
            fields += ["owner", doc.owner]
        fields += _count_fields(doc.tokens, doc.pools)
        if p.warm_json is not None:
            fields += ["warm", p.warm_json]
        args: list[Any] = [
            *_owner_args(doc.owner),
            doc.affinity_key,
            _index_member(doc.created, doc.id),
            doc.bytes,
            lim.max_documents,
            "" if lim.max_documents_per_owner is None else lim.max_documents_per_owner,
            "" if lim.max_total_bytes is None else lim.max_total_bytes,
            doc.text,
            2 * len(ids),
            *(x for layout, data in ids.items() for x in (layout, data)),
            *fields,
        ]
        # redis-py retries a command after a timeout; the script answers
        # "exists" for the identical document, so a put that ran on the first
        # attempt still reports success.
        with self._errors():
            result = self._put(keys=self._keys(doc.id, doc.owner), args=args)
        status = result[0]
        if status in ("ok", "exists"):
            return
        if status == "duplicate":
            raise DuplicateDocument(f"document {doc.id} already exists")
        if status == "full":
            _, n, owner_n, b = result
            check_store_capacity(lim, total=n, owner_total=owner_n, total_bytes=b, new_bytes=doc.bytes)
            raise StoreFull("max_documents", lim.max_documents, n + 1, "document store is full")
        raise DocumentStoreError(f"unexpected put result {result!r}")

    def get(self, id: str, owner: str | None) -> Document | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._errors():
            # MULTI/EXEC so a concurrent delete cannot leave us meta without text.
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self._meta_key(id))
            pipe.get(self._text_key(id))
            h, text = pipe.execute()
        if not self._owned(h, owner) or text is None:
            return None
        return Document.model_validate({**_parse_meta(h).model_dump(), "text": text})

    def get_meta(self, id: str, owner: str | None) -> DocumentMeta | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._errors():
            h = self._redis.hgetall(self._meta_key(id))
        return _parse_meta(h) if self._owned(h, owner) else None

    def list(self, owner: str | None, limit: int = 100, after: str | None = None) -> Page:
        check_page_size(limit)
        start = "-" if after is None else "(" + _index_member(*decode_cursor(after))
        with self._errors():
            members = self._redis.zrange(
                self._index_key(owner), start, "+", bylex=True, offset=0, num=limit + 1
            )
            pipe = self._redis.pipeline(transaction=False)
            for m in members[:limit]:
                pipe.hgetall(self._meta_key(m.split(":", 1)[1]))
            hashes = pipe.execute()
        # A document deleted between the two round trips has an empty hash;
        # it is dropped, and the cursor still follows the index.
        items = [_parse_meta(h) for h in hashes if self._owned(h, owner)]
        next_cursor = None
        if len(members) > limit:
            created, id = members[limit - 1].split(":", 1)
            next_cursor = encode_cursor(int(created), id)
        return Page(items, next_cursor)

    def update_counts(self, id: str, owner: str | None, *, tokens: Mapping[str, int] | None = None,
                      pools: Mapping[str, str] | None = None) -> DocumentMeta | None:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        meta = self.get_meta(id, owner)
        if meta is None:
            return None
        merge_counts(meta, tokens, pools)  # validates before anything is written
        with self._errors():
            flat = self._update(
                keys=[self._meta_key(id)],
                args=[*_owner_args(owner), *_count_fields(tokens or {}, pools or {})],
            )
        if not flat:
            return None
        return _parse_meta(dict(zip(flat[::2], flat[1::2])))

    def set_warm(self, id: str, owner: str | None, warm: WarmState) -> bool:
        state = check_warm(warm)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._errors():
            # The update script checks the owner and writes in one step.
            return bool(self._update(keys=[self._meta_key(id)], args=[*_owner_args(owner), "warm", state]))

    def delete(self, id: str, owner: str | None) -> bool:
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._errors():
            return bool(self._delete(keys=self._keys(id, owner), args=_owner_args(owner)))

    def put_token_ids(self, id: str, owner: str | None, layout: str, ids: bytes) -> bool:
        data = check_token_ids(layout, ids, self._limits)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return False
        with self._errors():
            return bool(
                self._put_token_ids(
                    keys=[self._meta_key(id), self._ids_key(id)], args=[*_owner_args(owner), layout, data]
                )
            )

    def get_token_ids(self, id: str, owner: str | None, layout: str) -> bytes | None:
        check_layout(layout)
        if not isinstance(id, str) or not DOCUMENT_ID.match(id):
            return None
        with self._errors():
            pipe = self._binary.pipeline(transaction=True)
            pipe.hmget(self._meta_key(id), "id", "owner")
            pipe.hget(self._ids_key(id), layout)
            (stored_id, stored_owner), data = pipe.execute()
        if stored_id is None or data is None:
            return None
        # Stored owners are valid UTF-8 (the client encoded them strictly),
        # so decoding cannot fail and compares exactly with ``owner``.
        if (None if stored_owner is None else stored_owner.decode("utf-8")) != owner:
            return None
        return data

    def count(self, owner: str | None | AnyOwner = ANY_OWNER) -> int:
        with self._errors():
            if owner is ANY_OWNER:
                return int(self._redis.get(f"{self._p}count") or 0)
            return int(self._redis.zcard(self._index_key(owner)))

    def close(self) -> None:
        self._closed.set()
        self._redis.close()
        self._binary.close()

    def __enter__(self) -> RedisDocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

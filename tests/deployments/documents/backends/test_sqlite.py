"""The SQLite backend's schema migration."""

from __future__ import annotations

import sqlite3

import pytest

from deployments.documents.backends.sqlite import DB_FILE, SCHEMA_VERSION, SQLiteDocumentStore
from deployments.documents.errors import StoreUnavailable
from tests.support.documents import LAYOUT, doc, ids_blob


def test_sqlite_migrates_a_version_1_database(tmp_path):
    d = doc()
    with SQLiteDocumentStore(tmp_path) as store:
        store.put(d)
    # Turn the file back into what schema 1 left: no token_ids or warm table.
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("DROP TABLE token_ids")
    conn.execute("DROP TABLE warm")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with SQLiteDocumentStore(tmp_path) as store:
        assert store.get(d.id, "alice") == d
        assert store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(1))
        assert store.get_token_ids(d.id, "alice", LAYOUT) == ids_blob(1)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreUnavailable, match="schema version"):
        SQLiteDocumentStore(tmp_path)


def test_sqlite_migrates_a_version_2_database(tmp_path):
    from deployments.documents.records import WarmState

    d = doc()
    with SQLiteDocumentStore(tmp_path) as store:
        store.put(d)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("DROP TABLE warm")
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    with SQLiteDocumentStore(tmp_path) as store:
        assert store.get_meta(d.id, "alice").warm is None
        warm = WarmState(status="ready", model="m", pool="p", replica="r", updated=1)
        assert store.set_warm(d.id, "alice", warm)
        assert store.get(d.id, "alice").warm == warm

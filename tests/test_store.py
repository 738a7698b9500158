"""The store on both backends (SQLite file, PostgreSQL via tests/pg.py): migrations, transactions,
rows, the dialect layer; settings."""

import threading
import time
from pathlib import Path

import psycopg
import pytest

from controller.ids import has_prefix, new_id
from controller.settings import Settings, SettingsError
from controller.store import IntegrityError, Store, is_busy, open_store
from controller.store.migrations import MIGRATIONS
from controller.store.pg import redact, translate, translate_ddl


def test_store_is_wal_and_migrated(tmp_path: Path) -> None:
    store = open_store(tmp_path / "k.db")
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.close()
    # Re-opening an up-to-date store is a no-op.
    again = open_store(tmp_path / "k.db")
    assert again.schema_version() == MIGRATIONS[-1][0]
    again.close()


def test_store_migrates_from_empty_and_reopens(store_target: Path | str) -> None:
    store = Store(store_target)
    assert store.schema_version() == 0
    assert store.migrate() == MIGRATIONS[-1][0]
    store.close()
    again = open_store(store_target)
    assert again.schema_version() == MIGRATIONS[-1][0]
    assert again.query("SELECT * FROM nodes") == []
    again.close()


def test_an_older_store_upgrades_in_place(store_target: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations stop at version 4 (rows written), then the rest applies over the data."""
    import controller.store.db as db

    store = Store(store_target)
    with monkeypatch.context() as m:
        m.setattr(db, "MIGRATIONS", [mig for mig in MIGRATIONS if mig[0] <= 4])
        assert store.migrate() == 4
    store.conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 1.5)")
    assert store.migrate() == MIGRATIONS[-1][0]
    assert store.query_one("SELECT name FROM organizations")["name"] == "a"
    assert store.query("SELECT node_id FROM call_legs") == []  # migration 6's column exists
    store.close()


def test_concurrent_migrations_apply_once(store_target: Path | str) -> None:
    """Nodes starting together: every process migrates, each migration runs exactly once."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            open_store(store_target).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = open_store(store_target)
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.close()


def test_transaction_rolls_back_everything(any_store: Store) -> None:
    store = any_store
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
        raise RuntimeError("boom")
    assert store.query("SELECT * FROM organizations") == []


def test_rows_by_name_and_position_and_types_survive(any_store: Store) -> None:
    store = any_store
    ts = 1764646123.123456  # a unix time with microseconds: PostgreSQL REAL would round it
    with store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
                     ("org_A", "50% '?'", ts))
    row = store.query_one("SELECT id, name, created_at FROM organizations WHERE id = ? AND name LIKE '50%'",
                          ("org_A",))
    assert row is not None
    assert (row[0], row["name"], row["created_at"]) == ("org_A", "50% '?'", ts)
    assert row["ID"] == "org_A"  # case-insensitive, as sqlite3.Row
    assert dict(zip(row.keys(), tuple(row), strict=True)) == {
        "id": "org_A", "name": "50% '?'", "created_at": ts}
    count = store.query_one("SELECT COUNT(*) AS n FROM organizations WHERE name = '?'")
    assert count is not None and count["n"] == 0 and isinstance(count[0], int)
    # Booleans are 0/1 in INTEGER columns on both.
    store.conn.execute("INSERT INTO sip_settings (org_id, username, enabled, updated_at) VALUES (?, ?, ?, ?)",
                       ("org_A", "kgx", True, ts))
    assert store.query_one("SELECT enabled FROM sip_settings WHERE enabled = ?", (True,))["enabled"] == 1


def test_integrity_errors_and_savepoints_are_portable(any_store: Store) -> None:
    store = any_store
    store.conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
    with store.transaction() as conn:
        conn.execute("SAVEPOINT s")
        with pytest.raises(IntegrityError):
            conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'b', 0)")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_B', 'b', 0)")
    assert [r["id"] for r in store.query("SELECT id FROM organizations ORDER BY id")] == ["org_A", "org_B"]


def test_upsert_and_rowcount(any_store: Store) -> None:
    store = any_store
    sql = ("INSERT INTO nodes (id, esl_address, state, started_at, last_heartbeat) VALUES (?, ?, 'up', ?, ?)"
           " ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat")
    store.conn.execute(sql, ("n1", "a:1", 1.0, 1.0))
    store.conn.execute(sql, ("n1", "a:1", 1.0, 2.0))
    assert store.query_one("SELECT last_heartbeat FROM nodes")[0] == 2.0
    assert store.conn.execute("UPDATE nodes SET state = 'dead' WHERE id = ?", ("n1",)).rowcount == 1
    store.conn.executemany("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
                           [("org_1", "x", 0.0), ("org_2", "y", 0.0)])
    assert store.query_one("SELECT COUNT(*) FROM organizations")[0] == 2


def test_write_transactions_serialize_across_connections(store_target: Path | str) -> None:
    """The write lock is taken at BEGIN (SQLite IMMEDIATE, PostgreSQL advisory lock): a second
    writer waits for the first to commit, then sees its row."""
    open_store(store_target).close()
    a, b = Store(store_target), Store(store_target)
    seen: list[int] = []
    entered = threading.Event()

    def second() -> None:
        entered.wait()
        with b.transaction() as conn:
            seen.append(conn.execute("SELECT COUNT(*) FROM organizations").fetchone()[0])

    t = threading.Thread(target=second)
    t.start()
    with a.transaction() as conn:
        conn.execute("SELECT COUNT(*) FROM organizations").fetchone()
        entered.set()
        time.sleep(0.3)  # the other writer is waiting for the lock meanwhile
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
    t.join(timeout=10)
    assert seen == [1]
    a.close()
    b.close()


def test_translate_placeholders_outside_literals_and_comments() -> None:
    sql = "SELECT '?', \"?\" FROM t WHERE a = ? AND b LIKE '%x' -- isn't ?\n AND c = ?"
    assert translate(sql) == "SELECT '?', \"?\" FROM t WHERE a = %s AND b LIKE '%%x' -- isn't ?\n AND c = %s"
    assert translate_ddl("a REAL NOT NULL, b INTEGER, c TEXT, REALLY") == (
        "a DOUBLE PRECISION NOT NULL, b BIGINT, c TEXT, REALLY")


def test_dsn_password_never_in_errors(pg_url: str) -> None:
    assert redact("postgresql://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"
    bad = pg_url.replace("kallglot@127.0.0.1", "kallglot:s3cret@127.0.0.1").rsplit(":", 1)[0] + ":1/db"
    with pytest.raises(psycopg.OperationalError) as info:
        Store(bad)
    assert "s3cret" not in str(info.value)


def test_ids_are_prefixed_sortable_and_sip_safe() -> None:
    first, second = new_id("sess"), new_id("sess")
    assert has_prefix(first, "sess") and first[5:].isalnum()
    assert len({first, second}) == 2
    assert not has_prefix("sess_bad-id", "sess")
    with pytest.raises(ValueError):
        new_id("nope")


def test_settings_from_env_and_overrides() -> None:
    s = Settings.from_env({"KALLGLOT_DB": "/x/y.db", "KALLGLOT_API_PORT": "9000"}, api_port=9100)
    assert s.db_path == Path("/x/y.db") and s.api_port == 9100
    with pytest.raises(SettingsError, match="KALLGLOT_API_PORT"):
        Settings.from_env({"KALLGLOT_API_PORT": "http"})


def test_settings_keep_a_postgresql_url_and_name_the_node() -> None:
    url = "postgresql://k:pw@db.example:5432/kallglot?sslmode=require"
    s = Settings.from_env({"KALLGLOT_DB": url, "KALLGLOT_ESL_HOST": "10.0.0.7"})
    assert s.db_path == url and s.node_name == "10.0.0.7:8021"
    assert Settings.from_env({}, db_path=url).db_path == url
    assert Settings.from_env({"KALLGLOT_NODE_ID": "fs-eu-1"}).node_name == "fs-eu-1"
    with pytest.raises(SettingsError, match="KALLGLOT_NODE_DEAD_AFTER_S"):
        Settings.from_env({"KALLGLOT_NODE_HEARTBEAT_S": "5", "KALLGLOT_NODE_DEAD_AFTER_S": "10"})


def test_postgresql_store_reconnects_after_losing_its_connection(pg_url: str) -> None:
    """A PostgreSQL restart or failover: the failed statement raises, the next transaction or
    query runs on a new connection."""
    store = open_store(pg_url)
    killer = psycopg.connect(pg_url, autocommit=True)
    pid = store.query_one("SELECT pg_backend_pid()")[0]
    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    with pytest.raises(psycopg.OperationalError):
        store.conn.execute("SELECT 1")
    with store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
    assert store.query_one("SELECT COUNT(*) FROM organizations")[0] == 1
    assert store.query_one("SHOW lock_timeout")[0] == "10s"
    store.close()


def test_a_writer_that_times_out_on_the_lock_leaves_no_transaction_open(pg_url: str) -> None:
    open_store(pg_url).close()
    holder, waiter = Store(pg_url), Store(pg_url)
    waiter.conn.raw.execute("SET lock_timeout = '100ms'")
    with holder.transaction():
        with pytest.raises(psycopg.errors.LockNotAvailable) as info, waiter.transaction():
            pass
        assert is_busy(info.value)
    with waiter.transaction() as conn:  # usable again: the failed BEGIN was rolled back
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
    holder.close()
    waiter.close()

"""Opening the store: WAL mode, busy timeout, migrations, and explicit transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from controller.store.migrations import MIGRATIONS

# Several processes (api, controller, bridge) write the same file; wait rather than fail.
BUSY_TIMEOUT_S = 10.0


class Store:
    """One SQLite connection (autocommit mode) plus helpers for explicit transactions.

    ``isolation_level=None`` means no implicit transactions: every multi-statement write goes
    through :meth:`transaction`, which issues ``BEGIN IMMEDIATE`` so that the write lock is
    taken up front (call admission relies on that to serialize cap checks across processes).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        # One connection may be shared by threads (aiohttp executor, gevent); serialize use.
        self.lock = threading.RLock()

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """Run a block atomically; rolls back on any exception."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    def schema_version(self) -> int:
        with self.lock:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply pending migrations; returns the resulting schema version."""
        current = self.schema_version()
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                # executescript would COMMIT implicitly; run statement by statement instead.
                for statement in _split_sql(sql):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version}")
            current = version
        return current

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _split_sql(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError("incomplete SQL statement in migration")
    return statements


def open_store(path: Path | str) -> Store:
    """Open (creating if needed) and migrate the store at ``path``."""
    store = Store(path)
    store.migrate()
    return store

"""Opening the store: SQLite (WAL, busy timeout) or PostgreSQL, migrations, explicit transactions.

``KALLGLOT_DB`` is a SQLite file path (the embedded default) or a ``postgresql://`` URL (several
nodes sharing one store). Both go through the same :class:`Store` interface and the same SQL;
the differences live here and in ``controller/store/pg.py``.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from controller.store.migrations import MIGRATIONS
from controller.store.pg import PgConnection, is_postgres_url, translate_ddl

# Several processes (api, controller, bridge) write the same file; wait rather than fail.
BUSY_TIMEOUT_S = 10.0

# PostgreSQL: every write transaction takes this transaction-scoped advisory lock, the
# equivalent of SQLite's BEGIN IMMEDIATE write lock, so the rules written against SQLite's
# serialized writers (the call cap above all) stay exact across processes on any number of nodes.
WRITE_LOCK_KEY = zlib.crc32(b"kallglot.store.write")

# Exceptions of either backend, for ``except`` clauses in the domain code.
IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


def is_busy(exc: BaseException) -> bool:
    """The store could not take a lock in time (SQLite busy/locked, PostgreSQL lock timeout)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled)


def is_nul_text(exc: BaseException) -> bool:
    """PostgreSQL refused a text parameter with a NUL character (SQLite stores it)."""
    return isinstance(exc, psycopg.DataError) and "NUL" in str(exc)


class Store:
    """One connection (autocommit mode) plus helpers for explicit transactions.

    No implicit transactions: every multi-statement write goes through :meth:`transaction`,
    which takes the store's write lock up front (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an
    advisory lock), so call admission's cap check is serialized across processes and nodes.
    """

    def __init__(self, target: Path | str) -> None:
        self.dialect = "postgresql" if is_postgres_url(target) else "sqlite"
        self.target = target  # what KALLGLOT_DB names (a URL may hold a password: never log it)
        self.conn: Any
        if self.dialect == "postgresql":
            self.path = None
            # A writer waits for the write lock at most this long, as SQLite's busy timeout.
            self.conn = PgConnection(str(target), connect_timeout_s=BUSY_TIMEOUT_S,
                                     setup=(f"SET lock_timeout = '{int(BUSY_TIMEOUT_S * 1000)}ms'",))
        else:
            self.path = Path(target)
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self.conn = conn
        # One connection may be shared by threads (aiohttp executor, gevent); serialize use.
        self.lock = threading.RLock()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[Any]:
        """Run a block atomically; rolls back on any exception."""
        with self.lock:
            if self.is_postgres:
                self.conn.ensure_connected()
                # One round trip for both (no parameters: psycopg sends it as a simple query).
                begin = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})" if immediate else "BEGIN"
            else:
                begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
            try:
                # Inside the try: a lock timeout after PostgreSQL's BEGIN must still roll back.
                self.conn.execute(begin)
                yield self.conn
            except BaseException:
                self._rollback()
                raise
            else:
                self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except DatabaseError:  # a broken connection has no transaction left to roll back
            pass

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        with self.lock:
            if self.is_postgres:
                self.conn.ensure_connected()
            return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> Any | None:
        with self.lock:
            if self.is_postgres:
                self.conn.ensure_connected()
            return self.conn.execute(sql, params).fetchone()

    def schema_version(self) -> int:
        with self.lock:
            if self.is_postgres:
                row = self.conn.execute(
                    "SELECT version FROM kallglot_schema_version"
                    if self._pg_has_version_table() else "SELECT 0").fetchone()
                return int(row[0]) if row else 0
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _pg_has_version_table(self) -> bool:
        row = self.conn.execute("SELECT to_regclass('kallglot_schema_version') IS NOT NULL").fetchone()
        return bool(row[0])

    def migrate(self) -> int:
        """Apply pending migrations; returns the resulting schema version."""
        if self.is_postgres:
            return self._migrate_pg()
        current = self.schema_version()
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                # Re-read under the write lock: processes starting together migrate once.
                current = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
                if version <= current:
                    continue
                # executescript would COMMIT implicitly; run statement by statement instead.
                for statement in _split_sql(sql):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version}")
            current = version
        return current

    def _migrate_pg(self) -> int:
        # The schema version lives in a one-row table (PostgreSQL has no user_version). Each
        # migration runs under the write lock with its bump, re-reading the version inside, so
        # nodes starting together apply each migration exactly once.
        with self.transaction():
            self.conn.execute("CREATE TABLE IF NOT EXISTS kallglot_schema_version (version BIGINT NOT NULL)")
            if self.conn.execute("SELECT 1 FROM kallglot_schema_version").fetchone() is None:
                self.conn.execute("INSERT INTO kallglot_schema_version (version) VALUES (0)")
        current = self.schema_version()
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                current = int(self.conn.execute("SELECT version FROM kallglot_schema_version").fetchone()[0])
                if version <= current:
                    continue
                for statement in _split_sql(sql):
                    self.conn.execute(translate_ddl(statement))
                self.conn.execute("UPDATE kallglot_schema_version SET version = ?", (version,))
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


def open_store(target: Path | str) -> Store:
    """Open (creating if needed) and migrate the store at ``target``: a SQLite path or a
    ``postgresql://`` URL."""
    store = Store(target)
    store.migrate()
    return store

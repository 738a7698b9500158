"""PostgreSQL behind the same small interface the domain code uses on sqlite3.

The domain SQL is written once, with ``?`` placeholders and portable constructs; this module
translates placeholders, makes rows indexable by name and by position like ``sqlite3.Row``,
and gives the connection sqlite3's ``execute``/``executemany`` → cursor shape. Client-side
binding (``ClientCursor``) is used on purpose: parameters become literals, so ``? IS NULL`` and
untyped comparisons behave as in SQLite instead of failing PostgreSQL's parameter typing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import RowMaker

URL_PREFIXES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(URL_PREFIXES)


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``?`` → ``%s`` and ``%`` → ``%%`` outside quoted literals, identifiers and ``--`` comments."""
    out: list[str] = []
    quote: str | None = None
    comment = False
    for i, ch in enumerate(sql):
        if comment:
            comment = ch != "\n"
            out.append("%%" if ch == "%" else ch)
        elif quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            comment = True
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=64)
def translate_ddl(sql: str) -> str:
    """SQLite DDL → PostgreSQL: REAL is float4 there (timestamps would lose seconds), INTEGER int4."""
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bINTEGER\b", "BIGINT", sql)


class Row:
    """A result row indexable by column name (case-insensitive, as sqlite3.Row) and position."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                return self._values[self._index[key.lower()]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._values == other._values and self._index == other._index
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    desc = cursor.description
    index = {d.name: i for i, d in enumerate(desc or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


def _params(params: Sequence[Any] | dict[str, Any]) -> Sequence[Any] | dict[str, Any] | None:
    if isinstance(params, dict):
        raise TypeError("named parameters are not supported by the PostgreSQL store; use ?")
    if not params:
        return None
    # SQLite stores booleans as 0/1 in INTEGER columns; so do we (BIGINT columns here).
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class PgConnection:
    """sqlite3.Connection's ``execute``/``executemany``/``close`` over one psycopg connection
    in autocommit mode (explicit ``BEGIN``/``COMMIT`` as on SQLite)."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 10.0, setup: tuple[str, ...] = ()) -> None:
        self._dsn = dsn
        self._timeout = max(1, int(connect_timeout_s))
        self._setup = setup
        self.raw = self._connect()

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            raw = psycopg.connect(self._dsn, autocommit=True, row_factory=_row_factory,
                                  cursor_factory=psycopg.ClientCursor, connect_timeout=self._timeout)
        except psycopg.OperationalError as exc:
            # psycopg's message names host/port/user, never the password; the DSN is not repeated.
            raise psycopg.OperationalError(f"cannot connect to {redact(self._dsn)}: {exc}") from None
        for statement in self._setup:
            raw.execute(statement)
        return raw

    def ensure_connected(self) -> None:
        """Reconnect after the server went away (restart, failover). Only called between
        transactions: a transaction that lost its connection is lost and must not continue on
        a new one in autocommit."""
        if self.raw.broken or self.raw.closed:
            self.raw = self._connect()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Row]:
        cur = self.raw.cursor()
        values = _params(params)
        cur.execute(translate(sql) if values is not None else sql, values)
        return cur

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> psycopg.Cursor[Row]:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), [_params(p) or () for p in seq])
        return cur

    def close(self) -> None:
        self.raw.close()

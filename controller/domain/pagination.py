"""Cursor pagination shared by the list endpoints: newest first, ``starting_after`` = last id seen.

Keyset on (created_at, id) rather than OFFSET, so a page stays correct while rows are added.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.domain.errors import DomainError
from controller.store import Store

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None


def keyset_page(
    store: Store,
    *,
    select: str,
    alias: str,
    table: str,
    org_id: str,
    where: list[str],
    params: list[object],
    page: PageRequest,
) -> tuple[list[sqlite3.Row], bool]:
    """Rows of ``select`` (whose main table is ``table`` as ``alias``) after the cursor; (rows, has_more).

    ``select``, ``alias``, ``table`` and ``where`` are this package's own SQL, never user input.
    """
    where = list(where)
    params = list(params)
    if page.starting_after is not None:
        anchor = store.query_one(
            f"SELECT created_at, id FROM {table} WHERE id = ? AND org_id = ?",  # noqa: S608
            (page.starting_after, org_id),
        )
        if anchor is None:
            raise DomainError(
                400,
                "resource_missing",
                f"No such object to start after: {page.starting_after!r}",
                param="starting_after",
            )
        where.append(f"({alias}.created_at < ? OR ({alias}.created_at = ? AND {alias}.id < ?))")
        params += [anchor["created_at"], anchor["created_at"], anchor["id"]]
    rows = store.query(
        f"{select} WHERE {' AND '.join(where)} ORDER BY {alias}.created_at DESC, {alias}.id DESC LIMIT ?",
        (*params, page.limit + 1),
    )
    return rows[: page.limit], len(rows) > page.limit

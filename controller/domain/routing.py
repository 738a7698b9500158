"""Telephony resolution for a new session (DESIGN.md §2), in exactly this order:

1. ``routing.connection_id`` if given (an active connection of the organization);
2. SIP when ``routing.type`` is ``"sip"`` (the organization's SIP must be enabled);
3. an active managed number of the organization matching ``routing.phone_number``
   (the provider comes from the number's own connection);
4. the organization's default provider connection;
5. else an error.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.domain.connections import load_connection
from controller.domain.errors import DomainError
from controller.domain.phone_numbers import find_active_number
from controller.domain.requests import Routing


class RoutingError(DomainError):
    """One of the four resolution failures: HTTP 422 naming the routing field."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(422, code, message, param=param)


@dataclass(frozen=True)
class Resolution:
    provider: str  # twilio | telnyx | sip
    connection_id: str | None
    phone_number: str | None
    direction: str | None


def resolve(conn: sqlite3.Connection, org_id: str, routing: Routing | None) -> Resolution:
    """Resolve inside the caller's transaction so the result cannot change before it is stored."""
    routing = routing or Routing()
    if routing.connection_id is not None:
        found = load_connection(conn, org_id, routing.connection_id)
        if found is None or found.status != "active":
            raise RoutingError(
                "connection_not_found",
                f"No active connection {routing.connection_id!r} in this organization",
                "routing.connection_id",
            )
        return Resolution(found.provider, found.id, None, routing.direction)

    if routing.type == "sip":
        row = conn.execute("SELECT enabled FROM sip_settings WHERE org_id = ?", (org_id,)).fetchone()
        if row is None or not row["enabled"]:
            raise RoutingError(
                "sip_not_enabled", "SIP is not enabled for this organization (PATCH /v1/sip)", "routing.type"
            )
        return Resolution("sip", None, None, None)

    if routing.phone_number is not None:
        number = find_active_number(conn, org_id, routing.phone_number)
        if number is None:
            raise RoutingError(
                "phone_number_not_found",
                f"{routing.phone_number} is not an active phone number of this organization",
                "routing.phone_number",
            )
        connection = load_connection(conn, org_id, number.connection_id)
        if connection is None or connection.status != "active":
            raise RoutingError(
                "connection_not_found",
                f"The connection of {routing.phone_number} is not active",
                "routing.phone_number",
            )
        return Resolution(connection.provider, connection.id, number.number, routing.direction)

    row = conn.execute(
        "SELECT id FROM connections WHERE org_id = ? AND is_default = 1 AND status = 'active'", (org_id,)
    ).fetchone()
    if row is None:
        raise RoutingError(
            "no_default_provider",
            "No routing given and the organization has no active default connection",
            "routing",
        )
    connection = load_connection(conn, org_id, row["id"])
    assert connection is not None  # same transaction, just read
    return Resolution(connection.provider, connection.id, None, routing.direction)

"""Organizations; each is created together with its SIP settings row (SIP disabled)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from controller.domain.errors import DomainError, NotFound
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.store import IntegrityError, Store


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    created_at: float

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "organization",
            "name": self.name,
            "created_at": iso(self.created_at),
        }


def _new_sip_username() -> str:
    # Letters and digits only: safe as a SIP user part and a FreeSWITCH directory id.
    return "kg" + secrets.token_hex(6)


def create_organization(store: Store, name: str) -> Organization:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise DomainError(400, "parameter_invalid", "name must be 1-100 printable characters", param="name")
    org = Organization(id=new_id("org"), name=name, created_at=now())
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
            (org.id, org.name, org.created_at),
        )
        for _ in range(5):  # a username collision is astronomically rare; retry anyway
            # A savepoint: PostgreSQL aborts the whole transaction on a failed statement.
            conn.execute("SAVEPOINT sip_username")
            try:
                conn.execute(
                    "INSERT INTO sip_settings (org_id, username, updated_at) VALUES (?, ?, ?)",
                    (org.id, _new_sip_username(), org.created_at),
                )
                conn.execute("RELEASE SAVEPOINT sip_username")
                break
            except IntegrityError:
                conn.execute("ROLLBACK TO SAVEPOINT sip_username")
                continue
        else:
            raise RuntimeError("could not generate a unique SIP username")
    return org


def list_organizations(store: Store) -> list[Organization]:
    rows = store.query("SELECT id, name, created_at FROM organizations ORDER BY created_at, id")
    return [Organization(r["id"], r["name"], r["created_at"]) for r in rows]


def get_organization(store: Store, org_id: str) -> Organization:
    row = store.query_one("SELECT id, name, created_at FROM organizations WHERE id = ?", (org_id,))
    if row is None:
        raise NotFound("organization", org_id, param="org")
    return Organization(row["id"], row["name"], row["created_at"])

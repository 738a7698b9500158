"""``kallglot org …`` and ``kallglot key …``: JSON on stdout, JSON errors on stderr (exit 1)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from controller.domain import api_keys, organizations
from controller.domain.errors import DomainError
from controller.settings import Settings
from controller.store import Store, open_store


def _run(settings: Settings, action: Callable[[Store], object]) -> int:
    store = open_store(settings.db_path)
    try:
        result = action(store)
    except DomainError as exc:
        print(
            json.dumps({"error": {"code": exc.code, "message": exc.message, "param": exc.param}}),
            file=sys.stderr,
        )
        return 1
    finally:
        store.close()
    print(json.dumps(result, indent=2))
    return 0


def org_create(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, lambda store: organizations.create_organization(store, args.name).to_json())


def org_list(args: argparse.Namespace, settings: Settings) -> int:
    return _run(
        settings,
        lambda store: {
            "object": "list",
            "data": [o.to_json() for o in organizations.list_organizations(store)],
        },
    )


def key_create(args: argparse.Namespace, settings: Settings) -> int:
    def action(store: Store) -> dict[str, object]:
        created = api_keys.create_key(store, args.org_id, livemode=not args.test)
        # The only time the secret is ever shown.
        return {
            "id": created.key.id,
            "key": created.secret,
            "organization": args.org_id,
            "livemode": created.key.livemode,
        }

    return _run(settings, action)


def key_list(args: argparse.Namespace, settings: Settings) -> int:
    return _run(
        settings,
        lambda store: {
            "object": "list",
            "data": [k.to_json() for k in api_keys.list_keys(store, args.org_id)],
        },
    )


def key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    return _run(settings, lambda store: api_keys.revoke_key(store, args.key_id).to_json())

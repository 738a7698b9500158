"""``kallglot portal link --org ORG``: print a one-time sign-in link to the Developer Portal."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from urllib.parse import urlencode

from controller.domain.errors import DomainError
from controller.portal import auth
from controller.settings import Settings
from controller.store import open_store


def base_url(args: argparse.Namespace, settings: Settings) -> str:
    """Where browsers reach the API process: --base-url, else its own listen address."""
    if getattr(args, "base_url", None):
        return str(args.base_url).rstrip("/")
    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


def cli_link(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.db_path)
    try:
        link = auth.create_login_link(store, args.org_id)
    except DomainError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message, "param": exc.param}}),
              file=sys.stderr)
        return 1
    finally:
        store.close()
    # After "#": browsers do not send a fragment, so the token stays out of every server log.
    url = f"{base_url(args, settings)}/portal/login#{urlencode({'token': link.token})}"
    # The only time the token is shown; it works once, until expires_at.
    print(json.dumps({
        "url": url,
        "token": link.token,  # to paste into the sign-in form where JavaScript is off
        "organization": link.org_id,
        "expires_at": datetime.fromtimestamp(link.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }, indent=2))
    return 0

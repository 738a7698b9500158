"""The ``kallglot`` console script (DESIGN.md §6). JSON on stdout for anything a script reads.

Each subcommand lives with the module that owns it and is imported lazily, so that
``kallglot controller`` can install gevent's monkey patches before anything else loads.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence

from controller.kamailio.cli import add_render_arguments as add_kamailio_render_arguments
from controller.settings import Settings, SettingsError

# subcommand path -> "module:function"; the function takes (args, settings) and returns an exit code.
COMMANDS: dict[str, str] = {
    "api": "controller.api.server:cli_run",
    "webhooks": "controller.webhooks.worker:cli_run",
    "controller": "controller.calls.service:cli_run",
    "bridge": "media_bridge.server:cli_run",
    "demo": "controller.demo.run:cli_run",
    "org create": "controller.admin_cli:org_create",
    "org list": "controller.admin_cli:org_list",
    "key create": "controller.admin_cli:key_create",
    "key list": "controller.admin_cli:key_list",
    "key revoke": "controller.admin_cli:key_revoke",
    "portal link": "controller.portal.cli:cli_link",
    "render": "controller.fsconfig.commands:cli_render",
    "reload": "controller.fsconfig.commands:cli_reload",
    "kamailio render": "controller.kamailio.cli:cli_render",
    "models list": "media_bridge.models.cli:cli_list",
    "models pull": "media_bridge.models.cli:cli_pull",
    "models remove": "media_bridge.models.cli:cli_remove",
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", dest="db_path", help="store: SQLite path or postgresql:// URL (KALLGLOT_DB)")
    p.add_argument("--sip-domain", dest="sip_domain", help="SIP domain (KALLGLOT_SIP_DOMAIN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kallglot", description="Kallglot SIP edge")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("api", help="run the HTTP API and the admin endpoint")
    _add_common(p)
    p.add_argument("--host", dest="api_host")
    p.add_argument("--port", dest="api_port", type=int)

    p = sub.add_parser("webhooks", help="run only the webhook delivery worker")
    _add_common(p)

    p = sub.add_parser("controller", help="run the ESL call controller")
    _add_common(p)
    p.add_argument("--listen-host", dest="controller_host")
    p.add_argument("--listen-port", dest="controller_port", type=int)
    p.add_argument("--esl-host", dest="esl_host")
    p.add_argument("--esl-port", dest="esl_port", type=int)
    p.add_argument("--bridge-url", dest="bridge_url")

    p = sub.add_parser("bridge", help="run the translation bridge (mod_audio_stream websocket server)")
    _add_common(p)
    p.add_argument("--host", dest="bridge_host")
    p.add_argument("--port", dest="bridge_port", type=int)

    p = sub.add_parser("demo", help="a two-party translated call against the FreeSWITCH test double")
    p.add_argument("--out", default="demo-out", help="folder for the translated audio (WAV)")

    org = sub.add_parser("org", help="organizations").add_subparsers(dest="org_command", required=True)
    p = org.add_parser("create", help="create an organization")
    _add_common(p)
    p.add_argument("name")
    p = org.add_parser("list", help="list organizations")
    _add_common(p)

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="key_command", required=True)
    p = key.add_parser("create", help="create an API key (printed once)")
    _add_common(p)
    p.add_argument("--org", required=True, dest="org_id")
    p.add_argument("--test", action="store_true", help="an sk_test_ key instead of sk_live_")
    p = key.add_parser("list", help="list an organization's keys (prefixes only)")
    _add_common(p)
    p.add_argument("--org", required=True, dest="org_id")
    p = key.add_parser("revoke", help="revoke an API key by id")
    _add_common(p)
    p.add_argument("key_id")

    portal = sub.add_parser("portal", help="the Developer Portal (docs/portal.md)")
    psub = portal.add_subparsers(dest="portal_command", required=True)
    p = psub.add_parser("link", help="print a one-time sign-in link for an organization's admin")
    _add_common(p)
    p.add_argument("--org", required=True, dest="org_id")
    p.add_argument("--base-url", help="where browsers reach the API (default: http://API_HOST:API_PORT)")
    p.add_argument("--port", dest="api_port", type=int, help="the API's port, for the default base URL")

    p = sub.add_parser("render", help="render + validate the FreeSWITCH config (no FreeSWITCH needed)")
    _add_common(p)
    p.add_argument("--out", help="write the rendered tree here instead of the live conf dir")

    p = sub.add_parser("reload", help="render, then reload FreeSWITCH over ESL")
    _add_common(p)
    p.add_argument("--esl-host", dest="esl_host")
    p.add_argument("--esl-port", dest="esl_port", type=int)
    p.add_argument("--restart-profile", action="store_true",
                   help="also restart the SIP profile (new TLS certificate files; ends its live calls)")

    kam = sub.add_parser("kamailio", help="the Kamailio front over several nodes (docs/kamailio.md)")
    ksub = kam.add_subparsers(dest="kamailio_command", required=True)
    p = ksub.add_parser("render", help="render kamailio.cfg, dispatcher.list and tls.cfg from a node list")
    _add_common(p)
    add_kamailio_render_arguments(p)

    models = sub.add_parser("models", help="speech and translation models (docs/models.md)")
    msub = models.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("list", "the catalog, and what is installed"),
        ("pull", "download and install a model"),
        ("remove", "delete an installed model"),
    ):
        p = msub.add_parser(name, help=text)
        p.add_argument("--cache", help="model cache directory (KALLGLOT_MODEL_CACHE)")
        if name == "list":
            p.add_argument("--installed", action="store_true", help="only installed models")
        else:
            p.add_argument("name", help="catalog name, e.g. nllb-200-distilled-600m")
    return parser


_SETTINGS_FLAGS = (
    "db_path", "sip_domain", "api_host", "api_port", "controller_host", "controller_port",
    "esl_host", "esl_port", "bridge_url", "bridge_host", "bridge_port",
)


def _command_key(args: argparse.Namespace) -> str:
    for group in ("org_command", "key_command", "models_command", "portal_command", "kamailio_command"):
        if getattr(args, group, None):
            return f"{args.command} {getattr(args, group)}"
    return args.command


def _load(target: str) -> Callable[[argparse.Namespace, Settings], int]:
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = _command_key(args)
    if key == "controller":
        # gevent must patch the standard library before greenswitch or sockets are imported.
        from gevent import monkey

        monkey.patch_all()
    overrides = {name: getattr(args, name, None) for name in _SETTINGS_FLAGS}
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    return int(_load(COMMANDS[key])(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())

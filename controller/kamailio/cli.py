"""``kallglot kamailio render --out DIR --node name=fs1,sip=10.0.0.11:5060,region=eu …``.

JSON summary on stdout; errors as ``{"error": {"code", "message", "field"}}`` on stderr, exit 1.
Only argparse is imported at module level: the console script builds its parser from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.kamailio.model import KamailioNode
    from controller.settings import Settings

NODE_KEYS = {"name": "name", "sip": "sip_address", "sip_address": "sip_address", "region": "region",
             "state": "state"}


def add_render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for kamailio.cfg, dispatcher.list, tls.cfg")
    p.add_argument("--node", action="append", default=[], metavar="name=N,sip=IP:PORT[,region=R][,state=S]",
                   help="a FreeSWITCH node (repeat); state up (default), draining, stopped or dead")
    p.add_argument("--nodes-json", metavar="FILE",
                   help='nodes as JSON: [{"name", "sip_address", "region", "state"}, …] ("-": stdin)')
    p.add_argument("--listen", action="append", default=[], metavar="PROTO:IP[:PORT]",
                   help="listen socket (repeat; default udp, tcp on 0.0.0.0:5060 and tls on :5061)")
    p.add_argument("--advertise", default="", help="public IP for Via/Record-Route when behind NAT")
    p.add_argument("--tls-cert", dest="tls_certificate", help="certificate (PEM) for TLS on 5061")
    p.add_argument("--tls-key", dest="tls_private_key", help="its private key (PEM)")
    p.add_argument("--probe-interval", dest="probe_interval_s", type=int,
                   help="seconds between OPTIONS probes")
    p.add_argument("--probing-threshold", type=int, help="failed probes before a node is out of service")
    p.add_argument("--node-transport", choices=("udp", "tcp"), help="Kamailio -> FreeSWITCH transport")
    p.add_argument("--config-dir", help="where the files live at run time (default: --out, absolute)")
    p.add_argument("--run-dir", help="folder of the kamcmd control socket (default /run/kamailio)")
    p.add_argument("--check", action="store_true", help="also run `kamailio -c` on the result")


def parse_node(spec: str, index: int) -> KamailioNode:
    from controller.kamailio.model import KamailioConfigError, KamailioNode

    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in NODE_KEYS:
            raise KamailioConfigError(f"nodes[{index}]", f"expected name=…,sip=IP:PORT[,region=…][,state=…], "
                                                         f"got {part[:40]!r}")
        fields[NODE_KEYS[key]] = value.strip()
    if "name" not in fields or "sip_address" not in fields:
        raise KamailioConfigError(f"nodes[{index}]", "needs name= and sip=")
    return KamailioNode(**fields)


def _nodes_from_json(source: str, offset: int) -> list[KamailioNode]:
    from controller.kamailio.model import KamailioConfigError, KamailioNode

    raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KamailioConfigError("nodes_json", f"not JSON: {exc}") from None
    if not isinstance(items, list):
        raise KamailioConfigError("nodes_json", "must be a JSON list of nodes")
    nodes = []
    for i, item in enumerate(items, start=offset):
        if not isinstance(item, dict) or not {"name", "sip_address"} <= set(item):
            raise KamailioConfigError(f"nodes[{i}]", "needs name and sip_address")
        extra = set(item) - {"name", "sip_address", "region", "state"}
        if extra:
            raise KamailioConfigError(f"nodes[{i}]", f"unknown field {sorted(extra)[0]!r}")
        nodes.append(KamailioNode(**{k: str(v) if v is not None else "" for k, v in item.items()}))
    return nodes


def cli_render(args: argparse.Namespace, settings: Settings) -> int:
    from controller.kamailio.model import KamailioConfigError, KamailioSettings, build_input
    from controller.kamailio.render import check_config, render_files, write_files

    out = Path(args.out).resolve()
    try:
        nodes = [parse_node(spec, i) for i, spec in enumerate(args.node)]
        if args.nodes_json:
            nodes += _nodes_from_json(args.nodes_json, len(nodes))
        overrides: dict[str, Any] = {
            name: getattr(args, name)
            for name in ("tls_certificate", "tls_private_key", "probe_interval_s", "probing_threshold",
                         "node_transport", "run_dir")
            if getattr(args, name, None) is not None
        }
        if args.listen:
            overrides["listen"] = tuple(args.listen)
        front = KamailioSettings(
            sip_domain=settings.sip_domain,
            advertise=args.advertise,
            config_dir=args.config_dir or str(out),
            **overrides,
        )
        k = build_input(front, nodes)
        files = render_files(k)
    except KamailioConfigError as exc:
        body = {"code": "invalid_configuration", "message": str(exc), "field": exc.field}
        print(json.dumps({"error": body}), file=sys.stderr)
        return 1
    written = write_files(files, out)
    stale = out / "tls.cfg"
    if not k.tls and stale.exists():  # TLS turned off: no file may suggest it is still configured
        stale.unlink()
    summary: dict[str, Any] = {
        "files": [str(p) for p in written],
        "nodes": [{"name": n.name, "sip_address": n.sip_address, "region": n.region, "state": n.state}
                  for n in k.nodes],
        "in_service": [n.name for n in k.nodes if n.active],
        "listen": [lst.socket for lst in k.listens],
        "tls": k.tls,
    }
    if args.check:
        try:
            result = check_config(out / "kamailio.cfg")
        except FileNotFoundError as exc:
            print(json.dumps({"error": {"code": "kamailio_missing", "message": str(exc)}}), file=sys.stderr)
            return 1
        summary["check"] = {"ok": result.ok, "output": result.output}
        if not result.ok:
            print(json.dumps(summary))
            return 1
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m controller.kamailio render …`` (same flags as ``kallglot kamailio render``)."""
    from controller.settings import Settings, SettingsError

    parser = argparse.ArgumentParser(prog="python -m controller.kamailio")
    sub = parser.add_subparsers(dest="kamailio_command", required=True)
    p = sub.add_parser("render", help="render the Kamailio front's files")
    p.add_argument("--sip-domain", dest="sip_domain", help="SIP domain (KALLGLOT_SIP_DOMAIN)")
    add_render_arguments(p)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(sip_domain=args.sip_domain)
    except SettingsError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    return cli_render(args, settings)

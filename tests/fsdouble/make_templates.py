"""Regenerate ``templates.json`` from the captured traces (run once when the fixtures change).

    .venv/bin/python -m tests.fsdouble.make_templates

The double builds its replies and events from these real header lists, so it stays byte-true
without needing the fixture folder at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from controller.esl.protocol import EVENT_PLAIN, Event, FrameParser
from tests.fsdouble.fixtures import fs_records

OUT = Path(__file__).with_name("templates.json")


def _frames(name: str) -> list[Any]:
    return [f for r in fs_records(name) for f in FrameParser().feed(r)]


def _events(name: str) -> list[Event]:
    return [Event.from_frame(f) for f in _frames(name) if f.content_type == EVENT_PLAIN]


def build() -> dict[str, Any]:
    out: dict[str, Any] = {"connect": {}, "events": {}, "auth_failure": {}}
    for transport in ("udp", "tcp", "tls"):
        frame = _frames(f"outbound-call-{transport}")[0]
        out["connect"][transport] = [[k, v] for k, v in _decoded_items(frame)]
    for scenario in ("outbound-call-udp", "reject-404", "srtp-mandatory-no-crypto", "ws-server-close",
                     "ws-refused", "inbound-events-call", "inbound-api"):
        for ev in _events(scenario):
            out["events"].setdefault(ev.key, [[k, v] for k, v in ev.items])
    for ev in _events("inbound-events-auth-failures"):
        if ev.get("Channel-State") in ("CS_NEW",) or (ev.name == "CHANNEL_HANGUP_COMPLETE"
                                                      and ev.get("Caller-Destination-Number") == ""):
            out["auth_failure"].setdefault(ev.name, [[k, v] for k, v in ev.items])
    api = [f for f in _frames("inbound-api") if f.content_type == "api/response"]
    out["status"] = api[0].body_text()
    row = next(f for f in api if b'"row_count":1' in f.body)
    out["show_calls_row"] = json.loads(row.body)["rows"][0]
    reload_api = [f for f in _frames("inbound-reload") if f.content_type == "api/response"]
    out["sofia_status"] = next(f.body_text() for f in reload_api if "====" in f.body_text())
    out["var_sets"] = _var_sets()
    notices = [f for f in _frames("outbound-call-udp") if f.content_type == "text/disconnect-notice"]
    out["disconnect_body"] = notices[-1].body_text()
    return out


def _var_sets() -> dict[str, list[list[str]]]:
    """Variables FreeSWITCH adds at media setup (PROGRESS_MEDIA) and at hangup (the CDR set on
    CHANNEL_HANGUP_COMPLETE), in the captured order with the captured values."""
    events = _events("outbound-call-udp")
    sets: dict[str, list[list[str]]] = {}
    previous: list[str] = []
    for ev in events:
        names = [k for k, _ in ev.items if k.startswith("variable_")]
        if not names:
            continue
        new = [[k[len("variable_"):], ev.headers[k]] for k in names if k not in previous]
        if ev.name == "CHANNEL_PROGRESS_MEDIA":
            sets["media"] = new
        elif ev.name == "CHANNEL_HANGUP_COMPLETE":
            sets["cdr"] = new
        previous = names
    return sets


def _decoded_items(frame: Any) -> list[tuple[str, str]]:
    return [(k, unquote(v)) for k, v in frame.items]


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=0, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")

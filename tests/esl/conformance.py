"""Drive the double with the exact commands of a captured transcript and pair its frames with
FreeSWITCH's: same framing, content types, event names, header names in the same order."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.esl.protocol import EVENT_PLAIN, Event, Frame, FrameParser
from tests.fsdouble import CallOutcome, FreeSwitchDouble
from tests.fsdouble.fixtures import ESL_DIR, read_transcript

IGNORED_EVENTS = {"CHANNEL_PARK"}  # its arrival relative to command replies is a race in FreeSWITCH


def _keep(frame: Frame) -> bool:
    if frame.content_type == EVENT_PLAIN:
        return Event.from_frame(frame).name not in IGNORED_EVENTS
    return True


@dataclass
class Group:
    command: bytes | None
    frames: list[Frame] = field(default_factory=list)


def _is_linger(frame: Frame) -> bool:
    return frame.content_type == "text/disconnect-notice" and \
        frame.headers.get("Content-Disposition") == "linger"


def groups_of(name: str) -> list[Group]:
    """Client commands with the FreeSWITCH frames that followed each.

    Normalised for the one race seen in the captures (fixtures README §5): a linger notice that
    overtook the last CHANNEL_STATE/CHANNEL_HANGUP_COMPLETE is moved after them; the double sends
    it last (also an order observed)."""
    groups = [Group(None)]
    for rec in read_transcript(ESL_DIR / f"{name}.log"):
        if rec.from_fs:
            groups[-1].frames += [f for f in FrameParser().feed(rec.data) if _keep(f)]
        else:
            groups.append(Group(rec.data))
    for g in groups:
        notices = [f for f in g.frames if _is_linger(f)]
        if notices and any(f.content_type == EVENT_PLAIN for f in g.frames[g.frames.index(notices[0]):]):
            g.frames = [f for f in g.frames if not _is_linger(f)] + notices
    return groups


@dataclass
class Run:
    pairs: list[tuple[Frame, Frame | None]] = field(default_factory=list)
    extra: list[Frame] = field(default_factory=list)
    outcome: CallOutcome | None = None
    uuid: str = ""


Hook = Callable[[], None]


def _exchange(conn: socket.socket, groups: list[Group], run: Run, *, ws_port: int | None = None,
              hooks: dict[int, Hook] | None = None, after: dict[int, Hook] | None = None) -> None:
    """Send each group's command (uuids, ::play paths and the ws port rewritten to the double's),
    then collect as many frames as FreeSWITCH sent after it (5 s at most)."""
    conn.settimeout(0.05)
    parser = FrameParser()
    pending: list[Frame] = []
    fixture_uuid = ""
    play_files: dict[str, str] = {}
    for index, group in enumerate(groups):
        if hooks and index in hooks:
            hooks[index]()
        if group.command is not None:
            text = group.command.decode()
            for old, new in play_files.items():
                text = text.replace(old, new)
            if fixture_uuid and run.uuid:
                text = text.replace(fixture_uuid, run.uuid)
            if ws_port is not None:
                text = re.sub(r"ws://127\.0\.0\.1:\d+/", f"ws://127.0.0.1:{ws_port}/", text)
            conn.sendall(text.encode())
        hook = after.get(index) if after else None
        deadline = time.monotonic() + 5
        got: list[Frame] = []
        while len(got) < len(group.frames) and time.monotonic() < deadline:
            while pending and len(got) < len(group.frames):
                got.append(pending.pop(0))
            if hook is not None and got:  # the command's reply is in: now act
                hook()
                hook = None
                deadline = time.monotonic() + 5
            if len(got) >= len(group.frames):
                break
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            pending += [f for f in parser.feed(data) if _keep(f)]
        for i, expected in enumerate(group.frames):
            actual = got[i] if i < len(got) else None
            run.pairs.append((expected, actual))
            if actual is None:
                continue
            if "Unique-ID" in expected.headers and not fixture_uuid and expected.content_type != EVENT_PLAIN:
                fixture_uuid = expected.decoded_headers()["Unique-ID"]
                run.uuid = actual.decoded_headers()["Unique-ID"]
            if expected.content_type == EVENT_PLAIN == actual.content_type:
                ev, av = Event.from_frame(expected), Event.from_frame(actual)
                if ev.key == "mod_audio_stream::play" and av.key == ev.key:
                    play_files[ev.json()["file"]] = av.json()["file"]
    end = time.monotonic() + 1  # whatever else arrives before the close
    while time.monotonic() < end:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not data:
            break
        pending += [f for f in parser.feed(data) if _keep(f)]
    run.extra = pending


def drive_outbound(name: str, fs_factory: Callable[[str], FreeSwitchDouble], call: dict[str, Any],
                   ws_port: int | None = None) -> Run:
    """Accept the double's outbound connection and replay ``name``'s client side against it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    fs = fs_factory(f"127.0.0.1:{port}")
    run = Run()
    box: dict[str, CallOutcome] = {}
    caller = threading.Thread(target=lambda: box.setdefault("o", fs.place_call(**call)), daemon=True)
    caller.start()
    try:
        conn, _ = listener.accept()
        listener.close()
        try:
            _exchange(conn, groups_of(name), run, ws_port=ws_port)
        finally:
            conn.close()
    finally:
        caller.join(10)
        run.outcome = box.get("o")
        fs.stop()
    return run


def drive_inbound(name: str, fs: FreeSwitchDouble, hooks: dict[int, Hook] | None = None,
                  after: dict[int, Hook] | None = None) -> Run:
    """Connect to the double's ESL port and replay ``name``'s client side (an inbound client).
    ``hooks[i]`` run before group ``i``'s command is sent, ``after[i]`` right after it."""
    run = Run()
    conn = socket.create_connection(("127.0.0.1", fs.esl_port), timeout=5)
    try:
        _exchange(conn, groups_of(name), run, hooks=hooks, after=after)
    finally:
        conn.close()
    return run


def header_names(frame: Frame) -> list[str]:
    if frame.content_type == EVENT_PLAIN:
        return [k for k, _ in Event.from_frame(frame).items if not k.startswith("variable_")]
    return [k for k, _ in frame.items if not k.startswith("variable_")]


def describe(frame: Frame | None) -> str:
    if frame is None:
        return "<nothing>"
    if frame.content_type == EVENT_PLAIN:
        ev = Event.from_frame(frame)
        app = ev.get("Application")
        return f"event {ev.key}" + (f"({app})" if app else "")
    if frame.content_type == "api/response":
        return f"api/response {frame.body_text()[:40]!r}"
    return f"{frame.content_type} {frame.reply_text[:40]!r}"


def compare(run: Run, *, uuid_pair: tuple[str, str] | None = None) -> list[str]:
    """Differences between FreeSWITCH's frames and the double's (empty = conformant)."""
    problems: list[str] = []
    for i, (exp, act) in enumerate(run.pairs):
        if act is None:
            problems.append(f"#{i}: expected {describe(exp)}, double sent nothing")
            continue
        if exp.content_type != act.content_type:
            problems.append(f"#{i}: expected {describe(exp)}, got {describe(act)}")
            continue
        if exp.content_type == EVENT_PLAIN:
            ev, av = Event.from_frame(exp), Event.from_frame(act)
            if ev.key != av.key or ev.get("Application") != av.get("Application"):
                problems.append(f"#{i}: expected {describe(exp)}, got {describe(act)}")
                continue
            if header_names(exp) != header_names(act):
                problems.append(f"#{i} {describe(exp)}: header names differ: "
                                f"{_diff(header_names(exp), header_names(act))}")
            want = {k for k, _ in ev.items if k.startswith("variable_")}
            got = {k for k, _ in av.items if k.startswith("variable_")}
            if want != got:
                problems.append(f"#{i} {describe(exp)}: variables missing {sorted(want - got)}, "
                                f"extra {sorted(got - want)}")
            if ev.body and ev.name == "CUSTOM" and set(ev.json()) != set(av.json()):
                problems.append(f"#{i} {describe(exp)}: body keys {sorted(av.json())} != {sorted(ev.json())}")
            for key in ("Application-Response", "Hangup-Cause", "Answer-State", "Channel-State",
                        "Channel-Call-State"):
                if ev.get(key) != av.get(key):
                    problems.append(f"#{i} {describe(exp)}: {key} {av.get(key)!r} != {ev.get(key)!r}")
        elif exp.content_type == "api/response":
            eb, ab = exp.body_text(), act.body_text()
            if eb.startswith('{"row_count":') and ab.startswith('{"row_count":'):
                if _rows_shape(eb) != _rows_shape(ab) or ('"rows"' not in eb and eb != ab):
                    problems.append(f"#{i}: show calls {ab[:80]!r} != {eb[:80]!r}")
            elif eb != ab and not eb.startswith("UP ") and "====" not in eb:
                problems.append(f"#{i}: api body {ab!r} != {eb!r}")
        elif exp.headers.get("Event-Name") == "CHANNEL_DATA":
            names = [k for k, _ in exp.items]
            if names != [k for k, _ in act.items]:
                problems.append(f"#{i} connect reply: {_diff(names, [k for k, _ in act.items])}")
            for key in ("variable_sip_via_protocol", "Reply-Text", "Socket-Mode", "Control", "Answer-State",
                        "Channel-State", "Channel-Call-State", "variable_endpoint_disposition"):
                if exp.headers.get(key) != act.headers.get(key):
                    got, want = act.headers.get(key), exp.headers.get(key)
                    problems.append(f"#{i} connect reply: {key} {got!r} != {want!r}")
        elif exp.content_type == "command/reply":
            if header_names(exp) != header_names(act):
                diff = _diff(header_names(exp), header_names(act))
                problems.append(f"#{i} {describe(exp)}: headers {diff}")
            if not exp.reply_text.startswith("+OK Job-UUID") and exp.reply_text != act.reply_text:
                problems.append(f"#{i}: reply {act.reply_text!r} != {exp.reply_text!r}")
        elif header_names(exp) != header_names(act) or exp.body != act.body:
            problems.append(f"#{i} {describe(exp)}: {act.items} / {act.body!r}")
    return problems


def _rows_shape(body: str) -> tuple[int, list[list[str]]]:
    data = json.loads(body)
    return data["row_count"], [list(row) for row in data.get("rows", [])]


def _diff(a: list[str], b: list[str]) -> str:
    import difflib

    return json.dumps([d for d in difflib.ndiff(a, b) if d[:1] in "+-"])

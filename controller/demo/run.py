"""``kallglot demo``: one translated two-party call through the whole edge, on this machine.

The real API, controller and bridge run as subprocesses; FreeSWITCH is the test double
(``controller.demo.stack``). An organization and key are made with the CLI, SIP is enabled
and credentials generated through the API, FreeSWITCH's config is rendered and reloaded, a SIP
session is created, and two callers dial it with digest auth: the customer says an English
sentence; once its Spanish translation has played to the agent, the agent answers in Spanish.
Every step is printed as it happens; what each side heard is written as WAV under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from controller.demo import interrupt
from controller.demo.audio import SAMPLE_RATE, concat_at, duration_s, speak, write_wav
from controller.demo.procs import DemoError
from controller.demo.progress import Progress
from controller.demo.stack import DemoStack
from controller.settings import Settings

CUSTOMER_LINE = ("en", "Hello, I would like to change the delivery address of my order.")
AGENT_LINE = ("es", "Claro, con mucho gusto. ¿Cuál es la nueva dirección?")
CONVERSATION_TIMEOUT_S = 90.0
ENGINE_TIMEOUT_S = 120.0


class SpeakOnCue:
    """A caller's voice for the double's audio stream: silence until ``cue()``, then ``pcm``.

    It replaces the stream's frame source, so a party can wait for its turn like a person
    would (here: until the other side's translation has finished playing)."""

    def __init__(self, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
        self.pcm = pcm
        self.rate = rate
        self._go = threading.Event()
        self._pos = 0

    def cue(self) -> None:
        self._go.set()

    @property
    def cued(self) -> bool:
        return self._go.is_set()

    def __call__(self, rate: int, nbytes: int) -> bytes:
        if not self._go.is_set() or rate != self.rate:
            return b"\0" * nbytes
        chunk = self.pcm[self._pos:self._pos + nbytes]
        self._pos += len(chunk)
        return chunk.ljust(nbytes, b"\0")


@dataclass
class DemoResult:
    session_id: str
    legs: dict[str, dict[str, Any]] = field(default_factory=dict)
    turns: list[dict[str, Any]] = field(default_factory=list)
    heard: dict[str, str] = field(default_factory=dict)
    final_status: str = ""


def describe_outcome(role: str, out: Any) -> str:
    if out.code is None:
        return f"{role:<8} leg: no SIP response ({out.transport_error})"
    steps = ("INVITE → 407 Proxy Authentication Required → INVITE with credentials → "
             if out.challenged else "")
    media = ""
    if out.code == 200:
        media = f" ({out.spec.transport.upper()}, {out.codec or '-'}{', SRTP' if out.srtp else ''})"
    extra = "".join(f", {k}: {v}" for k, v in out.headers.items() if k.lower().startswith("x-"))
    return f"{role:<8} leg: {steps}{out.code} {out.reason}{media}{extra}"


def describe_turn(turn: dict[str, Any]) -> str:
    tr = turn.get("translation") or {}
    return (f"turn {turn['sequence']}  {turn['speaker']:<8} [{turn['language']}] {turn['text']}\n"
            f"        → [{tr.get('language', '?')}] {tr.get('text', '')}")


Echo = Callable[[str], None]


def run_demo(out_dir: Path, *, workdir: Path, progress: Progress, engine: str | None = None,
             echo: Echo = print) -> DemoResult:
    """The whole demo; raises DemoError on any failure. ``echo`` prints one line."""
    progress.begin("starting api, controller, bridge and the FreeSWITCH double")
    stack = DemoStack(workdir, engine=engine, progress=progress)
    try:
        stack.start()
        progress.end(f"api :{stack.api_port}, controller :{stack.controller_port}, "
                     f"bridge :{stack.bridge_port}, ESL :{stack.esl_port}")
        echo(f"organization {stack.org_id} and an API key created with "
             "`kallglot org create` / `kallglot key create`")
        return _converse(stack, out_dir, progress, echo)
    finally:
        progress.clear()
        stack.close()


def _converse(stack: DemoStack, out_dir: Path, progress: Progress, echo: Echo) -> DemoResult:
    sip = stack.api_ok("PATCH", "/v1/sip", {
        "enabled": True, "session_defaults": {"source_language": CUSTOMER_LINE[0],
                                              "target_language": AGENT_LINE[0]}})
    creds = stack.generate_credentials()
    echo(f"SIP enabled for {creds['username']}@{creds['domain']} "
         f"(transports {', '.join(sip['allowed_transports'])}; password generated, not printed)")
    outcome = stack.reload()
    commands = ", ".join(c["command"] for c in outcome.get("commands", []))
    echo("FreeSWITCH config rendered and reloaded (POST /admin/reload): "
         + (commands or "already applied by the API's automatic reload"))
    if not stack.sip_user_loaded(creds["username"]):
        raise DemoError("FreeSWITCH did not load the rendered directory user after the reload")
    session = stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"},
                                                    "metadata": {"source": "kallglot demo"}})
    sid = session["id"]
    result = DemoResult(sid)
    echo(f"session {sid} ({session['mode']}, customer {session['source_language']} ⇄ agent "
         f"{session['target_language']}); dial {session['sip']['uri']}")

    customer_pcm = speak(CUSTOMER_LINE[1], CUSTOMER_LINE[0])
    agent_pcm = speak(AGENT_LINE[1], AGENT_LINE[0])
    write_wav(out_dir / "customer-said.wav", customer_pcm)
    write_wav(out_dir / "agent-said.wav", agent_pcm)

    progress.begin("loading the speech models (ASR, MT, TTS)")
    stack.wait_engine_ready(ENGINE_TIMEOUT_S)
    engine = (stack.bridge_health() or {}).get("engine", "?")
    progress.end(f"engine {engine} ready")
    if engine == "passthrough":
        raise DemoError("the bridge runs KALLGLOT_ENGINE=passthrough, which does not translate: "
                        "unset it (or set it to offline) to run the demo")

    agent_voice = SpeakOnCue(agent_pcm)
    credentials = {"user": creds["username"], "password": creds["password"]}
    customer = stack.place_call(sid, audio=customer_pcm, headers={"X-Kallglot-Role": "customer"},
                                caller_id="customer", **credentials)
    echo(describe_outcome("customer", customer))
    if customer.code != 200:
        raise DemoError(f"the customer's call was not answered ({customer.code} {customer.reason})")
    agent = stack.place_call(sid, headers={"X-Kallglot-Role": "agent"}, caller_id="agent",
                             source_port=5092, **credentials)
    echo(describe_outcome("agent", agent))
    if agent.code != 200:
        raise DemoError(f"the agent's call was not answered ({agent.code} {agent.reason})")
    for role, out in (("customer", customer), ("agent", agent)):
        result.legs[role] = {"sip_code": out.code, "uuid": out.uuid, "codec": out.codec}
    echo(f'customer says (en, {duration_s(customer_pcm):.1f} s): "{CUSTOMER_LINE[1]}"')

    _wait_for_stream(stack, agent.uuid, progress)
    stack.fs.stream(agent.uuid).source = agent_voice

    progress.begin("waiting for the translated turns")
    deadline = time.monotonic() + CONVERSATION_TIMEOUT_S
    while True:
        for service in stack.alive():
            service.check_alive()
        turns = stack.api_ok("GET", f"/v1/sessions/{sid}/transcript")["turns"]
        for turn in turns[len(result.turns):]:
            progress.clear()
            echo(describe_turn(turn))
            result.turns.append(turn)
        agent_heard = [p for p in stack.fs.played_audio(agent.uuid) if p.ended is not None]
        customer_heard = [p for p in stack.fs.played_audio(customer.uuid) if p.ended is not None]
        if agent_heard and not agent_voice.cued:
            progress.clear()
            echo(f"agent heard the translation ({sum(p.duration for p in agent_heard):.1f} s); "
                 f'agent says (es, {duration_s(agent_pcm):.1f} s): "{AGENT_LINE[1]}"')
            agent_voice.cue()
        speakers = {t["speaker"] for t in result.turns}
        if (agent_voice.cued and customer_heard and {"customer", "agent"} <= speakers
                and _all_played(stack, customer.uuid) and _all_played(stack, agent.uuid)):
            break
        if time.monotonic() > deadline:
            raise DemoError(f"no complete exchange within {CONVERSATION_TIMEOUT_S:g} s: "
                            f"{len(result.turns)} turn(s), agent heard {len(agent_heard)} clip(s), "
                            f"customer heard {len(customer_heard)} clip(s)")
        progress.tick()
        time.sleep(0.2)
    progress.end(f"{len(result.turns)} turns")

    for role, out in (("customer", customer), ("agent", agent)):
        clips = [(p.audio, p.sample_rate) for p in stack.fs.played_audio(out.uuid)]
        path = write_wav(out_dir / f"{role}-heard.wav", concat_at(clips))
        result.heard[role] = str(path)
        echo(f"{role} heard {len(clips)} translated clip(s), {duration_s(concat_at(clips)):.1f} s → {path}")

    ended = stack.api_ok("POST", f"/v1/sessions/{sid}/end")
    echo(f"POST /v1/sessions/{sid}/end → {ended['status']} (end_reason {ended['end_reason']})")
    for role, out in (("customer", customer), ("agent", agent)):
        if not out.wait_ended(10):
            raise DemoError(f"the {role} leg was not hung up after the session ended")
        result.legs[role]["hangup_cause"] = out.hangup_cause
        echo(f"{role:<8} leg hung up by the edge (BYE, {out.hangup_cause or 'NORMAL_CLEARING'})")
    final = stack.api_ok("GET", f"/v1/sessions/{sid}")
    result.final_status = final["status"]
    echo(f"session {sid}: status {final['status']}, started {final['started_at']}, ended {final['ended_at']}")
    if final["status"] != "ended":
        raise DemoError(f"the session is {final['status']!r} after POST /end")
    return result


def _all_played(stack: DemoStack, uuid: str) -> bool:
    """Every file mod_audio_stream announced on this leg has been played to its end."""
    stream = stack.fs.stream(uuid)
    played = [p for p in stack.fs.played_audio(uuid) if p.ended is not None]
    return stream is not None and len(played) >= len(stream.files)


def _wait_for_stream(stack: DemoStack, uuid: str, progress: Progress) -> None:
    deadline = time.monotonic() + 15
    while stack.fs.stream(uuid) is None:
        if time.monotonic() > deadline:
            raise DemoError("the controller never started the agent leg's audio stream")
        progress.tick()
        time.sleep(0.05)


def _echo(line: str) -> None:
    interrupt.raise_if_interrupted()
    print(line, flush=True)  # as it happens, also when stdout is a pipe


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def cli_run(args: argparse.Namespace, settings: Settings) -> int:
    """``kallglot demo [--out DIR]``: exit 0 on success, 1 with a message on failure, 130 on Ctrl-C."""
    del settings  # the demo builds its own settings for its own temporary install
    out_dir = Path(getattr(args, "out", None) or "demo-out").resolve()
    progress = Progress()
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_sigint = interrupt.install()
    started = time.monotonic()
    try:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"cannot create --out {out_dir}: {exc.strerror}") from None
        with tempfile.TemporaryDirectory(prefix="kallglot-demo-") as tmp:
            result = run_demo(out_dir, workdir=Path(tmp), progress=progress, echo=_echo)
        summary = out_dir / "demo-summary.json"
        summary.write_text(json.dumps(result.__dict__, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"demo finished in {time.monotonic() - started:.1f} s; summary in {summary}")
        return 0
    except DemoError as exc:
        progress.clear()
        print(f"kallglot demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.clear()
        print("kallglot demo interrupted; every service was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        interrupt.restore(previous_sigint)

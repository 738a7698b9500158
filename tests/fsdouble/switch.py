"""``FreeSwitchDouble``: the switch (channels, dialplan, applications, api commands, event
fan-out) running on its own asyncio loop in a background thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import io
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid as uuidlib
import wave
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.fsdouble import sofia_auth
from tests.fsdouble.audiostream import AudioStream, valid_stream_url
from tests.fsdouble.callsim import CODEC_RATE, PAYLOAD_TYPES, RTPMAP, CallOutcome, CallSpec, authenticate
from tests.fsdouble.channel import (
    Q850,
    SIP_REASONS,
    TEMPLATES,
    Channel,
    Core,
    Playback,
    cause_to_sip,
    sip_to_cause,
)
from tests.fsdouble.config import Condition, FsConfig, Profile, load_config
from tests.fsdouble.fsstrings import separate_string
from tests.fsdouble.listener import Command, Listener, read_command
from tests.fsdouble.rtpstats import rtp_variables
from tests.fsdouble.sofia_status import INVALID_PROFILE, profile_status, status_table

log = logging.getLogger(__name__)

# What a non-full outbound socket may still send (mod_event_socket parse_command, before its
# LFLAG_FULL check).
_NOT_FULL_VERBS = frozenset({"connect", "resume", "getvar", "myevents", "linger", "nolinger",
                             "sendmsg", "exit"})
T = TypeVar("T")

PROFILE_RESTART_GUARD_S = 10.0
# After `sofia profile P restart|start` answered, the profile is absent from `sofia status` (and
# INVITEs get 503 Maximum Calls In Progress) this long: observed 1.7-2 s on FreeSWITCH 1.10.12
# running our config (the old profile thread ends its calls and shuts down, the new one binds).
PROFILE_START_DELAY_S = 1.8
# What a profile binds: these settings take effect only when it (re)starts.
_BIND_PARAMS = ("sip-ip", "ext-sip-ip", "sip-port", "bind-params", "tls", "enable-tls", "tls-only",
                "tls-sip-port", "tls-bind-params")
STREAM_API_SYNTAX = ("<uuid> [start | stop | send_text | pause | resume | graceful-shutdown ] "
                     "[wss-url | path] [mono | mixed | stereo] [8000 | 16000] [metadata]")
SHOW_CALLS_LAG_S = 0.2
# mod_commands.c usage strings.
GETVAR_SYNTAX = "<uuid> <var>"
SETVAR_MULTI_SYNTAX = "<uuid> <var>=<value>;<var>=<value>..."
SETVAR_SYNTAX = "<uuid> <var> [value]"
BUGLIST_SYNTAX = "<uuid>"
TRANSFER_SYNTAX = "<uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]"


@dataclass
class _App:
    name: str
    arg: str
    event_uuid: str
    queued: bool = True  # sendmsg/broadcast (sets current_loop/total_loops) vs. dialplan action
    cancelled: bool = False  # flushed by `uuid_break <uuid> all` before it started
    broken: bool = False  # stopped by uuid_break while it ran as a broadcast (CF_STOP_BROADCAST)


@dataclass
class _CallRuntime:
    """Per-channel machinery that is not event state."""

    channel: Channel
    outcome: CallOutcome
    spec: CallSpec
    apps: asyncio.Queue[_App] = field(default_factory=asyncio.Queue)  # the private event queue
    # Outbound sockets of this channel still open (one per `socket` application that connected;
    # a socket the channel was transferred away from stays attached until the hangup).
    listeners: list[Listener] = field(default_factory=list)
    stream: AudioStream | None = None
    current: _App | None = None  # the application running now (completed by a hangup)
    starting: _App | None = None  # taken from the queue, in its ≈20 ms before CHANNEL_EXECUTE
    # The dialplan application that holds the channel in switch_ivr_park: `socket` or `park`.
    host: _App | None = None
    parked: bool = False  # CHANNEL_PARK fired, CHANNEL_UNPARK not yet
    # Open while a park loop runs: queued applications (sendmsg, uuid_broadcast) run only then.
    parking: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    busy: bool = False  # the worker is running a queued application
    # switch_ivr_session_transfer happened (CF_TRANSFER): the running application stops, the
    # dialplan routes again once it returned.
    transfer_pending: bool = False
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    break_playback: asyncio.Event = field(default_factory=asyncio.Event)
    # CF_BREAK left set: by a `uuid_break` with nothing to break, or re-set by switch_ivr_parse_event
    # after a broadcast stopped with CF_STOP_BROADCAST; the next playback consumes it at once.
    cf_break: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    audio_pcm: bytes = b""
    audio_rate: int = 16000
    audio_pos: float = 0.0
    local_port: int = field(default_factory=lambda: 16384 + 2 * secrets.randbelow(4096))


class FreeSwitchDouble:
    """See tests/fsdouble/__init__.py for the API."""

    def __init__(self, conf_dir: Path | str, controller_addr: str | None = None,
                 esl_password: str = "ClueCon",
                 *, esl_host: str = "127.0.0.1", esl_port: int = 0, variables: dict[str, str] | None = None,
                 temp_dir: Path | None = None, profile_uptime: float = 0.0,
                 hostname: str = "fs-double", profile_start_delay: float = PROFILE_START_DELAY_S) -> None:
        self.conf_dir = Path(conf_dir)
        self.controller_addr = controller_addr
        self._password = esl_password
        self._esl_host = esl_host
        self._esl_port_wanted = esl_port
        self._variables = dict(variables or {})
        self._own_temp = temp_dir is None
        self.temp_dir = Path(temp_dir) if temp_dir else Path(tempfile.mkdtemp(prefix="fsdouble-"))
        self.core = Core(hostname=hostname)
        self.config: FsConfig = load_config(self.conf_dir, self._variables)
        # Running sofia profiles with the settings they were bound with (bindings change only on
        # start/restart), and when each started (the 10-second stop/restart rule).
        self._running: dict[str, Profile] = dict(self.config.profiles)
        self._started: dict[str, float] = {n: time.monotonic() - profile_uptime for n in self._running}
        # Profiles between a start/restart and serving: name → (profile being bound, the one it
        # replaces or None). Calls to their transports get 503 meanwhile.
        self._starting: dict[str, tuple[Profile, Profile | None]] = {}
        self.profile_start_delay = profile_start_delay
        # Audio frames a new stream writes before its metadata text frame. mod_audio_stream sends
        # the metadata from the websocket's open callback while the media thread writes audio as
        # soon as the socket reports connected; on a real 1.10.12 a frame sometimes wins.
        self.audio_before_metadata = 0
        self._tasks: set[asyncio.Task[None]] = set()  # background tasks, referenced until done
        self.calls: dict[str, Channel] = {}
        self.outcomes: dict[str, CallOutcome] = {}
        self.api_log: list[str] = []
        self._runtime: dict[str, _CallRuntime] = {}
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.esl_port = 0
        self._session_counter = 0
        # What the far end of an `originate` does, by dialled number: "answer" (default),
        # "noanswer" (until originate_timeout) or a SIP code (486 busy, 404, 503 …).
        self.callees: dict[str, str | int] = {}
        self.callee_answer_delay = 0.05
        # `show calls` lists a channel only this long after its creation (observed ≈200 ms).
        self.show_calls_lag = SHOW_CALLS_LAG_S

    # ------------------------------------------------------------------ life cycle
    def start(self) -> FreeSwitchDouble:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start_server())
            ready.set()
            loop.run_forever()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fsdouble", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FreeSWITCH double did not start")
        return self

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(self._on_inbound, self._esl_host, self._esl_port_wanted)
        self.esl_port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=10)
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        if self._own_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    async def _shutdown(self) -> None:
        for rt in list(self._runtime.values()):
            if not rt.channel.hung_up:
                await self._hangup(rt, "SYSTEM_SHUTDOWN")
        if self._server is not None:
            self._server.close()
        for lst in list(self._listeners):
            await lst.close()

    def __enter__(self) -> FreeSwitchDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        assert self._loop is not None, "start() the double first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "start() the double first"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # ------------------------------------------------------------------ public helpers
    def place_call(self, destination: str, *, timeout: float = 15, **spec: Any) -> CallOutcome:
        """Place a call and block until its final SIP response (see CallSpec for ``spec``)."""
        return self._call(self._place(CallSpec(destination, **spec), timeout), timeout + 5)

    async def aplace_call(self, destination: str, *, timeout: float = 15, **spec: Any) -> CallOutcome:
        """``place_call`` for async tests (runs on the double's loop, awaitable from any loop)."""
        return await self._acall(self._place(CallSpec(destination, **spec), timeout))

    def api_sync(self, line: str, timeout: float = 30) -> str:
        """The reply body of ``api <line>``, as an ESL client would get it (for tests)."""
        return self._call(self.api(line), timeout)

    def played_audio(self, uuid: str) -> list[Playback]:
        """Files played to channel ``uuid`` (uuid_broadcast/playback), in order, with their PCM."""
        ch = self.calls.get(uuid)
        return list(ch.played) if ch else []

    def stream(self, uuid: str) -> AudioStream | None:
        rt = self._runtime.get(uuid)
        return rt.stream if rt else None

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """Hang a channel up from the far end (the caller's BYE)."""
        rt = self._runtime[uuid]
        self._call(self._remote_hangup(rt, cause))

    def set_profile_uptime(self, seconds: float) -> None:
        """Pretend every running sofia profile started ``seconds`` ago (the 10-second rule)."""
        for name in self._started:
            self._started[name] = time.monotonic() - seconds

    def reload_config(self) -> None:
        """Re-read the whole conf dir and rebind every profile (what a FreeSWITCH restart does)."""
        self.config = load_config(self.conf_dir, self._variables)
        self._running = dict(self.config.profiles)
        self._started = {n: time.monotonic() for n in self._running}
        self._starting = {}

    # ------------------------------------------------------------------ events
    async def _fire(self, items: list[tuple[str, str]], body: bytes = b"") -> None:
        for lst in list(self._listeners):
            await lst.deliver(items, body)

    async def _chan_event(self, ch: Channel, name: str, extra: list[tuple[str, str]] | None = None,
                          *, subclass: str = "", body: bytes = b"") -> None:
        items, body = ch.event(name, extra, subclass=subclass, body=body)
        await self._fire(items, body)

    # ------------------------------------------------------------------ calls
    def _profile_for(self, spec: CallSpec) -> tuple[Profile | None, int | None]:
        for prof in self._running.values():
            if spec.profile and prof.name != spec.profile:
                continue
            port = prof.transports().get(spec.transport)
            if port is not None:
                live = self.config.profiles.get(prof.name, prof)
                return live, port
        return None, None

    def _starting_for(self, spec: CallSpec) -> bool:
        """A profile that is (re)starting had or will have this transport."""
        for name, (new, old) in self._starting.items():
            if spec.profile and name != spec.profile:
                continue
            if any(spec.transport in p.transports() for p in (new, old) if p is not None):
                return True
        return False

    async def _place(self, spec: CallSpec, timeout: float) -> CallOutcome:
        outcome = CallOutcome(spec)
        profile, _port = self._profile_for(spec)
        if profile is None and self._starting_for(spec):
            # sofia.c sofia_event_callback: an INVITE for a profile without PFLAG_RUNNING is
            # refused before any auth, no channel is created.
            outcome._set_final(503, "Maximum Calls In Progress", {"Retry-After": "300"})
            return outcome
        if profile is None:
            outcome.transport_error = ("no response (nothing listens on UDP)" if spec.transport == "udp"
                                       else "connection refused")
            outcome._set_ended()
            return outcome
        cfg = self.config
        auth = authenticate(cfg, profile, spec)
        realm = profile.param("challenge-realm") or spec.domain or ""
        if not auth.trusted:  # every INVITE is challenged first: sofia fires pre_register with the 407
            call_id = f"{secrets.token_hex(8)}@{spec.source_ip}"
            await self._fire(sofia_auth.pre_register(self.core, profile.name, spec, call_id, realm))
        if not auth.ok:
            outcome.challenged = True
            if auth.code == 407:
                outcome._set_final(407, SIP_REASONS[407], {
                    "Proxy-Authenticate": f'Digest realm="{realm}", nonce="{uuidlib.uuid4()}", '
                                          'algorithm=MD5, qop="auth"'})
            else:
                outcome._set_final(403, SIP_REASONS[403])
                outcome.hangup_cause = "CALL_REJECTED"
                await self._fire(sofia_auth.register_failure(self.core, profile.name, spec, realm))
                await self._auth_failure_events(spec)
            return outcome
        outcome.challenged = not auth.trusted
        ch, rt = self._new_channel(spec, profile, auth.user, outcome)
        outcome._hangup = lambda: asyncio.run_coroutine_threadsafe(self._remote_hangup(rt, "NORMAL_CLEARING"),
                                                                    self._loop)  # type: ignore[arg-type]
        final = asyncio.Event()
        outcome._on_final.append(final.set)
        await self._chan_event(ch, "CHANNEL_CREATE")
        ch.call_state = "RINGING"
        self._spawn(self._run_dialplan(rt))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(final.wait(), timeout)
        return outcome

    async def _auth_failure_events(self, spec: CallSpec) -> None:
        """As observed: CHANNEL_HANGUP + CHANNEL_HANGUP_COMPLETE, CS_NEW, no CHANNEL_CREATE."""
        new_uuid = str(uuidlib.uuid4())
        for name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            tpl = TEMPLATES["auth_failure"][name]
            core = dict(self.core.core_headers(name))
            items = []
            for k, v in tpl:
                if k in core:
                    v = core[k]
                elif k in ("Unique-ID", "Channel-Call-UUID", "Caller-Unique-ID", "variable_uuid",
                           "variable_call_uuid"):
                    v = new_uuid
                elif k in ("Caller-Network-Addr", "variable_sip_network_ip", "variable_sip_received_ip"):
                    v = spec.source_ip
                elif k.endswith("Channel-Created-Time") or k.endswith("Profile-Created-Time"):
                    v = str(int(time.time() * 1e6))
                items.append((k, v))
            await self._fire(items)

    def _new_channel(self, spec: CallSpec, profile: Profile, user: Any, outcome: CallOutcome
                     ) -> tuple[Channel, _CallRuntime]:
        uid = str(uuidlib.uuid4())
        self._session_counter += 1
        realm = profile.param("challenge-realm") or spec.domain or "127.0.0.1"
        domain = spec.domain or realm
        from_user = spec.caller_id or spec.user or "anonymous"
        name = f"sofia/{profile.name}/{from_user}@{domain}"
        context = profile.param("context", "default")
        variables = self._initial_variables(uid, spec, profile, user, realm, domain, from_user, name)
        if user is not None:
            context = dict(user.variables).get("user_context", context)
        ch = Channel(core=self.core, uuid=uid, transport=spec.transport, variables=variables, caller={
            "username": spec.user or "", "caller_id": from_user, "network_addr": spec.source_ip,
            "destination": spec.destination, "context": context, "channel_name": name})
        rt = _CallRuntime(channel=ch, outcome=outcome, spec=spec)
        rt.audio_pcm, rt.audio_rate = _load_audio(spec.audio)
        outcome.uuid = uid
        self.calls[uid] = ch
        self.outcomes[uid] = outcome
        self._runtime[uid] = rt
        return ch, rt

    def _initial_variables(self, uid: str, spec: CallSpec, profile: Profile, user: Any, realm: str,
                           domain: str, from_user: str, name: str) -> dict[str, str]:
        """The connect reply's variables, in the captured order (templates.json), for this call."""
        tpl = [(k[len("variable_"):], v) for k, v in TEMPLATES["connect"][spec.transport]
               if k.startswith("variable_")]
        now_us = str(int(time.time() * 1e6))
        tag = secrets.token_hex(6)
        call_id = f"{secrets.token_hex(8)}@{spec.source_ip}"
        proto = spec.transport.upper()
        sdp = spec.sdp()
        known = {
            "direction": "inbound", "uuid": uid, "session_id": str(self._session_counter),
            "sip_from_user": from_user, "sip_from_uri": f"{from_user}@{domain}", "sip_from_host": domain,
            "channel_name": name, "sip_call_id": call_id, "sip_local_network_addr": profile.ip,
            "sip_network_ip": spec.source_ip, "sip_network_port": str(spec.source_port),
            "sip_invite_stamp": now_us, "sip_received_ip": spec.source_ip,
            "sip_received_port": str(spec.source_port), "sip_via_protocol": spec.transport,
            "sip_number_alias": spec.user or "", "sip_auth_username": spec.user or "",
            "sip_auth_realm": realm, "number_alias": spec.user or "", "requested_user_name": spec.user or "",
            "requested_domain_name": realm, "user_name": spec.user or "", "domain_name": realm,
            "sip_from_user_stripped": from_user, "sip_from_tag": tag, "sofia_profile_name": profile.name,
            "sofia_profile_url": f"sip:mod_sofia@{profile.ip}:{profile.param('sip-port', '5060')}",
            "recovery_profile_name": profile.name,
            "sip_full_via": f"SIP/2.0/{proto} {spec.source_ip}:{spec.source_port};branch=z9hG4bK-{tag}",
            "sip_full_from": f"<sip:{from_user}@{domain}>;tag={tag}",
            "sip_full_to": f"<sip:{spec.destination}@{domain}>",
            "sip_req_user": spec.destination, "sip_req_uri": f"{spec.destination}@{domain}",
            "sip_req_host": domain, "sip_to_user": spec.destination,
            "sip_to_uri": f"{spec.destination}@{domain}", "sip_to_host": domain,
            "sip_contact_params": f"transport={proto}", "sip_contact_user": from_user,
            "sip_contact_port": str(spec.source_port),
            "sip_contact_uri": f"{from_user}@{spec.source_ip}:{spec.source_port}",
            "sip_contact_host": spec.source_ip, "rtp_use_codec_string": ",".join(profile.codec_prefs),
            "sip_user_agent": "fsdouble-callsim", "sip_via_host": spec.source_ip,
            "sip_via_port": str(spec.source_port), "max_forwards": "70", "switch_r_sdp": sdp,
            "ep_codec_string": ",".join(f"CORE_PCM_MODULE.{c}@8000h@20i@64000b" for c in spec.codecs),
            "endpoint_disposition": "DELAYED NEGOTIATION", "call_uuid": uid,
            "sip_recover_via": f"SIP/2.0/{proto} {spec.source_ip}:{spec.source_port};rport",
            "sip_via_rport": str(spec.source_port),
        }
        auth_only = {"sip_number_alias", "sip_auth_username", "sip_auth_realm", "number_alias",
                     "requested_user_name", "requested_domain_name", "user_name", "domain_name"}
        # Observed order: user_context first, then the user's other variables.
        directory = sorted(user.variables, key=lambda kv: kv[0] != "user_context") if user is not None else []
        out: dict[str, str] = {}
        for k, v in tpl:
            if k in ("user_context", "kallglot_org_id"):
                for dk, dv in directory:  # the directory user's variables sit here
                    out.setdefault(dk, dv)
                continue
            if k.startswith(("current_application", "socket_host")):
                continue  # set when the socket application runs
            if user is None and k in auth_only:
                continue
            if k == "sip_authorized" and user is None:
                continue
            if k.startswith(("Event-", "Core-UUID", "FreeSWITCH-")):
                out[k] = v if not k.startswith("Event-Date") else time.strftime("%Y-%m-%d %H:%M:%S")
                continue
            if k == "max_forwards":
                for hk, hv in spec.headers.items():  # X- headers of the INVITE
                    if hk.lower().startswith("x-"):
                        out[f"sip_h_{hk}"] = hv
            out[k] = known.get(k, v)
        return out

    # ------------------------------------------------------------------ dialplan
    def _expand(self, rt: _CallRuntime, text: str) -> str:
        """switch_channel_expand_variables for what the dialplan uses: ``${name}`` (a channel
        variable, else the caller-profile field of that name, as switch_channel_get_variable
        falls back) and ``${acl(<ip> <list>)}``."""
        ch = rt.channel

        def lookup(name: str) -> str:
            if name in ch.variables:
                return ch.variables[name]
            return self._caller_field(rt, name)

        for _ in range(50):
            m = re.search(r"\$\{acl\(([^ )]+) ([^)]+)\)\}", text)
            inner = re.search(r"\$\{([A-Za-z0-9_]+)\}", text)
            if inner:
                text = text[:inner.start()] + lookup(inner.group(1)) + text[inner.end():]
                continue
            if m:
                ok = self.config.acl_allows(m.group(2).strip(), m.group(1))
                text = text[:m.start()] + ("true" if ok else "false") + text[m.end():]
                continue
            break
        return text

    def _caller_field(self, rt: _CallRuntime, name: str) -> str:
        """switch_caller_get_field_by_name: what a condition's bare ``field`` reads (anything
        that is not a caller-profile field reads as empty; variables need ``${…}``)."""
        ch, c = rt.channel, rt.channel.caller
        return {
            "dialplan": c.get("dialplan", "XML"), "username": c["username"],
            "caller_id_name": c["caller_id"], "caller_id_number": c["caller_id"],
            "orig_caller_id_name": c["caller_id"], "orig_caller_id_number": c["caller_id"],
            "ani": c["caller_id"], "network_addr": c["network_addr"], "rdnis": c.get("rdnis", ""),
            "destination_number": c["destination"], "uuid": ch.uuid, "source": "mod_sofia",
            "transfer_source": c.get("transfer_source", ""), "context": c["context"],
            "chan_name": ch.name, "profile_index": c.get("profile_index", "1"),
        }.get(name.lower(), "")

    def _route(self, rt: _CallRuntime) -> list[tuple[str, str]] | None:
        """switch_core_standard_on_routing: the caller profile's dialplans (``XML``, ``inline``;
        comma-separated ``name[:arg]``) are hunted in order; the first extension found runs.
        None: no route (the caller then hangs up with NO_ROUTE_DESTINATION)."""
        spec = rt.channel.caller.get("dialplan", "XML")
        for item in separate_string(self._expand(rt, spec), 25, ",") if spec else []:
            name, _, arg = item.partition(":")
            kind = name.strip().lower()
            if kind == "xml":
                apps = self._hunt_xml(rt)
            elif kind == "inline":
                apps = self._hunt_inline(rt, arg)
            else:
                log.warning("double: dialplan [%s] not found, skipping", name)
                continue
            if apps is not None:
                return apps
        return None

    def _hunt_xml(self, rt: _CallRuntime) -> list[tuple[str, str]] | None:
        """mod_dialplan_xml dialplan_hunt: the context (else ``global``), its extensions in
        order; an extension that proceeds ends the hunt unless it says continue="true". The
        applications gathered (actions and anti-actions alike, even those of an extension whose
        later condition failed) form the extension run; none gathered: no route."""
        ch = rt.channel
        exts = self.config.contexts.get(ch.caller["context"])
        if exts is None:
            exts = self.config.contexts.get("global")
        if exts is None:
            log.warning("double: context %s not found", ch.caller["context"])
            return None
        queued: list[tuple[str, str]] = []
        for ext in exts:
            if self._parse_exten(rt, ext.conditions, queued) and not ext.cont:
                break
        return queued or None

    def _parse_exten(self, rt: _CallRuntime, conditions: list[Condition],
                     queued: list[tuple[str, str]]) -> bool:
        """mod_dialplan_xml parse_exten: each condition in order; a true one queues its actions,
        a false one its anti-actions (and proceeds when it had any); break="on-false" (the
        default) stops at a false condition, "on-true" at a true one, "always" after any,
        "never" goes on. Nested conditions are tried when their parent proceeds."""
        proceed = False
        for cond in conditions:
            match: re.Match[str] | None = None
            expression = ""
            if cond.field:
                fld = cond.field
                data = self._expand(rt, fld) if "$" in fld else self._caller_field(rt, fld)
                expression = self._expand(rt, cond.expression)
                try:
                    match = re.search(expression, data)
                except re.error:
                    log.warning("double: bad regex %r in the dialplan", expression)
                proceed = match is not None
                anti = match is None
            else:  # no field (and no time rule): an absolute condition
                anti, proceed = False, True
            if anti:
                for app in cond.anti_actions:
                    queued.append(app)
                    proceed = True
            else:
                for app, data in cond.actions:
                    if match is not None and "(" in expression:
                        data = _substitute(data, match)
                    queued.append((app, data))
            brk = cond.break_on
            if (not anti and brk == "on-true") or (anti and brk == "on-false") or brk == "always":
                break
            if proceed and cond.children and not self._parse_exten(rt, cond.children, queued):
                if brk == "never":
                    continue
                return False
        return proceed

    def _hunt_inline(self, rt: _CallRuntime, arg: str) -> list[tuple[str, str]] | None:
        """mod_dptools inline_dialplan_hunt: ``app:data`` items separated by ``,`` (or by X with
        a leading ``m:X:``); the destination number goes back to the RDNIS (the number before
        the transfer) and the RDNIS is cleared."""
        c = rt.channel.caller
        target = arg or c["destination"]
        if not target:
            return None
        delim = ","
        if len(target) > 3 and target[0] == "m" and target[1] == ":" and target[3] == ":":
            delim, target = target[2], target[4:]
        apps = []
        for item in separate_string(target, 128, delim):
            app, _, data = item.partition(":")
            apps.append((app.lstrip(" "), data))
        c["destination"], c["rdnis"] = c.get("rdnis", ""), ""
        return apps

    async def _run_dialplan(self, rt: _CallRuntime, actions: list[tuple[str, str]] | None = None,
                            *, rerouting: bool = False) -> None:
        """Route (unless ``actions`` are given, as originate's ``&app()``) and run the extension's
        applications; a transfer routes again (CHANNEL_STATE CS_ROUTING, CS_EXECUTE); the last
        application returning with the channel up hangs it up (NORMAL_CLEARING)."""
        ch = rt.channel
        try:
            while True:
                rt.transfer_pending = False  # CF_TRANSFER ends with the new routing
                rt.interrupt.clear()
                if actions is None:
                    ch.set_state("CS_ROUTING")
                    if rerouting:
                        await self._chan_event(ch, "CHANNEL_STATE")
                        ch.set_var("call_uuid", ch.uuid)  # switch_core_standard_on_routing
                    actions = self._route(rt)
                    if actions is None:
                        await self._hangup(rt, "NO_ROUTE_DESTINATION")
                        return
                    ch.set_state("CS_EXECUTE")
                    if rerouting:
                        await self._chan_event(ch, "CHANNEL_STATE")
                        ch.set_var("call_uuid", ch.uuid)  # switch_core_standard_on_execute
                for app, data in actions:
                    if ch.hung_up or rt.transfer_pending:
                        break
                    step = _App(app, self._expand(rt, data), str(uuidlib.uuid4()), queued=False)
                    await self._execute(rt, step)
                if ch.hung_up:
                    return
                if not rt.transfer_pending:
                    await self._hangup(rt, "NORMAL_CLEARING")
                    return
                actions, rerouting = None, True
        except Exception:
            log.exception("dialplan of %s failed", ch.uuid)
            if not ch.hung_up:
                await self._hangup(rt, "NORMAL_TEMPORARY_FAILURE")

    async def _transfer(self, rt: _CallRuntime, extension: str, dialplan: str = "",
                        context: str = "") -> bool:
        """switch_ivr_session_transfer: max_session_transfers / max_forwards counts down (at 0
        the channel hangs up EXCHANGE_ROUTING_ERROR and the transfer fails); CF_BREAK is cleared;
        the new caller profile gets the extension, dialplan (default: the current one, XML when
        that was inline), context (default: the current one) and the old destination as RDNIS;
        transfer_history / transfer_source are set. The running application stops (the channel
        is not "ready" during CF_TRANSFER) and the dialplan routes again."""
        ch = rt.channel
        if ch.hung_up:
            return False
        var = "max_session_transfers"
        raw = ch.variables.get(var, "")
        if not raw:
            var = "max_forwards"
            raw = ch.variables.get(var, "")
        forward = _atoi(raw) - 1 if raw else 70
        if forward <= 0:
            await self._hangup(rt, "EXCHANGE_ROUTING_ERROR")
            return False
        ch.set_var(var, str(forward))
        rt.cf_break = False  # switch_core_session_reset
        c = ch.caller
        use_dp = dialplan or ch.variables.get("force_transfer_dialplan", "")
        use_ctx = context or ch.variables.get("force_transfer_context", "")
        if not use_dp:
            use_dp = c.get("dialplan", "XML")
            if use_dp.lower() == "inline":
                use_dp = ""
        use_dp = use_dp or "XML"
        use_ctx = use_ctx or c["context"] or "default"
        extension = extension or "service"
        c["rdnis"] = c["destination"]
        c.update(dialplan=use_dp, context=use_ctx, destination=extension,
                 profile_index=str(int(c.get("profile_index", "1")) + 1),
                 profile_created=str(int(time.time() * 1e6)))
        rt.transfer_pending = True
        rt.interrupt.set()
        if rt.current is not None and rt.current.name == "playback":
            rt.break_playback.set()
        log.info("Transfer %s to %s[%s@%s]", ch.name, use_dp, extension, use_ctx)
        source = f"{int(time.time())}:{uuidlib.uuid4()}:bl_xfer:{extension}/{use_ctx}/{use_dp}"
        c["transfer_source"] = source
        history = ch.variables.get("transfer_history")
        if history is None:
            ch.set_var("transfer_history", source)
        else:  # SWITCH_STACK_PUSH: the variable becomes an array, in place
            items = history[len("ARRAY::"):].split("|:") if history.startswith("ARRAY::") else [history]
            ch.variables["transfer_history"] = "ARRAY::" + "|:".join([*items, source])
        ch.set_var("transfer_source", source)
        return True

    async def _transfer_app(self, rt: _CallRuntime, data: str) -> None:
        """mod_dptools ``transfer [-bleg|-both] <ext> [<dialplan> [<context>]]`` (the double
        has no bridges: -bleg finds no B-leg, -both transfers this channel alone)."""
        argv = separate_string(data, 4) if data.strip() else []
        if not argv:
            return
        flag = argv[0].lower()
        if flag in ("-bleg", "-both"):
            log.warning("double: transfer %s: no B-leg present", flag)
            if flag == "-both":
                await self._transfer(rt, *[*argv[1:], "", "", ""][:3])
            return
        await self._transfer(rt, *[*argv, "", "", ""][:3])

    async def _until(self, *events: asyncio.Event, task: asyncio.Task[Any] | None = None,
                     timeout: float | None = None) -> None:
        """Wait until one of ``events`` is set or ``task`` is done (never cancels ``task``)."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait([*waiters, *([task] if task else [])], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _socket_app(self, rt: _CallRuntime, app: _App) -> str | None:
        """mod_event_socket socket_function: connect (``host:port`` alternatives separated by
        ``|``; refused → the application returns at once and the dialplan goes on), wait for the
        controller's ``connect``, then park (switch_ivr_park) until the socket closes, the
        channel hangs up or is transferred. A socket that closed before ``connect`` never set
        LFLAG_CONNECTED, so the park that follows is never ended by it (CF_CONTROLLED is cleared
        before the park sets it): the channel stays in ``socket`` until hangup or transfer."""
        ch = rt.channel
        argv = separate_string(app.arg, 80)
        flags = [w.lower() for w in argv[1:]]
        hosts = (self.controller_addr or (argv[0] if argv else "")).split("|")
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for addr in hosts:
            if not addr:
                continue
            host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "8084")
            ch.set_var("socket_host", host)
            try:
                conn = await asyncio.open_connection(host, int(port))
                break
            except (OSError, ValueError) as exc:
                log.warning("socket %s for %s: Socket Error: %s", addr, ch.uuid, exc)
        if conn is None:
            return "_none_"
        reader, writer = conn
        if ch.hung_up:
            writer.close()
            return None
        lst = Listener(reader, writer, outbound=True)
        lst.full = "full" in flags
        lst.channel_uuid = ch.uuid
        rt.listeners.append(lst)
        self._listeners.append(lst)
        serve = self._spawn(self._serve_outbound(rt, lst, "async" in flags))  # may outlive the app
        await self._until(lst.connected, rt.ended, rt.interrupt, task=serve)
        return await self._park(rt, serve if lst.connected.is_set() else None)

    async def _park(self, rt: _CallRuntime, controller: asyncio.Task[Any] | None = None) -> str | None:
        """switch_ivr_park: CHANNEL_PARK, queued applications (sendmsg, uuid_broadcast) run, no
        RTP is sent of its own; it ends at hangup, at a transfer, or — the socket application's
        park — when its socket closed (everything already queued still runs first); then
        CHANNEL_UNPARK. None when the channel hung up (the hangup sequence completed it)."""
        ch = rt.channel
        if ch.hung_up:
            return None
        rt.parked = True
        await self._chan_event(ch, "CHANNEL_PARK")
        rt.parking.set()
        if rt.worker is None or rt.worker.done():
            rt.worker = asyncio.get_running_loop().create_task(self._app_worker(rt))
        while not ch.hung_up and not rt.transfer_pending and not (controller and controller.done()):
            await self._until(rt.ended, rt.interrupt, task=controller)
        if controller is not None and not ch.hung_up and not rt.transfer_pending:
            while not ch.hung_up and not rt.transfer_pending and (rt.busy or not rt.apps.empty()):
                await asyncio.sleep(0.01)
        while rt.busy and not ch.hung_up:  # an application in progress ends first
            await asyncio.sleep(0.01)
        if ch.hung_up:
            return None
        rt.parking.clear()
        rt.parked = False
        await self._chan_event(ch, "CHANNEL_UNPARK")
        return "_none_"

    async def _serve_outbound(self, rt: _CallRuntime, lst: Listener, is_async: bool) -> None:
        try:
            await self._serve(lst, first_must_be_connect=True, rt=rt, is_async=is_async)
        finally:
            with contextlib.suppress(ValueError):
                self._listeners.remove(lst)
            with contextlib.suppress(ValueError):
                rt.listeners.remove(lst)
            await lst.close()

    async def _app_worker(self, rt: _CallRuntime) -> None:
        """The channel's private event queue, run by whichever park loop holds the channel."""
        while not rt.channel.hung_up:
            await rt.parking.wait()
            app = await rt.apps.get()
            # Observed: an application starts ≈20 ms after its +OK (the socket app's loop), so
            # replies to back-to-back sendmsg commands come before the first CHANNEL_EXECUTE.
            rt.starting = app
            try:
                if not rt.parking.is_set():
                    await rt.parking.wait()  # taken as the park ended: held for the next one
                rt.busy = True
                await asyncio.sleep(0.02)
                rt.starting = None
                if not app.cancelled:
                    await self._execute(rt, app)
            finally:
                rt.starting = None
                rt.busy = False

    # ------------------------------------------------------------------ ESL serving
    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lst = Listener(reader, writer, outbound=False)
        self._listeners.append(lst)
        try:
            await lst.write(b"Content-Type: auth/request\n\n")
            await self._serve(lst, first_must_be_connect=False, rt=None)
        finally:
            with contextlib.suppress(ValueError):
                self._listeners.remove(lst)
            await lst.close()

    async def _serve(self, lst: Listener, *, first_must_be_connect: bool, rt: _CallRuntime | None,
                     is_async: bool = True) -> None:
        connected = not first_must_be_connect
        while not lst.closed:
            try:
                cmd = await read_command(lst.reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                cmd = None
            if cmd is None:
                await lst.close()
                return
            if not connected:
                if cmd.line != "connect":
                    await lst.reply("-ERR command not found")
                    continue
                assert rt is not None
                connected = True
                reply = rt.channel.connect_reply(is_async=is_async, full=lst.full)
                await lst.write(_encode_reply_items(reply))
                lst.connected.set()  # LFLAG_CONNECTED: the socket application parks the channel
                continue
            keep = await self._command(lst, cmd, rt)
            if not keep:
                return

    async def _command(self, lst: Listener, cmd: Command, rt: _CallRuntime | None) -> bool:
        line = cmd.line
        verb, _, rest = line.partition(" ")
        if not lst.authed:
            if verb == "auth":
                if hmac.compare_digest(rest.encode(), self._password.encode()):
                    lst.authed = True
                    await lst.reply("+OK accepted")
                    return True
                await lst.reply("-ERR invalid")
                await lst.disconnect_notice("disconnect")
                await lst.close()
                return False
            await lst.reply("-ERR invalid")
            return True
        if lst.outbound and not lst.full and verb not in _NOT_FULL_VERBS:
            # mod_event_socket parse_command: past sendmsg, a non-full outbound socket `goto done`
            # with no reply text, which becomes `-ERR command not found`.
            await lst.reply("-ERR command not found")
            return True
        if verb == "exit":
            await lst.reply("+OK bye")
            await lst.disconnect_notice("disconnect")
            await lst.close()
            return False
        if verb == "api":
            await lst.api_response(await self.api(rest))
        elif verb == "bgapi":
            job = str(uuidlib.uuid4())
            await lst.reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])
            self._spawn(self._bgapi(job, rest))
        elif verb == "event":
            words = rest.split()
            fmt = words[0] if words else ""
            if fmt != "plain":
                # The double speaks plain only (our ESL layer never asks for json or xml).
                await lst.reply(f"-ERR event format {fmt!r} not supported by the FreeSWITCH double")
                return True
            lst.subscribe(words[1:])
            await lst.reply("+OK event listener enabled plain")
        elif verb == "myevents":
            target = rest.split()[1] if len(rest.split()) > 1 else (rest.strip() or None)
            lst.my_uuid = target if target and target != "plain" else (rt.channel.uuid if rt else None)
            lst.all_plain = True
            await lst.reply("+OK Events Enabled")
        elif verb == "noevents":
            lst.unsubscribe_all()
            await lst.reply("+OK no longer listening for events")
        elif verb == "nixevent":
            for w in rest.split():
                lst.names.discard(w)
                lst.subclasses.discard(w)
            await lst.reply("+OK events nixed")
        elif verb == "filter":
            parts = rest.split(None, 1)
            if len(parts) == 2 and parts[0] == "delete":
                lst.filters = [f for f in lst.filters if f[0] != parts[1].split()[0]]
                await lst.reply(f"+OK filter deleted. [{parts[1]}]")
            elif len(parts) == 2:
                k, v = parts[0], parts[1]
                lst.filters.append((k, v))
                await lst.reply(f"+OK filter added. [{k}]=[{v}]")
            else:
                await lst.reply("-ERR invalid syntax")
        elif verb == "linger":
            lst.lingering = True
            lst.linger_seconds = int(rest) if rest.strip().isdigit() else -1
            await lst.reply("+OK will linger")
        elif verb == "nolinger":
            lst.lingering = False
            await lst.reply("+OK will not linger")
        elif verb == "sendmsg":
            target = rest.strip() or (rt.channel.uuid if rt else "")
            await self._sendmsg(lst, target, cmd)
        else:
            await lst.reply("-ERR command not found")
        return True

    async def _bgapi(self, job: str, rest: str) -> None:
        out = await self.api(rest)
        cmd, _, arg = rest.partition(" ")
        items = [*self.core.core_headers("BACKGROUND_JOB"), ("Job-UUID", job), ("Job-Command", cmd)]
        if arg:
            items.append(("Job-Command-Arg", arg))
        await self._fire(items, out.encode())

    async def _sendmsg(self, lst: Listener, target: str, cmd: Command) -> None:
        rt = self._runtime.get(target)
        if rt is None or rt.channel.hung_up:
            await lst.reply(f"-ERR invalid session id [{target}]")
            return
        h = {k.lower(): v for k, v in cmd.headers.items()}
        call_command = h.get("call-command", "")
        if call_command == "execute":
            app = _App(h.get("execute-app-name", ""), h.get("execute-app-arg", ""),
                       cmd.headers.get("Event-UUID") or h.get("event-uuid") or str(uuidlib.uuid4()))
            if cmd.body and not app.arg:
                app.arg = cmd.body.decode()
            await lst.reply("+OK")
            rt.apps.put_nowait(app)
        elif call_command == "hangup":
            await lst.reply("+OK")
            await self._hangup(rt, h.get("hangup-cause", "NORMAL_CLEARING"))
        elif call_command in ("unicast", "nomedia", "xferext"):
            await lst.reply("+OK")
        else:
            await lst.reply("-ERR invalid command")

    # ------------------------------------------------------------------ applications
    async def _execute(self, rt: _CallRuntime, app: _App) -> None:
        ch = rt.channel
        if ch.hung_up:
            return
        ch.variables.pop("current_application_response", None)
        if app.queued:
            ch.set_vars({"current_loop": "1", "total_loops": "1"})
        ch.set_vars({"current_application": app.name, "current_application_data": app.arg})
        extra = [("Application", app.name)] + ([("Application-Data", app.arg)] if app.arg else [])
        await self._chan_event(ch, "CHANNEL_EXECUTE", [*extra, ("Application-UUID", app.event_uuid)])
        # switch_core_session_exec sets current_application once more after CHANNEL_EXECUTE.
        ch.set_var("current_application", app.name)
        hosting = not app.queued and app.name in ("socket", "park")
        if hosting:
            rt.host = app  # holds the channel in a park loop that queued applications run in
        else:
            rt.current = app
        try:
            response = await self._run_app(rt, app)
        finally:
            if hosting:
                rt.host = None
            else:
                rt.current = None
        if response is None or ch.hung_up:
            return  # the hangup sequence sent this application's CHANNEL_EXECUTE_COMPLETE
        await self._chan_event(ch, "CHANNEL_EXECUTE_COMPLETE",
                               [*extra, ("Application-Response", response),
                                ("Application-UUID", app.event_uuid)])
        # The dialplan loop variables live only while an application runs (as captured).
        ch.variables.pop("current_loop", None)
        ch.variables.pop("total_loops", None)
        if app.name == "answer" and "sip_to_tag" not in ch.variables:
            # Known once the caller's ACK is in (captured on the events after answer).
            ch.set_vars({"sip_to_tag": secrets.token_urlsafe(9)[:13], "sip_cseq": "2"})

    async def _run_app(self, rt: _CallRuntime, app: _App) -> str | None:
        """Run one application; its Application-Response, or None when it hung the channel up."""
        ch = rt.channel
        response = "_none_"
        name = app.name
        if name in ("set", "export"):
            k, _, v = app.arg.partition("=")
            if k:
                ch.set_var(k, v)
        elif name == "answer":
            ok = await self._answer(rt)
            if not ok:
                await self._hangup(rt, "INCOMPATIBLE_DESTINATION", running=app)
                return None
        elif name == "pre_answer":
            if not await self._pre_answer(rt):
                await self._hangup(rt, "INCOMPATIBLE_DESTINATION", running=app)
                return None
        elif name == "respond":
            code_text = app.arg.split()[0] if app.arg.split() else ""
            if code_text.isdigit() and int(code_text) >= 300:
                code = int(code_text)
                await self._hangup(rt, sip_to_cause(code), running=app, sip_code=code)
                return None
            if code_text == "183" and not await self._pre_answer(rt):
                await self._hangup(rt, "INCOMPATIBLE_DESTINATION", running=app)
                return None
        elif name == "hangup":
            await self._hangup(rt, app.arg.strip() or "NORMAL_CLEARING", running=app)
            return None
        elif name == "playback":
            response = await self._playback(rt, app)
        elif name == "sleep":
            with contextlib.suppress(ValueError):
                await self._until(rt.ended, rt.interrupt, timeout=int(app.arg) / 1000)
        elif name == "socket" and not app.queued:
            return await self._socket_app(rt, app)
        elif name == "park" and not app.queued:
            return await self._park(rt)
        elif name == "transfer":
            await self._transfer_app(rt, app.arg)
        elif name in ("park", "ring_ready", "log", "info", "event"):
            # park from the queue: "Cannot park channels that are under control already"
            pass
        else:
            log.warning("double: application %r is not emulated", name)
        return response

    def _negotiate(self, rt: _CallRuntime) -> tuple[str | None, bool]:
        """(codec, srtp) the answer would settle on; codec None = nothing acceptable (488)."""
        ch, spec = rt.channel, rt.spec
        secure = ch.variables.get("rtp_secure_media", "").split(":")[0].lower()
        if secure in ("mandatory", "true") and not spec.crypto:
            return None, False
        if secure in ("forbidden", "false") and spec.crypto:
            return None, False  # the offer is RTP/SAVP only: nothing plain to accept
        srtp = spec.crypto
        ours_raw = ch.variables.get("absolute_codec_string") or ch.variables.get("codec_string") \
            or ch.variables.get("rtp_use_codec_string", "PCMU,PCMA")
        ours = [c.split("@")[0].strip().upper() for c in ours_raw.split(",") if c.strip()]
        offer = list(spec.codecs)
        # switch_core_media_negotiate_sdp: matches are gathered in the offer's order; "greedy"
        # (and "scrooge") then re-sort them in our order (greedy_sort over the codec list built
        # from absolute_codec_string). The profile's inbound-codec-negotiation sets the default
        # (sofia.c: anything but greedy/scrooge is generous); rtp_codec_negotiation overrides it.
        profile = self.config.profiles.get(ch.variables.get("sofia_profile_name", ""))
        mode = profile.param("inbound-codec-negotiation", "generous").lower() if profile else "generous"
        mode = ch.variables.get("rtp_codec_negotiation", mode).lower() or mode
        greedy = mode in ("greedy", "scrooge")
        order = [c for c in ours if c in offer] if greedy else [c for c in offer if c in ours]
        return (order[0] if order else None), srtp

    def _media_ip(self, ch: Channel) -> str:
        profile = self.config.profiles.get(ch.variables.get("sofia_profile_name", ""))
        return profile.param("rtp-ip", "127.0.0.1") if profile else "127.0.0.1"

    def _media_up(self, rt: _CallRuntime) -> bool:
        """Negotiate media (at pre-answer or answer, as with late negotiation); False = 488."""
        ch = rt.channel
        if ch.codec:
            return True
        codec, srtp = self._negotiate(rt)
        if codec is None:
            # The offer was parsed before it was refused (as captured on the 488s).
            for k in ("remote_video_media_flow", "remote_text_media_flow", "remote_audio_media_flow",
                      "dtmf_type"):
                ch.set_var(k, dict(TEMPLATES["var_sets"]["media"]).get(k, ""))
            return False
        name = "opus" if codec == "OPUS" else codec
        ch.codec, ch.codec_rate = name, CODEC_RATE[codec]
        ch.codec_bitrate = 0 if codec == "OPUS" else 64000
        rate = str(CODEC_RATE[codec])
        known = {
            "rtp_audio_recv_pt": PAYLOAD_TYPES[codec], "rtp_use_codec_name": name, "rtp_use_codec_rate": rate,
            "rtp_use_codec_ptime": "20", "rtp_use_codec_channels": "1",
            "rtp_last_audio_codec_string": f"{name}@{rate}h@20i@1c", "read_codec": name,
            "original_read_codec": name, "read_rate": rate, "original_read_rate": rate, "write_codec": name,
            "write_rate": rate, "local_media_ip": self._media_ip(ch), "local_media_port": str(rt.local_port),
            "advertised_media_ip": self._media_ip(ch), "rtp_use_pt": PAYLOAD_TYPES[codec],
            "rtp_use_ssrc": str(secrets.randbelow(2**32)), "remote_media_ip": rt.spec.source_ip,
            "remote_media_port": "16700",
        }
        # The captured media variables, in order (audio_media_flow is re-set after the remote ones).
        for k, v in TEMPLATES["var_sets"]["media"]:
            ch.set_var(k, known.get(k, v))
            if k == "remote_audio_media_flow":
                ch.set_var("audio_media_flow", "sendrecv")
        if srtp:
            key = base64.b64encode(secrets.token_bytes(30)).decode()
            ch.set_vars({"rtp_secure_audio_confirmed": "true",
                         "rtp_has_crypto": "AES_CM_128_HMAC_SHA1_80",
                         "rtp_secure_media_negotiated": "AES_CM_128_HMAC_SHA1_80",
                         "srtp_remote_audio_crypto_key": rt.spec.crypto_key_line(),
                         "srtp_remote_audio_crypto_type": "AES_CM_128_HMAC_SHA1_80",
                         "rtp_last_audio_local_crypto_key": f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}",
                         "send_silence_when_idle": "-1"})
        rt.outcome.codec = name
        rt.outcome.srtp = srtp
        return True

    def _answer_sdp(self, rt: _CallRuntime) -> str:
        ch, ip = rt.channel, self._media_ip(rt.channel)
        pt = ch.variables.get("rtp_use_pt", "0")
        proto = "RTP/SAVP" if rt.outcome.srtp else "RTP/AVP"
        lines = ["v=0", f"o=FreeSWITCH 1795219472 1795219473 IN IP4 {ip}", "s=FreeSWITCH", f"c=IN IP4 {ip}",
                 "t=0 0", f"m=audio {rt.local_port} {proto} {pt} 101",
                 f"a=rtpmap:{pt} {RTPMAP[ch.codec.upper()].split('/')[0]}/{CODEC_RATE[ch.codec.upper()]}",
                 "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv"]
        return "\r\n".join(lines) + "\r\n"

    async def _pre_answer(self, rt: _CallRuntime) -> bool:
        """183 with media: CHANNEL_PROGRESS_MEDIA (call state RINGING, then EARLY)."""
        ch = rt.channel
        if ch.progress_media_us or ch.answered:
            return True
        if not self._media_up(rt):
            return False
        ch.progress_media_us = int(time.time() * 1e6)
        ch.answer_state = "early"
        rt.outcome.early_media = True
        await self._chan_event(ch, "CHANNEL_PROGRESS_MEDIA")
        ch.call_state = "EARLY"
        return True

    async def _answer(self, rt: _CallRuntime) -> bool:
        ch = rt.channel
        if ch.answered:
            return True
        if not await self._pre_answer(rt):
            return False
        ch.set_var("rtp_local_sdp_str", self._answer_sdp(rt))
        ch.set_var("endpoint_disposition", "ANSWER")
        ch.answered_us = int(time.time() * 1e6)
        ch.answer_state = "answered"
        await self._chan_event(ch, "CHANNEL_ANSWER")
        ch.call_state = "ACTIVE"
        rt.outcome._set_final(200, "OK")
        timeout_ms = ch.variables.get("media_timeout", "")
        if timeout_ms.isdigit() and int(timeout_ms) > 0:  # read when the RTP session starts
            self._spawn(self._media_timeout_watch(rt, int(timeout_ms)))
        return True

    async def _playback(self, rt: _CallRuntime, app: _App) -> str:
        ch = rt.channel
        if rt.cf_break:
            # switch_ivr_play_file: CF_BREAK set → cleared, the file ends before any audio.
            rt.cf_break = False
            ch.set_var("current_application_response", "FILE PLAYED")
            return "FILE PLAYED"
        silence = re.fullmatch(r"silence_stream://(\d+)", app.arg)
        if silence:  # not recorded in `played`: only files are
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.break_playback.wait(), int(silence.group(1)) / 1000)
            rt.break_playback.clear()
            return "FILE PLAYED"
        path = Path(app.arg.split("@@")[0])
        audio, rate = _read_playable(path)
        if audio is None:
            return "FILE NOT FOUND"
        pb = Playback(file=str(path), audio=audio, sample_rate=rate, started=time.monotonic())
        ch.played.append(pb)
        rt.break_playback.clear()
        try:
            await asyncio.wait_for(rt.break_playback.wait(), pb.duration)
            pb.interrupted = True
        except TimeoutError:
            pass
        finally:
            pb.ended = time.monotonic()
        played_ms = int((pb.ended - pb.started) * 1000)
        samples = int(played_ms * rate / 1000)
        ch.set_vars({"playback_last_offset_pos": str(samples // 2),
                             "playback_seconds": str(played_ms // 1000),
                             "playback_ms": str(played_ms), "playback_samples": str(samples)})
        ch.set_var("current_application_response", "FILE PLAYED")
        if app.broken and app.queued:
            # switch_ivr_parse_event: after a broadcast stopped by CF_STOP_BROADCAST it sets
            # CF_BREAK again, and nothing in the park loop clears it.
            rt.cf_break = True
        return "FILE PLAYED"

    # ------------------------------------------------------------------ hangup
    async def _remote_hangup(self, rt: _CallRuntime, cause: str) -> None:
        if rt.channel.hung_up:
            return
        rt.channel.set_var("sip_hangup_disposition", "recv_bye" if rt.channel.answered else "recv_cancel")
        if not rt.channel.answered:
            cause = "ORIGINATOR_CANCEL"
            rt.outcome._set_final(487, SIP_REASONS[487])
        await self._hangup(rt, cause, remote=True)

    async def _hangup(self, rt: _CallRuntime, cause: str, *, running: _App | None = None,
                      sip_code: int | None = None, remote: bool = False) -> None:
        ch = rt.channel
        if ch.hung_up:
            return
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.state_number = 10
        q850 = Q850.get(cause, 16)
        disposition = ch.variables.get("sip_hangup_disposition") if remote else \
            ("send_bye" if ch.answered else "send_refuse")
        rt.break_playback.set()
        await self._chan_event(ch, "CHANNEL_HANGUP")
        running = running or rt.current
        if running is not None:
            extra = [("Application", running.name)]
            if running.arg:
                extra.append(("Application-Data", running.arg))
            # A playback cut by the hangup reports an error (mod_dptools), the others _none_.
            response = "PLAYBACK ERROR" if running.name == "playback" else "_none_"
            await self._chan_event(ch, "CHANNEL_EXECUTE_COMPLETE",
                                   [*extra, ("Application-Response", response),
                                    ("Application-UUID", running.event_uuid)])
        ch.variables.pop("current_loop", None)
        ch.variables.pop("total_loops", None)
        # What the caller sees.
        if not remote:
            reason = f'Q.850;cause={q850};text="{cause}"'
            if ch.answered:
                rt.outcome.bye_from_switch = True
                rt.outcome.bye_reason = reason
                rt.outcome.bye_headers = {"Reason": reason, **_prefixed(ch.variables, "sip_bye_h_")}
            else:
                code = sip_code or cause_to_sip(cause)
                headers: dict[str, str] = {}
                dest, host = ch.caller["destination"], ch.variables.get("sip_req_host", "")
                rpid = f'"{dest}" <sip:{dest}@{host}>;party=calling;privacy=off;screen=no'
                if sip_code is None:
                    # sofia_on_hangup's refusal: Reason, the PAI/RPID header, sip_bye_h_* headers.
                    headers["Reason"] = reason
                    headers["Remote-Party-ID"] = rpid
                    headers.update(_prefixed(ch.variables, "sip_bye_h_"))
                else:  # `respond`, as captured: Max-Forwards … Reason, sip_rh_ headers, Remote-Party-ID
                    headers["Max-Forwards"] = "70"
                    headers["Reason"] = reason
                    headers.update(_prefixed(ch.variables, "sip_rh_"))
                    headers["Remote-Party-ID"] = rpid
                ch.sip_final = code
                ch.sip_headers = headers
                rt.outcome._set_final(code, SIP_REASONS.get(code, "Error"), headers)
        rt.outcome.hangup_cause = cause
        if rt.stream is not None:
            await rt.stream.stop()
        host = rt.host
        if host is not None:
            if host.name == "socket" and not rt.parked:
                # socket_function parks even when the channel went down while it waited for the
                # controller's `connect`: CHANNEL_PARK, then CHANNEL_UNPARK at once.
                rt.parked = True
                await self._chan_event(ch, "CHANNEL_PARK")
            if rt.parked:
                rt.parked = False
                await self._chan_event(ch, "CHANNEL_UNPARK")
            extra = [("Application", host.name)] + ([("Application-Data", host.arg)] if host.arg else [])
            await self._chan_event(ch, "CHANNEL_EXECUTE_COMPLETE",
                                   [*extra, ("Application-Response", "_none_"),
                                    ("Application-UUID", host.event_uuid)])
        rt.parking.clear()
        if rt.worker is not None and rt.worker is not asyncio.current_task():
            rt.worker.cancel()
        ch.set_state("CS_HANGUP")
        await self._chan_event(ch, "CHANNEL_STATE")
        ch.hangup_us = int(time.time() * 1e6)
        ch.call_state = "HANGUP"
        ch.set_state("CS_REPORTING")
        await self._chan_event(ch, "CHANNEL_STATE")
        self._cdr_variables(ch, cause, q850, disposition or "", self._rtp_stats(rt))
        await self._chan_event(ch, "CHANNEL_HANGUP_COMPLETE")
        for lst in list(rt.listeners):  # every socket still attached notices the hangup
            if lst.closed:
                continue
            if lst.lingering:
                await lst.disconnect_notice("linger", ch.name)
                if lst.linger_seconds >= 0:
                    self._spawn(self._close_after(lst, lst.linger_seconds))
            else:
                await lst.disconnect_notice("disconnect")
                await lst.close()
        ch.set_state("CS_DESTROY")
        rt.outcome._set_ended()
        rt.ended.set()

    @staticmethod
    def _rtp_stats(rt: _CallRuntime) -> dict[str, str]:
        ch = rt.channel
        media_start = ch.progress_media_us or ch.answered_us
        if not ch.codec or not media_start:
            return {}
        media_s = max(0, ch.hangup_us - media_start) / 1e6
        played_s = sum(max(0.0, (pb.ended or pb.started) - pb.started) for pb in ch.played)
        return rtp_variables(rt.spec, media_s, played_s, 60 if ch.codec.upper() == "OPUS" else 160)

    async def _media_timeout_watch(self, rt: _CallRuntime, timeout_ms: int) -> None:
        """switch_rtp.c check_timeout: no RTP for ``media_timeout`` ms (counted from when the
        RTP session started, then from the last packet) hangs the call up with MEDIA_TIMEOUT."""
        if rt.spec.rtp_stops_after_s is None:
            return  # the caller sends until it hangs up
        await asyncio.sleep(rt.spec.rtp_stops_after_s + timeout_ms / 1000)
        if not rt.channel.hung_up:
            await self._hangup(rt, "MEDIA_TIMEOUT")

    def _cdr_variables(self, ch: Channel, cause: str, q850: int, disposition: str,
                       rtp: dict[str, str]) -> None:
        """The CDR variables FreeSWITCH sets for CHANNEL_HANGUP_COMPLETE, in the captured order."""
        start, answer, media, end = ch.created_us, ch.answered_us, ch.progress_media_us, ch.hangup_us

        def stamp(us: int) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6)) if us else ""

        def spans(prefix: str, a: int, b: int) -> dict[str, str]:
            d = max(0, b - a) if a and b else 0
            return {f"{prefix}sec": str(d // 1_000_000), f"{prefix}msec": str(d // 1000),
                    f"{prefix}usec": str(d)}

        known = {
            "hangup_cause": cause, "hangup_cause_q850": str(q850), "digits_dialed": "none",
            "start_stamp": stamp(start), "profile_start_stamp": stamp(start), "answer_stamp": stamp(answer),
            "progress_media_stamp": stamp(media), "end_stamp": stamp(end),
            "start_epoch": str(start // 1_000_000), "start_uepoch": str(start),
            "profile_start_epoch": str(start // 1_000_000), "profile_start_uepoch": str(start),
            "answer_epoch": str(answer // 1_000_000), "answer_uepoch": str(answer),
            "progress_media_epoch": str(media // 1_000_000), "progress_media_uepoch": str(media),
            "end_epoch": str(end // 1_000_000), "end_uepoch": str(end),
            "last_app": ch.variables.get("current_application", ""),
            "last_arg": ch.variables.get("current_application_data", ""),
            "caller_id": f'"{ch.caller["caller_id"]}" <{ch.caller["caller_id"]}>',
            "duration": str(max(0, end - start) // 1_000_000), "mduration": str(max(0, end - start) // 1000),
            "uduration": str(max(0, end - start)), "sip_hangup_disposition": disposition,
            **spans("bill", answer, end), **spans("flow_bill", answer, end), **spans("answer", start, answer),
            **spans("progress_media", start, media), **spans("wait", start, answer), **rtp,
        }
        for k, v in TEMPLATES["var_sets"]["cdr"]:
            if k.startswith("rtp_audio_") and not ch.codec:
                continue  # no RTP statistics without media
            value = known.get(k, "0" if v.replace(".", "").isdigit() else v)
            if value != "":
                ch.set_var(k, value)

    async def _close_after(self, lst: Listener, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not lst.closed:
            await lst.disconnect_notice("disconnect")
            await lst.close()

    # ------------------------------------------------------------------ api commands
    async def api(self, line: str) -> str:
        """The reply body of ``api <line>`` (also used for bgapi)."""
        self.api_log.append(line)
        cmd, _, rest = line.strip().partition(" ")
        args = rest.split()
        if cmd == "status":
            return self._status()
        if cmd == "show":
            if rest.strip() in ("calls as json", "channels as json"):
                return self._show_calls()
            return f"-ERR show {rest} not supported by the FreeSWITCH double\n"
        if cmd == "reloadxml":
            self._reload_xml()
            return "+OK [Success]\n"
        if cmd == "reloadacl":
            fresh = load_config(self.conf_dir, self._variables)
            self.config.acls = fresh.acls
            return "+OK acl reloaded\n"
        if cmd == "sofia":
            return self._sofia(args)
        if cmd == "uuid_kill":
            rt = self._runtime.get(args[0]) if args else None
            if rt is None or rt.channel.hung_up:
                return "-ERR No such channel!\n"
            await self._hangup(rt, args[1] if len(args) > 1 else "NORMAL_CLEARING")
            return "+OK\n"
        if cmd == "uuid_exists":
            rt = self._runtime.get(args[0]) if args else None
            return "true" if rt and not rt.channel.hung_up else "false"
        if cmd == "uuid_getvar":
            return self._uuid_getvar(rest)
        if cmd == "uuid_setvar":
            return self._uuid_setvar(rest)
        if cmd == "uuid_setvar_multi":
            return self._uuid_setvar_multi(rest)
        if cmd == "uuid_buglist":
            return self._uuid_buglist(rest)
        if cmd == "uuid_transfer":
            return await self._uuid_transfer(rest)
        if cmd == "uuid_broadcast":
            rt = self._runtime.get(args[0]) if args else None
            if rt is None or rt.channel.hung_up or len(args) < 2:
                return "-ERR invalid uuid\n"
            rt.apps.put_nowait(_App("playback", args[1], str(uuidlib.uuid4())))
            return "+OK Message sent\n"
        if cmd == "uuid_break":
            # mod_commands.c break_function: prints nothing on success; `all` flushes the
            # channel's private events — queued broadcasts and sendmsg applications alike.
            if not args:
                return "-USAGE: <uuid> [all]\n"
            rt = self._runtime.get(args[0])
            if rt is None or rt.channel.hung_up:
                return "-ERR No Such Channel!\n"
            if len(args) > 1 and "all" in args[1]:
                if rt.starting is not None:
                    rt.starting.cancelled = True
                while not rt.apps.empty():
                    rt.apps.get_nowait()
            running = rt.current
            if running is not None and running.name == "playback" and running.queued:
                running.broken = True  # CF_BROADCAST: switch_channel_stop_broadcast
                rt.break_playback.set()
            elif running is not None and running.name == "playback":
                rt.break_playback.set()
            else:
                rt.cf_break = True  # nothing to break: CF_BREAK stays for the next playback
            return ""
        if cmd == "uuid_audio_stream":
            return await self._audio_stream(rest)
        if cmd == "originate":
            return await self._originate(rest)
        return f"-ERR {cmd} Command not found!\n"

    def _live(self, uid: str) -> _CallRuntime | None:
        """switch_core_session_locate: a channel that has not hung up."""
        rt = self._runtime.get(uid) if uid else None
        return rt if rt is not None and not rt.channel.hung_up else None

    def _uuid_getvar(self, rest: str) -> str:
        """mod_commands uuid_getvar_function: the value (no newline) or ``_undef_``; ``name[i]``
        reads an array variable's item; unset variables fall back to the caller-profile field
        of that name (switch_channel_get_variable)."""
        argv = separate_string(rest, 4) if rest.strip() else []
        if len(argv) < 2 or not argv[0]:
            return f"-USAGE: {GETVAR_SYNTAX}\n"
        rt = self._live(argv[0])
        if rt is None:
            return "-ERR No such channel!\n"
        name = argv[1]
        if not name:
            return "-ERR No variable name specified!\n"
        variables = rt.channel.variables
        value: str | None = None
        m = re.fullmatch(r"([^\[]*)\[(-?\d*)[^\]]*\].*", name)
        if m:
            items = variables.get(m.group(1), "")
            idx = _atoi(m.group(2))
            if items.startswith("ARRAY::") and 0 <= idx < len(items[7:].split("|:")):
                value = items[7:].split("|:")[idx]
        if value is None:
            value = variables.get(name) or self._caller_field(rt, name) or None
        return value if value is not None else "_undef_"

    def _uuid_setvar(self, rest: str) -> str:
        """mod_commands uuid_setvar_function: ``+OK``; no value (or an empty one) unsets."""
        argv = separate_string(rest, 3) if rest.strip() else []
        if len(argv) not in (2, 3) or not argv[0]:
            return f"-USAGE: {SETVAR_SYNTAX}\n"
        rt = self._live(argv[0])
        if rt is None:
            return "-ERR No such channel!\n"
        if not argv[1]:
            return "-ERR No variable specified\n"
        rt.channel.set_var(argv[1], argv[2] if len(argv) == 3 else "")
        return "+OK\n"

    def _uuid_setvar_multi(self, rest: str) -> str:
        """mod_commands uuid_setvar_multi_function: ``<uuid> a=1;b=2``; ``+OK`` once any was set."""
        uuid, _, assignments = rest.strip().partition(" ")
        if not assignments:
            return f"-USAGE: {SETVAR_MULTI_SYNTAX}\n"
        rt = self._live(uuid)
        if rt is None:
            return f"-ERR No such channel!\n-USAGE: {SETVAR_MULTI_SYNTAX}\n"
        done = 0
        for item in assignments.split(";"):
            name, _, value = item.partition("=")
            if name:
                rt.channel.set_var(name, value)
                done += 1
        return "+OK\n" if done else f"-ERR No variable specified\n-USAGE: {SETVAR_MULTI_SYNTAX}\n"

    def _uuid_buglist(self, rest: str) -> str:
        """mod_commands uuid_buglist_function + switch_core_media_bug_enumerate: the session's
        media bugs; mod_audio_stream's is ``audio_stream`` (target N/A) from ``start`` until
        ``stop``, the hangup, or a refused websocket (the module closes its bug on ::error). An
        unknown uuid prints nothing at all."""
        argv = separate_string(rest, 2) if rest.strip() else []
        if not argv:
            return f"-USAGE: {BUGLIST_SYNTAX}\n"
        rt = self._live(argv[0])
        if rt is None:
            return ""
        out = "<media-bugs>\n"
        if rt.stream is not None and rt.stream.state in ("connecting", "connected", "closed_by_server"):
            out += (" <media-bug>\n  <function>audio_stream</function>\n  <target>N/A</target>\n"
                    "  <thread-locked>0</thread-locked>\n </media-bug>\n")
        return out + "</media-bugs>\n"

    async def _uuid_transfer(self, rest: str) -> str:
        """mod_commands transfer_function: ``<uuid> [-bleg|-both] <dest> [<dialplan>] [<context>]``
        → ``+OK`` once switch_ivr_session_transfer accepted it (even when ``dest`` routes nowhere:
        the channel then hangs up NO_ROUTE_DESTINATION); ``-ERR`` when max_forwards ran out."""
        argv = separate_string(rest, 5) if rest.strip() else []
        if len(argv) < 2:
            return f"-USAGE: {TRANSFER_SYNTAX}\n"
        rt = self._live(argv[0])
        if rt is None:
            return "-ERR No such channel!\n"
        argv += [""] * (5 - len(argv))
        dest, dialplan, context = argv[1], argv[2], argv[3]
        if dest.startswith("-"):  # -bleg / -both: no bridges in the double, this channel moves
            dest, dialplan, context = argv[2], argv[3], argv[4]
        return "+OK\n" if await self._transfer(rt, dest, dialplan, context) else "-ERR\n"

    async def _originate(self, rest: str) -> str:
        """``originate [{vars}]sofia/gateway/<gw>/<number> &app(args)`` (or ``sofia/<profile>/<uri>``):
        the far end answers per ``callees``; the reply is ``+OK <uuid>`` once answered, else
        ``-ERR <CAUSE>``; then the application runs on the new outbound channel."""
        # originate_function: switch_separate_string into 10 slots, 2..7 arguments, exten = argv[1].
        argv = separate_string(rest, 10)
        m = re.match(r"^(?:\{([^}]*)\})?(\S+)$", argv[0]) if 2 <= len(argv) <= 7 else None
        if m is None:
            return "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] " \
                   "[<cid_name>] [<cid_num>] [<timeout_sec>]\n"
        variables: dict[str, str] = {}
        for part in (m.group(1) or "").split(","):
            k, sep, v = part.partition("=")
            if sep:
                variables[k.strip()] = v.strip()
        dial, app_text = m.group(2), argv[1]
        parts = dial.split("/")
        if parts[:2] == ["sofia", "gateway"] and len(parts) >= 4:
            gateway, number = parts[2], "/".join(parts[3:])
            if not self._gateway_exists(gateway):
                return "-ERR INVALID_GATEWAY\n"
            # The double does not track which profile holds a gateway: the first running one.
            profile_name = next(iter(self._running), "")
        elif parts[:1] == ["sofia"] and len(parts) >= 3 and parts[1] in self.config.profiles:
            gateway, number = "", "/".join(parts[2:]).split("@")[0].removeprefix("sip:")
            profile_name = parts[1]
        else:
            return "-ERR CHAN_NOT_IMPLEMENTED\n"
        uid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        if uid in self.calls:
            return "-ERR DESTINATION_OUT_OF_ORDER\n"
        spec = CallSpec(number, codecs=("PCMU", "PCMA"))
        outcome = CallOutcome(spec)
        self._session_counter += 1
        ch_vars = {"direction": "outbound", "uuid": uid, "session_id": str(self._session_counter),
                   **variables, "sip_gateway_name": gateway, "sip_to_user": number, "sip_req_user": number,
                   "sip_via_protocol": "udp", "call_uuid": uid, "sofia_profile_name": profile_name}
        ch = Channel(core=self.core, uuid=uid, direction="outbound", variables=ch_vars, caller={
            "username": "", "caller_id": variables.get("origination_caller_id_number", "0000000000"),
            "network_addr": "", "destination": number, "context": "default",
            "channel_name": f"sofia/gateway/{gateway}/{number}" if gateway else dial})
        rt = _CallRuntime(channel=ch, outcome=outcome, spec=spec)
        outcome.uuid = uid
        self.calls[uid], self.outcomes[uid], self._runtime[uid] = ch, outcome, rt
        outcome._hangup = lambda: asyncio.run_coroutine_threadsafe(  # type: ignore[arg-type]
            self._remote_hangup(rt, "NORMAL_CLEARING"), self._loop)
        await self._chan_event(ch, "CHANNEL_CREATE")
        ch.call_state = "RINGING"
        behaviour = self.callees.get(number, "answer")
        if behaviour == "noanswer":
            await asyncio.sleep(float(variables.get("originate_timeout", "60")))
            await self._hangup(rt, "NO_ANSWER")
            return "-ERR NO_ANSWER\n"
        await asyncio.sleep(self.callee_answer_delay)
        if isinstance(behaviour, int):
            cause = sip_to_cause(behaviour)
            await self._hangup(rt, cause, remote=True)
            outcome._set_final(behaviour, SIP_REASONS.get(behaviour, "Error"))
            return f"-ERR {cause}\n"
        ch.set_state("CS_EXECUTE")
        if not await self._answer(rt):
            await self._hangup(rt, "INCOMPATIBLE_DESTINATION")
            return "-ERR INCOMPATIBLE_DESTINATION\n"
        if app_text.startswith("&") and len(app_text) > 1:
            # `&app(arg)`: the name is cut at the first `)` and split at `(` (originate_function);
            # the channel runs that one application, then hangs up.
            app_name, _, app_arg = app_text[1:].split(")", 1)[0].partition("(")
            self._spawn(self._run_dialplan(rt, [(app_name, app_arg)]))
        else:
            # An extension: switch_ivr_session_transfer(exten, dialplan or XML, context or
            # default), then the channel routes like any transferred one.
            given = [None if a == "undef" else a for a in argv[1:4]] + [None, None]
            await self._transfer(rt, given[0] or "", given[1] or "XML", given[2] or "default")
            self._spawn(self._run_dialplan(rt, rerouting=True))
        return f"+OK {uid}\n"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task of the switch, referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _status(self) -> str:
        up = time.time() - self.core.started
        live = sum(1 for c in self.calls.values() if not c.hung_up)
        days, rem = divmod(int(up), 86400)
        hours, rem = divmod(rem, 3600)
        minutes, seconds = divmod(rem, 60)
        ms = int((up % 1) * 1000)
        first = (f"UP 0 years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, "
                 f"{ms} milliseconds, 0 microseconds\n")
        body = TEMPLATES["status"].split("\n", 1)[1]
        body = re.sub(r"^\d+ session\(s\) since startup", f"{len(self.calls)} session(s) since startup", body,
                      flags=re.M)
        body = re.sub(r"^\d+ session\(s\) - peak", f"{live} session(s) - peak", body, flags=re.M)
        return first + body

    def _show_calls(self) -> str:
        now = time.monotonic()
        rows = [c.show_calls_row() for c in self.calls.values()
                if not c.hung_up and now - c.created_at >= self.show_calls_lag]
        if not rows:
            return '{"row_count": 0}\n'
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":")) + "\n"

    def _sofia(self, args: list[str]) -> str:
        """``sofia status [profile P]`` and ``sofia profile P start|stop|restart|rescan|killgw G``
        with mod_sofia's replies (cmd_status, cmd_profile); stop/restart refused in a profile's
        first 10 s; a started/restarted profile serves only ``profile_start_delay`` later."""
        if args[:1] == ["status"]:
            return self._sofia_status(args[1:])
        if len(args) < 3 or args[0] != "profile":
            return "-ERR Usage: sofia profile <name> [start|stop|restart|rescan|killgw <gw>]\n"
        name, action = args[1], args[2]
        if action == "start":
            return self._profile_start(name)
        if name not in self._running:
            return f"Invalid Profile [{name}]"
        if action in ("stop", "restart"):
            up = time.monotonic() - self._started[name]
            if up < PROFILE_RESTART_GUARD_S:
                return (f"Profile {name} must be up for at least 10 seconds to stop/restart.\n"
                        f"Please wait {int(PROFILE_RESTART_GUARD_S - up)} seconds\n")
            fresh = self._reload_xml()  # both re-read the XML first (cmd_profile)
            old = self._take_down(name)
            if action == "stop":
                return f"Reload XML [Success]\nstopping: {name}"
            if name in fresh.profiles:
                # PFLAG_RESPAWN: config_sofia(SOFIA_CONFIG_RESPAWN) once the old thread ended.
                self.config.profiles[name] = fresh.profiles[name]
                self._bring_up(name, fresh.profiles[name], old)
            return f"Reload XML [Success]\nrestarting: {name}"
        if action == "rescan":
            fresh = self._reload_xml()
            if name in fresh.profiles:
                # New settings and gateways apply; the bound transports stay until a restart.
                self.config.profiles[name] = fresh.profiles[name]
            return "Reload XML [Success]\n+OK scan complete\n"
        if action == "killgw" and len(args) >= 4:
            return "-ERR no such gateway.\n" if not self._gateway_exists(args[3]) \
                else "+OK gateway marked for deletion.\n"
        return "-ERR Usage: sofia profile <name> [start|stop|restart|rescan|killgw <gw>]\n"

    def _profile_start(self, name: str) -> str:
        """cmd_profile "start": switch_xml_reload, then config_sofia(SOFIA_CONFIG_RESCAN, name):
        on a running profile that is a rescan (new settings and gateways, same bindings) that
        succeeds; otherwise the profile thread is launched and binds a moment later."""
        fresh = self._reload_xml()
        if name not in fresh.profiles:
            return f"Reload XML [Success]\nFailure starting {name}\n"
        self.config.profiles[name] = fresh.profiles[name]
        if name not in self._running and name not in self._starting:
            self._bring_up(name, fresh.profiles[name], None)
        return f"Reload XML [Success]\n{name} started successfully\n"

    def _take_down(self, name: str) -> Profile:
        """PFLAG_RUNNING cleared: the profile leaves `sofia status`, and its thread hangs up every
        call on it (sofia.c sofia_profile_thread_run: switch_core_session_hupall_matching_var
        ("sofia_profile_name", …, MANAGER_REQUEST)), whichever organization it belongs to."""
        old = self._running.pop(name)
        for rt in list(self._runtime.values()):
            if not rt.channel.hung_up and rt.channel.variables.get("sofia_profile_name") == name:
                self._spawn(self._hangup(rt, "MANAGER_REQUEST"))
        return old

    def _bring_up(self, name: str, profile: Profile, old: Profile | None) -> None:
        if self.profile_start_delay <= 0:
            self._running[name], self._started[name] = profile, time.monotonic()
            return
        self._starting[name] = (profile, old)

        def up() -> None:
            if self._starting.get(name, (None,))[0] is profile:
                del self._starting[name]
                self._running[name], self._started[name] = profile, time.monotonic()

        asyncio.get_running_loop().call_later(self.profile_start_delay, up)

    def _status_profile(self, name: str) -> Profile:
        """The running profile as `sofia status` shows it: bindings from when it started,
        everything else as last (re)scanned."""
        bound = self._running[name]
        live = self.config.profiles.get(name, bound)
        params = {k: v for k, v in live.params.items() if k not in _BIND_PARAMS}
        params.update({k: v for k, v in bound.params.items() if k in _BIND_PARAMS})
        return Profile(name, params)

    def _sofia_status(self, args: list[str]) -> str:
        if not args:
            inuse = {n: sum(1 for c in self.calls.values()
                            if not c.hung_up and c.variables.get("sofia_profile_name") == n)
                     for n in self._running}
            return status_table((self._status_profile(n) for n in self._running), inuse)
        if args[0] == "profile":
            name = args[1] if len(args) > 1 else ""
            if name not in self._running:
                return INVALID_PROFILE
            calls = sum(1 for c in self.calls.values() if c.variables.get("sofia_profile_name") == name)
            return profile_status(self._status_profile(name), calls_in=calls)
        return "Invalid Syntax!\n"

    def _reload_xml(self) -> FsConfig:
        """What ``reloadxml`` changes at once: directory and dialplan (profiles and ACLs wait for
        their own commands). Returns the freshly read tree."""
        fresh = load_config(self.conf_dir, self._variables)
        self.config = FsConfig(profiles=self.config.profiles, domains=fresh.domains,
                               acls=self.config.acls, contexts=fresh.contexts)
        return fresh

    def _gateway_exists(self, gw: str) -> bool:
        for path in self.conf_dir.rglob("*.xml"):
            if re.search(rf'<gateway\s+name="{re.escape(gw)}"', path.read_text()):
                return True
        return False

    async def _audio_stream(self, rest: str) -> str:
        """``uuid_audio_stream`` as mod_audio_stream's stream_function: ``switch_separate_string``
        into at most 6 arguments (the metadata keeps the rest of the line, then loses its quotes
        and backslash escapes: tests/fsdouble/fsstrings.py)."""
        argv = separate_string(rest, 6)
        if len(argv) < 2 or (argv[1] == "start" and len(argv) < 4):
            return f"-USAGE: {STREAM_API_SYNTAX}\n"
        uid, action = argv[0], argv[1].lower()
        rt = self._runtime.get(uid)
        if rt is None or rt.channel.hung_up:
            return "-ERR Operation Failed\n"
        if action == "start":
            url, mix = argv[2], argv[3]
            if mix not in ("mono", "mixed", "stereo"):
                return ""  # the module logs and answers nothing (goto done)
            rate_text = argv[4] if len(argv) > 4 else "8k"
            rate = {"16k": 16000, "8k": 8000}.get(rate_text)
            if rate is None:
                rate = int(rate_text) if rate_text.isdigit() else 0
            metadata = argv[5] if len(argv) > 5 else ""
            busy = rt.stream is not None and rt.stream.state in ("connecting", "connected")
            if not valid_stream_url(url) or rate == 0 or rate % 8000 or busy:
                return "-ERR Operation Failed\n"
            buffer_ms = int(rt.channel.variables.get("STREAM_BUFFER_SIZE", "20") or 20)
            buffer_ms = buffer_ms if buffer_ms % 20 == 0 and buffer_ms > 0 else 20
            ch = rt.channel

            async def fire(subclass: str, body: bytes) -> None:
                await self._chan_event(ch, "CUSTOM", subclass=subclass, body=body)

            if not await self._pre_answer(rt):  # start pre-answers (183)
                await self._hangup(rt, "INCOMPATIBLE_DESTINATION")
                return "-ERR Operation Failed\n"
            rt.stream = AudioStream(uuid=uid, url=url, mix=mix, rate=rate, metadata=metadata,
                                    temp_dir=self.temp_dir, fire=fire, source=self._source(rt),
                                    speed=rt.spec.audio_speed, buffer_ms=buffer_ms,
                                    audio_before_metadata=self.audio_before_metadata)
            rt.stream.start()
            return "+OK Success\n"
        if action == "send_text" and len(argv) < 3:
            return ""  # the module logs and answers nothing
        stream = rt.stream
        if stream is None or not stream.usable:
            return "-ERR Operation Failed\n"
        if action == "stop":
            await stream.stop()
            return "+OK Success\n"
        if action == "send_text":
            await stream.send_text(argv[2])  # one argument: up to a space outside single quotes
            return "+OK Success\n"
        if action in ("pause", "resume"):
            stream.paused = action == "pause"
            return "+OK Success\n"
        return "-ERR Operation Failed\n"

    def _source(self, rt: _CallRuntime) -> Any:
        def take(rate: int, nbytes: int) -> bytes:
            pcm = rt.audio_pcm
            if not pcm:
                return b"\0" * nbytes
            # Resample lazily by index stepping (the caller's audio is speech, 8 or 16 kHz).
            step = rt.audio_rate / rate
            out = bytearray()
            for _ in range(nbytes // 2):
                idx = int(rt.audio_pos) * 2
                out += pcm[idx: idx + 2] if idx + 2 <= len(pcm) else b"\0\0"
                rt.audio_pos += step
            return bytes(out)

        return take


def _prefixed(variables: dict[str, str], prefix: str) -> dict[str, str]:
    """SIP headers carried by channel variables (``sip_rh_X-Foo`` → ``X-Foo``)."""
    return {k[len(prefix):]: v for k, v in variables.items() if k.startswith(prefix)}


def _encode_reply_items(items: list[tuple[str, str]]) -> bytes:
    from controller.esl.protocol import fs_url_encode

    return "".join(f"{k}: {fs_url_encode(v)}\n" for k, v in items).encode() + b"\n"


def _atoi(text: str) -> int:
    """C atoi: the leading (signed) digits, 0 when there are none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def _substitute(data: str, match: re.Match[str]) -> str:
    """switch_perform_substitution: ``$N`` in an action's data becomes capture N."""
    def group(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return (match.group(n) or "") if n <= (match.re.groups or 0) else ""

    return re.sub(r"\$(\d+)", group, data)


def _load_audio(audio: bytes | Path | None) -> tuple[bytes, int]:
    if audio is None:
        return b"", 16000
    data = Path(audio).read_bytes() if isinstance(audio, (str, Path)) else audio
    if data[:4] == b"RIFF":
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError("caller audio must be mono 16-bit PCM WAV")
            return w.readframes(w.getnframes()), w.getframerate()
    return data, 16000


def _read_playable(path: Path) -> tuple[bytes | None, int]:
    """PCM and rate of a file FreeSWITCH could play: .r8/.r16/... raw L16, .wav; else unknown."""
    if not path.is_file():
        return None, 0
    m = re.search(r"\.r(\d+)$", path.name)
    if m:
        return path.read_bytes(), int(m.group(1)) * 1000
    if path.suffix == ".wav":
        with contextlib.suppress(wave.Error, EOFError), wave.open(str(path)) as w:
            return w.readframes(w.getnframes()), w.getframerate()
        return None, 0
    return path.read_bytes(), 8000


__all__ = ["CallOutcome", "CallSpec", "FreeSwitchDouble"]

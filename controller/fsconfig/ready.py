"""Waiting, after ``sofia profile P restart|start``, until the profile serves again.

Both commands answer at once; the profile thread then shuts the old profile down (ending its
calls) and binds anew. FreeSWITCH 1.10.12 running our config showed no profile in ``sofia status``
for ~1.7-2 s after a restart, and INVITEs in that gap got ``503 Maximum Calls In Progress`` (sofia.c
``sofia_handle_sip_i_invite``: profile not RUNNING) or no answer at all. So a reload only reports
success once ``sofia status profile P`` shows the profile with every transport it should bind.

What the reply looks like (mod_sofia.c ``cmd_status``, 1.10.12):
- profile absent or not RUNNING (``sofia_glue_find_profile`` returns NULL): ``Invalid Profile!``;
- running: ``Key<spaces>\\tValue`` lines between ``====`` rules, among them
  ``BIND-URL         \\tsip:mod_sofia@IP:PORT[;maddr=IP];transport=udp,tcp`` (absent with
  ``tls-only``) and ``TLS-BIND-URL     \\tsips:mod_sofia@IP:PORT[;maddr=IP];transport=tls`` (only with
  ``tls``). The profile enters the hash with RUNNING only after ``nua_create`` bound every URL
  (sofia.c ``sofia_profile_thread_run``), so a listed profile listens on all of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from controller.fsconfig.apply import CommandResult, EslApi, ReloadCommandError

READY_POLL_S = 0.1
_TRANSPORT_PARAM = re.compile(r";transport=([A-Za-z,]+)", re.IGNORECASE)
_TRUE = frozenset({"true", "yes", "on", "1", "enabled", "active", "allow"})  # switch_true()


def status_command(profile: str) -> str:
    return f"sofia status profile {profile}"


@dataclass(frozen=True)
class ProfileStatus:
    """One ``sofia status profile P`` reply, read."""

    running: bool
    transports: frozenset[str]
    reply: str


def parse_profile_status(reply: str) -> ProfileStatus:
    fields: dict[str, str] = {}
    for line in reply.splitlines():
        key, tab, value = line.partition("\t")
        if tab:
            fields[key.strip()] = value.strip()
    if "Invalid Profile" in reply or "Name" not in fields:
        return ProfileStatus(False, frozenset(), reply)
    transports: set[str] = set()
    if "BIND-URL" in fields:
        match = _TRANSPORT_PARAM.search(fields["BIND-URL"])
        transports |= set(match.group(1).lower().split(",")) if match else {"udp", "tcp"}
    if "TLS-BIND-URL" in fields:
        transports.add("tls")
    return ProfileStatus(True, frozenset(transports), reply)


def expected_transports(params: Mapping[str, str]) -> frozenset[str]:
    """What a profile with these (rendered) settings binds, as sofia builds its URLs
    (sofia.c ``config_sofia_profile_urls``): UDP and TCP on sip-port unless ``bind-params``
    names a transport; none of them with ``tls-only``; TLS with ``tls``."""
    tls = params.get("tls", "").strip().lower() in _TRUE
    out: set[str] = set()
    if not (tls and params.get("tls-only", "").strip().lower() in _TRUE):
        match = re.search(r"transport=([A-Za-z,]+)", params.get("bind-params", ""), re.IGNORECASE)
        out |= set(match.group(1).lower().split(",")) if match else {"udp", "tcp"}
    if tls:
        out.add("tls")
    return frozenset(out)


class ProfileNotReadyError(ReloadCommandError):
    """The profile was not RUNNING with the expected transports in time (or FreeSWITCH refused
    the status command). ``reply`` is the last status reply."""

    def __init__(self, profile: str, expected: frozenset[str], last: ProfileStatus | None,
                 waited_s: float, done: Sequence[CommandResult], reason: str) -> None:
        command = status_command(profile)
        super().__init__(command, last.reply if last else None, done, detail=reason,
                         message=f"{command}: {reason}")
        self.profile = profile
        self.expected = expected
        self.waited_ms = round(waited_s * 1000)


def _describe(transports: frozenset[str]) -> str:
    return ",".join(sorted(transports)) or "nothing"


def wait_profile_ready(
    esl: EslApi,
    profile: str,
    expected: frozenset[str],
    timeout_s: float,
    done: Sequence[CommandResult] = (),
    *,
    poll_s: float = READY_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, ProfileStatus]:
    """Poll until ``profile`` runs binding ``expected``; returns (seconds waited, its status).
    Raises ProfileNotReadyError after ``timeout_s`` or at once on an ``-ERR`` reply."""
    start = clock()
    last: ProfileStatus | None = None
    while True:
        try:
            reply = esl.api(status_command(profile))
        except Exception as exc:  # the connection went away while we waited: a failed reload
            raise ProfileNotReadyError(profile, expected, last, clock() - start, done,
                                       f"FreeSWITCH unreachable: {type(exc).__name__}: {exc}") from exc
        waited = clock() - start
        if reply.lstrip().startswith(("-ERR", "-USAGE")):
            raise ProfileNotReadyError(profile, expected, ProfileStatus(False, frozenset(), reply), waited,
                                       done, f"FreeSWITCH refused the status query: {reply.strip()}")
        last = parse_profile_status(reply)
        if last.running and last.transports == expected:
            return waited, last
        if waited >= timeout_s:
            state = (f"running with {_describe(last.transports)}" if last.running
                     else f"not running ({reply.strip() or 'empty reply'})")
            raise ProfileNotReadyError(
                profile, expected, last, waited, done,
                f"profile {profile} not serving {_describe(expected)} after {waited:.1f} s: {state}")
        sleep(min(poll_s, max(timeout_s - waited, 0.0)))

"""Sends a reload plan's commands over ESL and interprets FreeSWITCH's replies.

Replies as captured from FreeSWITCH 1.10.12 (tests/fixtures/freeswitch-1.10.12/README.md, item
13): errors start with ``-ERR``; ``sofia profile P restart`` within a profile's first 10 s is
refused in plain text ("must be up for at least 10 seconds … Please wait N seconds"), which we
wait out and retry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class EslApi(Protocol):
    """The one ESL call the reload needs (``api <cmd>`` → reply body)."""

    def api(self, cmd: str) -> str: ...


_TOO_EARLY = re.compile(r"must be up for at least \d+ seconds", re.IGNORECASE)
_WAIT_SECONDS = re.compile(r"Please wait (\d+) seconds?", re.IGNORECASE)
_NO_SUCH_GATEWAY = "-ERR no such gateway"
MAX_RESTART_ATTEMPTS = 4
MAX_RESTART_WAIT_S = 15.0


@dataclass(frozen=True)
class CommandResult:
    command: str
    reply: str

    def as_dict(self) -> dict[str, str]:
        return {"command": self.command, "reply": self.reply}


class ReloadCommandError(Exception):
    """FreeSWITCH refused a command (``reply`` holds its text) or could not be reached
    (``reply`` is None). ``done`` lists the commands that had succeeded before."""

    def __init__(
        self, command: str, reply: str | None, done: Sequence[CommandResult], detail: str = "",
        message: str | None = None,
    ) -> None:
        what = reply.strip() if reply is not None else (detail or "FreeSWITCH unreachable")
        super().__init__(message or f"{command}: {what}")
        self.command = command
        self.reply = reply
        self.detail = detail
        self.done = list(done)


@dataclass
class ApplyResult:
    results: list[CommandResult] = field(default_factory=list)
    restart_waits: list[float] = field(default_factory=list)
    # Profiles a successful start/restart is (re)building: they answer at once but serve only
    # a moment later (see ready.py), so the reload waits for them before it reports success.
    rebuilt: list[str] = field(default_factory=list)


def rebuilt_profile(command: str) -> str | None:
    """The profile ``sofia profile P start|restart`` (re)builds, else None."""
    parts = command.split(" ")
    if len(parts) == 4 and parts[:2] == ["sofia", "profile"] and parts[3] in ("start", "restart"):
        return parts[2]
    return None


def is_error_reply(command: str, reply: str) -> bool:
    lines = [line.strip() for line in reply.strip().splitlines()]
    if " killgw " in command and lines and lines[0].startswith(_NO_SUCH_GATEWAY):
        return False  # the gateway is already gone: the goal of killgw holds
    return any(
        line.startswith(("-ERR", "-USAGE")) or "Invalid Profile" in line or line.startswith("Failure")
        # rescan/restart re-read the XML first and carry on with the old one if that failed
        or (line.startswith("Reload XML [") and line != "Reload XML [Success]")
        for line in lines
    )


def restart_wait_seconds(reply: str) -> float | None:
    """Seconds FreeSWITCH asks us to wait before a profile restart, or None if not refused."""
    if not _TOO_EARLY.search(reply):
        return None
    match = _WAIT_SECONDS.search(reply)
    return min(float(match.group(1)) if match else 10.0, MAX_RESTART_WAIT_S)


def _call(esl: EslApi, command: str, done: Sequence[CommandResult]) -> str:
    try:
        return esl.api(command)
    except Exception as exc:  # transport failures of any ESL client: report, never crash the caller
        raise ReloadCommandError(command, None, done, detail=f"{type(exc).__name__}: {exc}") from exc


def _send_waiting(
    esl: EslApi, command: str, out: ApplyResult, sleep: Callable[[float], None], max_restart_attempts: int
) -> str:
    """Send ``command``; while FreeSWITCH asks us to wait (young profile), wait and resend."""
    reply = _call(esl, command, out.results)
    attempts = 1
    while (wait := restart_wait_seconds(reply)) is not None:
        if attempts >= max_restart_attempts:
            raise ReloadCommandError(command, reply, out.results)
        out.restart_waits.append(wait)
        # One second more than asked: FreeSWITCH rounds the remaining time down.
        sleep(wait + 1.0)
        reply = _call(esl, command, out.results)
        attempts += 1
    return reply


def fallback_command(command: str, reply: str) -> str | None:
    """The profile is not in the state the plan assumed: anything but ``start`` on a profile that
    does not run answers "Invalid Profile [P]" (mod_sofia.c ``cmd_profile``), so it is started;
    a ``start`` that fails ("Failure starting P") is retried as ``restart``."""
    parts = command.split(" ")
    if len(parts) < 4 or parts[:2] != ["sofia", "profile"]:
        return None
    prefix = " ".join(parts[:3])
    if parts[3] == "start" and "Failure starting" in reply:
        return f"{prefix} restart"
    if parts[3] != "start" and "Invalid Profile" in reply:
        return f"{prefix} start"
    return None


def apply_commands(
    esl: EslApi,
    commands: Sequence[str],
    sleep: Callable[[float], None] = time.sleep,
    max_restart_attempts: int = MAX_RESTART_ATTEMPTS,
) -> ApplyResult:
    """Run ``commands`` in order; stops at the first failure (ReloadCommandError)."""
    out = ApplyResult()
    fell_back = False
    for command in commands:
        reply = _send_waiting(esl, command, out, sleep, max_restart_attempts)
        if is_error_reply(command, reply) and not fell_back:
            alternative = fallback_command(command, reply)
            if alternative is not None:
                fell_back = True
                out.results.append(CommandResult(command, reply.strip()))
                command = alternative
                reply = _send_waiting(esl, command, out, sleep, max_restart_attempts)
        if is_error_reply(command, reply):
            raise ReloadCommandError(command, reply, out.results)
        out.results.append(CommandResult(command, reply.strip()))
        profile = rebuilt_profile(command)
        if profile is not None and profile not in out.rebuilt:
            out.rebuilt.append(profile)
        if fell_back and command.endswith((" start", " restart")):
            break  # the profile was (re)built from the new XML: later sofia commands are moot
    return out

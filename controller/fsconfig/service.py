"""Render + validate + swap, and render + reload with rollback: the steps in one place.

Reload flow (all under the conf dir's lock): render and validate in memory (a bad setting
fails here, nothing written) → diff against the generation FreeSWITCH last applied → connect
to ESL (unreachable: stop here, nothing touched) → write the new generation and swap the
``rendered`` link → send the planned commands → after a profile start/restart, wait until the
profile runs with every transport it should bind (ready.py). If FreeSWITCH refuses a command,
the connection drops or the profile does not come up in time, the link goes back to the
previous generation, the commands that had already succeeded are replayed (best effort) so
FreeSWITCH re-reads the old files (and a profile that did not come up is started from them),
and a ReloadError carries FreeSWITCH's reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.fsconfig.apply import (
    CommandResult,
    EslApi,
    ReloadCommandError,
    apply_commands,
)
from controller.fsconfig.model import ConfigInput, Rejection
from controller.fsconfig.plan import (
    ConfigSnapshot,
    ReloadPlan,
    plan_reload,
    snapshot,
    with_profile_restart,
)
from controller.fsconfig.ready import ProfileNotReadyError, expected_transports, wait_profile_ready
from controller.fsconfig.render import RenderedTree, render_files
from controller.fsconfig.source import load_config_input
from controller.fsconfig.tree import LiveTree, applied_generation, mark_applied, read_files, write_out
from controller.fsconfig.validate import validate_files
from controller.settings import Settings
from controller.store import Store

log = logging.getLogger(__name__)

EslFactory = Callable[[], AbstractContextManager[EslApi]]
# Replayed after a rollback so FreeSWITCH re-reads the restored files; safe to repeat.
_IDEMPOTENT = ("reloadxml", "reloadacl")
ESL_CONNECT_TIMEOUT_S = 5.0
# rescan/restart answer after re-reading the XML; give them time on a large config.
ESL_TIMEOUT_S = 30.0


class ReloadError(Exception):
    """A reload that did not go through; the live tree is the previous one again (rolled back,
    or never touched when FreeSWITCH could not be reached)."""

    def __init__(self, message: str, command: str, reply: str | None, done: list[CommandResult],
                 restore: list[CommandResult], profile_ready_ms: int | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.reply = reply
        self.done = done
        self.restore = restore
        self.profile_ready_ms = profile_ready_ms  # how long we waited for a profile that never came

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "command": self.command,
            "reply": self.reply,
            "commands": [r.as_dict() for r in self.done],
            "rolled_back": True,
            "restore_commands": [r.as_dict() for r in self.restore],
        }
        if self.profile_ready_ms is not None:
            out["profile_ready_ms"] = self.profile_ready_ms
        return out


@dataclass
class ReloadOutcome:
    files_changed: list[str] = field(default_factory=list)
    commands: list[CommandResult] = field(default_factory=list)
    restarted: bool = False
    restart_waits: list[float] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # After a profile start/restart: how long until it served, and what it binds (else None).
    profile_ready_ms: int | None = None
    profile_transports: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_changed": self.files_changed,
            "commands": [r.as_dict() for r in self.commands],
            "restarted": self.restarted,
            "restart_waits_s": self.restart_waits,
            "profile_ready_ms": self.profile_ready_ms,
            "profile_transports": self.profile_transports,
            "rejected": [r.as_dict() for r in self.rejected],
        }


def render_summary(cfg: ConfigInput, files: RenderedTree) -> dict[str, Any]:
    """What a render produced (counts and names, never a secret)."""
    return {
        "sip_domain": cfg.sip_domain,
        "profile": cfg.profile,
        "transports": list(cfg.transports),
        "codecs": list(cfg.codecs),
        "users": len(cfg.orgs),
        "acl_lists": sum(1 for o in cfg.orgs if o.acl_name) + 1,  # + kallglot_providers, always
        "gateways": [g.name for g in cfg.gateways],
        "numbers": len(cfg.numbers),
        "skipped_orgs_without_credentials": list(cfg.skipped),
        "rejected": [r.as_dict() for r in cfg.rejected],
        "files": sorted(files),
    }


def render_validated(store: Store, settings: Settings) -> tuple[ConfigInput, RenderedTree]:
    """Read the store, render and validate in memory; raises ConfigInputError or
    RenderValidationError (both ValueError) before anything is written."""
    cfg = load_config_input(store, settings)
    for rejection in cfg.rejected:
        log.warning("left out of the FreeSWITCH config: %s: %s", rejection.field, rejection.reason)
    files = render_files(cfg)
    validate_files(files)
    return cfg, files


@contextmanager
def inbound_esl(settings: Settings, timeout: float = ESL_TIMEOUT_S,
                connect_timeout: float = ESL_CONNECT_TIMEOUT_S) -> Iterator[EslApi]:
    """An inbound ESL connection (controller/esl) for the calling thread, closed on exit."""
    from controller.esl.inbound import InboundClient

    client = InboundClient.connect(
        settings.esl_host, settings.esl_port, settings.esl_password, timeout=connect_timeout
    )

    class _Api:
        def api(self, cmd: str) -> str:
            return client.api(cmd, timeout=timeout)

    try:
        yield _Api()
    finally:
        try:
            client.exit()
        except Exception:  # closing is best effort; the reload's outcome is already decided
            client.close()


class FsConfigService:
    """Renders the store's settings into ``settings.fs_conf_dir`` and reloads FreeSWITCH."""

    def __init__(self, store: Store, settings: Settings, esl_factory: EslFactory | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.settings = settings
        self.tree = LiveTree(Path(settings.fs_conf_dir))
        self.esl_factory: EslFactory = esl_factory or (lambda: inbound_esl(settings))
        self.sleep = sleep

    def render_to(self, out_dir: Path) -> dict[str, Any]:
        """``kallglot render --out DIR``: render + validate into DIR; the live tree is untouched."""
        cfg, files = render_validated(self.store, self.settings)
        write_out(out_dir, files)
        return render_summary(cfg, files) | {"out": str(out_dir)}

    def render_live(self) -> dict[str, Any]:
        """Render + validate + swap into the live tree without telling FreeSWITCH.

        Before the first render FreeSWITCH cannot have loaded anything else, so that generation
        is recorded as applied (the container start-up path); later ones are left for reload.
        """
        with self.tree.locked():
            # Read the store under the lock: a slower concurrent render must not apply older data.
            cfg, files = render_validated(self.store, self.settings)
            previous = self.tree.current()
            if previous is not None and snapshot(read_files(previous)).files == snapshot(files).files:
                # Same content (e.g. a container restart): keep the generation, no churn.
                return render_summary(cfg, files) | {"out": str(self.tree.link), "applied": False,
                                                     "unchanged": True}
            generation = self.tree.stage(files)
            self.tree.point_to(generation)
            bootstrap = previous is None and applied_generation(self.tree) is None
            if bootstrap:
                mark_applied(self.tree, generation)
            self.tree.prune({p for p in (generation, previous, applied_generation(self.tree)) if p})
        return render_summary(cfg, files) | {"out": str(self.tree.link), "applied": bootstrap,
                                             "unchanged": False}

    def reload(self, *, restart_profile: bool = False) -> ReloadOutcome:
        """Render and apply; ``restart_profile`` rebuilds the profile even when no file asks for
        it (new TLS certificate files; ends every live call on the profile)."""
        with self.tree.locked():
            cfg, files = render_validated(self.store, self.settings)
            rejected = list(cfg.rejected)
            previous = self.tree.current()
            base = applied_generation(self.tree) or previous
            new = snapshot(files)
            plan = plan_reload(snapshot(read_files(base) if base else {}), new)
            if restart_profile and new.profile is not None:
                plan = with_profile_restart(plan, new.profile)
            if not plan.files_changed and plan.empty:
                return ReloadOutcome(rejected=rejected)
            outcome = ReloadOutcome(list(plan.files_changed), restarted=plan.restart, rejected=rejected)
            with self._connection(plan) as esl:
                # Connected before anything is swapped: an unreachable FreeSWITCH changes nothing.
                generation = self.tree.stage(files)
                self.tree.point_to(generation)
                try:
                    if esl is not None:
                        self._apply(esl, plan, new, outcome)
                except ReloadCommandError as exc:
                    restore = self._roll_back(esl, previous, generation, exc)
                    log.error("FreeSWITCH reload failed at %r (%s); rolled back", exc.command,
                              exc.reply.strip() if exc.reply is not None else exc.detail)
                    waited = exc.waited_ms if isinstance(exc, ProfileNotReadyError) else None
                    raise ReloadError(str(exc), exc.command, exc.reply, exc.done, restore, waited) from exc
            mark_applied(self.tree, generation)
            self.tree.prune({p for p in (generation, previous) if p})
        ready = outcome.profile_ready_ms
        log.info("FreeSWITCH reloaded: %d file(s) changed, commands %s%s",
                 len(outcome.files_changed), [r.command for r in outcome.commands],
                 "" if ready is None else f", profile serving again after {ready} ms")
        return outcome

    def _apply(self, esl: EslApi, plan: ReloadPlan, new: ConfigSnapshot, outcome: ReloadOutcome) -> None:
        """Send the plan; after a profile (re)start, wait until it serves (ReloadCommandError
        when FreeSWITCH refuses, or ProfileNotReadyError when the profile does not come up)."""
        result = apply_commands(esl, plan.commands, sleep=self.sleep)
        outcome.commands, outcome.restart_waits = result.results, result.restart_waits
        if not result.rebuilt or new.profile is None:
            return
        # "restart"/"start" answer before the profile binds again: without this wait a reload
        # reported success while INVITEs still got 503 or nothing (observed ~2 s on 1.10.12).
        waited, status = wait_profile_ready(
            esl, new.profile, expected_transports(new.profile_params),
            self.settings.profile_ready_timeout_s, result.results)
        outcome.profile_ready_ms = round(waited * 1000)
        outcome.profile_transports = sorted(status.transports)

    @contextmanager
    def _connection(self, plan: ReloadPlan) -> Iterator[EslApi | None]:
        """An ESL connection when the plan has commands (None otherwise); connect failures
        become a ReloadError before any file is touched."""
        if plan.empty:
            yield None
            return
        try:
            connection = self.esl_factory()
            esl = connection.__enter__()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.error("FreeSWITCH reload not started: %s", detail)
            message = f"{plan.commands[0]}: {detail}"
            raise ReloadError(message, plan.commands[0], None, [], []) from exc
        try:
            yield esl
        finally:
            try:
                connection.__exit__(None, None, None)
            except Exception:  # noqa: S110 -- closing after the outcome is known
                pass

    def _roll_back(
        self, esl: EslApi | None, previous: Path | None, generation: Path, exc: ReloadCommandError
    ) -> list[CommandResult]:
        if previous is not None:
            self.tree.point_to(previous)
        else:
            self.tree.link.unlink(missing_ok=True)
        self.tree.discard(generation)
        replay = [r.command for r in exc.done if r.command in _IDEMPOTENT or r.command.endswith(" rescan")]
        if isinstance(exc, ProfileNotReadyError) and previous is not None:
            # The profile is down (or bound to something else): bring it back from the restored
            # files. On a running profile "start" is only a rescan, so this is safe either way.
            replay.append(f"sofia profile {exc.profile} start")
        if esl is None or exc.reply is None or not replay:
            return []
        try:
            return apply_commands(esl, replay, sleep=self.sleep).results
        except ReloadCommandError as restore_exc:  # the rollback of files stands; report it
            log.error("re-reading the restored configuration failed: %s", restore_exc)
            return restore_exc.done

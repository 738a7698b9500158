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
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.cluster.routing import EslTarget, reload_targets
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
from controller.fsconfig.tree import (
    LiveTree,
    applied_generation,
    applied_generations,
    mark_applied,
    read_files,
    write_out,
)
from controller.fsconfig.validate import validate_files
from controller.settings import Settings
from controller.store import Store

log = logging.getLogger(__name__)

EslFactory = Callable[[], AbstractContextManager[EslApi]]
# A node's FreeSWITCH (its registered ESL address; nodes share KALLGLOT_ESL_PASSWORD).
NodeEslFactory = Callable[[EslTarget], AbstractContextManager[EslApi]]
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
        # With several FreeSWITCH nodes: every node's result, and the nodes not asked (not up).
        self.nodes: list[dict[str, Any]] = []
        self.nodes_skipped: list[dict[str, object]] = []

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
        if self.nodes:
            out["nodes"] = self.nodes
            out["nodes_skipped"] = self.nodes_skipped
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
    # False when some FreeSWITCH node did not apply the change (see ``nodes``).
    ok: bool = True
    nodes: list[dict[str, Any]] = field(default_factory=list)
    nodes_skipped: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files_changed": self.files_changed,
            "commands": [r.as_dict() for r in self.commands],
            "restarted": self.restarted,
            "restart_waits_s": self.restart_waits,
            "profile_ready_ms": self.profile_ready_ms,
            "profile_transports": self.profile_transports,
            "rejected": [r.as_dict() for r in self.rejected],
            "nodes": self.nodes,
            "nodes_skipped": self.nodes_skipped,
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
                connect_timeout: float = ESL_CONNECT_TIMEOUT_S, target: EslTarget | None = None
                ) -> Iterator[EslApi]:
    """An inbound ESL connection (controller/esl) for the calling thread, closed on exit: to
    ``target`` (a node), else the configured KALLGLOT_ESL_HOST/PORT."""
    from controller.esl.inbound import InboundClient

    host, port = (target.host, target.port) if target is not None else (settings.esl_host, settings.esl_port)
    client = InboundClient.connect(host, port, settings.esl_password, timeout=connect_timeout)

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
                 sleep: Callable[[float], None] = time.sleep,
                 node_esl_factory: NodeEslFactory | None = None) -> None:
        self.store = store
        self.settings = settings
        self.tree = LiveTree(Path(settings.fs_conf_dir))
        self.esl_factory: EslFactory = esl_factory or (lambda: inbound_esl(settings))
        self.node_esl_factory: NodeEslFactory = node_esl_factory or (
            lambda target: inbound_esl(settings, target=target))
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
        """Render and apply to every FreeSWITCH (each ``up`` node, else the configured one);
        ``restart_profile`` rebuilds the profile even when no file asks for it (new TLS
        certificate files; ends every live call on the profile).

        One render, one tree (the conf dir is shared by the nodes), then each node in turn gets
        the commands its own last applied generation needs. A node that fails does not stop the
        others. Only when no node that needed commands applied the change is the tree rolled
        back (ReloadError, as with one FreeSWITCH); otherwise the new tree stays and the failed
        nodes are reported (``ok`` false) and caught up by the next reload.
        """
        with self.tree.locked():
            cfg, files = render_validated(self.store, self.settings)
            rejected = list(cfg.rejected)
            previous = self.tree.current()
            legacy = applied_generation(self.tree)
            new = snapshot(files)
            targets, skipped = reload_targets(self.store, self.settings)
            runs: list[_NodeRun] = []
            for target in targets:
                own = applied_generation(self.tree, target.node_id) if target.node_id else None
                base = own or legacy or previous
                plan = plan_reload(snapshot(read_files(base) if base else {}), new)
                if restart_profile and new.profile is not None:
                    plan = with_profile_restart(plan, new.profile)
                runs.append(_NodeRun(target, plan))
            if all(not r.plan.files_changed and r.plan.empty for r in runs):
                for run in runs:
                    run.outcome = ReloadOutcome(rejected=rejected)
                return _combined(runs, skipped, rejected)
            with ExitStack() as stack:
                for run in runs:
                    # Connected before anything is swapped: unreachable FreeSWITCHes change nothing.
                    run.esl = None if run.plan.empty else self._connect(stack, run)
                needed = [r for r in runs if not r.plan.empty]
                if needed and all(r.error is not None for r in needed):
                    raise _with_nodes(_first_error(needed), runs, skipped)
                generation = self.tree.stage(files)
                self.tree.point_to(generation)
                for run in runs:
                    if run.error is None:
                        self._apply_node(run, new, rejected)
                if needed and all(r.error is not None for r in needed):
                    self._restore_link(previous, generation)
                    for run in needed:
                        if run.failure is not None:
                            run.restore = self._replay(run.esl, previous, run.failure)
                    first = _first_error(needed)
                    log.error("FreeSWITCH reload failed at %r (%s); rolled back", first.command,
                              first.reply.strip() if first.reply is not None else first)
                    raise _with_nodes(first, runs, skipped)
            for run in runs:
                if run.error is None and run.target.node_id:
                    mark_applied(self.tree, generation, run.target.node_id)
            if all(r.error is None for r in runs):
                mark_applied(self.tree, generation)  # the plain marker: every FreeSWITCH has it
            self.tree.prune({p for p in (generation, previous) if p} | applied_generations(self.tree))
        outcome = _combined(runs, skipped, rejected)
        ready = outcome.profile_ready_ms
        log.info("FreeSWITCH reloaded: %d file(s) changed, commands %s%s",
                 len(outcome.files_changed), [r.command for r in outcome.commands],
                 "" if ready is None else f", profile serving again after {ready} ms")
        for run in runs:
            if run.error is not None:
                log.error("FreeSWITCH node %s (%s) did not reload: %s; it is caught up at the next"
                          " reload", run.target.node_id, run.target.address, run.error)
        return outcome

    def _connect(self, stack: ExitStack, run: _NodeRun) -> EslApi | None:
        """An ESL connection to ``run``'s FreeSWITCH, closed with ``stack``; a failure is
        recorded on the run (a ReloadError naming the first planned command)."""
        target = run.target
        factory = self.esl_factory if target.node_id is None else (lambda: self.node_esl_factory(target))
        try:
            connection = factory()
            esl = connection.__enter__()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.error("FreeSWITCH reload not started on %s: %s", target.address, detail)
            run.error = ReloadError(f"{run.plan.commands[0]}: {detail}", run.plan.commands[0], None, [], [])
            return None
        stack.callback(_close_quietly, connection)
        return esl

    def _apply_node(self, run: _NodeRun, new: ConfigSnapshot, rejected: list[Rejection]) -> None:
        outcome = ReloadOutcome(list(run.plan.files_changed), restarted=run.plan.restart, rejected=rejected)
        try:
            if run.esl is not None:
                self._apply(run.esl, run.plan, new, outcome)
        except ReloadCommandError as exc:
            waited = exc.waited_ms if isinstance(exc, ProfileNotReadyError) else None
            run.failure = exc
            run.error = ReloadError(str(exc), exc.command, exc.reply, exc.done, [], waited)
            return
        run.outcome = outcome

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

    def _restore_link(self, previous: Path | None, generation: Path) -> None:
        if previous is not None:
            self.tree.point_to(previous)
        else:
            self.tree.link.unlink(missing_ok=True)
        self.tree.discard(generation)

    def _replay(self, esl: EslApi | None, previous: Path | None,
                exc: ReloadCommandError) -> list[CommandResult]:
        """After the link went back: make FreeSWITCH re-read the restored files (best effort)."""
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


@dataclass
class _NodeRun:
    """One FreeSWITCH's part of a reload."""

    target: EslTarget
    plan: ReloadPlan
    esl: EslApi | None = None
    outcome: ReloadOutcome | None = None
    error: ReloadError | None = None
    failure: ReloadCommandError | None = None  # FreeSWITCH refused (not: unreachable)
    restore: list[CommandResult] = field(default_factory=list)

    def as_dict(self, rolled_back: bool) -> dict[str, Any]:
        out: dict[str, Any] = self.target.as_dict() | {"ok": self.error is None}
        if self.outcome is not None:
            out |= {"commands": [r.as_dict() for r in self.outcome.commands],
                    "files_changed": self.outcome.files_changed, "restarted": self.outcome.restarted,
                    "profile_ready_ms": self.outcome.profile_ready_ms, "restart_needed": False}
            return out
        assert self.error is not None
        # A restart (or start) was planned and is not known to have completed on this node.
        planned = any(c.endswith((" restart", " start")) for c in self.plan.commands)
        return out | {
            "error": str(self.error), "command": self.error.command, "reply": self.error.reply,
            "commands": [r.as_dict() for r in self.error.done], "rolled_back": rolled_back,
            "restore_commands": [r.as_dict() for r in self.restore], "restart_needed": planned,
        }


def _close_quietly(connection: AbstractContextManager[EslApi]) -> None:
    try:
        connection.__exit__(None, None, None)
    except Exception:  # noqa: S110 -- closing after the outcome is known
        pass


def _first_error(runs: list[_NodeRun]) -> ReloadError:
    """The error reported at the top level: the first FreeSWITCH that refused, else the first
    that could not be reached."""
    refused = [r.error for r in runs if r.failure is not None and r.error is not None]
    unreachable = [r.error for r in runs if r.error is not None]
    return (refused or unreachable)[0]


def _with_nodes(error: ReloadError, runs: list[_NodeRun], skipped: list[dict[str, object]]) -> ReloadError:
    """The top-level error (fields as with one FreeSWITCH) carrying every node's result."""
    first = next(r for r in runs if r.error is error)
    error.restore = first.restore
    error.nodes = [r.as_dict(rolled_back=True) for r in runs]
    error.nodes_skipped = skipped
    return error


def _combined(runs: list[_NodeRun], skipped: list[dict[str, object]],
              rejected: list[Rejection]) -> ReloadOutcome:
    """The response: today's fields from the first node that applied the change, plus each node."""
    applied = [r.outcome for r in runs if r.outcome is not None]
    first = next((o for o in applied if o.commands or o.files_changed), applied[0])
    return ReloadOutcome(
        files_changed=first.files_changed, commands=first.commands,
        restarted=any(o.restarted for o in applied),
        restart_waits=first.restart_waits, rejected=rejected, profile_ready_ms=first.profile_ready_ms,
        profile_transports=first.profile_transports, ok=all(r.error is None for r in runs),
        nodes=[r.as_dict(rolled_back=False) for r in runs], nodes_skipped=skipped)

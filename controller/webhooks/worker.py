"""The webhook delivery worker: sends what the outbox queued, signed, with retries.

Durability comes from the store, not from this process: a due delivery is *leased* (``lease_until``
set in the same write transaction that picks it, with ``BEGIN IMMEDIATE``), so two workers never
send it at the same time, and a worker killed mid-send leaves a lease that simply expires, after
which any worker sends it again — the same event id and body. Outcomes are written only by the
lease holder (the UPDATE matches ``lease_until``), so a worker whose lease ran out cannot
overwrite a newer attempt. Receivers must de-duplicate by ``Kallglot-Event-Id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from yarl import URL

from controller.api.background import background
from controller.apilog.record import DeliveryEntry, record_delivery_in
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.settings import Settings, parse_retry_schedule
from controller.store import Store
from controller.webhooks import metrics, ssrf
from controller.webhooks.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

USER_AGENT = "Kallglot-Webhooks/1.0"
CONCURRENCY = 16
JITTER = 0.1  # ±10 % on each retry delay, so retries of many events spread out


def lease_seconds(timeout_s: float) -> float:
    """How long a picked delivery stays reserved: the request's timeout plus a margin for recording."""
    return timeout_s + max(2.0, timeout_s)


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    event_id: str
    event_type: str
    endpoint_id: str
    org_id: str
    url: str
    attempt: int  # 1 for the first attempt
    lease_until: float  # the lease token: outcomes are written only while it is still ours
    body: bytes = field(repr=False)
    signing_secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the receiver's HTTP status, None when no response came
    error_code: str | None  # timeout | connection_error | tls_error | target_not_allowed
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


_DUE = "d.status = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?)"
_CLAIM = (
    "SELECT d.id, d.event_id, d.endpoint_id, d.org_id, d.attempts, e.type, e.body,"  # noqa: S608 -- constants
    " w.url, w.status AS endpoint_status, w.secret, w.previous_secret, w.previous_secret_expires_at"
    " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
    f" JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE {_DUE}"
    " ORDER BY d.next_attempt_at LIMIT ?"
)


def claim_due(store: Store, *, at: float, limit: int, lease_s: float) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries (oldest due first); deliveries of an endpoint that is
    no longer enabled end as failed (``endpoint_disabled``) without an attempt."""
    if limit <= 0:
        return []
    # Cheap read first: the write lock is taken only when something is due.
    if store.query_one(f"SELECT 1 FROM webhook_deliveries d WHERE {_DUE} LIMIT 1", (at, at)) is None:  # noqa: S608
        return []
    lease_until = at + lease_s
    claimed: list[Claimed] = []
    with store.transaction() as conn:
        rows = conn.execute(_CLAIM, (at, at, limit)).fetchall()
        for r in rows:
            if r["endpoint_status"] != "enabled":
                conn.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint_disabled',"
                    " lease_until = NULL, updated_at = ? WHERE id = ?",
                    (at, r["id"]),
                )
                continue
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = ?, updated_at = ?"
                " WHERE id = ?",
                (lease_until, at, r["id"]),
            )
            secrets = [r["secret"]]
            if r["previous_secret"] and (r["previous_secret_expires_at"] or 0) > at:
                secrets.append(r["previous_secret"])
            claimed.append(
                Claimed(
                    delivery_id=r["id"],
                    event_id=r["event_id"],
                    event_type=r["type"],
                    endpoint_id=r["endpoint_id"],
                    org_id=r["org_id"],
                    url=r["url"],
                    attempt=int(r["attempts"]) + 1,
                    lease_until=lease_until,
                    body=r["body"].encode(),
                    signing_secrets=tuple(secrets),
                )
            )
    return claimed


def next_delay(schedule: tuple[float, ...], attempt: int) -> float | None:
    """Seconds until the attempt after ``attempt`` (1-based), or None when that was the last."""
    if attempt >= len(schedule):
        return None
    delay = schedule[attempt]
    return delay * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 -- jitter, not security


def record_outcome(
    store: Store, claimed: Claimed, outcome: Outcome, schedule: tuple[float, ...], *, at: float
) -> str:
    """Write the attempt's result and its API log entry in one transaction; returns the metric
    outcome (delivered | retry | failed | refused)."""
    if outcome.ok:
        status, next_at, result = "delivered", at, "delivered"
    else:
        delay = next_delay(schedule, claimed.attempt)
        status = "pending" if delay is not None else "failed"
        next_at = at + (delay or 0.0)
        result = "retry" if delay is not None else "failed"
        if outcome.error_code == ssrf.ERROR_CODE:
            result = "refused"
    entry = DeliveryEntry(
        org_id=claimed.org_id,
        endpoint_id=claimed.endpoint_id,
        event_id=claimed.event_id,
        event_type=claimed.event_type,
        attempt=claimed.attempt,
        status=outcome.status,
        error_code=outcome.error_code,
        duration_ms=outcome.duration_s * 1000,
    )
    with store.transaction() as conn:
        updated = conn.execute(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, lease_until = NULL,"
            " last_http_status = ?, last_error = ?, updated_at = ? WHERE id = ? AND lease_until = ?",
            (status, next_at, outcome.status, outcome.error_code, at, claimed.delivery_id,
             claimed.lease_until),
        ).rowcount
        record_delivery_in(conn, entry, at=at)
    if not updated:
        log.warning("webhook delivery %s: lease expired before attempt %d was recorded; another worker"
                    " owns it now", claimed.delivery_id, claimed.attempt)
    return result


class DeliveryWorker:
    """Polls the store for due deliveries and sends them, up to CONCURRENCY at a time."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        inner_resolver: AbstractResolver | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.store = store
        self.allow_private = settings.webhook_allow_private_targets
        self.timeout_s = settings.webhook_timeout_s
        self.poll_interval_s = settings.webhook_poll_interval_s
        self.schedule = parse_retry_schedule(settings.webhook_retry_schedule)
        self.lease_s = lease_seconds(self.timeout_s)
        self.concurrency = concurrency
        self._inner_resolver = inner_resolver
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DeliveryWorker:
        connector = aiohttp.TCPConnector(
            resolver=ssrf.VettingResolver(self.allow_private, self._inner_resolver),
            use_dns_cache=False,  # every connection is resolved (and vetted) afresh
            limit=self.concurrency,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            trust_env=False,  # no proxy from the environment: it would bypass the address policy
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._inflight):
            task.cancel()  # its lease expires and another run sends it again
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Send every delivery due now and wait for the results; returns how many were sent."""
        claimed = await asyncio.to_thread(
            claim_due, self.store, at=time.time(), limit=self.concurrency, lease_s=self.lease_s
        )
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def run_forever(self) -> None:
        while True:
            try:
                free = self.concurrency - len(self._inflight)
                claimed = await asyncio.to_thread(
                    claim_due, self.store, at=time.time(), limit=free, lease_s=self.lease_s
                )
                for c in claimed:
                    task = asyncio.create_task(self._deliver(c))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook worker: polling failed; retrying")
            await asyncio.sleep(self.poll_interval_s)

    async def _deliver(self, claimed: Claimed) -> None:
        outcome = await self.send(claimed)
        try:
            result = await asyncio.to_thread(
                record_outcome, self.store, claimed, outcome, self.schedule, at=time.time()
            )
        except Exception:
            # Not recorded: the lease expires and the delivery is attempted again (same event id).
            log.exception("webhook delivery %s: recording attempt %d failed", claimed.delivery_id,
                          claimed.attempt)
            return
        metrics.count(result)
        if outcome.error_code != ssrf.ERROR_CODE:
            metrics.observe(outcome.duration_s)
        log.info("webhook %s %s → %s attempt %d: %s", claimed.event_type, claimed.event_id,
                 claimed.endpoint_id, claimed.attempt, outcome.status or outcome.error_code)

    async def send(self, claimed: Claimed) -> Outcome:
        """One signed POST; never raises for the receiver's failures."""
        assert self._session is not None, "use the worker as an async context manager"
        start = time.perf_counter()
        host = URL(claimed.url).raw_host or ""
        literal = ssrf.ip_literal(host)
        try:
            # aiohttp connects to IP literals without asking the resolver: vet them here.
            if literal is not None:
                ssrf.check_address(host, str(literal), self.allow_private)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header(claimed.signing_secrets, claimed.body, int(time.time())),
                EVENT_ID_HEADER: claimed.event_id,
                EVENT_TYPE_HEADER: claimed.event_type,
            }
            async with self._session.post(
                claimed.url, data=claimed.body, headers=headers, allow_redirects=False
            ) as response:
                return Outcome(response.status, None, time.perf_counter() - start)
        except ssrf.TargetNotAllowed:
            return Outcome(None, ssrf.ERROR_CODE, time.perf_counter() - start)
        except TimeoutError:
            return Outcome(None, "timeout", time.perf_counter() - start)
        except aiohttp.ClientSSLError:
            return Outcome(None, "tls_error", time.perf_counter() - start)
        except (aiohttp.ClientError, OSError) as exc:
            code = ssrf.ERROR_CODE if ssrf.refusal_in(exc) is not None else "connection_error"
            return Outcome(None, code, time.perf_counter() - start)


async def run_worker(store: Store, settings: Settings) -> None:
    """Run a worker until cancelled."""
    async with DeliveryWorker(store, settings) as worker:
        await worker.run_forever()


async def webhook_worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: the worker inside ``kallglot api`` (unless KALLGLOT_WEBHOOK_WORKER=false)."""
    settings = app[SETTINGS_KEY]
    if not settings.webhook_worker:
        yield
        return
    async with background(run_worker(app[STORE_KEY], settings)):
        yield


def cli_run(args: object, settings: Settings) -> int:
    """``kallglot webhooks``: only the delivery worker (run ``kallglot api`` with
    KALLGLOT_WEBHOOK_WORKER=false then, or both share the work safely through leases)."""
    from controller.store import open_store

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_store(settings.db_path)
    try:
        asyncio.run(run_worker(store, settings))
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0

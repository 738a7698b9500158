"""Cost of the API log on every authenticated request: the same API with and without its
middleware, plus the bare INSERT.

    .venv/bin/python bench/apilog_bench.py [--requests 2000] [--concurrency 8]

Prints the figures (nothing is asserted): for each variant, requests/s and per-request latency
(median, p95) of GET /v1/sip over keep-alive connections on 127.0.0.1, and the mean time of
one ``record_request`` INSERT (autocommit, WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from controller.api.middleware import api_log_middleware
from controller.api.server import create_app
from controller.apilog.record import ApiRequestEntry, record_request
from controller.apilog.writer import API_LOG_WRITER_KEY
from controller.domain import api_keys, organizations
from controller.settings import Settings
from controller.store import open_store


async def _load(base: str, key: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    per_worker = requests // concurrency
    async with aiohttp.ClientSession(headers=headers) as http:

        async def worker() -> None:
            for _ in range(per_worker):
                start = time.perf_counter()
                async with http.get(f"{base}/v1/sip") as resp:
                    await resp.read()
                    assert resp.status == 200
                latencies.append(time.perf_counter() - start)

        for _ in range(20):  # warm up connections and caches
            async with http.get(f"{base}/v1/sip") as resp:
                await resp.read()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


async def _variant(
    db: Path, mode: str, requests: int, concurrency: int
) -> tuple[float, list[float], int]:
    store = open_store(db)
    org = organizations.create_organization(store, "Bench")
    key = api_keys.create_key(store, org.id).secret
    app = create_app(Settings(db_path=db, webhook_worker=False), store, janitor_interval_s=3600)
    if mode == "none":
        app.middlewares.remove(api_log_middleware)
    elif mode == "insert":  # one INSERT per request, awaited (what the batch writer replaced)
        del app[API_LOG_WRITER_KEY]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        rate, latencies = await _load(f"http://127.0.0.1:{port}", key, requests, concurrency)
    finally:
        await runner.cleanup()
    rows = store.query_one("SELECT COUNT(*) AS n FROM api_logs WHERE org_id = ?", (org.id,))["n"]
    store.close()
    return rate, latencies, rows


def _insert_cost(db: Path, count: int) -> float:
    store = open_store(db)
    entry = ApiRequestEntry("org_bench", "GET", "/v1/sip", 200, 1.0, "req_bench", None)
    start = time.perf_counter()
    for _ in range(count):
        record_request(store, entry)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"GET /v1/sip, {args.requests} requests, {args.concurrency} concurrent clients")
        variants = (("baseline (no API log)", "none"), ("API log, INSERT/request", "insert"),
                    ("API log, batched (default)", "batched"))
        for label, mode in variants:
            rate, lat, rows = asyncio.run(
                _variant(Path(tmp) / f"{mode}.db", mode, args.requests, args.concurrency)
            )
            lat_ms = sorted(x * 1000 for x in lat)
            p95 = lat_ms[int(len(lat_ms) * 0.95) - 1]
            print(f"  {label:28s} {rate:8.0f} req/s   median {statistics.median(lat_ms):6.2f} ms"
                  f"   p95 {p95:6.2f} ms   log rows {rows}")
        per_insert = _insert_cost(Path(tmp) / "insert.db", 2000)
        print(f"  one record_request INSERT: {per_insert * 1e6:.0f} µs (mean of 2000)")


if __name__ == "__main__":
    main()

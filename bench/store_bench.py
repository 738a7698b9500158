"""Admission on SQLite next to PostgreSQL, same run, same machine.

    .venv/bin/python bench/store_bench.py [--rates 50,200] [--seconds 3] [--repeat 2] [--cycles 2000]

Two figures per store:

1. ``admit()`` alone (in process, one connection): the admission transaction — policy reads,
   the cap count, the leg insert under the store's write lock (SQLite ``BEGIN IMMEDIATE``,
   PostgreSQL advisory lock) — then the leg ended, ``--cycles`` times; p50/p99 of the admit call.
   With ``--nodes 2`` the same from two processes at once (two "nodes" contending for the lock).
2. The whole controller (``bench/admission_bench.py``'s caller and method): socket connect →
   ``answer`` sent, open-loop at each of ``--rates``, against ``kallglot controller`` with
   ``KALLGLOT_DB`` set to the SQLite file or the PostgreSQL URL.

PostgreSQL is a throwaway cluster from Debian's ``postgresql`` package (tests/pg.py: initdb in a
temporary directory, fsync off like the tests — so the figures are the lock and round-trip
costs, not disk flushes; SQLite runs with its usual synchronous=NORMAL in WAL mode).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import admission_bench as ab  # noqa: E402

from tests.pg import PgCluster, pg_bin_dir  # noqa: E402


def _admit_cycles(target: str, org_id: str, username: str, session_ids: list[str], node: str) -> list[float]:
    from controller.calls.admission import Admitted, admit
    from controller.calls.legs import end_leg
    from controller.store import Store
    from tests.calls.factories import sip_channel

    store = Store(target)
    times: list[float] = []
    try:
        for sid in session_ids:
            channel = sip_channel(org_id, username, sid)
            t0 = time.perf_counter()
            result = admit(store, channel, node_id=node)
            times.append((time.perf_counter() - t0) * 1000.0)
            assert isinstance(result, Admitted), result
            end_leg(store, channel.call_uuid, hangup_cause="NORMAL_CLEARING")
    finally:
        store.close()
    return times


def admit_figures(target: str, cycles: int, nodes: int) -> str:
    org_id, username, ids = ab.seed_store(target, cycles * nodes, cap=100_000)  # type: ignore[arg-type]
    if nodes == 1:
        times = _admit_cycles(target, org_id, username, ids, "n0")
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(nodes) as pool:
            parts = pool.starmap(_admit_cycles, [(target, org_id, username, ids[i::nodes], f"n{i}")
                                                 for i in range(nodes)])
        times = [t for p in parts for t in p]
    return (f"admit() × {len(times)} ({nodes} process{'es' if nodes > 1 else ''}): "
            f"p50 {ab.percentile(times, 50):.2f} ms  p99 {ab.percentile(times, 99):.2f} ms")


def controller_figures(target: str, work: Path, rates: list[float], seconds: float, repeat: int,
                       label: str) -> None:
    total = ab.WARMUP_CALLS + repeat * sum(max(ab.MIN_CALLS, int(r * seconds)) for r in rates)
    org_id, username, ids = ab.seed_store(target, total, cap=100_000)  # type: ignore[arg-type]
    pool = iter(ids)

    def plans(n: int) -> list[ab.CallPlan]:
        return [ab.CallPlan(org_id, username, next(pool)) for _ in range(n)]

    controller = ab.start_controller(target, work)  # type: ignore[arg-type]
    try:
        asyncio.run(ab.run_rate(controller.address, plans(ab.WARMUP_CALLS), 50))
        for rate in rates:
            ab.measure(controller, lambda r=rate: plans(max(ab.MIN_CALLS, int(r * seconds))), rate, repeat,
                       label=label)
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,200")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=2, help="processes admitting at once in figure 1")
    args = parser.parse_args(argv)
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        print("PostgreSQL is not installed (Debian package postgresql); nothing to compare", file=sys.stderr)
        return 2
    ab.raise_fd_limit()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    cluster = PgCluster(bin_dir)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="kg-store-bench-") as tmp:
            work = Path(tmp)
            targets = {"sqlite": lambda n: str(work / f"{n}.db"),
                       "postgresql": lambda n: cluster.create_database()}
            print("# 1. admit() in process", flush=True)
            for name, make in targets.items():
                print(f"{name:<10} {admit_figures(make('a1'), args.cycles, 1)}", flush=True)
                if args.nodes > 1:
                    print(f"{name:<10} {admit_figures(make('a2'), args.cycles // args.nodes, args.nodes)}",
                          flush=True)
            print(f"# 2. controller call setup (connect → answer sent), {args.seconds:g} s per rate, "
                  f"best p99 of {args.repeat}", flush=True)
            for name, make in targets.items():
                controller_figures(make("c"), work, rates, args.seconds, args.repeat, label=f"ctl-{name[:6]}")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

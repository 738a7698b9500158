"""How many concurrent calls one ``kallglot controller`` process holds, and its memory per call.

    .venv/bin/python bench/concurrency_bench.py [--levels 250,500,1000,1500,2000] [--rate 100]

Calls are placed by the minimal ESL caller of ``bench/admission_bench.py`` (FreeSWITCH's side of
the outbound socket, the captured 160-header CHANNEL_DATA) at ``--rate`` calls per second and
kept up once answered and streaming, level after level, until a level fails (a call not
established within ``--setup-timeout`` seconds, or the controller exits) or the ceiling is held.
At each level: the controller's RSS (``/proc/<pid>/status`` VmRSS) and RSS delta per call since
the idle process. Baseline, in the same run: a bare gevent outbound-ESL server (one greenlet and
socket per call, nothing else) holding the same number of calls.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from admission_bench import (
    CallPlan,
    CallResult,
    ConnectReply,
    Hold,
    Target,
    place_call,
    raise_fd_limit,
    seed_store,
    start_controller,
    start_echo,
)


@dataclass
class Level:
    calls: int
    held: int
    rss_kib: int
    per_call_kib: float
    seconds: float
    error: str = ""

    def line(self, name: str) -> str:
        status = "ok" if not self.error else f"FAILED ({self.error})"
        return (f"{name:<10} {self.calls:>5} calls  held {self.held:>5}  RSS {self.rss_kib / 1024:7.1f} MiB  "
                f"{self.per_call_kib:6.1f} KiB/call  ramp {self.seconds:5.1f} s  {status}")


async def hold_levels(target: Target, plans: list[CallPlan], levels: list[int], rate: float,
                      setup_timeout: float) -> list[Level]:
    """Adds calls up to each level in turn (all kept up), measuring RSS once a level is held."""
    reply = ConnectReply()
    hold = Hold()
    tasks: list[asyncio.Task[CallResult]] = []
    idle_rss = target.rss_kib()
    out: list[Level] = []
    placed = 0
    try:
        for level in levels:
            t0 = time.monotonic()
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(level - placed):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(place_call(target.address, plans[placed + i], reply, hold,
                                                            timeout=setup_timeout)))
            placed = level
            deadline = time.monotonic() + setup_timeout
            while hold.established < level and time.monotonic() < deadline and target.proc.poll() is None:
                failed = [t for t in tasks if t.done() and t.result().error]
                if failed:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # let the process settle before reading its RSS
            error = ""
            failed = [t.result().error for t in tasks if t.done() and t.result().error]
            if target.proc.poll() is not None:
                error = f"process exited with {target.proc.returncode}"
            elif failed:
                error = f"{len(failed)} calls failed: {failed[0]}"
            elif hold.established < level:
                error = f"only {hold.established} of {level} established within {setup_timeout:g} s"
            rss = target.rss_kib() if target.proc.poll() is None else 0
            per_call = (rss - idle_rss) / max(1, hold.established)
            out.append(Level(level, hold.established, rss, per_call, time.monotonic() - t0, error))
            print(out[-1].line(target.name), flush=True)
            if error:
                break
    finally:
        hold.release.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="250,500,1000,1500,2000",
                        help="concurrent calls to hold, in order")
    parser.add_argument("--rate", type=float, default=100.0, help="calls placed per second while ramping")
    parser.add_argument("--setup-timeout", type=float, default=60.0,
                        help="seconds a level may take to settle")
    args = parser.parse_args(argv)
    levels = sorted(int(x) for x in args.levels.split(",") if x.strip())
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="kg-concurrency-") as tmp:
        work = Path(tmp)
        db = work / "bench.db"
        org_id, username, session_ids = seed_store(db, 2 * levels[-1], cap=100_000)
        echo = start_echo(work)
        controller = start_controller(db, work)
        try:
            time.sleep(0.5)
            print(f"# concurrent calls held, ramp {args.rate:g} calls/s; "
                  "RSS delta per call vs the idle process", flush=True)
            plans = [CallPlan(org_id, username, sid, False) for sid in session_ids[: levels[-1]]]
            base = asyncio.run(hold_levels(echo, plans, levels, args.rate, args.setup_timeout))
            plans = [CallPlan(org_id, username, sid, True) for sid in session_ids[levels[-1]:]]
            ctl = asyncio.run(hold_levels(controller, plans, levels, args.rate, args.setup_timeout))
            held = [lv for lv in ctl if not lv.error]
            if held:
                top = held[-1]
                ref = next((b for b in base if b.calls == top.calls), None)
                extra = f" (bare gevent ESL server: {ref.per_call_kib:.1f} KiB/call)" if ref else ""
                ceiling = top.calls == levels[-1] and len(held) == len(ctl)
                verdict = "ceiling reached" if ceiling else "then failed"
                print(f"RESULT controller held {top.calls} concurrent calls ({verdict}); "
                      f"{top.per_call_kib:.1f} KiB per call{extra}", flush=True)
            else:
                print(f"RESULT controller failed at the first level: {ctl[0].error if ctl else 'no data'}",
                      flush=True)
        finally:
            controller.stop()
            echo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

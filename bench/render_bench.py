"""Render + validate time for a large install, with a small baseline measured in the same run.

    .venv/bin/python bench/render_bench.py [--orgs 1000] [--cidrs 10] [--gateways 500] [--repeat 3]

Prints the figures (nothing is asserted): for the baseline (a tenth of the size) and the full
size, the best of --repeat runs of each step: reading the store, rendering the templates,
parsing + validating the tree, and snapshot + diff against the previous tree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.fsconfig.plan import plan_reload, snapshot
from controller.fsconfig.render import render_files
from controller.fsconfig.source import load_config_input
from controller.fsconfig.validate import validate_files
from controller.settings import Settings
from controller.store import Store, open_store


def populate(store: Store, orgs: int, cidrs: int, gateways: int) -> None:
    now = time.time()
    with store.transaction() as conn:
        for i in range(orgs):
            org_id = f"org_B{i:08d}"
            conn.execute(
                "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)", (org_id, "O", now)
            )
            allow = [f"10.{i // 256 % 256}.{i % 256}.{j * 16}/28" for j in range(cidrs)]
            user = f"kg{i:08d}"
            a1 = hashlib.md5(f"{user}:sip.bench:pw{i}".encode()).hexdigest()  # noqa: S324 -- a1-hash format
            conn.execute(
                "INSERT INTO sip_settings (org_id, enabled, username, a1_hash, ip_allowlist, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?)", (org_id, user, a1, json.dumps(allow), now))
        for g in range(gateways):
            org_id = f"org_B{g % max(orgs, 1):08d}"
            sip = {"host": f"trunk{g}.example.net", "username": f"u{g}", "password": f"pw-{g}",
                   "register": g % 2 == 0}
            conn.execute(
                "INSERT INTO connections (id, org_id, provider, name, credentials, sip, inbound_addresses,"
                " created_at, updated_at) VALUES (?, ?, 'twilio', 'T', '{}', ?, ?, ?, ?)",
                (f"pcon_B{g:08d}", org_id, json.dumps(sip), json.dumps([f"192.0.2.{g % 256}"]), now, now))


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(orgs: int, cidrs: int, gateways: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.db")
        populate(store, orgs, cidrs, gateways)
        settings = Settings.from_env({}, sip_domain="sip.bench", fs_conf_dir=tmp)
        t_load, cfg = best(lambda: load_config_input(store, settings), repeat)
        t_render, files = best(lambda: render_files(cfg), repeat)
        t_validate, _ = best(lambda: validate_files(files), repeat)
        t_diff, _ = best(lambda: plan_reload(snapshot(files), snapshot(files)), repeat)
        store.close()
    size = sum(len(f.text) for f in files.values())
    return {"load_s": t_load, "render_s": t_render, "validate_s": t_validate, "diff_s": t_diff,
            "total_s": t_load + t_render + t_validate + t_diff, "bytes": float(size)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--cidrs", type=int, default=10)
    ap.add_argument("--gateways", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = {
        "baseline": (max(args.orgs // 10, 1), args.cidrs, max(args.gateways // 10, 1)),
        "full": (args.orgs, args.cidrs, args.gateways),
    }
    results = {}
    for name, (orgs, cidrs, gws) in runs.items():
        r = measure(orgs, cidrs, gws, args.repeat)
        results[name] = r
        print(f"{name:8s} orgs={orgs:5d} cidrs/org={cidrs:3d} gateways={gws:4d}  "
              f"load {r['load_s'] * 1000:8.1f} ms  render {r['render_s'] * 1000:8.1f} ms  "
              f"validate {r['validate_s'] * 1000:8.1f} ms  diff {r['diff_s'] * 1000:8.1f} ms  "
              f"total {r['total_s'] * 1000:8.1f} ms  ({r['bytes'] / 1024:.0f} KiB)")
    ratio = results["full"]["total_s"] / results["baseline"]["total_s"]
    scale = runs["full"][0] / runs["baseline"][0]
    print(f"full/baseline time ratio: {ratio:.1f}x for {scale:.0f}x the organizations")
    return 0


if __name__ == "__main__":
    sys.exit(main())

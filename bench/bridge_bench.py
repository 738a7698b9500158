"""How many concurrent 16 kHz legs one bridge process carries (passthrough engine), and the latency
it adds, against a bare aiohttp websocket echo server measured in the same run.

Each level runs N legs (N/2 sessions) for a few seconds at real-time pace (one 20 ms frame per
leg every 20 ms). Customer legs repeat an espeak-ng sentence followed by silence; agent legs send
silence. Latency for the bridge = from sending the frame at which the bridge's VAD declares end of
speech (found by running the same segmenter on the client side) to receiving the streamAudio on
the agent leg; for the echo server = a frame's round trip. Both servers run as subprocesses.

    .venv/bin/python bench/bridge_bench.py [--levels 20,50,100] [--seconds 6] [--buffer-ms 100]

Prints figures; asserts nothing. A level is "carried" when every frame reached the bridge, none
was dropped, and the bridge's p99 stayed under --max-p99-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.ids import new_id  # noqa: E402
from controller.store import open_store  # noqa: E402
from media_bridge.audio import parse_wav, resample  # noqa: E402
from media_bridge.vad import SpeechSegmenter, Utterance  # noqa: E402

RATE = 16000
FRAME = 640
SILENCE_MS = 400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speech_pattern() -> tuple[list[bytes], set[int]]:
    """One cycle of customer audio as frames, and the frame indexes at which VAD ends speech."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en", "--stdout", "Hello, this is a bridge benchmark."],
        capture_output=True,
        check=True,
    ).stdout
    samples, rate = parse_wav(wav)
    samples = resample(samples, rate, RATE)
    cycle = np.concatenate([samples, np.zeros(RATE, dtype=np.int16)])
    cycle = np.concatenate([cycle, np.zeros((-cycle.size) % (FRAME // 2), dtype=np.int16)])
    frames = [cycle[i : i + FRAME // 2].astype("<i2").tobytes() for i in range(0, cycle.size, FRAME // 2)]
    segmenter = SpeechSegmenter(RATE, silence_ms=SILENCE_MS)
    ends = {i for i, f in enumerate(frames * 2) for e in segmenter.push(f, 0.0) if isinstance(e, Utterance)}
    return frames, {i % len(frames) for i in ends}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- echo server (subprocess) ------------------------------------------------------------------


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def serve_echo(port: int) -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", _echo)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# -- clients -------------------------------------------------------------------------------------


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                await http.get(url)
                return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def paced(n_messages: int, batch: int, send) -> None:  # type: ignore[no-untyped-def]
    """Call ``send(i)`` every ``batch`` × 20 ms (STREAM_BUFFER_SIZE = batch × 20)."""
    start = time.monotonic()
    for i in range(n_messages):
        await send(i)
        delay = start + (i + 1) * 0.02 * batch - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_echo_level(port: int, legs: int, seconds: float, batch: int) -> dict[str, float]:
    latencies: list[float] = []
    frame = b"\0" * FRAME * batch
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [await http.ws_connect(f"ws://127.0.0.1:{port}/echo/{i}") for i in range(legs)]

        async def leg(ws: aiohttp.ClientWebSocketResponse) -> None:
            sent: dict[int, float] = {}

            async def send(i: int) -> None:
                sent[i] = time.monotonic()
                await ws.send_bytes(i.to_bytes(4, "little") + frame[4:])

            async def receive() -> None:
                async for msg in ws:
                    i = int.from_bytes(msg.data[:4], "little")
                    latencies.append(time.monotonic() - sent.pop(i))

            reader = asyncio.create_task(receive())
            await paced(int(seconds * 50) // batch, batch, send)
            await asyncio.sleep(0.5)
            reader.cancel()

        await asyncio.gather(*(leg(ws) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws in sockets))
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    text = await (await http.get(f"{url}/metrics")).text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def run_bridge_level(url: str, db: Path, legs: int, seconds: float, batch: int) -> dict[str, float]:
    store = open_store(db)
    now = time.time()
    sessions = []
    with store.transaction() as conn:
        org = new_id("org")
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES (?, 'bench', ?)", (org, now))
        for _ in range(legs // 2):
            sid = new_id("sess")
            conn.execute(
                "INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,"
                " status, created_at, updated_at) VALUES (?, ?, 'bidirectional_translation', 'en', 'es',"
                " 'eu', 'sip', 'connecting', ?, ?)",
                (sid, org, now, now),
            )
            sessions.append(sid)
    store.close()
    frames, ends = speech_pattern()
    silence = b"\0" * FRAME * batch
    n_messages = int(seconds * 50) // batch
    latencies: list[float] = []
    ws_url = url.replace("http://", "ws://")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        before = await scrape(http, url)

        async def pair(index: int, sid: str) -> None:
            customer = await http.ws_connect(f"{ws_url}/v1/media/{sid}/leg_c")
            agent = await http.ws_connect(f"{ws_url}/v1/media/{sid}/leg_a")
            await customer.send_str(json.dumps({"session_id": sid, "role": "customer"}))
            await agent.send_str(json.dumps({"session_id": sid, "role": "agent"}))
            ended: list[float] = []
            offset = index % len(frames)  # stagger speech across sessions

            async def send(i: int) -> None:
                ks = [(i * batch + j + offset) % len(frames) for j in range(batch)]
                await customer.send_bytes(b"".join(frames[k] for k in ks))
                await agent.send_bytes(silence)
                if ends.intersection(ks):
                    ended.append(time.monotonic())

            async def receive() -> None:
                async for msg in agent:
                    if msg.type == aiohttp.WSMsgType.TEXT and '"streamAudio"' in msg.data[:40] and ended:
                        # Utterances are seconds apart: the answer belongs to the latest end of speech
                        # (a partial first sentence, cut by the stagger, may produce no audio).
                        latencies.append(time.monotonic() - ended[-1])
                        ended.clear()

            reader = asyncio.create_task(receive())
            await paced(n_messages, batch, send)
            await asyncio.sleep(1.0)
            reader.cancel()
            await customer.close()
            await agent.close()

        await asyncio.gather(*(pair(i * 7, sid) for i, sid in enumerate(sessions)))
        await asyncio.sleep(0.5)
        after = await scrape(http, url)
    sent = legs * n_messages * batch
    got = after.get("kallglot_bridge_frames_total", 0) - before.get("kallglot_bridge_frames_total", 0)
    dropped = sum(v for k, v in after.items() if k.startswith("kallglot_bridge_dropped_total")) - sum(
        v for k, v in before.items() if k.startswith("kallglot_bridge_dropped_total")
    )
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "utterances": len(latencies),
        "frames_lost": sent - got,
        "dropped": dropped,
    }


async def main(args: argparse.Namespace) -> None:
    levels = [int(x) for x in args.levels.split(",")]
    if args.buffer_ms % 20 or args.buffer_ms < 20:
        raise SystemExit("--buffer-ms must be a multiple of 20")
    batch = args.buffer_ms // 20
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        open_store(db).close()
        bridge_port, echo_port = free_port(), free_port()
        env = {
            **os.environ,
            "KALLGLOT_ENGINE": "passthrough",
            "KALLGLOT_VAD_SILENCE_MS": str(SILENCE_MS),
            "KALLGLOT_LOG_LEVEL": "WARNING",
        }
        bridge = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "bridge", "--db", str(db), "--port", str(bridge_port)],
            cwd=ROOT,
            env=env,
        )
        echo = subprocess.Popen([sys.executable, __file__, "--serve-echo", str(echo_port)], cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{bridge_port}"
            await wait_up(f"{url}/healthz")
            await wait_up(f"http://127.0.0.1:{echo_port}/")
            print(
                f"{'legs':>5} {'echo p50':>9} {'echo p99':>9} {'bridge p50':>11} {'bridge p99':>11} "
                f"{'ratio p50':>9} {'ratio p99':>9} {'utts':>5} {'lost':>5} {'drop':>5}  carried"
            )
            carried = 0
            for legs in levels:
                e = await run_echo_level(echo_port, legs, args.seconds, batch)
                b = await run_bridge_level(url, db, legs, args.seconds, batch)
                ok = b["frames_lost"] == 0 and b["dropped"] == 0 and b["p99_ms"] < args.max_p99_ms
                carried = legs if ok else carried
                ratio50, ratio99 = b["p50_ms"] / e["p50_ms"], b["p99_ms"] / e["p99_ms"]
                print(
                    f"{legs:>5} {e['p50_ms']:>9.1f} {e['p99_ms']:>9.1f} {b['p50_ms']:>11.1f} "
                    f"{b['p99_ms']:>11.1f} {ratio50:>9.1f} {ratio99:>9.1f} {b['utterances']:>5} "
                    f"{b['frames_lost']:>5.0f} {b['dropped']:>5.0f}  {'yes' if ok else 'no'}",
                    flush=True,
                )
            summary = {
                "max_legs_carried": carried,
                "levels": levels,
                "seconds": args.seconds,
                "buffer_ms": args.buffer_ms,
            }
            print(json.dumps(summary))
        finally:
            for proc in (bridge, echo):
                proc.terminate()
                proc.wait(timeout=20)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-echo":
        serve_echo(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="20,50,100,200")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-p99-ms", type=float, default=250.0)
    parser.add_argument("--buffer-ms", type=int, default=20, help="STREAM_BUFFER_SIZE to emulate")
    asyncio.run(main(parser.parse_args()))

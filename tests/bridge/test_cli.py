"""``kallglot bridge`` as a real subprocess: serves health, audio, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from controller.store import open_store
from tests.bridge.helpers import (
    connect_leg,
    decode_stream_audio,
    make_session,
    next_json,
    send_audio,
    silence,
    speak,
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kallglot_bridge_subprocess(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = open_store(db)
    session_id = make_session(store)
    port = free_port()
    env = {**os.environ, "KALLGLOT_ENGINE": "passthrough", "KALLGLOT_MODEL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "bridge",
            "--db",
            str(db),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    health = await (await http.get(f"{url}/healthz")).json()
                    break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline and proc.poll() is None, "bridge did not start"
                    await asyncio.sleep(0.1)
            assert health["engine"] == "passthrough"
            customer = await connect_leg(http, url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, url, session_id, "leg_a", "agent")
            await send_audio(customer, speak("Testing one two three.", "en"))
            await send_audio(customer, silence(1.0))
            audio, rate = decode_stream_audio(await next_json(agent, timeout=30))
            assert rate == 16000 and audio.size > 0
            proc.send_signal(signal.SIGTERM)
            msg = await agent.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001

    try:
        asyncio.run(main())
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        store.close()
    assert store.path.exists()


def test_bad_engine_setting_fails_with_named_variable(tmp_path: Path) -> None:
    env = {**os.environ, "KALLGLOT_ENGINE": "magic"}
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "bridge", "--db", str(tmp_path / "k.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "KALLGLOT_ENGINE" in out.stderr


def test_missing_whisper_model_fails_with_named_variable(tmp_path: Path) -> None:
    env = {**os.environ, "KALLGLOT_ENGINE": "offline", "KALLGLOT_WHISPER_MODEL": str(tmp_path / "nothing")}
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "bridge", "--db", str(tmp_path / "k.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "KALLGLOT_WHISPER_MODEL" in out.stderr

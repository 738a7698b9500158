"""The websocket server with the passthrough engine: pairing, status, close codes, barge-in,
assistive routing, reconnects. Real aiohttp server and client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest

from controller.store import Store
from media_bridge.config import BridgeConfig
from media_bridge.engines.passthrough import PassthroughEngine
from media_bridge.wire import CloseCode
from tests.bridge.helpers import (
    connect_leg,
    decode_stream_audio,
    frames_of,
    make_session,
    next_json,
    running_bridge,
    send_audio,
    silence,
    speak,
    wait_for,
)

CONFIG = BridgeConfig(engine="passthrough", vad_silence_ms=400)


@pytest.fixture(scope="module")
def hello_en() -> object:
    return speak("Hello, this is a test of the bridge.", "en")


async def expect_close(ws: aiohttp.ClientWebSocketResponse, code: int, reason_part: str) -> None:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    assert msg.data == code
    assert reason_part in msg.extra


def test_round_trip_passthrough_and_status(store: Store, hello_en) -> None:
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent", rate=8000)
            await send_audio(customer, silence(0.3))
            await send_audio(customer, hello_en)
            await send_audio(customer, silence(1.0))
            audio, rate = decode_stream_audio(await next_json(agent, timeout=20))
            # Resampled to the listener's (agent's) 8 kHz, about as long as the utterance.
            assert rate == 8000
            assert 0.6 * hello_en.size / 2 < audio.size < 1.5 * hello_en.size / 2
            row = store.query_one(
                "SELECT status, started_at, last_audio_at FROM sessions WHERE id = ?", (session_id,)
            )
            assert row["status"] == "active" and row["started_at"] and row["last_audio_at"]
            health = await (await http.get(f"{rb.url}/healthz")).json()
            assert health["legs"] == 2 and health["sessions"] == 1 and health["engine"] == "passthrough"
            metrics = await (await http.get(f"{rb.url}/metrics")).text()
            assert "kallglot_bridge_first_audio_seconds_count 1.0" in metrics
            await customer.close()
            await agent.close()

    asyncio.run(main())


def test_status_not_downgraded_from_ending(store: Store) -> None:
    session_id = make_session(store, status="active")
    store.conn.execute("UPDATE sessions SET status = 'ending' WHERE id = ?", (session_id,))

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{rb.url}/v1/media/{session_id}/leg_x")
            await ws.send_str(json.dumps({"session_id": session_id, "role": "customer"}))
            await expect_close(ws, CloseCode.SESSION_ENDED, "has ended")

    asyncio.run(main())
    assert store.query_one("SELECT status FROM sessions WHERE id = ?", (session_id,))["status"] == "ending"


SID = "{sid}"  # replaced by the test's session id


@pytest.mark.parametrize(
    "metadata,reason",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"role":"customer"}', "session_id"),
        ('{"session_id":"{sid}","role":"boss"}', "role"),
        ('{"session_id":"{sid}","role":"customer","sample_rate":44100}', "sample_rate"),
        ('{"session_id":"sess_OTHER","role":"customer"}', "session_id: does not match"),
        ('{"session_id":"{sid}","role":"customer","leg_id":"leg_other"}', "leg_id: does not match"),
    ],
)
def test_bad_metadata_closes_4400(store: Store, metadata: str, reason: str) -> None:
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            meta = metadata.replace(SID, session_id)
            ws = await connect_leg(http, rb.url, session_id, "leg_1", "customer", metadata=meta)
            await expect_close(ws, CloseCode.BAD_METADATA, reason)

    asyncio.run(main())


def test_audio_before_the_metadata_is_kept_not_refused(store: Store, hello_en) -> None:
    """mod_audio_stream sends the metadata from its open callback while its media thread may
    already write audio: seen on a real FreeSWITCH, a first audio frame arrived before the
    metadata (the bridge used to close such a leg 4400, leaving the call without translation)."""
    frames = frames_of(np.concatenate([hello_en, silence(1.0)]))

    async def heard_by_agent(early: int) -> int:
        session_id = make_session(store)
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            customer = await http.ws_connect(f"{rb.url}/v1/media/{session_id}/leg_c")
            for frame in frames[:early]:  # these win the race with the metadata
                await customer.send_bytes(frame)
            await customer.send_str(json.dumps({"session_id": session_id, "leg_id": "leg_c",
                                                "role": "customer", "sample_rate": 16000}))
            for frame in frames[early:]:
                await customer.send_bytes(frame)
            audio, _ = decode_stream_audio(await next_json(agent, timeout=20))
            return int(audio.size)

    # espeak starts speaking within its first 100 ms: the early frames hold speech, and the
    # agent hears exactly what it hears when the metadata comes first.
    assert asyncio.run(heard_by_agent(5)) == asyncio.run(heard_by_agent(0))


def test_audio_without_metadata_is_bad_metadata(store: Store) -> None:
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{rb.url}/v1/media/{session_id}/leg_1")
            for _ in range(60):  # 1.2 s of audio and still no metadata frame
                await ws.send_bytes(b"\0" * 640)
            await expect_close(ws, CloseCode.BAD_METADATA, "no JSON text frame before the audio")

    asyncio.run(main())


def test_unknown_session_closes_4404(store: Store) -> None:
    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await connect_leg(http, rb.url, "sess_NOSUCHSESSION", "leg_1", "customer")
            await expect_close(ws, CloseCode.UNKNOWN_SESSION, "unknown session sess_NOSUCHSESSION")

    asyncio.run(main())


def test_malformed_frames_close_only_that_socket(store: Store, hello_en) -> None:
    good_session, bad_session = make_session(store), make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, good_session, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, good_session, "leg_a", "agent")
            await send_audio(customer, silence(0.2))
            for payload, reason in ((b"\0" * 641, "641 bytes"), (b"\0" * 100, "100 bytes")):
                bad = await connect_leg(http, rb.url, bad_session, "leg_b", "customer")
                await bad.send_bytes(b"\0" * 640)
                await bad.send_bytes(payload)
                await expect_close(bad, CloseCode.BAD_FRAME, reason)
            bad = await connect_leg(http, rb.url, bad_session, "leg_b", "customer")
            await bad.send_str("hello")
            await expect_close(bad, CloseCode.BAD_FRAME, "text frame")
            # The other session carries on: speech still reaches its agent.
            await send_audio(customer, hello_en)
            await send_audio(customer, silence(1.0))
            audio, rate = decode_stream_audio(await next_json(agent, timeout=20))
            assert rate == 16000 and audio.size > 0
            assert not customer.closed and not agent.closed
            await customer.close()
            await agent.close()

    asyncio.run(main())


def test_batched_frames_are_accepted(store: Store) -> None:
    """STREAM_BUFFER_SIZE=100 sends 100 ms (3200 bytes) per message."""
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            for _ in range(10):
                await ws.send_bytes(b"\0" * 3200)
            await wait_for(lambda: rb.bridge.metrics.frames._value.get() == 50, timeout=10)
            assert not ws.closed
            await ws.close()

    asyncio.run(main())


def test_reconnect_replaces_old_socket(store: Store, hello_en) -> None:
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            old = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            await old.send_bytes(b"\0" * 640)
            new = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            await expect_close(old, CloseCode.REPLACED, "connected again")
            await send_audio(new, hello_en)
            await send_audio(new, silence(1.0))
            audio, _ = decode_stream_audio(await next_json(agent, timeout=20))
            assert audio.size > 0
            await wait_for(lambda: len(rb.bridge.sessions[session_id].legs) == 2, timeout=5)
            await new.close()
            await agent.close()

    asyncio.run(main())


def test_barge_in_when_listener_speaks_over_playback(store: Store, hello_en) -> None:
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, hello_en)
            await send_audio(customer, silence(1.0))
            first = await next_json(agent, timeout=20)
            assert first["type"] == "streamAudio"
            # The agent talks while that ~2 s of audio is still playing to them.
            await send_audio(agent, hello_en[: 16000 // 2])
            assert await next_json(agent, timeout=10) == {"type": "kallglot.barge_in"}
            assert rb.bridge.metrics.barge_ins._value.get() == 1
            await customer.close()
            await agent.close()

    asyncio.run(main())


def test_assistive_mode_speaks_only_to_the_customer(store: Store, hello_en) -> None:
    session_id = make_session(store, mode="assistive_translation")

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, hello_en)
            await send_audio(customer, silence(1.0))
            outcomes = rb.bridge.metrics.utterances
            await wait_for(lambda: outcomes.labels("empty")._value.get() == 1, timeout=20)
            await send_audio(agent, hello_en)
            await send_audio(agent, silence(1.0))
            message = await next_json(customer, timeout=20)
            assert message["type"] == "streamAudio"
            with pytest.raises(asyncio.TimeoutError):
                await agent.receive(timeout=0.5)  # nothing was ever sent to the agent
            await customer.close()
            await agent.close()

    asyncio.run(main())


def test_metadata_timeout_closes_4408(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import media_bridge.server as server

    monkeypatch.setattr(server, "METADATA_TIMEOUT_S", 0.2)
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{rb.url}/v1/media/{session_id}/leg_1")
            await expect_close(ws, CloseCode.METADATA_TIMEOUT, "no metadata")

    asyncio.run(main())


def test_session_ended_while_streaming_closes_4410(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import media_bridge.server as server

    monkeypatch.setattr(server, "MARK_AUDIO_EVERY_S", 0.05)
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            ws = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            await send_audio(ws, silence(0.2))
            await wait_for(
                lambda: (
                    store.query_one("SELECT status FROM sessions WHERE id = ?", (session_id,))["status"]
                    == "active"
                ),
                timeout=5,
            )
            store.conn.execute("UPDATE sessions SET status = 'ended' WHERE id = ?", (session_id,))
            await asyncio.sleep(0.1)
            await send_audio(ws, silence(0.2))
            await expect_close(ws, CloseCode.SESSION_ENDED, "has ended")

    asyncio.run(main())


def test_hang_up_mid_sentence_still_translates_it(store: Store, hello_en) -> None:
    """The customer's socket closes right after speech, before any end-of-speech silence."""
    session_id = make_session(store)

    async def main() -> None:
        async with running_bridge(store, PassthroughEngine(), CONFIG) as rb, aiohttp.ClientSession() as http:
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            await send_audio(customer, silence(0.2))
            await send_audio(customer, hello_en)
            await customer.close()
            audio, _ = decode_stream_audio(await next_json(agent, timeout=20))
            assert audio.size > 0.5 * hello_en.size
            await agent.close()

    asyncio.run(main())

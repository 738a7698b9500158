"""FreeSWITCH test double: a fake FreeSWITCH 1.10 + mod_audio_stream that speaks the real wire.

Built from the traces of a real FreeSWITCH 1.10.12 (tests/fixtures/freeswitch-1.10.12, summarised in
templates.json) so that code tested against it works against the real switch. Runs an asyncio
loop in a background thread; the controller under test runs as a real subprocess.

    from tests.fsdouble import FreeSwitchDouble

    with FreeSwitchDouble(conf_dir, controller_addr="127.0.0.1:8084", esl_password="ClueCon") as fs:
        fs.esl_port                                  # inbound ESL port (auth, api, bgapi, events)
        out = fs.place_call("sess_…", user="kg…", password="…", transport="tls",
                            codecs=("PCMU",), crypto=True, headers={"X-Kallglot-Role": "agent"},
                            source_ip="127.0.0.1", audio=Path("hello.wav"))
        out.code, out.reason, out.headers            # final SIP response (200, 403 + X-Call-Limit …)
        out.hangup_cause, out.uuid, out.codec, out.srtp, out.early_media, out.challenged
        out.hangup()                                 # caller BYE (CANCEL while ringing)
        out.wait_ended(5)                            # True once the call is over (either side)
        fs.calls[out.uuid]                           # Channel: variables, state, sip_headers
        fs.played_audio(out.uuid)                    # [Playback(file, audio, sample_rate, started,
                                                     #           ended, interrupted)]
        fs.stream(out.uuid)                          # AudioStream: frames_sent, texts_received, files
        fs.hangup(out.uuid)                          # far-end hangup by uuid
        await fs.aplace_call(...)                    # same, awaitable from an async test's loop
        fs.callees["+15550000486"] = 486             # far end of `originate` (answer/noanswer/code)
        fs.outcomes[uuid]                            # CallOutcome of any channel, originated too
        fs.api_sync("sofia profile kallglot rescan") # an api command's reply body
        fs.api_log                                   # every api/bgapi command received

``conf_dir`` is a FreeSWITCH XML tree (e.g. ``kallglot render --out DIR``): sofia profile
settings (bound transports, auth-calls, challenge-realm, apply-inbound-acl, codec prefs),
directory users (a1-hash, auth-acl, variables), ACL lists and dialplan contexts are read from it.
``controller_addr`` overrides where dialplan ``socket`` actions connect. ``profile_uptime``
pretends the sofia profile has been up that long (for the 10-second restart rule);
``profile_start_delay`` (default 1.8 s, as observed) is how long a started/restarted profile is
missing from ``sofia status`` while INVITEs get 503; a restart ends all the profile's calls.
See docs/esl-layer.md for the behaviour reproduced and its limits.
"""

from tests.fsdouble.callsim import CallOutcome, CallSpec
from tests.fsdouble.channel import Channel, Playback
from tests.fsdouble.switch import FreeSwitchDouble

__all__ = ["CallOutcome", "CallSpec", "Channel", "FreeSwitchDouble", "Playback"]

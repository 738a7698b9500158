"""``kallglot demo`` end to end: the translated two-party call with the real offline engine, its
failure message and exit status, and that no service outlives it (also after Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from controller.demo.procs import DemoError
from controller.demo.run import cli_run
from controller.demo.stack import DemoStack
from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getnframes() / w.getframerate()


def test_demo_translates_both_ways_and_ends_the_session(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALLGLOT_ENGINE", raising=False)  # the real ASR → MT → TTS engine
    out = tmp_path / "out"
    rc = cli_run(argparse.Namespace(out=str(out)), Settings())
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["final_status"] == "ended"
    assert {leg["sip_code"] for leg in summary["legs"].values()} == {200}
    turns = {t["speaker"]: t for t in summary["turns"]}
    assert turns["customer"]["language"] == "en"
    assert "address" in turns["customer"]["text"].lower()
    assert turns["customer"]["translation"]["language"] == "es"
    assert "entrega" in turns["customer"]["translation"]["text"].lower()
    assert turns["agent"]["language"] == "es"
    assert turns["agent"]["translation"]["language"] == "en"
    assert turns["agent"]["translation"]["text"].strip()
    # What each side heard is the other side's translated speech, as the double played it.
    for role in ("customer", "agent"):
        assert _wav_seconds(Path(summary["heard"][role])) > 1.0
    assert "407 Proxy Authentication Required" in printed.out
    assert f"session {summary['session_id']}: status ended" in printed.out


def test_demo_failure_exits_non_zero_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALLGLOT_ENGINE", "no-such-engine")
    rc = cli_run(argparse.Namespace(out=str(tmp_path / "out")), Settings())
    err = capsys.readouterr().err
    assert rc == 1
    assert "kallglot demo failed: `kallglot bridge` exited with status 2" in err
    assert "KALLGLOT_ENGINE" in err


def test_an_unusable_out_dir_is_a_clear_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli_run(argparse.Namespace(out=str(blocker / "out")), Settings()) == 1
    assert f"kallglot demo failed: cannot create --out {blocker / 'out'}" in capsys.readouterr().err


def test_the_demo_refuses_an_engine_that_does_not_translate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALLGLOT_ENGINE", "passthrough")
    rc = cli_run(argparse.Namespace(out=str(tmp_path / "out")), Settings())
    assert rc == 1
    assert "KALLGLOT_ENGINE=passthrough, which does not translate" in capsys.readouterr().err


def test_a_failed_start_leaves_no_process_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALLGLOT_ENGINE", "no-such-engine")
    stack = DemoStack(tmp_path)
    with pytest.raises(DemoError, match="bridge"), stack:
        pass
    assert stack.fs is None
    assert stack.services.services == []


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_every_service(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KALLGLOT_ENGINE"}
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "demo", "--out", str(tmp_path / "out")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once every service is up
        assert line.startswith("organization "), line + (proc.stderr.read() if proc.stderr else "")
        services = _children(proc.pid)
        assert len(services) == 3  # api, controller, bridge
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert "interrupted" in (proc.stderr.read() if proc.stderr else "")
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in services) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in services if _alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_outside_a_source_checkout_the_demo_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import controller
    from controller.demo.stack import load_double

    fake = tmp_path / "site-packages" / "controller" / "__init__.py"
    monkeypatch.setattr(controller, "__file__", str(fake))
    with pytest.raises(DemoError, match=r"tests/fsdouble.*source checkout"):
        load_double()


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    import io

    from controller.demo.progress import Progress

    stream = io.StringIO()
    progress = Progress(stream)
    progress.begin("loading models")
    progress.tick()
    progress.end("ready")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "… loading models"
    assert lines[1].startswith("  loading models: ready (") and "\r" not in stream.getvalue()


def test_the_agent_speaks_only_on_cue() -> None:
    from controller.demo.run import SpeakOnCue

    voice = SpeakOnCue(b"\x01\x02" * 400)
    assert voice(16000, 640) == b"\0" * 640
    voice.cue()
    assert voice(16000, 640) == b"\x01\x02" * 320
    assert voice(16000, 640) == (b"\x01\x02" * 80).ljust(640, b"\0")  # the rest, then silence
    assert voice(16000, 640) == b"\0" * 640


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one
def test_a_swallowed_ctrl_c_still_stops_the_demo() -> None:
    """A KeyboardInterrupt raised inside a finalizer is printed and dropped by Python; the next
    waiting step raises it again."""
    import gc

    from controller.demo import interrupt
    from controller.demo.procs import wait_until

    previous = interrupt.install()
    try:
        class Finalized:
            def __del__(self) -> None:
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in a finalizer

        Finalized()
        gc.collect()
        with pytest.raises(KeyboardInterrupt):
            wait_until("forever", lambda: False, 5)
        wait_until("once", lambda: True, 1)  # raised once: the demo's cleanup can go on
    finally:
        interrupt.restore(previous)

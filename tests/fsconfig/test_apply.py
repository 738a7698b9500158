"""Reply handling when sending a plan: FreeSWITCH's own reply texts (fixtures README item 13)."""

from __future__ import annotations

import pytest

from controller.fsconfig.apply import (
    ReloadCommandError,
    apply_commands,
    is_error_reply,
    restart_wait_seconds,
)

REFUSED = "Profile kallglot must be up for at least 10 seconds to stop/restart.\nPlease wait 8 seconds\n"


class FakeEsl:
    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies = replies
        self.sent: list[str] = []

    def api(self, cmd: str) -> str:
        self.sent.append(cmd)
        queue = self.replies[cmd]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def test_reply_classification() -> None:
    assert not is_error_reply("reloadxml", "+OK [Success]\n")
    assert not is_error_reply("sofia profile kallglot rescan", "Reload XML [Success]\n+OK scan complete\n")
    assert not is_error_reply("sofia profile kallglot restart", "Reload XML [Success]\nrestarting: kallglot")
    assert is_error_reply("reloadxml", "-ERR [Error parsing freeswitch.xml]\n")
    assert is_error_reply("sofia profile kallglot rescan", "Invalid Profile [kallglot]")
    assert is_error_reply("sofia profile kallglot start", "Failure starting kallglot\n")
    assert not is_error_reply("sofia profile kallglot killgw pcon_X", "-ERR no such gateway.\n")
    assert is_error_reply("sofia profile kallglot rescan",
                          "Reload XML [Error on line 12: unclosed tag <param>]\n+OK scan complete\n")
    assert is_error_reply("bogus_cmd", "-ERR bogus_cmd Command not found!\n")
    assert restart_wait_seconds(REFUSED) == 8.0
    assert restart_wait_seconds("Profile kallglot must be up for at least 10 seconds to stop/restart.\n"
                                "Please wait 1 second\n") == 1.0
    assert restart_wait_seconds("restarting: kallglot") is None


def test_restart_waits_then_succeeds_and_gives_up_after_the_bound() -> None:
    sleeps: list[float] = []
    esl = FakeEsl({"sofia profile kallglot restart": [REFUSED, REFUSED, "restarting: kallglot"]})
    result = apply_commands(esl, ["sofia profile kallglot restart"], sleep=sleeps.append)
    assert result.restart_waits == [8.0, 8.0] and sleeps == [9.0, 9.0]
    assert [r.reply for r in result.results] == ["restarting: kallglot"]
    esl = FakeEsl({"sofia profile kallglot restart": [REFUSED]})
    with pytest.raises(ReloadCommandError) as err:
        apply_commands(esl, ["sofia profile kallglot restart"], sleep=sleeps.append, max_restart_attempts=3)
    assert len(esl.sent) == 3 and err.value.reply == REFUSED


def test_start_of_a_running_profile_falls_back_to_restart() -> None:
    esl = FakeEsl({
        "reloadxml": ["+OK [Success]\n"],
        "sofia profile kallglot start": ["Failure starting kallglot\n"],
        "sofia profile kallglot restart": ["Reload XML [Success]\nrestarting: kallglot"],
    })
    result = apply_commands(esl, ["reloadxml", "sofia profile kallglot start"], sleep=lambda s: None)
    assert esl.sent == ["reloadxml", "sofia profile kallglot start", "sofia profile kallglot restart"]
    assert [r.command for r in result.results] == esl.sent


def test_missing_profile_is_started_instead_of_rescanned() -> None:
    esl = FakeEsl({
        "sofia profile kallglot killgw pcon_A": ["Invalid Profile [kallglot]"],
        "sofia profile kallglot start": ["kallglot started successfully\n"],
        "sofia profile kallglot rescan": ["Reload XML [Success]\n+OK scan complete\n"],
    })
    apply_commands(esl, ["sofia profile kallglot killgw pcon_A", "sofia profile kallglot rescan"],
                   sleep=lambda s: None)
    assert esl.sent == ["sofia profile kallglot killgw pcon_A", "sofia profile kallglot start"]


def test_err_stops_at_the_failing_command_with_what_was_done() -> None:
    esl = FakeEsl({"reloadxml": ["+OK [Success]\n"], "reloadacl": ["-ERR acl broken\n"],
                   "sofia profile kallglot rescan": ["+OK"]})
    with pytest.raises(ReloadCommandError) as err:
        apply_commands(esl, ["reloadxml", "reloadacl", "sofia profile kallglot rescan"])
    assert err.value.command == "reloadacl" and err.value.reply == "-ERR acl broken\n"
    assert [r.command for r in err.value.done] == ["reloadxml"]
    assert esl.sent == ["reloadxml", "reloadacl"]


def test_transport_failure_has_no_reply_but_a_reason() -> None:
    class Broken:
        def api(self, cmd: str) -> str:
            raise ConnectionResetError("peer closed")

    with pytest.raises(ReloadCommandError) as err:
        apply_commands(Broken(), ["reloadxml"])
    assert err.value.reply is None and "ConnectionResetError: peer closed" in str(err.value)

"""Run in child processes by the burst tests: admit calls from several threads on one DB file."""

from __future__ import annotations

import threading
from typing import Protocol

from controller.calls.admission import Admitted, admit
from controller.store import Store
from tests.calls.factories import sip_channel


class _Event(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


def admit_many(db_path: str, org_id: str, username: str, session_ids: list[str], go: _Event) -> list[int]:
    """Admit one call per session, one thread each, all released at once; returns SIP codes."""
    codes: list[int] = [0] * len(session_ids)
    ready = threading.Barrier(len(session_ids))

    def one(i: int) -> None:
        store = Store(db_path)  # own connection, like separate controller processes
        try:
            ready.wait()
            go.wait()
            result = admit(store, sip_channel(org_id, username, session_ids[i]))
            codes[i] = 200 if isinstance(result, Admitted) else result.sip_code
        finally:
            store.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(session_ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


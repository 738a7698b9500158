"""Names and contracts shared between the API process's parts (aiohttp app keys and ports).

The API owns sessions and settings; the call controller owns live calls; the config renderer
owns FreeSWITCH's files. They meet here so that none imports another's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from controller.settings import Settings
from controller.store import Store


class CallControl(Protocol):
    """Live-call actions the API needs; blocking (ESL round trips), so call from a worker thread."""

    def hangup(self, call_uuids: Sequence[str], cause: str = "NORMAL_CLEARING") -> list[str]:
        """Hang up these FreeSWITCH channels; returns the uuids FreeSWITCH actually hung up."""
        ...

    def originate(self, session_id: str, leg_id: str, role: str, to: str, gateway: str) -> str:
        """Place an outbound leg through ``gateway`` into the controller's socket; returns the
        FreeSWITCH call uuid (the leg row ``leg_id`` is already written with status ``dialing``)."""
        ...


# Called with the organization id after its SIP settings, connections or numbers change
# (the config renderer debounces these into one render + reload).
SettingsListener = Callable[[str], None]

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
CALL_CONTROL_KEY: web.AppKey[CallControl] = web.AppKey("call_control", CallControl)  # type: ignore[type-abstract]
SETTINGS_LISTENERS_KEY: web.AppKey[list[SettingsListener]] = web.AppKey("settings_listeners", list)

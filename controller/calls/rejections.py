"""Telling an organization about a call it did not get: ``call.rejected`` for its webhooks."""

from __future__ import annotations

import logging

from controller.calls.admission import Rejected
from controller.calls.channel import ChannelInfo
from controller.store import Store
from controller.webhooks.call_events import queue_call_rejected

log = logging.getLogger("kallglot.calls.rejections")


def emit_call_rejected(store: Store, channel: ChannelInfo | None, rejected: Rejected) -> None:
    """Queue ``call.rejected`` after the caller got its response. Calls tied to no organization
    (an unknown destination) have nobody to tell; a store failure is logged, never raised: the
    call is already refused and the log line has it."""
    if rejected.org_id is None:
        return
    try:
        with store.transaction() as conn:
            queue_call_rejected(
                conn, rejected.org_id, call_uuid=rejected.call_uuid, sip_code=rejected.sip_code,
                reason=rejected.reason, session_id=rejected.session_id,
                caller=channel.caller if channel else None,
                destination=channel.destination if channel else None,
                transport=channel.transport if channel else None,
                source_ip=channel.network_ip if channel else None,
            )
    except Exception:
        log.exception("call %s: call.rejected not queued", rejected.call_uuid)

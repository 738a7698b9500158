"""Request bodies of /v1/webhook_endpoints, as strict pydantic models (see controller/domain/requests.py)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, StringConstraints
from yarl import URL

from controller.domain.requests import StrictModel, optional
from controller.webhooks.outbox import EVENT_TYPES

EventType = Literal[
    "session.created", "session.started", "session.ended", "transcript.segment", "call.rejected"
]
assert get_args(EventType) == EVENT_TYPES, "keep EventType in step with outbox.EVENT_TYPES"

URL_MAX_LENGTH = 2048
MAX_PREVIOUS_SECRET_S = 7 * 86400


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host, without credentials; the address policy is applied
    later (controller/webhooks/ssrf.py), since it may need DNS."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in value):
        raise ValueError("must not contain spaces, control characters or backslashes")
    try:
        url = URL(value)
        port = url.explicit_port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if url.user is not None or url.password is not None or "@" in (url.raw_authority or ""):
        raise ValueError("must not contain credentials (user:password@)")
    host = url.raw_host or ""
    if not host:
        raise ValueError("must name a host")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    if host.replace(".", "").isdigit():
        # Legacy numeric IPv4 forms (2130706433, 127.1) would slip past a literal check.
        parts = host.split(".")
        if len(parts) != 4 or any(not p or (len(p) > 1 and p[0] == "0") or int(p) > 255 for p in parts):
            raise ValueError("an IPv4 host must be written as four decimal numbers (a.b.c.d)")
    return value


WebhookUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=URL_MAX_LENGTH), AfterValidator(check_url)
]


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("entries must not repeat")
    return values


EventList = Annotated[
    list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES)), AfterValidator(_unique)
]
Description = Annotated[str, StringConstraints(max_length=500)]


class WebhookEndpointCreate(StrictModel):
    url: WebhookUrl = Field(description="http(s) URL that receives the events")
    enabled_events: EventList = Field(description="Event types sent to this endpoint")
    description: Description | None = None


class WebhookEndpointUpdate(StrictModel):
    url: WebhookUrl | None = optional()
    enabled_events: EventList | None = optional()
    description: Description | None = optional(description="null clears it")
    status: Literal["enabled", "disabled"] | None = optional()


class RotateSecret(StrictModel):
    expire_previous_in_s: Annotated[int, Field(ge=0, le=MAX_PREVIOUS_SECRET_S)] = Field(
        default=0,
        description="Keep signing with the previous secret too for this many seconds (0: stop now)",
    )

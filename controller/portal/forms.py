"""HTML form fields → the API's request models, and validation failures → the API's messages.

The portal posts the same pydantic models the API parses (controller/domain/requests.py), so a
rule lives in one place and an error reads exactly as the API's envelope would put it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from controller.domain.errors import DomainError, from_validation_error

M = TypeVar("M", bound=BaseModel)

TRANSPORTS = ("tls", "tcp", "udp")
CODECS = ("OPUS", "G722", "PCMU", "PCMA")

# The API's param (without a list index) → the form field that holds it, for the error summary's links.
FIELD_IDS = {
    "allowed_transports": "transport_tls",
    "allowed_codecs": "codec_OPUS",
    "session_defaults.mode": "mode",
    "session_defaults.region": "region",
    "session_defaults.source_language": "source_language",
    "session_defaults.target_language": "target_language",
    "credentials": "account_sid",
    "credentials.account_sid": "account_sid",
    "credentials.auth_token": "auth_token",
    "credentials.api_key": "api_key",
    "sip": "sip_host",
    "sip.host": "sip_host",
    "sip.username": "sip_username",
    "sip.password": "sip_password",
}
SAME_NAME = frozenset({
    "ip_allowlist", "require_tls", "require_srtp", "max_concurrent_calls", "provider", "name",
    "inbound_addresses", "number", "connection_id",
})


@dataclass
class FormErrors:
    """Messages by API param (``ip_allowlist[1]``); the first is what the API would answer."""

    items: list[DomainError] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, exc: DomainError) -> None:
        self.items.append(exc)

    def for_param(self, prefix: str) -> list[str]:
        """Messages for a field and its elements (``ip_allowlist`` → ``ip_allowlist[2]`` too)."""
        return [
            e.message for e in self.items
            if e.param is not None and (e.param == prefix or e.param.startswith((prefix + "[", prefix + ".")))
        ]

    def indexed(self, prefix: str) -> list[tuple[int | None, str]]:
        """(line number, message) for a list field's elements: ``ip_allowlist[1]`` is line 2."""
        out: list[tuple[int | None, str]] = []
        for e in self.items:
            if e.param is None or not (e.param == prefix or e.param.startswith((prefix + "[", prefix + "."))):
                continue
            match = re.match(re.escape(prefix) + r"\[(\d+)\]$", e.param)
            out.append((int(match.group(1)) + 1 if match else None, e.message))
        return out

    def messages(self) -> list[str]:
        return [e.message for e in self.items]

    def summary(self) -> list[tuple[str | None, str]]:
        """(id of the form field to jump to, or None; message) for each error."""
        return [(field_id(e.param), e.message) for e in self.items]


def field_id(param: str | None) -> str | None:
    if param is None:
        return None
    base = re.sub(r"\[\d+\]$", "", param)
    return FIELD_IDS.get(base) or (base if base in SAME_NAME else None)


def validation_errors(exc: ValidationError) -> FormErrors:
    """Every pydantic error, each worded by the API's own ``from_validation_error``."""
    errors = FormErrors()
    for err in exc.errors(include_url=False):
        errors.add(from_validation_error(ValidationError.from_exception_data(exc.title, [err])))
    return errors


def validate(model: type[M], body: dict[str, Any]) -> tuple[M | None, FormErrors]:
    try:
        return model.model_validate(body), FormErrors()
    except ValidationError as exc:
        return None, validation_errors(exc)


def lines(text: str | None) -> list[str]:
    """A textarea, one entry per line; blank lines are ignored."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def checked(form: Mapping[str, Any], name: str) -> bool:
    return name in form


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def integer_or_text(raw: str) -> int | str:
    """Digits become an int; anything else goes on as text so the model refuses it in its words."""
    return int(raw) if raw.isdigit() else raw


def ordered_codecs(form: Mapping[str, Any]) -> list[tuple[str, bool, int]]:
    """(codec, allowed, position) for every codec, in the order the form gives (then the default)."""
    rows = []
    for index, codec in enumerate(CODECS):
        raw = text(form, f"codec_order_{codec}")
        position = int(raw) if raw.isdigit() else len(CODECS) + index + 1
        rows.append((position, index, codec, checked(form, f"codec_{codec}")))
    rows.sort()
    return [(codec, allowed, n + 1) for n, (_, _, codec, allowed) in enumerate(rows)]


def sip_settings_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The Configure SIP form as a full ``PATCH /v1/sip`` body."""
    return {
        "ip_allowlist": lines(text(form, "ip_allowlist")),
        "require_tls": checked(form, "require_tls"),
        "require_srtp": checked(form, "require_srtp"),
        "allowed_transports": [t for t in TRANSPORTS if checked(form, f"transport_{t}")],
        "allowed_codecs": [codec for codec, allowed, _ in ordered_codecs(form) if allowed],
        "session_defaults": {
            "mode": text(form, "mode"),
            "region": text(form, "region"),
            "source_language": text(form, "source_language"),
            "target_language": text(form, "target_language"),
        },
        "max_concurrent_calls": integer_or_text(text(form, "max_concurrent_calls")),
    }


def connection_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The Add Provider Connection form as a ``POST /v1/connections`` body."""
    provider = text(form, "provider")
    credentials: dict[str, str] = {}
    if provider == "twilio":
        credentials = {"account_sid": text(form, "account_sid"), "auth_token": text(form, "auth_token")}
    elif provider == "telnyx":
        credentials = {"api_key": text(form, "api_key")}
    body: dict[str, Any] = {
        "provider": provider,
        "name": text(form, "name"),
        "credentials": credentials,
        "inbound_addresses": lines(text(form, "inbound_addresses")),
        "is_default": checked(form, "is_default"),
    }
    sip = {name: text(form, f"sip_{name}") for name in ("host", "username", "password")}
    if any(sip.values()):  # an empty trunk section means "no gateway"
        body["sip"] = {**sip, "register": checked(form, "sip_register")}
    return body


def phone_number_body(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"number": text(form, "number"), "connection_id": text(form, "connection_id")}

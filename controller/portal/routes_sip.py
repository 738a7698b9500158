"""Telephony > SIP / PBX > Configure SIP: the toggle, credentials, IP allowlist, Advanced Settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.domain import sip_settings
from controller.domain.errors import DomainError
from controller.domain.languages import AUTO, ISO_639_1
from controller.domain.requests import SipSettingsUpdate
from controller.domain.sip_settings import SipSettings
from controller.portal import forms
from controller.portal.apply import apply_change
from controller.portal.base import (
    PREFIX,
    flash,
    in_thread,
    org_id,
    parent,
    redirect,
    render,
    settings,
    store,
    take_flash,
)

routes = web.RouteTableDef()
PAGE = PREFIX + "/telephony/sip"
LANGUAGES = (AUTO, *sorted(ISO_639_1))
MODES = ("bidirectional_translation", "assistive_translation")
REGIONS = ("eu", "us", "ap")


def _values(record: SipSettings) -> dict[str, Any]:
    """The form's fields as the store has them."""
    allowed = record.allowed_codecs
    order = allowed + [c for c in forms.CODECS if c not in allowed]
    return {
        "ip_allowlist": "\n".join(record.ip_allowlist),
        "require_tls": record.require_tls,
        "require_srtp": record.require_srtp,
        "transports": record.allowed_transports,
        "codecs": [(c, c in allowed, n + 1) for n, c in enumerate(order)],
        "mode": record.default_mode,
        "region": record.default_region,
        "source_language": record.default_source_language,
        "target_language": record.default_target_language,
        "max_concurrent_calls": str(record.max_concurrent_calls),
    }


def _posted_values(form: Any) -> dict[str, Any]:
    """The form's fields as the user sent them (shown again when something is refused)."""
    return {
        "ip_allowlist": forms.text(form, "ip_allowlist"),
        "require_tls": forms.checked(form, "require_tls"),
        "require_srtp": forms.checked(form, "require_srtp"),
        "transports": [t for t in forms.TRANSPORTS if forms.checked(form, f"transport_{t}")],
        "codecs": forms.ordered_codecs(form),
        "mode": forms.text(form, "mode"),
        "region": forms.text(form, "region"),
        "source_language": forms.text(form, "source_language"),
        "target_language": forms.text(form, "target_language"),
        "max_concurrent_calls": forms.text(form, "max_concurrent_calls"),
    }


def _page(request: web.Request, record: SipSettings, values: dict[str, Any], *, status: int = 200,
          errors: forms.FormErrors | None = None, password: str | None = None,
          flash_text: str | None = None) -> web.Response:
    return render(
        request, "sip.html", status=status, nav="sip", flash=flash_text, sip=record, values=values,
        errors=errors or forms.FormErrors(), password=password, languages=LANGUAGES, modes=MODES,
        regions=REGIONS, transports=forms.TRANSPORTS,
    )


async def _record(request: web.Request) -> SipSettings:
    return await in_thread(sip_settings.get_sip_settings, store(request), org_id(request))


@routes.get("/telephony/sip", name="sip")
async def page(request: web.Request) -> web.Response:
    record = await _record(request)
    return _page(request, record, _values(record), flash_text=await take_flash(request))


@routes.post("/telephony/sip/enabled", name="sip_enabled")
async def toggle(request: web.Request) -> web.Response:
    form = await request.post()
    enabled = forms.text(form, "enabled") == "true"
    org = org_id(request)
    await in_thread(sip_settings.update_sip_settings, store(request), org, SipSettingsUpdate(enabled=enabled))
    outcome = await apply_change(parent(request), org)
    await flash(request, f"SIP is {'enabled' if enabled else 'disabled'}. {outcome}")
    raise redirect(PAGE)


@routes.post("/telephony/sip", name="sip_save")
async def save(request: web.Request) -> web.Response:
    form = await request.post()
    body, errors = forms.validate(SipSettingsUpdate, forms.sip_settings_body(form))
    org = org_id(request)
    if body is not None:
        try:
            await in_thread(sip_settings.update_sip_settings, store(request), org, body)
        except DomainError as exc:
            errors.add(exc)
    if errors:  # nothing saved: the form comes back as sent, with the API's messages
        return _page(request, await _record(request), _posted_values(form), status=400, errors=errors)
    outcome = await apply_change(parent(request), org)
    await flash(request, f"Settings saved. {outcome}")
    raise redirect(PAGE)


@routes.post("/telephony/sip/password", name="sip_password")
async def regenerate(request: web.Request) -> web.Response:
    org = org_id(request)
    creds = await in_thread(
        sip_settings.regenerate_credentials, store(request), org, settings(request).sip_domain
    )
    outcome = await apply_change(parent(request), org)
    record = await _record(request)
    # Rendered here, not after a redirect: the only response that ever holds the password
    # (Cache-Control: no-store is set on every portal page).
    return _page(request, record, _values(record), password=creds.password,
                 flash_text=f"New password generated. {outcome}")

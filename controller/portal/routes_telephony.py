"""Telephony: provider connections, managed numbers, and the PBX snippets."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.domain import connections, phone_numbers
from controller.domain.errors import DomainError
from controller.domain.pagination import MAX_LIMIT, PageRequest
from controller.domain.requests import (
    ConnectionCreate,
    ConnectionUpdate,
    PhoneNumberCreate,
    PhoneNumberUpdate,
)
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
CONNECTIONS = PREFIX + "/telephony/connections"
NUMBERS = PREFIX + "/telephony/numbers"
PAGE = PageRequest(limit=MAX_LIMIT)


async def _connections(request: web.Request) -> list[connections.Connection]:
    items, _ = await in_thread(connections.list_connections, store(request), org_id(request), page=PAGE)
    return items


# ------------------------------------------------------------------------------- connections


def _connections_page(request: web.Request, items: list[connections.Connection], *, status: int = 200,
                      values: dict[str, Any] | None = None, errors: forms.FormErrors | None = None,
                      flash_text: str | None = None) -> web.Response:
    return render(request, "connections.html", status=status, nav="connections", flash=flash_text,
                  connections=[c.to_json() for c in items],  # to_json masks every secret
                  values=values or {"provider": "twilio"}, errors=errors or forms.FormErrors())


@routes.get("/telephony/connections", name="connections")
async def connections_page(request: web.Request) -> web.Response:
    return _connections_page(request, await _connections(request), flash_text=await take_flash(request))


@routes.post("/telephony/connections", name="connection_create")
async def connection_create(request: web.Request) -> web.Response:
    form = await request.post()
    body, errors = forms.validate(ConnectionCreate, forms.connection_body(form))
    org = org_id(request)
    created = None
    if body is not None:
        try:
            created = await in_thread(connections.create_connection, store(request), org, body)
        except DomainError as exc:
            errors.add(exc)
    if created is None:
        # Secrets are never sent back, even the ones just typed: the user types them again.
        values = {k: forms.text(form, k) for k in ("provider", "name", "account_sid", "inbound_addresses",
                                                   "sip_host", "sip_username")}
        values |= {"is_default": forms.checked(form, "is_default"),
                   "sip_register": forms.checked(form, "sip_register")}
        return _connections_page(request, await _connections(request), status=400, values=values,
                                 errors=errors)
    outcome = await apply_change(parent(request), org)
    await flash(request, f"Connection “{created.name}” added ({created.id}). {outcome}")
    raise redirect(CONNECTIONS)


_CONNECTION_ACTIONS: dict[str, tuple[ConnectionUpdate, str]] = {
    "default": (ConnectionUpdate(is_default=True), "is now the default connection"),
    "disable": (ConnectionUpdate(status="disabled"), "is disabled"),
    "enable": (ConnectionUpdate(status="active"), "is active again"),
}


@routes.post("/telephony/connections/{id}/{action:default|disable|enable}", name="connection_action")
async def connection_action(request: web.Request) -> web.Response:
    patch, said = _CONNECTION_ACTIONS[request.match_info["action"]]
    org = org_id(request)
    record = await in_thread(
        connections.update_connection, store(request), org, request.match_info["id"], patch
    )  # NotFound (404 page) for another organization's id
    outcome = await apply_change(parent(request), org)
    await flash(request, f"Connection “{record.name}” {said}. {outcome}")
    raise redirect(CONNECTIONS)


# ----------------------------------------------------------------------------- phone numbers


async def _numbers_page(
    request: web.Request, *, status: int = 200, values: dict[str, str] | None = None,
    errors: forms.FormErrors | None = None, flash_text: str | None = None,
) -> web.Response:
    items, _ = await in_thread(phone_numbers.list_phone_numbers, store(request), org_id(request), page=PAGE)
    cons = await _connections(request)
    return render(request, "numbers.html", status=status, nav="numbers", flash=flash_text,
                  numbers=[n.to_json() for n in items],
                  connections=[c.to_json() for c in cons if c.status == "active"],
                  names={c.id: c.name for c in cons},
                  values=values or {}, errors=errors or forms.FormErrors())


@routes.get("/telephony/numbers", name="numbers")
async def numbers_page(request: web.Request) -> web.Response:
    return await _numbers_page(request, flash_text=await take_flash(request))


@routes.post("/telephony/numbers", name="number_create")
async def number_create(request: web.Request) -> web.Response:
    form = await request.post()
    raw = forms.phone_number_body(form)
    body, errors = forms.validate(PhoneNumberCreate, raw)
    org = org_id(request)
    created = None
    if body is not None:
        try:
            created = await in_thread(phone_numbers.create_phone_number, store(request), org, body)
        except DomainError as exc:
            errors.add(exc)
    if created is None:
        return await _numbers_page(request, status=400, values=raw, errors=errors)
    outcome = await apply_change(parent(request), org)
    await flash(request, f"{created.number} added. {outcome}")
    raise redirect(NUMBERS)


@routes.post("/telephony/numbers/{id}/release", name="number_release")
async def number_release(request: web.Request) -> web.Response:
    org = org_id(request)
    record = await in_thread(
        phone_numbers.update_phone_number, store(request), org, request.match_info["id"],
        PhoneNumberUpdate(status="released"),
    )
    outcome = await apply_change(parent(request), org)
    await flash(request, f"{record.number} released. {outcome}")
    raise redirect(NUMBERS)


# ------------------------------------------------------------------------------ PBX snippets


@routes.get("/telephony/pbx", name="pbx")
async def pbx_page(request: web.Request) -> web.Response:
    snippets: dict[str, str] | None = None
    problem = None
    try:
        from controller.domain.pbx_snippets import snippets_for_org
    except ImportError:  # an older build without the snippet generator
        problem = "The PBX snippet generator is not part of this build."
    else:
        try:
            snippets = await in_thread(snippets_for_org, store(request), settings(request), org_id(request))
        except ValueError as exc:  # a stored value that cannot go into a snippet safely
            problem = str(exc)
    return render(request, "pbx.html", nav="pbx", snippets=snippets, problem=problem)

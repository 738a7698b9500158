"""Request bodies and query strings → validated values, or a 400 naming the field."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from controller.domain.errors import DomainError, from_validation_error
from controller.domain.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M], *, empty_ok: bool = False) -> M:
    raw = await request.read()
    if not raw:  # no body at all; whitespace alone is malformed JSON
        if not empty_ok:
            raise DomainError(400, "invalid_json", "The request body must be a JSON object")
        data: object = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DomainError(400, "invalid_json", f"Malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise DomainError(400, "invalid_json", "The request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise DomainError(
            400, "parameter_invalid", f"{name} must be an integer from {lo} to {hi}", param=name
        )
    return value


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise DomainError(400, "parameter_invalid", f"{name} must be one of {', '.join(choices)}", param=name)
    return raw


def page_request(request: web.Request) -> PageRequest:
    """``limit`` (1–100, default 20) and ``starting_after`` of a list endpoint."""
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return PageRequest(limit=limit, starting_after=request.query.get("starting_after"))

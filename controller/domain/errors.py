"""Errors the domain raises; the API turns them into its JSON error envelope."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


class DomainError(Exception):
    """A request the domain refuses: HTTP status, error type/code, message and offending field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.type = type


class NotFound(DomainError):
    """Unknown id, or an id that belongs to another organization (never reveal which)."""

    def __init__(self, what: str, ident: str, param: str | None = None) -> None:
        super().__init__(404, "resource_missing", f"No such {what}: {ident!r}", param=param)


def invalid(param: str, message: str, code: str = "parameter_invalid") -> DomainError:
    return DomainError(400, code, message, param=param)


def param_path(loc: Sequence[str | int], prefix: str = "") -> str:
    """``("inbound_addresses", 2)`` → ``inbound_addresses[2]``; ``("routing", "type")`` → ``routing.type``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation_error(exc: ValidationError, prefix: str = "") -> DomainError:
    """The first pydantic error as a 400 that names the field."""
    err = exc.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    param = param_path(loc, prefix) or None
    kind = err["type"]
    if kind == "extra_forbidden":
        return DomainError(400, "parameter_unknown", f"Unknown field: {param}", param=param)
    if kind == "missing":
        return DomainError(400, "parameter_missing", f"Missing required field: {param}", param=param)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    where = f"{param}: " if param else ""
    return DomainError(400, "parameter_invalid", f"Invalid {where}{msg}", param=param)

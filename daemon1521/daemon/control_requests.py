"""What a control-socket request may hold: one msgspec schema per command.

Anyone in the socket's group can write to it, so nothing in a request is
trusted: nesting is bounded before the decoder sees it (60,000 ``[`` would
otherwise exhaust the recursion limit), numbers are bounded by the schema, a
field of the wrong type or one no command takes is refused with its name,
and ``since`` must name a time the clock can represent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from daemon1521.schema import explain

MAX_DEPTH = 8
"""Nesting levels a request may have; every real one is flat."""
MAX_CALLS_LISTED = 1000
MAX_SPAN_DAYS = 36_500
"""The furthest back a ``since`` span may reach (about a century)."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPAN = re.compile(r"(\d{1,12})([smhd])")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
RequestId = Annotated[str, msgspec.Meta(max_length=64)] | int | None


class Envelope(msgspec.Struct, kw_only=True):
    """What every request has; other fields are the command's."""

    cmd: Annotated[str, msgspec.Meta(max_length=64)]
    id: RequestId = None


class Request(Envelope, forbid_unknown_fields=True, kw_only=True):
    """A command that takes no arguments (``status``, ``reload``, ``stats``)."""


class LineRequest(Request, kw_only=True):
    line: Name


class LineResetRequest(LineRequest, kw_only=True):
    force: bool = False


class CallsRequest(Request, kw_only=True):
    since: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_CALLS_LISTED)] = 100
    line: Name | None = None

    def __post_init__(self) -> None:
        if self.since is not None:
            since_time(self.since)


REQUESTS: dict[str, type[Envelope]] = {
    "status": Request,
    "stats": Request,
    "reload": Request,
    "line.busy": LineRequest,
    "line.free": LineRequest,
    "line.reset": LineResetRequest,
    "calls": CallsRequest,
}
"""The daemon's commands and their schemas."""


class BadRequest(ValueError):
    """A request refused before any handler runs; the message names the field."""


def since_time(value: str) -> datetime:
    """``since``: an ISO 8601 time or a span like ``2h``, as an aware time.

    Raises ValueError (naming ``since``) for anything else, including spans
    and times out of the calendar's range.
    """
    span = _SPAN.fullmatch(value)
    try:
        if span is not None:
            seconds = int(span[1]) * _UNITS[span[2]]
            if seconds > MAX_SPAN_DAYS * 86400:
                raise ValueError
            return datetime.now(UTC) - timedelta(seconds=seconds)
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo is not None else moment.astimezone()
        moment.astimezone(UTC)  # a time at the calendar's edge may not convert
        return moment
    except (ValueError, OverflowError):
        raise ValueError(
            f"since: {value!r} is not an ISO 8601 time or a span like 2h "
            f"(at most {MAX_SPAN_DAYS} days back)"
        ) from None


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in ``raw`` (strings skipped), without decoding it."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return min(raw.count(b"[") + raw.count(b"{"), MAX_DEPTH)
    depth = deepest = 0
    for byte in _STRING.sub(b'""', raw):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def parse_request(
    raw: bytes, schemas: dict[str, type[Envelope]] | None = None
) -> tuple[dict[str, Any], Envelope]:
    """Check one request line; the request as a dict (for the handler) and as checked.

    A command without a schema in ``schemas`` gets only the envelope's checks.
    Raises :class:`BadRequest`.
    """
    schemas = REQUESTS if schemas is None else schemas
    if nesting_depth(raw) > MAX_DEPTH:
        raise BadRequest(f"a request is nested too deeply (at most {MAX_DEPTH} levels)")
    envelope = _decode(raw, Envelope)
    schema = schemas.get(envelope.cmd)
    checked = _decode(raw, schema) if schema is not None else envelope
    request = _decode(raw, dict[str, Any])
    return request, checked


def _decode(raw: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        where, problem = explain(str(exc))
        if problem.startswith("unknown key"):
            problem = "no command takes this field here"
        if not where or where.startswith("["):
            if problem.startswith(("expected object", "object missing required field")):
                raise BadRequest('a request is a JSON object with a "cmd" string') from None
            raise BadRequest(problem) from None
        raise BadRequest(f"{where}: {problem}") from None
    except msgspec.DecodeError:
        raise BadRequest("a request is one JSON object per line") from None
    except RecursionError:  # bounded above; kept so no input can reach a traceback
        raise BadRequest("a request is nested too deeply") from None

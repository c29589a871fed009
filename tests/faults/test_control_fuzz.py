"""Property: no bytes on the control socket crash the request parser; each is a
checked request or a clean ``bad_request`` (issue 9, item 6)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.daemon.control_requests import (
    MAX_DEPTH,
    REQUESTS,
    BadRequest,
    CallsRequest,
    nesting_depth,
    parse_request,
)

_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_field = st.sampled_from(["cmd", "id", "line", "since", "limit", "force", "x", "$ne"])
_request = st.fixed_dictionaries(
    {"cmd": st.sampled_from([*REQUESTS, "echo", "", "x" * 100]) | _scalar},
    optional={name: _json for name in ("id", "line", "since", "limit", "force", "x")},
)


def _check(raw: bytes) -> None:
    try:
        request, checked = parse_request(raw)
    except BadRequest as exc:
        assert 0 < len(str(exc)) < 300
        return
    assert isinstance(request, dict) and request["cmd"] == checked.cmd
    schema = REQUESTS.get(checked.cmd)
    if schema is not None:
        assert type(checked) is schema
    if isinstance(checked, CallsRequest):
        assert 1 <= checked.limit <= 1000


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=400, deadline=None)
@given(_request)
def test_arbitrary_requests(request: dict[str, Any]) -> None:
    _check(json.dumps(request).encode())


@settings(max_examples=200, deadline=None)
@given(_json, st.integers(min_value=0, max_value=3000))
def test_arbitrary_json_and_nesting(value: Any, depth: int) -> None:
    _check(json.dumps(value).encode())
    _check(b"[" * depth + json.dumps(value).encode() + b"]" * depth)
    _check(b'{"cmd": "calls", "line": ' + b"[" * depth + b"1" + b"]" * depth + b"}")


@given(st.dictionaries(_field, _json, max_size=4))
def test_nesting_is_measured_outside_strings(value: dict[str, Any]) -> None:
    raw = json.dumps({"cmd": "[[[[[[[[[[{{{{{{{{", "v": value}).encode()
    assert nesting_depth(raw) <= max(MAX_DEPTH, _depth(value) + 1)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0

"""TOML files decoded into typed structures, with errors an operator can act on.

The config, the IVR settings, the firmware profiles, the telebank profiles and
the emulator's personalities are all TOML files that an operator may edit.
msgspec checks them against ``msgspec.Struct`` types (``forbid_unknown_fields``
refuses a misspelt key); this module is what they share around it: a bounded
read (``/dev/zero`` as a config must not eat memory), TOML errors and
over-deep nesting as one clear line, no NaN or infinity anywhere (TOML allows
them, no setting of ours means them), and msgspec's messages turned into
``FILE: dotted.key: problem``.
"""

from __future__ import annotations

import math
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

MAX_FILE_BYTES = 1 << 20
"""The largest settings file read; every real one is a few kilobytes."""

T = TypeVar("T")

_AT = re.compile(r"\s+- at `\$(?P<where>[^`]*)`$")
_AT_KEY = re.compile(r"\s+- at `key` in `\$(?P<where>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


class SchemaError(ValueError):
    """A settings file that cannot be used: where (file, dotted key) and what is wrong."""

    def __init__(self, path: Path | str | None, key: str, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.key = key
        self.problem = problem
        where = [str(self.path)] if self.path is not None else []
        if key:
            where.append(shown_key(key))
        super().__init__(": ".join([*where, problem]))


def read_toml(path: Path | str, *, limit: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """Parse a TOML file read with a size bound; every failure is a :class:`SchemaError`."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(limit + 1)
    except OSError as exc:
        raise SchemaError(path, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise SchemaError(path, "", f"larger than {limit} bytes; not a settings file?")
    return parse_toml(raw, path)


def parse_toml(raw: bytes | str, path: Path | str | None = None) -> dict[str, Any]:
    """Parse TOML text; NaN and infinities are refused with their key."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise SchemaError(path, "", f"not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise SchemaError(path, "", "contains a NUL byte; not a settings file?")
    try:
        data = tomllib.loads(text)
        refuse_non_finite(data, path)
    except SchemaError:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(path, "", f"not valid TOML: {exc}") from None
    except ValueError:  # Python's own limit on the digits of an integer
        raise SchemaError(path, "", "not valid TOML: a number with too many digits") from None
    except RecursionError:
        raise SchemaError(path, "", "arrays or tables nested too deeply") from None
    return data


def convert(
    data: Any,
    kind: type[T],
    *,
    path: Path | str | None = None,
    key: str = "",
    strict: bool = False,
) -> T:
    """Check and convert parsed TOML ``data`` to ``kind`` (a msgspec Struct or type).

    ``strict`` refuses what only looks like the type (``"3"`` for an
    integer, ``1`` for true); the message then shows the value written.
    """
    try:
        return msgspec.convert(data, kind, strict=strict, str_keys=True)
    except msgspec.ValidationError as exc:
        where, problem = explain(str(exc))
        if "[...]" in where:
            _blame_entry(data, kind, where, path=path, key=key, strict=strict)
        raise SchemaError(path, _join(key, where), _detail(problem, data, kind, where)) from None
    except RecursionError:
        raise SchemaError(path, key, "nested too deeply") from None


def _blame_entry(
    data: Any, kind: Any, where: str, *, path: Path | str | None, key: str, strict: bool
) -> None:
    """Find the entry of a table of any keys that msgspec only calls ``[...]``, and raise for it."""
    prefix = where.split("[...]", 1)[0]
    parts = prefix.split(".") if prefix else []
    table, table_kind = _value_at(data, parts), _type_at(kind, parts)
    if not isinstance(table, Mapping) or typing.get_origin(table_kind) not in (dict, Mapping):
        return
    item_kind = typing.get_args(table_kind)[1]
    for name, item in table.items():
        convert(item, item_kind, path=path, key=_join(key, _join(prefix, str(name))), strict=strict)


def load(path: Path | str, kind: type[T]) -> T:
    """Read and convert a TOML file in one step."""
    return convert(read_toml(path), kind, path=path)


def explain(message: str) -> tuple[str, str]:
    """msgspec's message as (dotted key, problem): ``$.a[0].b`` becomes ``a.0.b``."""
    where, key_problem = "", False
    match = _AT.search(message) or _AT_KEY.search(message)
    if match:
        where = match["where"]
        key_problem = match.re is _AT_KEY
        message = message[: match.start()]
    where = re.sub(r"\[(\d+)\]", r".\1", where).removeprefix(".")
    if unknown := _UNKNOWN.match(message):
        return _join(where, unknown["name"]), "unknown key (misspelt, or not a setting here)"
    if missing := _MISSING.match(message):
        return _join(where, missing["name"]), "missing (this key is required)"
    problem = message.replace("`", "")
    problem = problem[:1].lower() + problem[1:]
    return where, f"a key of this table: {problem}" if key_problem else problem


_MISSING_VALUE = object()


def _detail(problem: str, data: Any, kind: Any, where: str) -> str:
    """``problem`` with what the file holds there: the value, the allowed names, the known keys.

    It speaks TOML: a table, not an object; no null (TOML has none).
    """
    problem = problem.replace(" | null", "")
    problem = problem.replace("expected object", "expected table").replace(
        "got object", "got table"
    )
    if "[...]" in where:  # inside a table of any keys: msgspec does not say which
        return problem
    parts = where.split(".") if where else []
    if problem.startswith("unknown key"):
        fields = _field_names(_type_at(kind, parts[:-1]))
        return f"unknown key (known: {', '.join(fields)})" if fields else problem
    value = _value_at(data, parts)
    if value is _MISSING_VALUE:
        return problem
    if problem.startswith("invalid enum value"):
        options = _options(_type_at(kind, parts))
        if options:
            return f"expected one of {', '.join(map(repr, options))}, got {shown(value)}"
        return problem
    if problem.startswith("expected ") and ", got " in problem:
        return f"{problem} ({shown(value)})"
    if bound := _BOUND.match(problem):
        words, limit = _BOUND_WORDS[bound["op"]], bound["limit"]
        if not bound["length"]:
            return f"must be {words} {limit}, not {shown(value)}"
        if (words, limit) == ("at least", "1"):
            return "must not be empty"
        return f"must be {words} {limit} characters long, not {shown(value)}"
    if problem.startswith("expected "):
        return f"{problem}, got {shown(value)}"
    return problem


def shown_key(key: str, width: int = 200) -> str:
    """A dotted key for a message: as written, unless it would break the line or flood it."""
    return key if key.isprintable() and len(key) <= width else shown(key, width)


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for a message: one line, cut to ``width``, even for a 10,000-digit number."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"
    try:
        text = repr(value)
    except ValueError:  # holds an integer past Python's own digit limit
        return "a value too long to show"
    return text if len(text) <= width else text[: width - 3] + "..."


_BOUND = re.compile(r"^expected \w+ (?P<length>of length )?(?P<op>>=|<=|>|<) (?P<limit>\S+)$")
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _value_at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING_VALUE
    return data


def _type_at(kind: Any, parts: list[str]) -> Any:
    """The declared type at a dotted key of ``kind``, or None where it cannot be followed."""
    for part in parts:
        kind = _bare(kind)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            hints = typing.get_type_hints(kind, include_extras=True)
            kind = hints.get(part)
        elif typing.get_origin(kind) in (list, tuple) and part.isdigit():
            kind = typing.get_args(kind)[0]
        elif typing.get_origin(kind) in (dict, Mapping):
            kind = typing.get_args(kind)[1]
        else:
            return None
    return _bare(kind)


def _bare(kind: Any) -> Any:
    """``kind`` without ``Annotated`` and without ``None`` in a union."""
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if typing.get_origin(kind) in (typing.Union, type(int | None)) and len(options) == 1:
        return _bare(options[0])
    return kind


def _field_names(kind: Any) -> list[str]:
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return [field.encode_name for field in msgspec.structs.fields(kind)]
    return []


def _options(kind: Any) -> tuple[Any, ...]:
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()


def _join(prefix: str, key: str) -> str:
    return ".".join(part for part in (prefix, key) if part)


def refuse_non_finite(value: Any, path: Path | str | None = None, key: str = "") -> None:
    """Raise for the first NaN or infinity in ``value``: TOML allows them, no setting means them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError(path, key, f"{value} is not a usable number")
    if isinstance(value, Mapping):
        for name, item in value.items():
            refuse_non_finite(item, path, _join(key, str(name)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            refuse_non_finite(item, path, _join(key, str(index)))

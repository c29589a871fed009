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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

MAX_FILE_BYTES = 1 << 20
"""The largest settings file read; every real one is a few kilobytes."""

T = TypeVar("T")

_AT = re.compile(r"\s+- at `\$(?P<where>[^`]*)`$")
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
            where.append(key)
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
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(path, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise SchemaError(path, "", "arrays or tables nested too deeply") from None
    _refuse_non_finite(data, path, "")
    return data


def convert(data: Any, kind: type[T], *, path: Path | str | None = None, key: str = "") -> T:
    """Check and convert parsed TOML ``data`` to ``kind`` (a msgspec Struct or type)."""
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        where, problem = explain(str(exc))
        raise SchemaError(path, _join(key, where), problem) from None
    except RecursionError:
        raise SchemaError(path, key, "nested too deeply") from None


def load(path: Path | str, kind: type[T]) -> T:
    """Read and convert a TOML file in one step."""
    return convert(read_toml(path), kind, path=path)


def explain(message: str) -> tuple[str, str]:
    """msgspec's message as (dotted key, problem): ``$.a[0].b`` becomes ``a.0.b``."""
    where = ""
    match = _AT.search(message)
    if match:
        where = match["where"]
        message = message[: match.start()]
    where = re.sub(r"\[(\d+)\]", r".\1", where).removeprefix(".")
    if unknown := _UNKNOWN.match(message):
        return _join(where, unknown["name"]), "unknown key (misspelt, or not a setting here)"
    if missing := _MISSING.match(message):
        return _join(where, missing["name"]), "missing (this key is required)"
    problem = message.replace("`", "")
    return where, problem[:1].lower() + problem[1:]


def _join(prefix: str, key: str) -> str:
    return ".".join(part for part in (prefix, key) if part)


def _refuse_non_finite(value: Any, path: Path | str | None, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError(path, key, f"{value} is not a usable number")
    if isinstance(value, Mapping):
        for name, item in value.items():
            _refuse_non_finite(item, path, _join(key, str(name)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_non_finite(item, path, _join(key, str(index)))

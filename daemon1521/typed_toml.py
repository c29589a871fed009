"""TOML values checked against type hints, with messages that say what was expected.

The daemon's config and the firmware profiles both turn TOML tables into
frozen dataclasses, and both must tell an operator exactly which key holds
which wrong value. This module is the part they share: checking one value
against a field's type hint, converting where TOML and Python differ (arrays
become tuples, integers stand for floats), and naming a type in a message.

It knows no file. A bad value raises :class:`TomlValueError` with the dotted
key and the problem; each reader wraps that into its own error with the path.
What only one reader has (config paths, nested profile sections) comes in
through the ``special`` hook and the ``names`` table.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

UNHANDLED: Final = object()
"""What a ``special`` hook returns for a type it leaves to the common rules."""

Special = Callable[[Any, Any, str], Any]
"""A reader's own types: ``(type hint, value, key)`` -> converted value, or :data:`UNHANDLED`."""

_NAMES: Final[Mapping[Any, str]] = types.MappingProxyType(
    {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
)
_UNIONS = (typing.Union, types.UnionType)


class TomlValueError(ValueError):
    """A value that does not fit its type: the dotted key and what is wrong, no file yet."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def type_name(tp: Any, names: Mapping[Any, str] | None = None) -> str:
    """``tp`` as a message says it (``"a list of an integer"``); ``names`` adds a reader's types."""
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(type_name(a, names) for a in options)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0], names)}"
    if origin in (Mapping, dict):
        return f"a table of {type_name(typing.get_args(tp)[1], names)}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return "a table"
    if names and tp in names:
        return names[tp]
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def mismatch(
    tp: Any, value: Any, key: str, names: Mapping[Any, str] | None = None
) -> TomlValueError:
    """The error for ``value`` not being a ``tp`` (for hooks to raise the common wording)."""
    return TomlValueError(key, f"must be {type_name(tp, names)}, not {value!r}")


def convert(
    tp: Any,
    value: Any,
    key: str,
    *,
    special: Special | None = None,
    names: Mapping[Any, str] | None = None,
    mapping: Callable[[dict[str, Any]], Mapping[str, Any]] = dict,
) -> Any:
    """``value`` checked against the type hint ``tp`` and converted where TOML differs.

    Unions try each member in turn; tables of a ``Literal`` key type reject
    other names; ``mapping`` builds the converted tables (a reader may want
    them frozen). Types this module does not know pass unchecked, unless
    ``special`` claims them first.
    """
    if special is not None:
        done = special(tp, value, key)
        if done is not UNHANDLED:
            return done
    again = functools.partial(convert, special=special, names=names, mapping=mapping)
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        for option in typing.get_args(tp):
            if option is type(None):
                continue
            try:
                return again(option, value, key)
            except TomlValueError:
                continue
        raise mismatch(tp, value, key, names)
    ok: bool
    if origin is Literal:
        ok = value in typing.get_args(tp)
    elif origin is tuple:
        if isinstance(value, list):
            item = typing.get_args(tp)[0]
            return tuple(again(item, v, f"{key}[{i}]") for i, v in enumerate(value))
        ok = False
    elif origin in (Mapping, dict):
        if isinstance(value, dict):
            key_type, item = typing.get_args(tp)
            allowed = typing.get_args(key_type) if typing.get_origin(key_type) is Literal else None
            for name in value:
                if allowed is not None and name not in allowed:
                    raise TomlValueError(
                        f"{key}.{name}", f"unknown name, must be {type_name(key_type, names)}"
                    )
            return mapping({k: again(item, v, f"{key}.{k}") for k, v in value.items()})
        ok = False
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            ok = False
    else:
        ok = True
    if not ok:
        raise mismatch(tp, value, key, names)
    return value

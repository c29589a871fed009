"""The shared TOML value checker: conversions, the dotted keys and the wording of its errors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.typed_toml import UNHANDLED, TomlValueError, convert, mismatch, type_name


class Speed(enum.Enum):
    SLOW = "slow"
    FAST = 2


@dataclass(frozen=True)
class Section:
    rate: int = 8000


def problem(tp: Any, value: Any, key: str = "a.b", **options: Any) -> tuple[str, str]:
    with pytest.raises(TomlValueError) as caught:
        convert(tp, value, key, **options)
    return caught.value.key, caught.value.problem


@pytest.mark.parametrize(
    ("tp", "value", "expected"),
    [
        (int, 3, 3),
        (float, 3, 3.0),
        (bool, False, False),
        (str, "", ""),
        (Literal["a", "b"], "b", "b"),
        (tuple[int, ...], [1, 2], (1, 2)),
        (Mapping[str, float], {"x": 1}, {"x": 1.0}),
        (int | None, 4, 4),
        (Speed, 2, Speed.FAST),
        (object, ["anything"], ["anything"]),
    ],
)
def test_values_that_fit_come_back_converted(tp: Any, value: Any, expected: Any) -> None:
    result = convert(tp, value, "k")
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("tp", "value", "key", "message"),
    [
        (int, True, "a.b", "must be an integer, not True"),
        (float, "1.5", "a.b", "must be a number, not '1.5'"),
        (bool, 1, "a.b", "must be true or false, not 1"),
        (str, 5, "a.b", "must be a string, not 5"),
        (Literal["in", "out"], "up", "a.b", "must be one of 'in', 'out', not 'up'"),
        (tuple[int, ...], [1, "x"], "a.b[1]", "must be an integer, not 'x'"),
        (tuple[str, ...], "x", "a.b", "must be a list of a string, not 'x'"),
        (Mapping[str, int], {"n": 1.5}, "a.b.n", "must be an integer, not 1.5"),
        (Mapping[Literal["u8"], int], {"opus": 1}, "a.b.opus", "unknown name, must be one of 'u8'"),
        (str | None, 3, "a.b", "must be a string, not 3"),
        (int | str, 1.5, "a.b", "must be an integer or a string, not 1.5"),
        (Speed, "medium", "a.b", "must be one of 'slow', 2, not 'medium'"),
    ],
)
def test_misfits_name_the_key_and_what_was_expected(
    tp: Any, value: Any, key: str, message: str
) -> None:
    assert problem(tp, value) == (key, message)


def test_the_error_reads_key_then_problem() -> None:
    error = TomlValueError("lines.l1.rings", "must be an integer, not 'two'")
    assert str(error) == "lines.l1.rings: must be an integer, not 'two'"
    assert isinstance(error, ValueError)


def test_type_names_nest_and_take_a_readers_own_names() -> None:
    own = MappingProxyType({Path: "a path"})
    assert type_name(tuple[Mapping[str, bool], ...]) == "a list of a table of true or false"
    assert type_name(Section) == "a table"
    assert type_name(Path | None, own) == "a path"
    assert type_name(tuple[Path, ...], own) == "a list of a path"
    assert type_name(Path) == "Path"


def test_a_special_hook_claims_its_types_and_leaves_the_rest() -> None:
    own = MappingProxyType({Path: "a path"})
    seen: list[Any] = []

    def paths(tp: Any, value: Any, key: str) -> Any:
        seen.append(tp)
        if tp is not Path:
            return UNHANDLED
        if isinstance(value, str) and value:
            return Path(value)
        raise mismatch(tp, value, key, own)

    options: dict[str, Any] = {"special": paths, "names": own}
    assert convert(tuple[Path, ...], ["/a", "b"], "k", **options) == (Path("/a"), Path("b"))
    assert seen == [tuple[Path, ...], Path, Path]
    assert convert(Path | None, "/x", "k", **options) == Path("/x")
    assert convert(int, 3, "k", **options) == 3
    assert problem(Path | None, "", **options) == ("a.b", "must be a path, not ''")
    assert problem(tuple[Path, ...], ["/a", 7], **options) == ("a.b[1]", "must be a path, not 7")


def test_tables_are_built_by_the_mapping_factory() -> None:
    frozen = convert(Mapping[str, int], {"a": 1}, "k", mapping=MappingProxyType)
    assert isinstance(frozen, MappingProxyType)
    assert dict(frozen) == {"a": 1}
    nested = convert(tuple[Mapping[str, int], ...], [{"a": 1}], "k", mapping=MappingProxyType)
    assert isinstance(nested[0], MappingProxyType)


@given(st.integers() | st.floats(allow_nan=False) | st.booleans() | st.text())
def test_numbers_accept_exactly_the_toml_numbers(value: Any) -> None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number:
        assert convert(float, value, "k") == float(value)
    else:
        assert problem(float, value, "k") == ("k", f"must be a number, not {value!r}")

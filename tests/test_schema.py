"""The shared TOML reader: bounded, typed, and errors naming file, key and problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.schema import MAX_FILE_BYTES, SchemaError, convert, explain, load, parse_toml


class Inner(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    rate: float = 1.0
    names: tuple[str, ...] = ()


class Outer(msgspec.Struct, forbid_unknown_fields=True):
    port: str
    inner: Inner = Inner()
    lines: tuple[Inner, ...] = ()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_a_good_file_converts(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = "/dev/ttyACM0"\n[inner]\nrate = 2\nnames = ["a"]\n')
    assert load(path, Outer) == Outer("/dev/ttyACM0", Inner(2.0, ("a",)))


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("port = 1\n", "port", "expected str, got int"),
        ('port = "x"\n[inner]\nrat = 2\n', "inner.rat", "unknown key"),
        ("[inner]\nrate = 2\n", "port", "missing"),
        ('port = "x"\n[[lines]]\nrate = "fast"\n', "lines.0.rate", "expected float, got str"),
        ('port = "x"\n[inner]\nrate = nan\n', "inner.rate", "not a usable number"),
        ('port = "x"\n[inner]\nrate = -inf\n', "inner.rate", "not a usable number"),
    ],
)
def test_errors_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SchemaError) as caught:
        load(path, Outer)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(SchemaError, match="larger than"):
        load(path, Outer)


def test_dev_zero_is_refused_at_once() -> None:
    with pytest.raises(SchemaError, match=r"larger than|NUL"):
        load("/dev/zero", Outer)


def test_deep_nesting_is_one_clear_error() -> None:
    with pytest.raises(SchemaError, match=r"nested too deeply|not valid TOML"):
        parse_toml("a = " + "[" * 100_000 + "]" * 100_000)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read"):
        load(tmp_path / "absent.toml", Outer)
    with pytest.raises(SchemaError, match=r"not valid TOML.*line 1"):
        load(write(tmp_path, "port = \n"), Outer)
    with pytest.raises(SchemaError, match="not UTF-8"):
        parse_toml(b"port = '\xff'")


def test_convert_prefixes_a_key() -> None:
    with pytest.raises(SchemaError) as caught:
        convert({"rate": "x"}, Inner, key="lines.main")
    assert caught.value.key == "lines.main.rate"


@given(st.text(max_size=200))
def test_any_text_is_parsed_or_refused_with_a_schema_error(text: str) -> None:
    try:
        convert(parse_toml(text), Outer)
    except SchemaError as exc:
        assert str(exc)


def test_explain_keeps_messages_without_a_place() -> None:
    assert explain("Expected `object`, got `int`") == ("", "expected object, got int")


class Tables(msgspec.Struct, forbid_unknown_fields=True):
    by_name: dict[str, Inner] = {}
    by_number: dict[int, float] = {}


def test_an_entry_of_a_table_of_any_keys_is_named() -> None:
    with pytest.raises(SchemaError) as caught:
        convert({"by_name": {"a": {}, "fast": {"rate": "x"}}}, Tables, strict=True)
    assert caught.value.key == "by_name.fast.rate"
    assert caught.value.problem == "expected float, got str ('x')"
    with pytest.raises(SchemaError) as caught:
        convert({"by_number": {"one": 1.0}}, Tables)
    assert caught.value.key == "by_number"
    assert caught.value.problem.startswith("a key of this table: expected int")


def test_messages_say_the_value_the_names_and_the_known_keys() -> None:
    class Choice(msgspec.Struct, forbid_unknown_fields=True):
        unit: Literal["rial", "toman"] = "rial"
        tries: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
        name: Annotated[str, msgspec.Meta(min_length=1)] = "x"

    cases = [
        ({"unit": "dollar"}, "unit", "expected one of 'rial', 'toman', got 'dollar'"),
        ({"tries": 0}, "tries", "must be at least 1, not 0"),
        ({"tries": 2**100}, "tries", "must be at most 10, not a 101-bit number"),
        ({"tries": "3"}, "tries", "expected int, got str ('3')"),
        ({"name": ""}, "name", "must not be empty"),
        ({"nmae": "y"}, "nmae", "unknown key (known: unit, tries, name)"),
    ]
    for data, key, problem in cases:
        with pytest.raises(SchemaError) as caught:
            convert(data, Choice, strict=True)
        assert (caught.value.key, caught.value.problem) == (key, problem)


def test_strict_refuses_what_only_looks_like_the_type() -> None:
    assert convert({"rate": "2.5"}, Inner).rate == 2.5
    with pytest.raises(SchemaError, match=r"rate: expected float, got str \('2.5'\)"):
        convert({"rate": "2.5"}, Inner, strict=True)


def test_nan_deep_inside_arrays_is_found_with_its_place() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_toml("a = " + "[" * 300 + "nan" + "]" * 300)
    assert caught.value.key == "a" + ".0" * 300
    assert caught.value.problem == "nan is not a usable number"
    assert len(str(caught.value)) < 300

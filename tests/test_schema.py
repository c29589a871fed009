"""The shared TOML reader: bounded, typed, and errors naming file, key and problem."""

from __future__ import annotations

from pathlib import Path

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

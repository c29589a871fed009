"""Issue 9: the config reader under arbitrary input.

Whatever the file holds (TOML-ish text, or any values under the keys the
daemon knows), loading it gives a config or one :class:`ConfigError`
naming the file: never another exception, never a traceback from ``config
check``. Hypothesis found, among others, a 5,000-digit integer (Python's
own conversion limit) and a 10,000-bit one in a message.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon1521.cli import main
from daemon1521.config import SECTIONS, Config, ConfigError, load_config

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def toml_value(value: Any) -> str:
    """``value`` written as TOML (inline tables and arrays for the nested ones)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return hex(value) if value >= 0 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**14000),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", "/dev/ttyS0", "/dev/../dev/ttyS0", "auto", "toman", "debug", "9", "#"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
sections = st.sampled_from(sorted(SECTIONS))


@st.composite
def known_key_files(draw: st.DrawFn) -> str:
    """A file of the daemon's own tables and keys, holding arbitrary values."""
    parts = []
    for section in draw(st.lists(sections, unique=True, max_size=4)):
        keys = st.sampled_from(SECTIONS[section]) if SECTIONS[section] else st.text(max_size=8)
        table = draw(st.dictionaries(keys, values, max_size=4))
        if section == "lines":
            name = draw(st.sampled_from(["l1", "line.2", "bad name", ""]))
            header = f"[lines.{json.dumps(name)}]"
        else:
            header = f"[{section}]"
        parts.append(header + "\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
    return "".join(parts)


tomlish = st.lists(
    st.one_of(
        st.sampled_from(
            ["[", "]", "[[", "]]", "=", '"', "'", ".", ",", "{", "}", "\n", "#", " ", "nan"]
        ),
        st.sampled_from([f"[{s}]" for s in SECTIONS] + [k for ks in SECTIONS.values() for k in ks]),
        st.text(max_size=6),
    ),
    max_size=40,
).map("".join)


def load(text: str) -> Config | ConfigError:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "daemon1521.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_config(path, require_lines=False)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: "), message
            assert "\n" not in message and len(message) < 1000, message
            return exc


@FUZZ
@given(tomlish)
def test_any_tomlish_text_is_a_config_or_one_config_error(text: str) -> None:
    load(text)


@FUZZ
@given(known_key_files())
def test_any_values_under_known_keys_are_a_config_or_one_config_error(text: str) -> None:
    outcome = load(text)
    if isinstance(outcome, Config):
        assert all(math.isfinite(v) for v in (outcome.drain_timeout, outcome.ivr.max_call_seconds))


@settings(max_examples=25, deadline=None)
@given(known_key_files())
def test_config_check_never_shows_a_traceback(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "daemon1521.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_numbers_past_pythons_digit_limit_are_one_config_error() -> None:
    decimal = load("[ivr]\ntries = " + "1" * 5000 + "\n")
    assert isinstance(decimal, ConfigError)
    assert decimal.problem == "not valid TOML: a number with too many digits"
    binary = load("[ivr]\ntries = 0x" + "f" * 5000 + "\n")
    assert isinstance(binary, ConfigError)
    assert binary.key == "ivr.tries"
    assert binary.problem == "must be at most 10, not a 20000-bit number"
    nested = load("[ivr]\ntries = [0x" + "f" * 5000 + "]\n")
    assert isinstance(nested, ConfigError)
    assert nested.problem == "expected int, got array (a value too long to show)"

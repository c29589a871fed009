"""Personality files under hostile edits: a personality, or one error naming file and key."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.emulator.modem import PersonalityError, load_personality, parse_personality
from daemon1521.emulator.modem.personality import PERSONALITY_DIR, available_personalities

SHIPPED = (PERSONALITY_DIR / "usr-5637.toml").read_text(encoding="utf-8")
ASSIGNMENT = re.compile(r"^(?P<key>[\w\"+.-]+) = .*$", re.MULTILINE)
KEYS = [match.start() for match in ASSIGNMENT.finditer(SHIPPED)]

values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 300), st.text(max_size=5)), max_size=4),
)


def toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def test_every_shipped_personality_loads() -> None:
    for name in available_personalities():
        assert load_personality(name).name == name


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KEYS), values)
def test_any_value_for_any_key_is_a_personality_or_one_error(start: int, value: object) -> None:
    end = SHIPPED.index("\n", start)
    key = SHIPPED[start:end].split(" = ", 1)[0]
    text = SHIPPED[:start] + f"{key} = {toml(value)}" + SHIPPED[end:]
    try:
        parse_personality(text, "edited.toml")
    except PersonalityError as exc:
        message = str(exc)
        assert message.startswith("edited.toml: "), message
        assert "\n" not in message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("0 = [0, 0, 255]", "zero = [0, 0, 255]", "s_registers: a key of this table"),
        ("11 = [70, 50, 255]", "11 = [70, 50]", "s_registers.11: expected array of at least"),
        ("rates = [8000] }", "rates = [] }", "voice.codecs.2.rates: must not be empty"),
        ('events = "bdsquo"', 'events = "bdsquZ"', "voice.events: unknown codes 'Z'"),
        ('order = ["DATE", "TIME"', 'order = ["DATE", "TIMES"', "caller_id.order.1: expected"),
        ('atz = "keep"', 'atz = "never"', "parameters.+VCID.atz: expected one of 'reset', 'keep'"),
        ("tx_buffer = 1024", "tx_buffer = 100", "voice.tx_buffer: must be at least 320, not 100"),
    ],
)
def test_mistakes_name_the_key(old: str, new: str, message: str) -> None:
    assert old in SHIPPED
    with pytest.raises(PersonalityError) as caught:
        parse_personality(SHIPPED.replace(old, new, 1), "test.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("test.toml: ")


def test_a_personality_file_is_read_with_a_bound() -> None:
    with pytest.raises(PersonalityError, match=r"^/dev/zero: not a regular file$"):
        load_personality("/dev/zero")

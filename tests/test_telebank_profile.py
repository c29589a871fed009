"""Telebank profiles: the shipped one, and bad ones refused by file, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon1521.config import ConfigError, parse_config
from daemon1521.schema import SchemaError
from daemon1521.telebank.profile import load_profile, shipped_profiles

GOOD = """
name = "Test bank"
[dial]
number = "5550100"
[[navigate]]
wait = 2.0
send = "3"
[[navigate]]
send = "{bill_id}#"
"""


def test_parsian_is_shipped_and_says_it_is_assumed():
    assert "parsian" in shipped_profiles()
    profile = load_profile()
    assert profile.assumed
    text = (
        Path(__file__)
        .parents[1]
        .joinpath("daemon1521", "telebank", "profiles", "parsian.toml")
        .read_text()
    )
    assert "ASSUMED CONTRACT" in text and "Before going live" in text
    assert profile.card.digits == 16 and profile.card.confirm_key == "1"
    assert profile.pin.end_key == "#"
    assert profile.end.machine_result and profile.end.result.codes["0"] == "paid"
    sends = [step.send for step in profile.navigate]
    assert "{bill_id}#" in sends and "{payment_id}#" in sends


def test_variables_are_filled_in():
    profile = load_profile()
    step = next(s for s in profile.navigate if "bill_id" in s.send)
    assert profile.keys_for(step, "0000001230452", "1770160") == "0000001230452#"


def test_an_operator_file_loads(tmp_path: Path):
    path = tmp_path / "bank.toml"
    path.write_text(GOOD)
    profile = load_profile(path)
    assert profile.name == "Test bank" and profile.path == str(path)
    assert profile.dial.attempts == 3


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (("5550100", "555-0100"), "dial.number", "'555-0100'"),
        (('send = "3"', 'send = "3{amount}"'), "navigate.0.send", "{amount}"),
        (('send = "3"', 'send = "3x"'), "navigate.0.send", "'3x'"),
        (("wait = 2.0", "wait = -1.0"), "navigate.0.wait", "-1.0"),
        (("[dial]", '[card]\nconfirm_key = "12"\n[dial]'), "card.confirm_key", "'12'"),
        (("[dial]", "[card]\ndigits = 19\n[dial]"), "card.digits", "19"),
        (("[dial]", '[pin]\nend_key = "5"\n[dial]'), "pin.end_key", "'5'"),
        (("[dial]", "[dial]\nattempts = 0"), "dial.attempts", "0"),
        (("[dial]", "[dial]\nanswer_timeout = 0"), "dial.answer_timeout", "0"),
        (("[dial]", '[end.result]\nstart = "1"\n[dial]'), "end.result.start", "'1'"),
        (("[dial]", '[end.result.codes]\n"4" = "maybe"\n[dial]'), "end.result.codes.4", "maybe"),
        (("[dial]", '[dial]\nnumbr = "1"'), "dial.numbr", "unknown key"),
        (('name = "Test bank"', ""), "name", "missing"),
    ],
)
def test_bad_profiles_name_file_key_and_value(
    tmp_path: Path, change: tuple[str, str], key: str, words: str
):
    path = tmp_path / "bank.toml"
    path.write_text(GOOD.replace(*change, 1))
    with pytest.raises(SchemaError) as info:
        load_profile(path)
    assert info.value.key == key
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert words in str(info.value)


def test_config_selects_and_checks_the_profile(tmp_path: Path):
    assert parse_config({}, require_lines=False).telebank.profile == "parsian"
    path = tmp_path / "bank.toml"
    path.write_text(GOOD)
    config = parse_config({"telebank": {"profile": str(path)}}, require_lines=False)
    assert config.telebank.profile == str(path)
    path.write_text(GOOD.replace("5550100", "call-me"))
    with pytest.raises(ConfigError) as info:
        parse_config({"telebank": {"profile": str(path)}}, require_lines=False)
    assert "telebank.profile" in str(info.value) and "dial.number" in str(info.value)
    with pytest.raises(ConfigError, match="no shipped profile 'nope'"):
        parse_config({"telebank": {"profile": "nope"}}, require_lines=False)
    with pytest.raises(ConfigError, match=r"telebank\.colour"):
        parse_config({"telebank": {"colour": "red"}}, require_lines=False)
    # a disabled bank leg does not need a loadable profile
    off = parse_config({"telebank": {"enabled": False, "profile": "nope"}}, require_lines=False)
    assert not off.telebank.enabled

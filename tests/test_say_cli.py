"""``daemon1521 say``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from daemon1521.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["say", *args])


def test_amount():
    result = run("1234567")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "words:   یک میلیون و دویست و سی و چهار هزار و پانصد و شصت و هفت ریال"
    assert lines[1] == "prompts: n1 million_o n200_o n30_o n4 thousand_o n500_o n60_o n7 rial"


@pytest.mark.parametrize("written", ["1,234,567", "1_234_567", "۱٬۲۳۴٬۵۶۷", "۱۲۳۴۵۶۷"])
def test_written_forms(written: str):
    data = json.loads(run(written, "--json").output)
    assert data["rials"] == 1_234_567


def test_json_toman_and_formal():
    data = json.loads(run("1100000", "--unit", "toman", "--formal", "--json").output)
    assert data == {
        "ok": True,
        "rials": 1_100_000,
        "unit": "toman",
        "value": 110_000,
        "formal": True,
        "words": "یکصد و ده هزار تومان",
        "prompts": ["n100_formal_o", "n10", "thousand", "toman"],
    }


def test_colloquial_by_default():
    data = json.loads(run("1100", "--json").output)
    assert data["words"] == "هزار و صد ریال"


def test_toman_remainder_spoken_in_rials():
    result = run("1000005", "--unit", "toman")
    assert result.exit_code == 0
    assert "یک میلیون و پنج ریال" in result.output
    assert "not a whole number of tomans" in result.output
    assert json.loads(run("1000005", "--unit", "toman", "--json").output)["unit"] == "rial"


def test_digits_with_groups():
    result = run("6221061234567891", "--digits", "--groups", "4,4,4,4", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["prompts"].count("pause") == 3
    assert data["words"].startswith("شش دو دو یک، صفر شش")


def test_digits_keep_leading_zeros():
    data = json.loads(run("0000001230452", "--digits", "--json").output)
    assert data["prompts"][:6] == ["d0"] * 6


@pytest.mark.parametrize(
    "args",
    [
        ["100000000000"],
        ["99999999001"],
        ["12a"],
        ["--", "-5"],
        ["1.5"],
        ["12", "--groups", "1,1"],
        ["1234", "--digits", "--groups", "2,1"],
        ["1234", "--digits", "--groups", "two"],
        ["12-34", "--digits"],
    ],
)
def test_invalid_input_exits_1(args: list[str]):
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    data = json.loads(run(*args, "--json").output) if "--" not in args else None
    if data is not None:
        assert data["ok"] is False and data["error"]


def test_largest_amount():
    result = run("99,999,999,000")
    assert result.exit_code == 0
    assert "نود و نه میلیارد" in result.output


def test_help_documents_exit_codes():
    result = run("--help")
    assert result.exit_code == 0
    assert "Exit status" in result.output and "1  NUMBER" in result.output

"""Spoken Persian amounts and digit strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.audio.say_fa import (
    MAX_AMOUNT,
    NUMBER_PROMPTS,
    PAUSE,
    say_amount,
    say_digits,
    spoken_unit,
    words_amount,
    words_digits,
)

CASES = [
    (0, "صفر ریال", ["n0", "rial"]),
    (100, "صد ریال", ["n100", "rial"]),
    (1000, "هزار ریال", ["thousand", "rial"]),
    (1001, "هزار و یک ریال", ["thousand_o", "n1", "rial"]),
    (21, "بیست و یک ریال", ["n20_o", "n1", "rial"]),
    (15, "پانزده ریال", ["n15", "rial"]),
    (100_000, "صد هزار ریال", ["n100", "thousand", "rial"]),
    (101_000, "صد و یک هزار ریال", ["n100_o", "n1", "thousand", "rial"]),
    (1_000_005, "یک میلیون و پنج ریال", ["n1", "million_o", "n5", "rial"]),
    (2_000_500, "دو میلیون و پانصد ریال", ["n2", "million_o", "n500", "rial"]),
    (
        1_234_567,
        "یک میلیون و دویست و سی و چهار هزار و پانصد و شصت و هفت ریال",
        ["n1", "million_o", "n200_o", "n30_o", "n4", "thousand_o", "n500_o", "n60_o", "n7", "rial"],
    ),
    (5_000_000_000, "پنج میلیارد ریال", ["n5", "billion", "rial"]),
    (1_000_001_000, "یک میلیارد و هزار ریال", ["n1", "billion_o", "thousand", "rial"]),
    (
        99_999_999_000,
        "نود و نه میلیارد و نهصد و نود و نه میلیون و نهصد و نود و نه هزار ریال",
        [
            "n90_o", "n9", "billion_o", "n900_o", "n90_o", "n9", "million_o",
            "n900_o", "n90_o", "n9", "thousand", "rial",
        ],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("rials", "words", "prompts"), CASES)
def test_amounts(rials: int, words: str, prompts: list[str]):
    assert words_amount(rials) == words
    assert say_amount(rials) == prompts


@pytest.mark.parametrize(
    ("rials", "formal_hundred", "formal_thousand", "words", "prompts"),
    [
        (100, True, False, "یکصد ریال", ["n100_formal", "rial"]),
        (1100, True, False, "هزار و یکصد ریال", ["thousand_o", "n100_formal", "rial"]),
        (1000, False, True, "یک هزار ریال", ["n1", "thousand", "rial"]),
        (1100, True, True, "یک هزار و یکصد ریال", ["n1", "thousand_o", "n100_formal", "rial"]),
        (100_000, True, True, "یکصد هزار ریال", ["n100_formal", "thousand", "rial"]),
        (
            1_001_000,
            False,
            True,
            "یک میلیون و یک هزار ریال",
            ["n1", "million_o", "n1", "thousand", "rial"],
        ),
        (1_001_000, False, False, "یک میلیون و هزار ریال", ["n1", "million_o", "thousand", "rial"]),
        (200, True, True, "دویست ریال", ["n200", "rial"]),
        (150, True, False, "یکصد و پنجاه ریال", ["n100_formal_o", "n50", "rial"]),
    ],
)
def test_formal_settings(
    rials: int, formal_hundred: bool, formal_thousand: bool, words: str, prompts: list[str]
):
    options = {"formal_hundred": formal_hundred, "formal_thousand": formal_thousand}
    assert words_amount(rials, **options) == words
    assert say_amount(rials, **options) == prompts


def test_million_and_billion_always_say_one():
    assert words_amount(1_000_000) == "یک میلیون ریال"
    assert words_amount(1_000_000_000) == "یک میلیارد ریال"


def test_tomans():
    assert words_amount(1_234_560, "toman") == ("صد و بیست و سه هزار و چهارصد و پنجاه و شش تومان")
    assert say_amount(17_000, "toman") == ["thousand_o", "n700", "toman"]
    assert spoken_unit(17_000, "toman") == (1700, "toman")


def test_tomans_not_divisible_are_said_exactly_in_rials():
    assert spoken_unit(1_000_005, "toman") == (1_000_005, "rial")
    assert words_amount(1_000_005, "toman") == "یک میلیون و پنج ریال"
    assert say_amount(1_000_005, "toman")[-1] == "rial"


def test_no_unit():
    assert say_amount(21, None) == ["n20_o", "n1"]
    assert words_amount(21, None) == "بیست و یک"


@pytest.mark.parametrize("bad", [-1, MAX_AMOUNT + 1, 10**12])
def test_out_of_range(bad: int):
    with pytest.raises(ValueError):
        say_amount(bad)
    with pytest.raises(ValueError):
        words_amount(bad)


def test_bad_types_and_units():
    with pytest.raises(TypeError):
        say_amount(True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        say_amount(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        say_amount(5, "dollar")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- digits


def test_digits():
    assert say_digits("0912") == ["d0", "d9", "d1", "d2"]
    assert words_digits("0912") == "صفر نه یک دو"
    assert say_digits("") == []


def test_digit_groups():
    card = "6221061234567891"
    prompts = say_digits(card, (4, 4, 4, 4))
    assert prompts.count(PAUSE) == 3
    assert prompts[:5] == ["d6", "d2", "d2", "d1", PAUSE]
    assert [p for p in prompts if p != PAUSE] == [f"d{c}" for c in card]
    assert words_digits("12345", [3, 2]) == "یک دو سه، چهار پنج"


def test_persian_digit_input():
    assert say_digits("۰۹۱۲") == ["d0", "d9", "d1", "d2"]


@pytest.mark.parametrize(
    ("digits", "groups"),
    [("12a", None), ("12 3", None), ("1234", (2, 1)), ("1234", (2, 3)), ("1234", (0, 4))],
)
def test_bad_digit_input(digits: str, groups: tuple[int, ...] | None):
    with pytest.raises(ValueError):
        say_digits(digits, groups)
    with pytest.raises(ValueError):
        words_digits(digits, groups)


# ------------------------------------------------------------------ prompt table


def test_prompt_table():
    assert NUMBER_PROMPTS["n20"] == "بیست"
    assert NUMBER_PROMPTS["n20_o"] == "بیستُ"
    assert NUMBER_PROMPTS["n9"] == NUMBER_PROMPTS["d9"] == "نُه"  # not نَه, "no"
    assert NUMBER_PROMPTS["n900"] == "نهصد"
    assert NUMBER_PROMPTS["n100_formal"] == "یکصد"
    assert NUMBER_PROMPTS["thousand_o"] == "هزارُ"
    assert NUMBER_PROMPTS["rial"] == "ریال" and NUMBER_PROMPTS["toman"] == "تومان"
    assert NUMBER_PROMPTS[PAUSE] == ""
    assert "n0_o" not in NUMBER_PROMPTS
    for value in [*range(1, 20), *range(20, 100, 10), *range(100, 1000, 100)]:
        assert NUMBER_PROMPTS[f"n{value}"] and NUMBER_PROMPTS[f"n{value}_o"]
    for name in ("thousand", "million", "billion"):
        assert NUMBER_PROMPTS[name] and NUMBER_PROMPTS[name + "_o"]
    assert all(NUMBER_PROMPTS[f"d{d}"] for d in range(10))


# -------------------------------------------------------------------- properties

_VALUES = {w: int(name[1:]) for name, w in NUMBER_PROMPTS.items() if name[1:].isdigit()}
_VALUES.update({"نه": 9, "یکصد": 100})
_SCALE = {"هزار": 10**3, "میلیون": 10**6, "میلیارد": 10**9}


def _parse(words: str) -> int:
    """Read Persian number words back (a listener's view of the text)."""
    total = group = 0
    for word in words.split():
        if word in ("و", "ریال"):
            continue
        if word in _SCALE:
            total += (group or 1) * _SCALE[word]
            group = 0
        else:
            group += _VALUES[word]
    return total + group


amounts = st.one_of(
    st.integers(0, MAX_AMOUNT),
    st.integers(0, 99_999_999).map(lambda t: t * 1000),
    st.sampled_from([0, 1, 10, 100, 1000, 10**6, 10**9, MAX_AMOUNT]),
)


@given(amounts, st.booleans(), st.booleans())
def test_words_read_back_to_the_amount(rials: int, formal_hundred: bool, formal_thousand: bool):
    words = words_amount(rials, "rial", formal_hundred, formal_thousand)
    assert _parse(words) == rials


@given(amounts, st.booleans(), st.booleans())
def test_prompts_match_words_and_o_forms(rials: int, formal_hundred: bool, formal_thousand: bool):
    prompts = say_amount(rials, "rial", formal_hundred, formal_thousand)
    words = words_amount(rials, "rial", formal_hundred, formal_thousand).split()
    assert all(p in NUMBER_PROMPTS for p in prompts)
    assert prompts[-1] == "rial"
    # one prompt per word; the "o" form exactly where و follows
    spoken = []
    for word in words:
        if word == "و":
            spoken[-1] += "+o"
        else:
            spoken.append(word)
    assert len(spoken) == len(prompts)
    for prompt, word in zip(prompts, spoken, strict=True):
        assert prompt.endswith("_o") == word.endswith("+o")
    assert not prompts[-2].endswith("_o")  # nothing joins the unit


@given(st.text("0123456789", max_size=20))
def test_digit_prompts_cover_every_digit(digits: str):
    prompts = say_digits(digits)
    assert prompts == [f"d{c}" for c in digits]
    assert all(p in NUMBER_PROMPTS for p in prompts)

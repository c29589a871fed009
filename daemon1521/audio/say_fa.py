"""Persian amounts and digit strings as prompt sequences and as text.

An IVR speaks numbers by concatenating recorded words. Persian joins the parts
of a number with و, spoken as an "o" attached to the word before it
(بیست و یک = "bist-o yek"), so every number word is recorded twice: plain,
and with the "o" (prompt name with an ``_o`` suffix). The "o" form is used
whenever another part of the number follows; empty groups are skipped
(دو میلیون و پانصد). The same plan yields the written text, with " و ".

:data:`NUMBER_PROMPTS` is the one table of prompt names this module emits and
the text each prompt says; the prompt catalogue records or synthesises from
it. Its texts carry the vowel marks a voice needs: نُه for nine, which is
otherwise read as نَه ("no").

Units: bill data is in rials. With ``unit="toman"`` an amount is spoken in
tomans (rials / 10) when it divides exactly; an amount that does not (never
the case for a bill, whose amounts are whole thousands of rials) is spoken in
rials instead, exactly, because a caller hearing a money amount must never
hear a rounded one. :func:`spoken_unit` tells which unit an amount gets.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal

MAX_AMOUNT = 99_999_999_000
"""Largest amount a bill can carry (99,999,999 thousands of rials)."""
RIALS_PER_TOMAN = 10
PAUSE = "pause"
PAUSE_SECONDS = 0.3
"""Suggested length of the silence that separates digit groups."""
O_SUFFIX = "_o"

Unit = Literal["rial", "toman"]
UNITS: dict[str, str] = {"rial": "ریال", "toman": "تومان"}

# Written words, by value: what the text output shows.
_WORDS: dict[int, str] = {
    0: "صفر", 1: "یک", 2: "دو", 3: "سه", 4: "چهار", 5: "پنج", 6: "شش", 7: "هفت",
    8: "هشت", 9: "نه", 10: "ده", 11: "یازده", 12: "دوازده", 13: "سیزده", 14: "چهارده",
    15: "پانزده", 16: "شانزده", 17: "هفده", 18: "هجده", 19: "نوزده",
    20: "بیست", 30: "سی", 40: "چهل", 50: "پنجاه", 60: "شصت", 70: "هفتاد", 80: "هشتاد",
    90: "نود",
    100: "صد", 200: "دویست", 300: "سیصد", 400: "چهارصد", 500: "پانصد", 600: "ششصد",
    700: "هفتصد", 800: "هشتصد", 900: "نهصد",
}  # fmt: skip
FORMAL_HUNDRED = "یکصد"
# (value, prompt name, word), largest first.
_SCALES: tuple[tuple[int, str, str], ...] = (
    (10**9, "billion", "میلیارد"),
    (10**6, "million", "میلیون"),
    (10**3, "thousand", "هزار"),
)
# Spoken forms that differ from the written word (vowel marks for a voice).
_SPOKEN: dict[str, str] = {"نه": "نُه"}
# Words ending in a vowel take the "o" as a separate syllable "vo".
_VOWEL_FINAL = frozenset({"دو", "سه", "سی"})


def _with_o(spoken: str, written: str) -> str:
    if written in _VOWEL_FINAL:
        return spoken + " وُ"
    return spoken + "ُ"


# Prompt name -> written word, for number and scale words.
_NUMBER_WORDS: dict[str, str] = {
    **{f"n{v}": w for v, w in _WORDS.items()},
    "n100_formal": FORMAL_HUNDRED,
    **{name: word for _, name, word in _SCALES},
}
_WRITTEN: dict[str, str] = {**_NUMBER_WORDS, **UNITS}


def _build_number_prompts() -> dict[str, str]:
    table: dict[str, str] = {}
    for name, word in _NUMBER_WORDS.items():
        spoken = _SPOKEN.get(word, word)
        table[name] = spoken
        if name != "n0":  # zero is only ever said alone
            table[name + O_SUFFIX] = _with_o(spoken, word)
    for d in range(10):
        table[f"d{d}"] = _SPOKEN.get(_WORDS[d], _WORDS[d])
    table.update(UNITS)
    table[PAUSE] = ""  # silence of PAUSE_SECONDS, not a recording
    return table


NUMBER_PROMPTS: dict[str, str] = _build_number_prompts()
"""Every prompt name :func:`say_amount` and :func:`say_digits` can return,
with the Persian text it says (empty for the pause)."""

_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


def _group_parts(value: int, formal_hundred: bool) -> list[str]:
    """Prompt names (plain) of a 1..999 group, e.g. 234 -> n200 n30 n4."""
    parts: list[str] = []
    hundreds, rest = divmod(value, 100)
    if hundreds:
        parts.append("n100_formal" if hundreds == 1 and formal_hundred else f"n{hundreds * 100}")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(f"n{tens * 10}")
        if ones:
            parts.append(f"n{ones}")
    elif rest:
        parts.append(f"n{rest}")
    return parts


def _plan(value: int, formal_hundred: bool, formal_thousand: bool) -> list[tuple[str, bool]]:
    """(plain prompt name, joined by و to what follows) for a number."""
    if value == 0:
        return [("n0", False)]
    # Non-empty groups, largest first: (number words, scale word or None).
    groups: list[tuple[list[str], str | None]] = []
    remaining = value
    for scale, name, _ in _SCALES:
        count, remaining = divmod(remaining, scale)
        if not count:
            continue
        # "هزار" alone for 1000 colloquially; "یک میلیون", "یک میلیارد" always.
        if count == 1 and name == "thousand" and not formal_thousand:
            groups.append(([], name))
        else:
            groups.append((_group_parts(count, formal_hundred), name))
    if remaining:
        groups.append((_group_parts(remaining, formal_hundred), None))
    plan: list[tuple[str, bool]] = []
    for gi, (numerals, scale_name) in enumerate(groups):
        # و between the words of a group, none between a number and its scale
        plan.extend((part, i < len(numerals) - 1) for i, part in enumerate(numerals))
        if scale_name is not None:
            plan.append((scale_name, False))
        if gi < len(groups) - 1:  # and و between groups
            plan[-1] = (plan[-1][0], True)
    return plan


def _check_amount(rials: int) -> int:
    if isinstance(rials, bool):
        raise TypeError("an amount is an integer number of rials, not a bool")
    value = operator.index(rials)
    if not 0 <= value <= MAX_AMOUNT:
        raise ValueError(f"amount {value} is outside 0..{MAX_AMOUNT:,} rials")
    return value


def spoken_unit(rials: int, unit: Unit | None = "rial") -> tuple[int, Unit | None]:
    """The number and unit an amount is actually spoken in: tomans only when
    the rial amount divides by 10 exactly, else the exact rial amount."""
    value = _check_amount(rials)
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)} or None, not {unit!r}")
    if unit == "toman":
        if value % RIALS_PER_TOMAN == 0:
            return value // RIALS_PER_TOMAN, "toman"
        return value, "rial"
    return value, unit


def say_amount(
    rials: int,
    unit: Unit | None = "rial",
    formal_hundred: bool = False,
    formal_thousand: bool = False,
) -> list[str]:
    """Prompt names that speak an amount of rials (0..99,999,999,000),
    followed by its unit (none when ``unit`` is None).

    ``formal_hundred`` says یکصد for a lone hundred, ``formal_thousand`` says
    یک هزار for a lone thousand; colloquial صد and هزار by default.
    """
    value, said_unit = spoken_unit(rials, unit)
    names = [
        name + O_SUFFIX if joined else name
        for name, joined in _plan(value, formal_hundred, formal_thousand)
    ]
    if said_unit is not None:
        names.append(said_unit)
    return names


def words_amount(
    rials: int,
    unit: Unit | None = "rial",
    formal_hundred: bool = False,
    formal_thousand: bool = False,
) -> str:
    """The Persian text of :func:`say_amount`, e.g.
    ``یک میلیون و دویست و سی و چهار هزار و پانصد و شصت و هفت ریال``."""
    value, said_unit = spoken_unit(rials, unit)
    words = [
        _WRITTEN[name] + " و" if joined else _WRITTEN[name]
        for name, joined in _plan(value, formal_hundred, formal_thousand)
    ]
    if said_unit is not None:
        words.append(UNITS[said_unit])
    return " ".join(words)


def _split_digits(digits: str, groups: Sequence[int] | None) -> list[str]:
    if not isinstance(digits, str):
        raise TypeError("digits must be a string")
    clean = digits.strip().translate(_TO_ASCII)
    if not all(ch in "0123456789" for ch in clean):
        raise ValueError(f"not a digit string: {digits!r}")
    if groups is None:
        return [clean] if clean else []
    sizes = [operator.index(size) for size in groups]
    if any(size <= 0 for size in sizes):
        raise ValueError("digit group sizes must be positive")
    if sum(sizes) != len(clean):
        raise ValueError(f"groups {sizes} cover {sum(sizes)} digits, the string has {len(clean)}")
    out, start = [], 0
    for size in sizes:
        out.append(clean[start : start + size])
        start += size
    return out


def say_digits(digits: str, groups: Sequence[int] | None = None) -> list[str]:
    """Prompt names reading a digit string one digit at a time, with a
    ``pause`` between groups (``groups`` are sizes that must cover the whole
    string, e.g. (4, 4, 4, 4) for a card number)."""
    names: list[str] = []
    for i, group in enumerate(_split_digits(digits, groups)):
        if i:
            names.append(PAUSE)
        names.extend(f"d{ch}" for ch in group)
    return names


def words_digits(digits: str, groups: Sequence[int] | None = None) -> str:
    """The Persian text of :func:`say_digits`: digit words separated by
    spaces, groups by the Persian comma."""
    return "، ".join(
        " ".join(_WORDS[int(ch)] for ch in group) for group in _split_digits(digits, groups)
    )

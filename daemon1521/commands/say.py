"""``daemon1521 say``: how the line will speak an amount or a digit string."""

from __future__ import annotations

import json
import sys

import click

from daemon1521.audio.say_fa import (
    MAX_AMOUNT,
    Unit,
    say_amount,
    say_digits,
    spoken_unit,
    words_amount,
    words_digits,
)

EXIT_OK = 0
EXIT_INVALID = 1
_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
# Thousands separators people write in amounts: ASCII, Persian, underscore.
_AMOUNT_SEPARATORS = str.maketrans("", "", ",_٬ ")


def _fail(message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message}, ensure_ascii=False))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _shown(text: str, limit: int = 40) -> str:
    """Input as an error message quotes it: the start of it, not all 5,000 characters."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def _parse_groups(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--groups takes sizes like 4,4,4,4, not {text!r}") from None
    return sizes


@click.command()
@click.argument("number")
@click.option("--digits", "as_digits", is_flag=True, help="Read NUMBER digit by digit.")
@click.option("--groups", help="With --digits: group sizes, e.g. 4,4,4,4 (pauses between).")
@click.option(
    "--unit",
    type=click.Choice(["rial", "toman"]),
    default="rial",
    show_default=True,
    help="Unit spoken after an amount (NUMBER is always in rials).",
)
@click.option("--formal", is_flag=True, help="Say یکصد and یک هزار rather than صد and هزار.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def say(
    number: str, as_digits: bool, groups: str | None, unit: Unit, formal: bool, as_json: bool
) -> None:
    """Print the Persian words and the prompt names for NUMBER: an amount in
    rials (0 to 99,999,999,000; separators allowed), or with --digits a digit
    string read one digit at a time. An amount in tomans that is not a whole
    number of tomans is spoken, exactly, in rials.

    \b
    Exit status:
      0  spoken
      1  NUMBER (or --groups) is not valid input
    """
    text = number.strip().translate(_TO_ASCII)
    try:
        if as_digits:
            if not text:
                raise ValueError("no digits to say")
            sizes = _parse_groups(groups)
            words, prompts = words_digits(text, sizes), say_digits(text, sizes)
            result: dict[str, object] = {"digits": text, "groups": sizes}
        else:
            if groups is not None:
                raise ValueError("--groups needs --digits")
            plain = text.translate(_AMOUNT_SEPARATORS)
            if not plain.isascii() or not plain.isdigit():
                raise ValueError(f"{_shown(number)!r} is not an amount of rials")
            if len(plain.lstrip("0")) > len(str(MAX_AMOUNT)):
                raise ValueError(
                    f"a {len(plain.lstrip('0'))}-digit amount is more than a bill can be "
                    f"({MAX_AMOUNT:,} rials)"
                )
            rials = int(plain)
            if rials > MAX_AMOUNT:
                raise ValueError(f"{rials:,} rials is more than a bill can be ({MAX_AMOUNT:,})")
            options = {"formal_hundred": formal, "formal_thousand": formal}
            words = words_amount(rials, unit, **options)
            prompts = say_amount(rials, unit, **options)
            value, said_unit = spoken_unit(rials, unit)
            result = {"rials": rials, "unit": said_unit, "value": value, "formal": formal}
    except ValueError as exc:
        _fail(str(exc), as_json)
        return
    if as_json:
        click.echo(
            json.dumps(
                {"ok": True, **result, "words": words, "prompts": prompts}, ensure_ascii=False
            )
        )
        return
    click.echo(f"words:   {words}")
    click.echo(f"prompts: {' '.join(prompts)}")
    if not as_digits and result["unit"] != unit:
        click.echo(
            f"note:    {result['rials']:,} rials is not a whole number of tomans; spoken in rials"
        )

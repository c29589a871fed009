"""Shetab (شتاب) bank cards: validation, masking and grouping for read-back.

1521 never pays anything itself; it checks a card number only so that a
caller who mistyped hears so at once, instead of after a call to the bank.
Which banks are Shetab members is data (``bins.toml``), because banks merge
and an operator must be able to update the table without a new release.

A card number is sensitive: results never show it in their ``repr``; use
:func:`mask_card` (first 6 and last 4 digits) wherever a number is displayed.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from daemon1521.billing.ids import Reason, to_ascii_digits

CARD_LENGTH = 16
BIN_LENGTH = 6
CARD_GROUPS = (4, 4, 4, 4)
"""How a card number is read back: four groups of four digits."""
MASK_CHAR = "*"
BINS_RESOURCE = "bins.toml"
# Written card numbers often separate the groups; keypads never do.
_SEPARATORS = str.maketrans("", "", " -\u00a0\u200c")
_ASCII_DIGITS = frozenset("0123456789")


class CardReason(Reason):
    NOT_DIGITS = ("card.not_digits", "a card number contains only the digits 0-9")
    TOO_SHORT = ("card.too_short", "a card number has 16 digits; fewer were entered")
    TOO_LONG = (
        "card.too_long",
        "a card number has 16 digits; more were entered (the CVV2 printed after "
        "some card numbers is not part of it)",
    )
    LUHN = ("card.luhn", "the card number's check digit is wrong")
    ZERO_SECTION = ("card.zero_section", "not a card number: a whole section of it is zeros")
    NOT_SHETAB = ("card.not_shetab", "this card is not from a Shetab member bank")


class BinTableError(ValueError):
    """The BIN table file is unreadable or inconsistent."""


@dataclass(frozen=True)
class Bank:
    key: str
    name_en: str
    name_fa: str
    bins: tuple[str, ...]
    merged_into: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "name_en": self.name_en,
            "name_fa": self.name_fa,
            "bins": list(self.bins),
            "merged_into": self.merged_into,
        }


class BinTable:
    """Shetab member banks, looked up by a card's first six digits."""

    def __init__(self, banks: Iterable[Bank]) -> None:
        self.banks: tuple[Bank, ...] = tuple(banks)
        by_bin: dict[str, Bank] = {}
        for bank in self.banks:
            for bin_ in bank.bins:
                by_bin[bin_] = bank
        self.by_bin: Mapping[str, Bank] = MappingProxyType(by_bin)

    def bank_for(self, number: str) -> Bank | None:
        """The bank issuing a card (or BIN), or None for a non-Shetab card."""
        return self.by_bin.get(number[:BIN_LENGTH])

    def __len__(self) -> int:
        return len(self.banks)


@dataclass(frozen=True)
class CardCheck:
    """The verdict on one card number. ``number`` (the clean 16 digits) is
    kept out of ``repr`` so that logging a result never leaks it."""

    ok: bool
    reason: CardReason | None = None
    number: str | None = field(default=None, repr=False)
    masked: str | None = None
    bank: Bank | None = None

    def __bool__(self) -> bool:
        return self.ok


def load_bins(path: str | Path | None = None) -> BinTable:
    """Read a BIN table: the operator's file at ``path``, or the table that
    ships with the package when ``path`` is None."""
    if path is None:
        return _packaged_bins()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BinTableError(f"{path}: cannot read BIN table: {exc.strerror}") from exc
    return _parse_bins(data, str(path))


@functools.cache
def _packaged_bins() -> BinTable:
    data = resources.files("daemon1521.billing").joinpath(BINS_RESOURCE).read_bytes()
    return _parse_bins(data, BINS_RESOURCE)


def _parse_bins(data: bytes, source: str) -> BinTable:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BinTableError(f"{source}: not a valid TOML file: {exc}") from exc
    entries = doc.get("bank")
    if not isinstance(entries, list) or not entries:
        raise BinTableError(f"{source}: no [[bank]] entries")
    banks: list[Bank] = []
    seen_bins: dict[str, str] = {}
    for i, entry in enumerate(entries, 1):
        where = f"{source}: bank #{i}"
        if not isinstance(entry, dict):
            raise BinTableError(f"{where}: not a table")
        for name in ("key", "name_en", "name_fa"):
            if not isinstance(entry.get(name), str) or not entry[name].strip():
                raise BinTableError(f"{where}: '{name}' must be a non-empty string")
        bins = entry.get("bins")
        if not isinstance(bins, list) or not bins:
            raise BinTableError(f"{where} ({entry['key']}): 'bins' must be a non-empty list")
        for bin_ in bins:
            if (
                not isinstance(bin_, str)
                or len(bin_) != BIN_LENGTH
                or not set(bin_) <= _ASCII_DIGITS
            ):
                raise BinTableError(f"{where} ({entry['key']}): BIN {bin_!r} is not 6 digits")
            if bin_ in seen_bins:
                raise BinTableError(
                    f"{where} ({entry['key']}): BIN {bin_} already belongs to {seen_bins[bin_]}"
                )
            seen_bins[bin_] = entry["key"]
        merged_into = entry.get("merged_into")
        if merged_into is not None and not isinstance(merged_into, str):
            raise BinTableError(f"{where} ({entry['key']}): 'merged_into' must be a string")
        banks.append(
            Bank(entry["key"], entry["name_en"], entry["name_fa"], tuple(bins), merged_into)
        )
    keys = [bank.key for bank in banks]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise BinTableError(f"{source}: bank key(s) listed twice: {', '.join(duplicates)}")
    for bank in banks:
        if bank.merged_into is not None and bank.merged_into not in keys:
            raise BinTableError(
                f"{source}: {bank.key} is merged into unknown bank {bank.merged_into!r}"
            )
    return BinTable(banks)


def clean_card_number(number: str) -> str | None:
    """The digits of a card number as written (spaces and hyphens between
    groups allowed, Persian digits accepted), or None if anything else."""
    if not isinstance(number, str):
        return None
    digits = to_ascii_digits(number.strip()).translate(_SEPARATORS)
    if not digits or not set(digits) <= _ASCII_DIGITS:
        return None
    return digits


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812 (Luhn) check over a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def validate_card(number: str, bins: BinTable | None = None) -> CardCheck:
    """Check a Shetab card number: 16 digits, Luhn, no all-zero section
    (digits 2-10 or 11-16), and a BIN from ``bins`` (the shipped table when
    None)."""
    digits = clean_card_number(number)
    if digits is None:
        return CardCheck(False, CardReason.NOT_DIGITS)
    if len(digits) < CARD_LENGTH:
        return CardCheck(False, CardReason.TOO_SHORT)
    if len(digits) > CARD_LENGTH:
        return CardCheck(False, CardReason.TOO_LONG)
    masked = mask_card(digits)
    if not luhn_ok(digits):
        return CardCheck(False, CardReason.LUHN, digits, masked)
    if not digits[1:10].strip("0") or not digits[10:].strip("0"):
        return CardCheck(False, CardReason.ZERO_SECTION, digits, masked)
    bank = (bins if bins is not None else load_bins()).bank_for(digits)
    if bank is None:
        return CardCheck(False, CardReason.NOT_SHETAB, digits, masked)
    return CardCheck(True, None, digits, masked, bank)


def _sixteen(number: str) -> str:
    digits = clean_card_number(number)
    if digits is None or len(digits) != CARD_LENGTH:
        raise ValueError("a card number has exactly 16 digits")
    return digits


def mask_card(number: str) -> str:
    """``622106******1234``: the only form a card number may take outside the
    vault. Refuses anything but 16 digits, rather than guess what to hide."""
    digits = _sixteen(number)
    return digits[:BIN_LENGTH] + MASK_CHAR * (CARD_LENGTH - BIN_LENGTH - 4) + digits[-4:]


def is_masked(text: str) -> bool:
    """True for the masked form (6 digits, 6 mask characters, 4 digits)."""
    return (
        isinstance(text, str)
        and len(text) == CARD_LENGTH
        and set(text[:BIN_LENGTH] + text[-4:]) <= _ASCII_DIGITS
        and text[BIN_LENGTH:-4] == MASK_CHAR * (CARD_LENGTH - BIN_LENGTH - 4)
    )


def card_groups(number: str) -> list[str]:
    """The four groups of four digits a card number is read back in."""
    digits = _sixteen(number)
    groups, start = [], 0
    for size in CARD_GROUPS:
        groups.append(digits[start : start + size])
        start += size
    return groups

"""Shetab card numbers and the BIN table."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.billing.cards import (
    CARD_GROUPS,
    BinTable,
    BinTableError,
    CardReason,
    card_groups,
    clean_card_number,
    is_masked,
    load_bins,
    luhn_ok,
    mask_card,
    validate_card,
)

# Every bank IRANIAN-STANDARDS.md names, with its BINs.
SPEC_BINS = {
    "622106": "parsian", "627884": "parsian", "639194": "parsian", "603799": "melli",
    "589210": "sepah", "610433": "mellat", "603769": "saderat", "627353": "tejarat",
    "621986": "saman", "502229": "pasargad", "627412": "eghtesad_novin",
    "603770": "keshavarzi", "628023": "maskan", "627760": "post_bank", "589463": "refah",
    "627648": "toseh_saderat", "627961": "sanat_madan", "502908": "toseh_taavon",
    "627488": "karafarin", "639346": "sina", "639607": "sarmayeh", "502806": "shahr",
    "502938": "dey", "505785": "iran_zamin", "504172": "resalat", "606373": "mehr_iran",
    "505416": "gardeshgari", "628157": "toseh_credit", "606256": "melal",
    # second BINs, and the Central Bank
    "639347": "pasargad", "639217": "keshavarzi", "207177": "toseh_saderat",
    "502910": "karafarin", "504706": "shahr", "991975": "mellat", "585983": "tejarat",
    "636795": "central_bank",
    # merged banks, still answered for
    "627381": "ansar", "639599": "ghavamin", "636949": "hekmat", "639370": "mehr_eqtesad",
    "505801": "kosar", "636214": "ayandeh",
}  # fmt: skip
MERGED = {"ansar": "sepah", "ghavamin": "sepah", "hekmat": "sepah", "mehr_eqtesad": "sepah",
          "kosar": "sepah", "ayandeh": "melli"}  # fmt: skip


def with_luhn(prefix15: str) -> str:
    """Complete 15 digits with the Luhn check digit."""
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


PARSIAN = with_luhn("622106123456789")


def test_valid_parsian_card():
    result = validate_card(PARSIAN)
    assert result.ok and bool(result)
    assert result.reason is None
    assert result.bank is not None and result.bank.key == "parsian"
    assert result.bank.name_en == "Bank Parsian"
    assert result.bank.name_fa == "بانک پارسیان"
    assert result.masked == "622106******" + PARSIAN[-4:]
    assert result.number == PARSIAN


def test_result_repr_never_shows_the_number():
    result = validate_card(PARSIAN)
    assert PARSIAN not in repr(result)
    assert PARSIAN[6:12] not in repr(result)


def test_nineteen_digits_says_sixteen_expected():
    result = validate_card(PARSIAN + "123")  # number followed by CVV2
    assert not result.ok
    assert result.reason is CardReason.TOO_LONG
    assert "16" in result.reason.text
    assert result.masked is None and result.number is None


def test_too_short_says_sixteen_expected():
    result = validate_card(PARSIAN[:15])
    assert result.reason is CardReason.TOO_SHORT
    assert "16" in result.reason.text


def test_luhn_failure():
    bad = PARSIAN[:-1] + str((int(PARSIAN[-1]) + 1) % 10)
    assert validate_card(bad).reason is CardReason.LUHN


def test_zero_sections_exactly():
    # digits 2-10 all zero: Luhn can still pass
    first = with_luhn("600000000012345")
    assert first[1:10] == "000000000"
    assert validate_card(first).reason is CardReason.ZERO_SECTION
    # digits 11-16 all zero with a valid Luhn sum: choose digits 1-10 to fit
    second = next(n for n in (f"622106{i:04d}000000" for i in range(10_000)) if luhn_ok(n))
    assert validate_card(second).reason is CardReason.ZERO_SECTION


def test_not_shetab():
    number = with_luhn("411111111111111")
    result = validate_card(number)
    assert result.reason is CardReason.NOT_SHETAB
    assert result.masked == mask_card(number)


def test_written_forms_accepted():
    grouped = " ".join(card_groups(PARSIAN))
    assert validate_card(grouped).ok
    assert validate_card("-".join(card_groups(PARSIAN))).ok
    persian = PARSIAN.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    assert validate_card(persian).number == PARSIAN


@pytest.mark.parametrize("bad", ["", "6221 06ab", "6221061234567890#"])
def test_not_digits(bad: str):
    assert validate_card(bad).reason is CardReason.NOT_DIGITS
    assert clean_card_number(bad) is None


def test_mask_and_groups():
    assert mask_card("6221061234567890") == "622106******7890"
    assert is_masked(mask_card(PARSIAN))
    assert not is_masked(PARSIAN)
    assert not is_masked("622106*****17890")
    assert card_groups("6221061234567890") == ["6221", "0612", "3456", "7890"]
    assert CARD_GROUPS == (4, 4, 4, 4)


@pytest.mark.parametrize("bad", ["622106123456789", "6221061234567890123", "abc"])
def test_mask_and_groups_refuse_other_lengths(bad: str):
    with pytest.raises(ValueError):
        mask_card(bad)
    with pytest.raises(ValueError):
        card_groups(bad)


# -------------------------------------------------------------------- BIN table


def test_shipped_table_has_every_bank_of_the_standard():
    table = load_bins()
    for bin_, key in SPEC_BINS.items():
        bank = table.bank_for(bin_)
        assert bank is not None, bin_
        assert bank.key == key
        assert bank.name_en.strip() and bank.name_fa.strip()
        assert any("\u0600" <= ch <= "\u06ff" for ch in bank.name_fa)
    merged = {bank.key: bank.merged_into for bank in table.banks if bank.merged_into}
    assert merged == MERGED
    assert table.bank_for("411111") is None


@pytest.mark.parametrize("bin_", sorted(SPEC_BINS))
def test_every_spec_bin_validates(bin_: str):
    assert validate_card(with_luhn(bin_ + "123456789")).ok


def test_operator_table(tmp_path: Path):
    path = tmp_path / "bins.toml"
    path.write_text(
        '[[bank]]\nkey = "only"\nname_en = "Only Bank"\nname_fa = "بانک تنها"\nbins = ["411111"]\n',
        encoding="utf-8",
    )
    table = load_bins(path)
    assert isinstance(table, BinTable) and len(table) == 1
    assert validate_card(with_luhn("411111111111111"), table).ok
    assert validate_card(PARSIAN, table).reason is CardReason.NOT_SHETAB


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [[bank]]"),
        ("[[bank\n", "not a valid TOML"),
        ('[[bank]]\nkey = "a"\nname_en = "A"\nname_fa = "آ"\nbins = ["12345"]\n', "not 6 digits"),
        ('[[bank]]\nkey = "a"\nname_en = "A"\nname_fa = "آ"\nbins = []\n', "non-empty list"),
        ('[[bank]]\nkey = "a"\nname_en = ""\nname_fa = "آ"\nbins = ["123456"]\n', "name_en"),
        (
            '[[bank]]\nkey = "a"\nname_en = "A"\nname_fa = "آ"\nbins = ["123456"]\n'
            '[[bank]]\nkey = "b"\nname_en = "B"\nname_fa = "ب"\nbins = ["123456"]\n',
            "already belongs to a",
        ),
        (
            '[[bank]]\nkey = "a"\nname_en = "A"\nname_fa = "آ"\nbins = ["123456"]\n'
            '[[bank]]\nkey = "a"\nname_en = "B"\nname_fa = "ب"\nbins = ["654321"]\n',
            "listed twice",
        ),
        (
            '[[bank]]\nkey = "a"\nname_en = "A"\nname_fa = "آ"\nbins = ["123456"]\n'
            'merged_into = "zz"\n',
            "unknown bank",
        ),
    ],
)
def test_bad_tables_are_refused(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bins.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BinTableError, match=message.replace("[", r"\[")):
        load_bins(path)


def test_missing_table_file(tmp_path: Path):
    with pytest.raises(BinTableError, match="cannot read"):
        load_bins(tmp_path / "absent.toml")


# ------------------------------------------------------------------- properties


@given(st.text("0123456789", min_size=15, max_size=15))
def test_luhn_completion_validates(prefix: str):
    assert luhn_ok(with_luhn(prefix))


@given(st.text("0123456789", min_size=15, max_size=15), st.data())
def test_luhn_catches_every_single_digit_change(prefix: str, data: st.DataObject):
    number = with_luhn(prefix)
    position = data.draw(st.integers(0, 15))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_ok(number[:position] + digit + number[position + 1 :])


@given(st.sampled_from(sorted(SPEC_BINS)), st.text("0123456789", min_size=9, max_size=9))
def test_shetab_cards_with_nonzero_sections_validate(bin_: str, middle: str):
    number = with_luhn(bin_ + middle)
    result = validate_card(number)
    zero_section = not number[1:10].strip("0") or not number[10:].strip("0")
    assert result.ok == (not zero_section)
    assert mask_card(number) == number[:6] + "******" + number[-4:]
    assert "".join(card_groups(number)) == number

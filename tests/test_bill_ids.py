"""Bill IDs, payment IDs and barcodes (IRANIAN-STANDARDS.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.billing.ids import (
    SERVICE_TYPES,
    BillIdReason,
    PaymentIdReason,
    barcode,
    bill_id_groups,
    check_digit,
    make_bill_id,
    make_payment_id,
    normalize_bill_id,
    normalize_payment_id,
    split_barcode,
    validate_barcode,
    validate_bill_id,
    validate_payment_id,
)

EXAMPLE_BILL = "7748317800142"
EXAMPLE_PAYMENT = "1770160"


# ---------------------------------------------------------------- worked examples


def test_check_digit_worked_example():
    assert check_digit("774831780014") == 2


def test_worked_bill_id_is_valid_landline():
    result = validate_bill_id(EXAMPLE_BILL)
    assert result.ok and bool(result)
    assert result.reason is None
    assert result.bill_id == EXAMPLE_BILL
    assert result.service_type is not None
    assert result.service_type.code == 4 and int(result.service_type) == 4
    assert result.service_type.key == "landline"
    assert result.company_code == "001"
    assert result.file_code == "77483178"
    assert not result.is_electricity


def test_worked_payment_id():
    result = validate_payment_id(EXAMPLE_BILL, EXAMPLE_PAYMENT)
    assert result.ok
    assert result.c1 == 6 and result.c2 == 0
    assert result.amount_rials == 17_000
    assert result.year_code == 7 and result.period_code == 1
    assert result.payment_id == EXAMPLE_PAYMENT


# -------------------------------------------------------------------- check digit


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("0", 0),  # r = 0
        ("5", 1),  # 10 mod 11 = 10 -> 1
        ("1", 9),  # 2 -> 9
        ("11", 6),  # 2 + 3 = 5 -> 6
        ("1000000", 9),  # the weights repeat: 7th digit from the right has weight 2
    ],
)
def test_check_digit_rules(digits: str, expected: int):
    assert check_digit(digits) == expected


def test_check_digit_zero_for_remainder_one():
    # weight 2 * 6 = 12 -> r = 1 -> 0
    assert check_digit("6") == 0


@pytest.mark.parametrize("bad", ["", "12a4", "۱۲۳", " 12"])
def test_check_digit_refuses_non_digits(bad: str):
    with pytest.raises(ValueError):
        check_digit(bad)


# ------------------------------------------------------------------- bill IDs


def test_leading_zeros_allowed_and_do_not_change_the_check():
    bill = make_bill_id(123, 45)  # short: padded with zeros
    assert len(bill) == 13 and bill.startswith("0000")
    short = bill.lstrip("0")
    for form in (bill, short, "0" + short):
        result = validate_bill_id(form)
        assert result.ok, form
        assert result.bill_id == bill
    assert check_digit(bill[:-1]) == check_digit(short[:-1])


def test_electricity_only():
    electricity = make_bill_id(4_567_890, 123)
    assert validate_bill_id(electricity, electricity_only=True).ok
    other = validate_bill_id(EXAMPLE_BILL, electricity_only=True)
    assert not other.ok
    assert other.reason is BillIdReason.NOT_ELECTRICITY
    # what it is instead is still known, so a caller can be told
    assert other.service_type is SERVICE_TYPES[4]
    assert other.bill_id == EXAMPLE_BILL


@pytest.mark.parametrize(
    ("given_id", "reason"),
    [
        ("", BillIdReason.NOT_DIGITS),
        ("77483178-0142", BillIdReason.NOT_DIGITS),
        ("774831780014x", BillIdReason.NOT_DIGITS),
        ("12345", BillIdReason.TOO_SHORT),
        ("77483178001420", BillIdReason.TOO_LONG),
        ("00007748317800142", BillIdReason.TOO_LONG),
        ("7748317800143", BillIdReason.CHECK_DIGIT),
        ("0000000000000", BillIdReason.UNKNOWN_SERVICE),
    ],
)
def test_invalid_bill_ids(given_id: str, reason: BillIdReason):
    result = validate_bill_id(given_id)
    assert not result.ok
    assert result.reason is reason
    assert result.bill_id is None and result.service_type is None


def test_reason_has_stable_code_and_text():
    reason = validate_bill_id("7748317800143").reason
    assert reason is not None
    assert reason.code == "bill_id.check_digit"
    assert "check digit" in reason.text
    assert reason.as_dict() == {"code": reason.code, "text": reason.text}
    codes = [r.code for r in BillIdReason] + [r.code for r in PaymentIdReason]
    assert len(codes) == len(set(codes))


def test_persian_digits_and_whitespace_accepted():
    persian = EXAMPLE_BILL.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    assert validate_bill_id(f"  {persian}\n").bill_id == EXAMPLE_BILL
    assert validate_bill_id(int(EXAMPLE_BILL)).ok


@pytest.mark.parametrize("code", range(1, 10))
def test_every_service_type_named(code: int):
    bill = make_bill_id(777, 12, service=code)
    result = validate_bill_id(bill)
    assert result.ok
    assert result.service_type is not None and result.service_type.code == code
    assert result.service_type.name and result.service_type.name_fa


def test_service_names():
    names = {code: st.name for code, st in SERVICE_TYPES.items()}
    assert names[1] == "water"
    assert names[2] == "electricity"
    assert names[3] == "gas"
    assert names[4] == "landline telephone"
    assert names[5] == "mobile telephone"
    assert names[6] == "municipality"
    assert {names[7], names[8], names[9]} == {"other"}


def test_normalize_bill_id():
    assert normalize_bill_id("1230452") == "0000001230452"
    assert normalize_bill_id("0000001230452") == "0000001230452"
    assert normalize_bill_id("0001230452") == "0000001230452"
    with pytest.raises(ValueError):
        normalize_bill_id("12a")
    with pytest.raises(ValueError):
        normalize_bill_id("12345678901234")


# ----------------------------------------------------------------- payment IDs


def test_payment_with_leading_zeros_and_padded_to_13():
    padded = EXAMPLE_PAYMENT.zfill(13)
    result = validate_payment_id(EXAMPLE_BILL, padded)
    assert result.ok
    assert result.payment_id == EXAMPLE_PAYMENT
    assert result.amount_rials == 17_000


def test_c2_is_computed_over_stripped_ids():
    payment = make_payment_id(EXAMPLE_BILL, 170_000, 7, 1)
    assert payment == "17070197"
    assert validate_payment_id(EXAMPLE_BILL, payment.zfill(13)).ok
    # computing C2 over the 13-digit padded forms would get it wrong
    assert check_digit(EXAMPLE_BILL + payment.zfill(13)[:-1]) != int(payment[-1])


@pytest.mark.parametrize(
    ("bill", "payment", "reason"),
    [
        ("7748317800143", EXAMPLE_PAYMENT, PaymentIdReason.BILL_ID_INVALID),
        (EXAMPLE_BILL, "17701a0", PaymentIdReason.NOT_DIGITS),
        (EXAMPLE_BILL, "", PaymentIdReason.NOT_DIGITS),
        (EXAMPLE_BILL, "77016", PaymentIdReason.TOO_SHORT),
        (EXAMPLE_BILL, "12345678901234", PaymentIdReason.TOO_LONG),
        (EXAMPLE_BILL, "1770150", PaymentIdReason.CHECK_DIGIT_1),
        (EXAMPLE_BILL, "1770161", PaymentIdReason.CHECK_DIGIT_2),
    ],
)
def test_invalid_payment_ids(bill: str, payment: str, reason: PaymentIdReason):
    result = validate_payment_id(bill, payment)
    assert not result.ok
    assert result.reason is reason
    assert result.amount_rials is None


def test_payment_of_another_bill_is_refused():
    other_bill = make_bill_id(5_000_001, 321)
    payment = make_payment_id(other_bill, 17_000, 7, 1)
    assert validate_payment_id(other_bill, payment).ok
    assert validate_payment_id(EXAMPLE_BILL, payment).reason is PaymentIdReason.CHECK_DIGIT_2


def test_make_payment_id_reproduces_the_worked_example():
    assert make_payment_id(EXAMPLE_BILL, 17_000, 7, 1) == EXAMPLE_PAYMENT


def test_zero_debt_payment_id():
    bill = make_bill_id(4_567_890, 123)
    payment = make_payment_id(bill, 0, 3, 5)
    assert len(payment) == 6
    result = validate_payment_id(bill, payment)
    assert result.ok and result.amount_rials == 0
    assert normalize_payment_id(payment.zfill(13)) == payment


@pytest.mark.parametrize(
    ("amount", "year", "period"),
    [(1, 0, 0), (1500, 1, 1), (-1000, 1, 1), (10**11, 1, 1), (1000, 10, 1)],
)
def test_make_payment_id_refuses_bad_fields(amount: int, year: int, period: int):
    with pytest.raises(ValueError):
        make_payment_id(EXAMPLE_BILL, amount, year, period)


def test_make_bill_id_refuses_bad_fields():
    with pytest.raises(ValueError):
        make_bill_id(10**8, 1)
    with pytest.raises(ValueError):
        make_bill_id(1, 1000)
    with pytest.raises(ValueError):
        make_bill_id(1, 1, service=0)


def test_largest_amount():
    bill = make_bill_id(4_567_890, 123)
    payment = make_payment_id(bill, 99_999_999_000, 9, 99)
    assert len(payment) == 13
    assert validate_payment_id(bill, payment).amount_rials == 99_999_999_000


# -------------------------------------------------------------------- barcodes


def test_barcode_round_trip():
    code = barcode(EXAMPLE_BILL, EXAMPLE_PAYMENT)
    assert code == "7748317800142" + "0000001770160"
    assert len(code) == 26
    assert split_barcode(code) == (EXAMPLE_BILL, EXAMPLE_PAYMENT)
    result = validate_barcode(code)
    assert result.ok and result.amount_rials == 17_000


@pytest.mark.parametrize("bad", ["", "123", "7748317800142000000177016", "x" * 26])
def test_split_barcode_refuses_bad_codes(bad: str):
    with pytest.raises(ValueError):
        split_barcode(bad)


def test_barcode_refuses_long_ids():
    with pytest.raises(ValueError):
        barcode(EXAMPLE_BILL, "12345678901234")


# ------------------------------------------------------------------ read-back


@pytest.mark.parametrize(
    ("length", "groups"),
    [(13, (4, 4, 3, 2)), (12, (4, 3, 3, 2)), (9, (4, 3, 2)), (7, (2, 3, 2)), (6, (1, 3, 2))],
)
def test_bill_id_groups(length: int, groups: tuple[int, ...]):
    assert bill_id_groups(length) == groups
    assert sum(groups) == length


@pytest.mark.parametrize("length", [5, 14])
def test_bill_id_groups_refuses_bad_lengths(length: int):
    with pytest.raises(ValueError):
        bill_id_groups(length)


# ------------------------------------------------------------------ properties

bodies = st.builds(
    lambda head, service: head + str(service),
    st.text("0123456789", min_size=4, max_size=11),
    st.integers(1, 9),
)


@given(bodies)
def test_any_body_with_its_check_digit_validates(body: str):
    bill = body + str(check_digit(body))
    result = validate_bill_id(bill)
    assert result.ok
    assert result.bill_id == bill.zfill(13)
    assert result.service_type is not None and result.service_type.code == int(body[-1])
    # and padding with zeros leaves it valid and the same bill
    assert validate_bill_id(bill.zfill(13)).bill_id == result.bill_id


def _residue(body: str) -> int:
    return sum(int(d) * (2, 3, 4, 5, 6, 7)[i % 6] for i, d in enumerate(reversed(body))) % 11


@given(bodies, st.data())
def test_single_digit_change_is_caught_or_consistent(body: str, data: st.DataObject):
    bill = body + str(check_digit(body))
    position = data.draw(st.integers(0, len(bill) - 1))
    new_digit = data.draw(st.sampled_from([d for d in "0123456789" if d != bill[position]]))
    changed = bill[:position] + new_digit + bill[position + 1 :]
    result = validate_bill_id(changed)
    # The verdict always agrees with the check-digit rule...
    consistent = check_digit(changed[:-1]) == int(changed[-1]) and changed[-2] != "0"
    assert result.ok == consistent
    if result.ok:
        # ...and the only change the mod-11 check cannot see maps remainders
        # 0 and 1 onto the same check digit 0: never the check digit itself.
        assert position < len(bill) - 1
        assert changed[-1] == "0"
        assert {_residue(body), _residue(changed[:-1])} <= {0, 1}


@given(
    st.integers(1, 10**8 - 1),
    st.integers(0, 999),
    st.integers(0, 99_999_999),
    st.integers(0, 9),
    st.integers(0, 99),
)
def test_generated_payment_ids_validate(
    file_code: int, company: int, thousands: int, year: int, period: int
):
    bill = make_bill_id(file_code, company)
    payment = make_payment_id(bill, thousands * 1000, year, period)
    result = validate_payment_id(bill, payment)
    assert result.ok
    assert result.amount_rials == thousands * 1000
    assert (result.year_code, result.period_code) == (year, period)
    assert split_barcode(barcode(bill, payment)) == (bill, payment)


@given(st.integers(1, 99_999_999), st.data())
def test_changed_payment_digit_is_caught_or_consistent(thousands: int, data: st.DataObject):
    payment = make_payment_id(EXAMPLE_BILL, thousands * 1000, 4, 12)
    position = data.draw(st.integers(0, len(payment) - 1))
    new_digit = data.draw(st.sampled_from([d for d in "0123456789" if d != payment[position]]))
    changed = payment[:position] + new_digit + payment[position + 1 :]
    result = validate_payment_id(EXAMPLE_BILL, changed)
    c1_ok = check_digit(changed[:-2]) == int(changed[-2])
    c2_ok = check_digit(EXAMPLE_BILL + changed.lstrip("0")[:-1]) == int(changed[-1])
    assert result.ok == (c1_ok and c2_ok)
    if result.ok:
        assert result.amount_rials == int(changed[:-5] or "0") * 1000

"""Bill IDs and payment IDs of the Iranian banks' coordinated bill-payment scheme.

A bill ID (شناسه قبض) names a subscriber's file at a utility; a payment ID
(شناسه پرداخت) names one bill of that file and carries its amount. Both end
in mod-11 check digits, so a mistyped digit is caught before the store or
the bank ever sees it. Everything here is a pure function of its input.

Canonical forms, used by the store and everywhere IDs are compared:

* bill ID: 13 digits, zero-padded on the left (as printed on bills and as
  callers key it in); leading zeros never change a bill ID's check digit.
* payment ID: leading zeros stripped, then padded to the 6-digit minimum (the
  amount field keeps at least one digit, so a zero-debt bill keeps a valid
  shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

BILL_ID_LENGTH = 13
"""Printed length of a bill ID; shorter IDs are padded with zeros to this."""
PAYMENT_ID_LENGTH = 13
MIN_ID_LENGTH = 6
BARCODE_LENGTH = BILL_ID_LENGTH + PAYMENT_ID_LENGTH
AMOUNT_UNIT_RIALS = 1000
"""A payment ID carries the amount in thousands of rials."""
_WEIGHTS = (2, 3, 4, 5, 6, 7)

# Persian (U+06F0..) and Arabic-Indic (U+0660..) digits, as typed on Persian
# keyboards and found in spreadsheets exported by billing systems.
_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_ASCII_DIGITS = frozenset("0123456789")


class Reason(Enum):
    """Why an input was refused: a stable ``code`` for programs and records,
    and ``text`` for the people reading a report."""

    code: str
    text: str

    def __init__(self, code: str, text: str) -> None:
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


class BillIdReason(Reason):
    NOT_DIGITS = ("bill_id.not_digits", "a bill ID contains only the digits 0-9")
    TOO_SHORT = ("bill_id.too_short", "a bill ID has at least 6 digits")
    TOO_LONG = ("bill_id.too_long", "a bill ID has at most 13 digits")
    CHECK_DIGIT = ("bill_id.check_digit", "the bill ID's check digit (the last) is wrong")
    UNKNOWN_SERVICE = (
        "bill_id.unknown_service",
        "the service-type digit (second from the right) is 0, which no service uses",
    )
    NOT_ELECTRICITY = ("bill_id.not_electricity", "this bill ID is not for an electricity bill")


class PaymentIdReason(Reason):
    BILL_ID_INVALID = ("payment_id.bill_id_invalid", "the bill ID is not valid")
    NOT_DIGITS = ("payment_id.not_digits", "a payment ID contains only the digits 0-9")
    TOO_SHORT = ("payment_id.too_short", "a payment ID has at least 6 digits")
    TOO_LONG = ("payment_id.too_long", "a payment ID has at most 13 digits")
    CHECK_DIGIT_1 = (
        "payment_id.check_digit_1",
        "the payment ID's first check digit (second from the right) is wrong",
    )
    CHECK_DIGIT_2 = (
        "payment_id.check_digit_2",
        "the payment ID does not belong to this bill ID (its last check digit is wrong)",
    )


@dataclass(frozen=True)
class ServiceType:
    """The utility a bill ID belongs to (its second digit from the right)."""

    code: int
    key: str
    name: str
    name_fa: str

    def __int__(self) -> int:
        return self.code

    def __str__(self) -> str:
        return self.name

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "key": self.key, "name": self.name, "name_fa": self.name_fa}


ELECTRICITY = 2
SERVICE_TYPES: dict[int, ServiceType] = {
    st.code: st
    for st in (
        ServiceType(1, "water", "water", "آب"),
        ServiceType(2, "electricity", "electricity", "برق"),
        ServiceType(3, "gas", "gas", "گاز"),
        ServiceType(4, "landline", "landline telephone", "تلفن ثابت"),
        ServiceType(5, "mobile", "mobile telephone", "تلفن همراه"),
        ServiceType(6, "municipality", "municipality", "شهرداری"),
        # 7-9 are used inconsistently (tax, traffic fines, ...): valid, but
        # named only as "other".
        ServiceType(7, "other", "other", "سایر"),
        ServiceType(8, "other", "other", "سایر"),
        ServiceType(9, "other", "other", "سایر"),
    )
}


@dataclass(frozen=True)
class BillIdCheck:
    """The verdict on one bill ID. Structural fields are filled in whenever
    the check digit is right, even when ``ok`` is False because the bill is
    not for electricity (so a caller can be told what it is instead)."""

    given: str
    ok: bool
    reason: BillIdReason | None = None
    bill_id: str | None = None
    service_type: ServiceType | None = None
    company_code: str | None = None
    file_code: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def is_electricity(self) -> bool:
        return self.service_type is not None and self.service_type.code == ELECTRICITY


@dataclass(frozen=True)
class PaymentIdCheck:
    """The verdict on a payment ID for a given bill. Amount and codes are
    filled in only when ``ok``."""

    given: str
    ok: bool
    bill: BillIdCheck
    reason: PaymentIdReason | None = None
    payment_id: str | None = None
    amount_rials: int | None = None
    year_code: int | None = None
    period_code: int | None = None
    c1: int | None = None
    c2: int | None = None

    def __bool__(self) -> bool:
        return self.ok


def to_ascii_digits(s: str) -> str:
    """Persian and Arabic-Indic digits to ASCII; other characters unchanged."""
    return s.translate(_TO_ASCII)


def clean_digits(s: str | int) -> str | None:
    """The digit string of ``s`` (surrounding whitespace dropped, Persian
    digits accepted), or None when it holds anything but digits."""
    text = str(s) if isinstance(s, int) and not isinstance(s, bool) else s
    if not isinstance(text, str):
        return None
    text = to_ascii_digits(text.strip())
    if not text or not set(text) <= _ASCII_DIGITS:
        return None
    return text


def check_digit(digits: str) -> int:
    """The scheme's mod-11 check digit over ``digits``: weights 2..7 repeating
    from the right; r = sum mod 11; 0 when r is 0 or 1, else 11 - r."""
    if not digits or not set(digits) <= _ASCII_DIGITS:
        raise ValueError(f"check_digit needs a non-empty ASCII digit string, got {digits!r}")
    total = sum(int(d) * _WEIGHTS[i % len(_WEIGHTS)] for i, d in enumerate(reversed(digits)))
    r = total % 11
    return 0 if r < 2 else 11 - r


def normalize_bill_id(s: str | int) -> str:
    """The canonical 13-digit, zero-padded form of a bill ID (check digit not
    verified): what the store keys bills and callers by."""
    digits = clean_digits(s)
    if digits is None:
        raise ValueError("a bill ID contains only digits")
    significant = digits.lstrip("0")
    if len(significant) > BILL_ID_LENGTH:
        raise ValueError("a bill ID has at most 13 digits")
    return significant.zfill(BILL_ID_LENGTH)


def normalize_payment_id(s: str | int) -> str:
    """The canonical form of a payment ID: leading zeros stripped, padded to
    the 6-digit minimum (check digits not verified)."""
    digits = clean_digits(s)
    if digits is None:
        raise ValueError("a payment ID contains only digits")
    significant = digits.lstrip("0")
    if len(significant) > PAYMENT_ID_LENGTH:
        raise ValueError("a payment ID has at most 13 digits")
    return significant.zfill(MIN_ID_LENGTH)


def validate_bill_id(s: str | int, *, electricity_only: bool = False) -> BillIdCheck:
    """Check a bill ID: 6-13 digits (leading zeros allowed), the check digit,
    a known service type; with ``electricity_only``, also that it is an
    electricity bill (the one kind 1521 serves)."""
    given = str(s).strip() if isinstance(s, str | int) else repr(s)
    digits = clean_digits(s)
    if digits is None:
        return BillIdCheck(given, False, BillIdReason.NOT_DIGITS)
    if len(digits) < MIN_ID_LENGTH:
        return BillIdCheck(given, False, BillIdReason.TOO_SHORT)
    if len(digits) > BILL_ID_LENGTH:
        return BillIdCheck(given, False, BillIdReason.TOO_LONG)
    if check_digit(digits[:-1]) != int(digits[-1]):
        return BillIdCheck(given, False, BillIdReason.CHECK_DIGIT)
    service = SERVICE_TYPES.get(int(digits[-2]))
    if service is None:
        return BillIdCheck(given, False, BillIdReason.UNKNOWN_SERVICE)
    bill_id = digits.zfill(BILL_ID_LENGTH)
    fields = {
        "bill_id": bill_id,
        "service_type": service,
        "company_code": bill_id[-5:-2],
        "file_code": bill_id[:-5],
    }
    if electricity_only and service.code != ELECTRICITY:
        return BillIdCheck(given, False, BillIdReason.NOT_ELECTRICITY, **fields)
    return BillIdCheck(given, True, None, **fields)


def validate_payment_id(bill_id: str | int, payment_id: str | int) -> PaymentIdCheck:
    """Check a payment ID against its bill ID: length, C1 over the payment ID
    itself, and C2 over bill ID + payment ID (leading zeros stripped from
    both, as the scheme computes it). On success, report the amount in rials
    and the year and period codes."""
    bill = validate_bill_id(bill_id)
    given = str(payment_id).strip() if isinstance(payment_id, str | int) else repr(payment_id)
    if not bill.ok:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.BILL_ID_INVALID)
    digits = clean_digits(payment_id)
    if digits is None:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.NOT_DIGITS)
    if len(digits) < MIN_ID_LENGTH:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.TOO_SHORT)
    if len(digits) > PAYMENT_ID_LENGTH:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.TOO_LONG)
    c1, c2 = int(digits[-2]), int(digits[-1])
    if check_digit(digits[:-2]) != c1:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.CHECK_DIGIT_1)
    assert bill.bill_id is not None
    joined = bill.bill_id.lstrip("0") + digits.lstrip("0")[:-1]
    if check_digit(joined) != c2:
        return PaymentIdCheck(given, False, bill, PaymentIdReason.CHECK_DIGIT_2)
    return PaymentIdCheck(
        given,
        True,
        bill,
        None,
        payment_id=normalize_payment_id(digits),
        amount_rials=int(digits[:-5] or "0") * AMOUNT_UNIT_RIALS,
        year_code=int(digits[-5]),
        period_code=int(digits[-4:-2]),
        c1=c1,
        c2=c2,
    )


def make_payment_id(bill_id: str | int, amount_rials: int, year_code: int, period_code: int) -> str:
    """Build the payment ID for a bill (amount a whole number of thousands of
    rials): used to produce test data and by the emulated utility."""
    bill = validate_bill_id(bill_id)
    if not bill.ok or bill.bill_id is None:
        raise ValueError(f"invalid bill ID: {bill.reason}")
    if amount_rials < 0 or amount_rials % AMOUNT_UNIT_RIALS:
        raise ValueError("the amount must be a non-negative whole number of thousands of rials")
    thousands = amount_rials // AMOUNT_UNIT_RIALS
    if thousands >= 10**8:
        raise ValueError("the amount is larger than a payment ID can carry")
    if not 0 <= year_code <= 9 or not 0 <= period_code <= 99:
        raise ValueError("year code is one digit and period code two")
    body = f"{thousands}{year_code}{period_code:02d}"
    body += str(check_digit(body))
    c2 = check_digit(bill.bill_id.lstrip("0") + body.lstrip("0"))
    return normalize_payment_id(body + str(c2))


def make_bill_id(file_code: int, company_code: int, service: int = ELECTRICITY) -> str:
    """Build a valid 13-digit bill ID from its fields (test data, emulator)."""
    if not 0 <= file_code < 10**8 or not 0 <= company_code < 1000 or service not in SERVICE_TYPES:
        raise ValueError("file code has up to 8 digits, company code 3, service type 1-9")
    body = f"{file_code}{company_code:03d}{service}"
    return (body + str(check_digit(body))).zfill(BILL_ID_LENGTH)


def barcode(bill_id: str | int, payment_id: str | int) -> str:
    """The 26-digit barcode printed on bills: bill ID and payment ID, each
    zero-padded to 13 digits."""
    bill = normalize_bill_id(bill_id)
    payment = clean_digits(payment_id)
    if payment is None or len(payment.lstrip("0")) > PAYMENT_ID_LENGTH:
        raise ValueError("a payment ID has at most 13 digits")
    return bill + payment.lstrip("0").zfill(PAYMENT_ID_LENGTH)


def split_barcode(code: str) -> tuple[str, str]:
    """Bill ID (canonical) and payment ID (canonical) from a 26-digit barcode."""
    digits = clean_digits(code)
    if digits is None or len(digits) != BARCODE_LENGTH:
        raise ValueError("a bill barcode has exactly 26 digits")
    return (
        normalize_bill_id(digits[:BILL_ID_LENGTH]),
        normalize_payment_id(digits[BILL_ID_LENGTH:]),
    )


def validate_barcode(code: str) -> PaymentIdCheck:
    """Validate both IDs carried by a 26-digit barcode."""
    bill_id, payment_id = split_barcode(code)
    return validate_payment_id(bill_id, payment_id)


def bill_id_groups(length: int) -> tuple[int, ...]:
    """Group sizes for reading a bill ID of ``length`` digits aloud, following
    its fields from the right: file code (in one or two groups), company
    code (3), then service type and check digit together (2)."""
    if not MIN_ID_LENGTH <= length <= BILL_ID_LENGTH:
        raise ValueError("a bill ID has 6 to 13 digits")
    file_len = length - 5
    file_groups = (file_len,) if file_len <= 4 else ((file_len + 1) // 2, file_len // 2)
    return (*file_groups, 3, 2)

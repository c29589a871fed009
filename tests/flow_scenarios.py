"""One table of 1521 call scenarios, run both on the fake line (test_flow1521_logic.py)
and end to end through the daemon on the emulator (test_flow1521.py).

A scenario is what the caller answers to which question, what they must hear,
and what the call's record and the store must say afterwards. Both runners
take it as it is: a scenario is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon1521.audio.say_fa import say_amount, say_digits
from daemon1521.billing.ids import bill_id_groups, make_bill_id, make_payment_id
from daemon1521.billing.store import CallRecord
from daemon1521.testbed.site import DemoBill

CALLER = "02188776655"
DEBT_BILL = make_bill_id(12345678, 101)
DEBT = 1_234_000
ZERO_BILL = make_bill_id(4321, 101)
OTHER_BILL = make_bill_id(8765432, 205)
OTHER_DEBT = 50_000
UNKNOWN_BILL = make_bill_id(99999, 101)
WATER_BILL = make_bill_id(5555, 101, service=1)
WRONG_CHECK = DEBT_BILL[:-1] + str((int(DEBT_BILL[-1]) + 1) % 10)
BILLS = [
    DemoBill(bill, make_payment_id(bill, amount, 4, 12), amount)
    for bill, amount in ((DEBT_BILL, DEBT), (ZERO_BILL, 0), (OTHER_BILL, OTHER_DEBT))
]


def read_back(bill: str) -> list[str]:
    return ["bill_entered", *say_digits(bill, bill_id_groups(len(bill))), "bill_entered_confirm"]


def remembered(bill: str) -> list[str]:
    return ["remembered_bill_is", *say_digits(bill, bill_id_groups(13)), "remembered_bill_confirm"]


def debt(amount: int, unit: str = "rial") -> list[str]:
    return ["debt_is", *say_amount(amount, unit)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Scenario:
    name: str
    answers: tuple[tuple[str, str], ...]
    """(question, keys) in the order the caller answers them."""
    heard: tuple[str, ...]
    outcome: str
    remembered_before: str | None = None
    private: bool = False
    """The caller withholds their number (no caller ID)."""
    remembered_after: str | None = None
    bill_id: str | None = None
    amount: int | None = None
    states: tuple[str, ...] | None = None

    def fake_answers(self) -> dict[str, list[str]]:
        """The answers as the fake line takes them: per question, in order."""
        answers: dict[str, list[str]] = {}
        for question, keys in self.answers:
            answers.setdefault(question, []).append(keys)
        return answers

    def check(self, record: CallRecord, remembered_now: str | None) -> None:
        assert (record.outcome, record.last_state) == (self.outcome, "goodbye")
        assert record.ended_at is not None
        assert record.caller_number == (None if self.private else CALLER)
        if self.states is not None:
            assert record.states == self.states
        assert (record.bill_id, record.amount_announced) == (self.bill_id, self.amount)
        assert remembered_now == self.remembered_after


SCENARIOS = [
    Scenario(
        "a_new_caller_remembers_the_bill_and_declines_to_pay",
        (
            ("ask_bill_id", DEBT_BILL + "#"),
            ("bill_entered_confirm", "1"),
            ("offer_remember_bill", "1"),
            ("offer_payment", "2"),
        ),
        (
            "welcome",
            "ask_bill_id",
            *read_back(DEBT_BILL),
            "offer_remember_bill",
            "bill_saved",
            *debt(DEBT),
            "offer_payment",
            "goodbye",
        ),
        "not_paid",
        remembered_after=DEBT_BILL,
        bill_id=DEBT_BILL,
        amount=DEBT,
        states=(
            "welcome",
            "ask_bill",
            "read_back_bill",
            "offer_remember_bill",
            "lookup",
            "announce",
            "offer_payment",
            "goodbye",
        ),
    ),
    Scenario(
        "a_returning_caller_chooses_to_pay_without_a_bank_leg",
        (("remembered_bill_confirm", "1"), ("offer_payment", "1")),
        (
            "welcome",
            *remembered(DEBT_BILL),
            *debt(DEBT),
            "offer_payment",
            "payment_not_available",
            "goodbye",
        ),
        "not_paid",
        remembered_before=DEBT_BILL,
        remembered_after=DEBT_BILL,
        bill_id=DEBT_BILL,
        amount=DEBT,
        states=(
            "welcome",
            "remembered_bill",
            "lookup",
            "announce",
            "offer_payment",
            "payment",
            "goodbye",
        ),
    ),
    Scenario(
        "a_returning_caller_replaces_the_remembered_bill",
        (
            ("remembered_bill_confirm", "2"),
            ("ask_bill_id", OTHER_BILL + "#"),
            ("bill_entered_confirm", "1"),
            ("offer_remember_bill", "1"),
            ("offer_payment", "2"),
        ),
        (
            "welcome",
            *remembered(DEBT_BILL),
            "ask_bill_id",
            *read_back(OTHER_BILL),
            "offer_remember_bill",
            "bill_saved",
            *debt(OTHER_DEBT),
            "offer_payment",
            "goodbye",
        ),
        "not_paid",
        remembered_before=DEBT_BILL,
        remembered_after=OTHER_BILL,
        bill_id=OTHER_BILL,
        amount=OTHER_DEBT,
    ),
    Scenario(
        "entry_mistakes_then_a_bill_without_debt",  # wrong check digit, water bill, *
        (
            ("ask_bill_id", WRONG_CHECK + "#"),
            ("ask_bill_id", WATER_BILL + "#"),
            ("ask_bill_id", "98*" + ZERO_BILL + "#"),
            ("bill_entered_confirm", "1"),
            ("offer_remember_bill", "3"),
        ),
        (
            "welcome",
            "ask_bill_id",
            "invalid_bill_id",
            "ask_bill_id",
            "not_electricity_bill",
            "ask_bill_id",
            *read_back(ZERO_BILL),
            "offer_remember_bill",
            "no_debt",
            "goodbye",
        ),
        "no_debt",
        bill_id=ZERO_BILL,
        amount=0,
        states=(
            "welcome",
            "ask_bill",
            "read_back_bill",
            "offer_remember_bill",
            "lookup",
            "announce",
            "goodbye",
        ),
    ),
    Scenario(
        "a_private_caller_and_a_bill_not_found",  # the remembered bill is not offered
        (
            ("ask_bill_id", UNKNOWN_BILL + "#"),
            ("bill_entered_confirm", "1"),
            ("ask_bill_id", DEBT_BILL + "#"),
            ("bill_entered_confirm", "1"),
            ("offer_payment", "#"),
        ),
        (
            "welcome",
            "ask_bill_id",
            *read_back(UNKNOWN_BILL),
            "bill_not_found",
            "ask_bill_id",
            *read_back(DEBT_BILL),
            *debt(DEBT),
            "offer_payment",
            "goodbye",
        ),
        "not_paid",
        remembered_before=DEBT_BILL,
        remembered_after=DEBT_BILL,
        private=True,
        bill_id=DEBT_BILL,
        amount=DEBT,
        states=(
            "welcome",
            "ask_bill",
            "read_back_bill",
            "lookup",
            "ask_bill",
            "read_back_bill",
            "lookup",
            "announce",
            "offer_payment",
            "goodbye",
        ),
    ),
    Scenario(
        "silence_ends_the_call_after_three_tries",
        (),
        (
            "welcome",
            "ask_bill_id",
            "no_input",
            "ask_bill_id",
            "no_input",
            "ask_bill_id",
            "no_input_goodbye",
        ),
        "no_input",
    ),
    Scenario(
        "three_invalid_entries_end_the_call",
        (
            ("ask_bill_id", "12345#"),
            ("ask_bill_id", WRONG_CHECK + "#"),
            ("ask_bill_id", WATER_BILL + "#"),
        ),
        (
            "welcome",
            "ask_bill_id",
            "invalid_bill_id",
            "ask_bill_id",
            "invalid_bill_id",
            "ask_bill_id",
            "not_electricity_bill",
            "too_many_invalid",
        ),
        "invalid_input",
    ),
]

"""Every path of the 1521 flow against a scripted fake line and a real store.

The scenario table (flow_scenarios.py) runs here and end to end through the
emulator (test_flow1521.py); this file also covers each rule and state
quickly, on a virtual clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon1521.audio.say_fa import say_amount
from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.ids import make_payment_id
from daemon1521.billing.store import CallRecord, Store
from daemon1521.ivr.flow1521 import Flow1521, FlowResult
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.errors import NotResponding
from tests.fakes import FakeLine, NamePrompts
from tests.flow_scenarios import (
    CALLER,
    DEBT,
    DEBT_BILL,
    OTHER_BILL,
    OTHER_DEBT,
    SCENARIOS,
    UNKNOWN_BILL,
    WATER_BILL,
    WRONG_CHECK,
    ZERO_BILL,
    Scenario,
    read_back,
)

SHORT_BILL = DEBT_BILL.lstrip("0")


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "calls.db") as db:
        db.upsert_bills(
            [
                {
                    "bill_id": DEBT_BILL,
                    "payment_id": make_payment_id(DEBT_BILL, DEBT, 4, 12),
                    "amount_rials": DEBT,
                },
                {
                    "bill_id": ZERO_BILL,
                    "payment_id": make_payment_id(ZERO_BILL, 0, 4, 12),
                    "amount_rials": 0,
                },
                {
                    "bill_id": OTHER_BILL,
                    "payment_id": make_payment_id(OTHER_BILL, OTHER_DEBT, 4, 12),
                    "amount_rials": OTHER_DEBT,
                },
            ]
        )
        yield db


async def run(
    store: Store,
    line: FakeLine,
    caller: str | None = CALLER,
    settings: IvrSettings | None = None,
) -> tuple[FlowResult, CallRecord]:
    async with await AsyncStore.open(store_path(store)) as live:
        call_id = live.open_call("line1", caller)
        flow = Flow1521.on_line(
            line, NamePrompts(), live, settings or IvrSettings(), call_id=call_id, caller=caller
        )
        result = await flow.run()
    record = store.get_call(call_id)
    assert record is not None
    return result, record


def store_path(store: Store) -> str:
    return store.db.execute("PRAGMA database_list").fetchone()[2]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_scenario_on_the_fake_line(store: Store, scenario: Scenario) -> None:
    if scenario.remembered_before is not None:
        store.remember_bill(CALLER, scenario.remembered_before)
    line = FakeLine(answers=scenario.fake_answers())
    result, record = await run(store, line, caller=None if scenario.private else CALLER)
    assert line.heard() == list(scenario.heard)
    scenario.check(record, store.remembered_bill(CALLER))
    assert result.outcome == scenario.outcome


async def test_new_caller_declines_remembering(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["9"],
            "offer_payment": ["#"],
        }
    )
    _, record = await run(store, line)
    assert "bill_saved" not in line.heard()
    assert store.remembered_bill(CALLER) is None
    assert record.outcome == "not_paid"


async def test_returning_caller_typing_the_same_bill_is_not_asked_to_remember(
    store: Store,
) -> None:
    store.remember_bill(CALLER, DEBT_BILL)
    line = FakeLine(
        answers={
            "remembered_bill_confirm": ["3"],
            "ask_bill_id": [DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert "offer_remember_bill" not in line.heard()
    assert "offer_remember_bill" not in record.states


@pytest.mark.parametrize("caller", [None])
async def test_without_caller_id_nothing_is_remembered(store: Store, caller: None) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line, caller=caller)
    assert "offer_remember_bill" not in line.heard()
    assert record.caller_number is None and record.outcome == "not_paid"


async def test_wrong_check_digit_is_refused_then_corrected(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [WRONG_CHECK + "#", DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert line.heard()[:4] == ["welcome", "ask_bill_id", "invalid_bill_id", "ask_bill_id"]
    assert record.bill_id == DEBT_BILL


async def test_valid_bill_of_another_service_gets_its_own_prompt(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [WATER_BILL + "#", DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    await run(store, line)
    assert line.heard()[:4] == ["welcome", "ask_bill_id", "not_electricity_bill", "ask_bill_id"]


async def test_a_short_bill_id_is_accepted_and_read_in_its_groups(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [SHORT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert read_back(SHORT_BILL) == line.heard()[2 : 2 + len(read_back(SHORT_BILL))]
    assert record.bill_id == DEBT_BILL  # stored in the printed 13-digit form


@pytest.mark.parametrize("entry", ["12345", "12345678901234"])
async def test_wrong_length_is_invalid(store: Store, entry: str) -> None:
    line = FakeLine(answers={"ask_bill_id": [entry + "#"] * 3})
    _, record = await run(store, line)
    assert line.heard()[-2:] == ["invalid_bill_id", "too_many_invalid"]
    assert record.outcome == "invalid_input"


async def test_star_restarts_the_bill_entry(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": ["98765*" + DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert "invalid_bill_id" not in line.heard()
    assert record.bill_id == DEBT_BILL


async def test_full_length_entry_without_hash_is_taken_after_the_timeout(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [DEBT_BILL],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert record.bill_id == DEBT_BILL and "invalid_bill_id" not in line.heard()


async def test_read_back_rejected_asks_again(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [OTHER_BILL + "#", DEBT_BILL + "#"],
            "bill_entered_confirm": ["5", "1"],
            "offer_remember_bill": ["2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    assert record.states[:5] == (
        "welcome",
        "ask_bill",
        "read_back_bill",
        "ask_bill",
        "read_back_bill",
    )
    assert record.bill_id == DEBT_BILL


async def test_silence_at_a_yes_no_question_too(store: Store) -> None:
    line = FakeLine(answers={"ask_bill_id": [DEBT_BILL + "#"]})
    _, record = await run(store, line)
    assert line.questions()[-2:] == ["bill_entered_confirm", "no_input_goodbye"]
    assert record.outcome == "no_input" and "read-back" in (record.reason or "")


async def test_bill_not_found_asks_again(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [UNKNOWN_BILL + "#", DEBT_BILL + "#"],
            "bill_entered_confirm": ["1", "1"],
            "offer_remember_bill": ["2", "2"],
            "offer_payment": ["2"],
        }
    )
    _, record = await run(store, line)
    found = line.heard().index("bill_not_found")
    assert line.heard()[found + 1] == "ask_bill_id"
    assert record.states.count("lookup") == 2 and record.bill_id == DEBT_BILL


async def test_bill_not_found_three_times_ends_the_call(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [UNKNOWN_BILL + "#"] * 3,
            "bill_entered_confirm": ["1"] * 3,
            "offer_remember_bill": ["2"] * 3,
        }
    )
    _, record = await run(store, line)
    assert line.heard()[-2:] == ["bill_not_found", "too_many_invalid"]
    assert record.outcome == "invalid_input" and "not found" in (record.reason or "")


async def test_zero_debt(store: Store) -> None:
    line = FakeLine(
        answers={
            "ask_bill_id": [ZERO_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
        }
    )
    _, record = await run(store, line)
    assert line.heard()[-2:] == ["no_debt", "goodbye"]
    assert (record.outcome, record.amount_announced) == ("no_debt", 0)
    assert "offer_payment" not in record.states


async def test_amount_in_tomans_and_formal_words(store: Store) -> None:
    store.remember_bill(CALLER, OTHER_BILL)
    settings = IvrSettings(unit="toman", formal_thousand=True)
    line = FakeLine(answers={"remembered_bill_confirm": ["1"], "offer_payment": ["2"]})
    await run(store, line, settings=settings)
    words = say_amount(OTHER_DEBT, "toman", formal_thousand=True)
    assert words[-1] == "toman"
    assert ["debt_is", *words] == line.heard()[-2 - len(words) - 1 : -2]


async def test_store_unavailable_at_lookup(store: Store) -> None:
    store.db.execute("DROP TABLE bills")
    line = FakeLine(
        answers={
            "ask_bill_id": [DEBT_BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
        }
    )
    _, record = await run(store, line)
    assert line.heard()[-2:] == ["service_unavailable", "goodbye"]
    assert record.outcome == "service_unavailable"
    assert "bills" in (record.reason or "") and record.last_state == "goodbye"


# Each state, with a prompt of it to hang up on and the answers that lead there.
HANG_UPS = [
    ("welcome", "welcome", {}, False),
    ("remembered_bill", "remembered_bill_confirm", {}, True),
    ("ask_bill", "ask_bill_id", {}, False),
    ("read_back_bill", "bill_entered_confirm", {"ask_bill_id": [DEBT_BILL + "#"]}, False),
    (
        "offer_remember_bill",
        "offer_remember_bill",
        {"ask_bill_id": [DEBT_BILL + "#"], "bill_entered_confirm": ["1"]},
        False,
    ),
    (
        "lookup",
        "bill_not_found",
        {"ask_bill_id": [UNKNOWN_BILL + "#"], "bill_entered_confirm": ["1"]},
        True,
    ),
    ("announce", "debt_is", {"remembered_bill_confirm": ["1"]}, True),
    ("offer_payment", "offer_payment", {"remembered_bill_confirm": ["1"]}, True),
]


@pytest.mark.parametrize(("state", "prompt", "answers", "returning"), HANG_UPS)
async def test_hang_up_in_every_state(
    store: Store, state: str, prompt: str, answers: dict[str, list[str]], returning: bool
) -> None:
    if returning:
        store.remember_bill(CALLER, DEBT_BILL if state != "lookup" else UNKNOWN_BILL)
        answers = {"remembered_bill_confirm": ["2"], **answers}
    line = FakeLine(answers=answers, hang_up_on=prompt)
    result, record = await run(store, line)
    assert (record.outcome, record.last_state) == ("hung_up", state)
    assert record.reason and state in record.reason and "busy_tone" in record.reason
    assert record.ended_at is not None and result.last_state == state


@pytest.mark.parametrize(
    ("answers", "prompt", "outcome"),
    [
        ({"offer_payment": ["1"]}, "payment_not_available", "not_paid"),
        ({"offer_payment": ["2"]}, "goodbye", "not_paid"),
    ],
)
async def test_hang_up_after_the_outcome_is_decided_keeps_it(
    store: Store, answers: dict[str, list[str]], prompt: str, outcome: str
) -> None:
    store.remember_bill(CALLER, DEBT_BILL)
    line = FakeLine(answers={"remembered_bill_confirm": ["1"], **answers}, hang_up_on=prompt)
    _, record = await run(store, line)
    assert record.outcome == outcome
    assert record.last_state == ("payment" if prompt == "payment_not_available" else "goodbye")


async def test_modem_failure_closes_the_record_as_error(store: Store) -> None:
    class Dying(FakeLine):
        async def next_key(self, timeout: float) -> str | None:
            raise NotResponding("modem stopped answering")

    _, record = await run(store, Dying())
    assert (record.outcome, record.last_state) == ("error", "ask_bill")
    assert "NotResponding" in (record.reason or "")


async def test_flow_runs_without_a_call_record(store: Store) -> None:
    line = FakeLine(answers={"ask_bill_id": [ZERO_BILL + "#"], "bill_entered_confirm": ["1"]})
    async with await AsyncStore.open(store_path(store)) as live:
        flow = Flow1521.on_line(line, NamePrompts(), live, IvrSettings(), call_id=None, caller=None)
        result = await flow.run()
    assert result.outcome == "no_debt" and store.recent_calls() == []


# -- settings -----------------------------------------------------------------------


def test_settings_defaults_are_callflows() -> None:
    s = IvrSettings()
    assert (s.first_digit_timeout, s.inter_digit_timeout, s.tries, s.invalid_tries) == (
        8.0,
        5.0,
        3,
        3,
    )
    assert (s.unit, s.max_call_seconds, s.bill_min_digits, s.bill_max_digits) == (
        "rial",
        600.0,
        6,
        13,
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"first_digit_timeout": 0}, "ivr.first_digit_timeout"),
        ({"inter_digit_timeout": "5"}, "ivr.inter_digit_timeout"),
        ({"tries": 0}, "ivr.tries"),
        ({"invalid_tries": 2.5}, "ivr.invalid_tries"),
        ({"unit": "dollar"}, "ivr.unit"),
        ({"formal_hundred": 1}, "ivr.formal_hundred"),
        ({"max_call_seconds": 5}, "ivr.max_call_seconds"),
        ({"bill_max_digits": 14}, "ivr.bill_max_digits"),
        ({"bill_min_digits": 10, "bill_max_digits": 8}, "ivr.bill_min_digits"),
        ({"yes_key": "11"}, "ivr.yes_key"),
        ({"yes_key": "x"}, "ivr.yes_key"),
        ({"first_digit_timout": 8}, "ivr.first_digit_timout"),
    ],
)
def test_bad_settings_name_their_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError) as info:
        IvrSettings.from_mapping(table)
    assert str(info.value).startswith(key)


def test_settings_from_a_table() -> None:
    s = IvrSettings.from_mapping({"unit": "toman", "tries": 2, "first_digit_timeout": 10})
    assert (s.unit, s.tries, s.first_digit_timeout) == ("toman", 2, 10.0)
    assert isinstance(s.first_digit_timeout, float)
    assert IvrSettings.from_mapping(s.as_dict()) == s


async def test_settings_tries_and_yes_key_reach_the_questions(store: Store) -> None:
    settings = IvrSettings(tries=2, yes_key="9")
    line = FakeLine(
        answers={
            "ask_bill_id": [ZERO_BILL + "#", ZERO_BILL + "#"],
            "bill_entered_confirm": ["1", "9"],
        }
    )
    _, record = await run(store, line, settings=settings)
    # "1" is not yes any more: the bill ID is asked again; two silences are the limit
    assert record.states[:5] == (
        "welcome",
        "ask_bill",
        "read_back_bill",
        "ask_bill",
        "read_back_bill",
    )
    assert line.questions()[-4:] == [
        "offer_remember_bill",
        "no_input",
        "offer_remember_bill",
        "no_input_goodbye",
    ]
    assert record.outcome == "no_input"

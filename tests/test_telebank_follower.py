"""Following the caller's keys: the card is learned only when certain, the PIN never held."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.billing.cards import luhn_ok
from daemon1521.telebank.follower import CardFollower, Phase
from daemon1521.telebank.profile import load_profile
from daemon1521.telebank.result import BankResult, ResultReader

PROFILE = load_profile()


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")
PASARGAD2 = with_luhn("639347555555555")
PIN = "83917"


def follow(keys: str, outcome: str | None = "paid") -> CardFollower:
    follower = CardFollower(PROFILE)
    for key in keys:
        follower.key(key)
    follower.bank_result(outcome)
    return follower


def held(follower: CardFollower) -> str:
    """Everything the follower holds, as text."""
    return repr(vars(follower)) + repr(follower)


@pytest.mark.parametrize("card", [CARD, PASARGAD2])
def test_a_clean_payment_teaches_the_card(card: str):
    follower = follow(card + "1" + PIN + "#")
    assert follower.learned() == card
    assert follower.phase is Phase.AFTER_PIN and follower.pin_keys == len(PIN)
    assert PIN not in held(follower)


@pytest.mark.parametrize("outcome", ["paid", "declined_pin", "insufficient_funds", None])
def test_accepted_by_the_bank(outcome: str | None):
    assert follow(CARD + "1" + PIN + "#", outcome).learned() == CARD


def test_card_refused_by_the_bank_is_not_learned():
    assert follow(CARD + "1" + PIN + "#", "card_refused").learned() is None


def test_bank_ending_before_the_pin_without_a_result_teaches_nothing():
    assert follow(CARD + "1", None).learned() is None
    assert follow(CARD + "1" + "12", None).learned() is None


@pytest.mark.parametrize(
    "keys",
    [
        CARD[:7] + "*" + CARD + "1" + PIN + "#",  # corrected with *
        CARD + "2" + CARD + "1" + PIN + "#",  # read-back rejected, typed again
        CARD[:10] + "#" + CARD + "1" + PIN + "#",  # ended early
        CARD + "1" + CARD + "#",  # 16 more digits where the PIN belongs
        CARD + "1" + PIN + "#" + "1234#",  # the bank asked for more
    ],
)
def test_in_doubt_nothing_is_learned(keys: str):
    follower = follow(keys)
    assert follower.learned() is None
    assert follower.phase is Phase.DOUBT


def test_invalid_cards_are_not_learned():
    bad_luhn = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    visa = with_luhn("411111111111111")
    for card in (bad_luhn, visa):
        assert follow(card + "1" + PIN + "#").learned() is None


def test_remembered_card_keyed_by_the_daemon_is_not_learned_again():
    follower = CardFollower(PROFILE)
    follower.start_at_pin()
    for key in PIN + "#":
        follower.key(key)
    follower.bank_result("paid")
    assert follower.in_pin and follower.learned() is None


def test_pin_phase_is_flagged_from_the_confirm_key_on():
    follower = CardFollower(PROFILE)
    for key in CARD:
        follower.key(key)
        assert not follower.in_pin
    follower.key("1")
    assert follower.in_pin


@settings(max_examples=200, deadline=None)
@given(
    st.text("0123456789", min_size=15, max_size=15),
    st.text("0123456789", min_size=5, max_size=12),
    st.sampled_from(["paid", "declined_pin", "insufficient_funds", None]),
)
def test_whatever_the_card_and_pin_the_pin_is_never_held(prefix: str, pin: str, outcome):
    card = with_luhn(prefix)
    follower = CardFollower(PROFILE)
    for key in card + "1":
        follower.key(key)
    for key in pin:
        follower.key(key)
        if pin not in card:
            assert pin not in held(follower)
    follower.key("#")
    follower.bank_result(outcome)
    learned = follower.learned()
    assert learned in (card, None)
    assert learned is None or len(learned) == 16
    follower.forget()
    assert card not in held(follower)


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789*#", max_size=60))
def test_any_keys_teach_only_what_was_typed_before_the_confirm_key(keys: str):
    follower = follow(keys)
    learned = follower.learned()
    if learned is not None:
        assert keys.startswith(learned + "1")
        assert len(learned) == 16


# ------------------------------------------------------------------ results


def read(keys: str) -> BankResult | None:
    reader = ResultReader(PROFILE.end.result)
    for key in keys:
        reader.key(key)
    return reader.ended()


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("A0123456#", BankResult("paid", "0", "123456")),
        ("A1#", BankResult("declined_pin", "1")),
        ("A2#", BankResult("insufficient_funds", "2")),
        ("A3#", BankResult("card_refused", "3")),
        ("5A0987#", BankResult("paid", "0", "987")),  # keys before the frame ignored
        ("A0#", BankResult("garbled", "0")),  # paid without a tracking number
        ("A9#", BankResult("garbled", "9")),
        ("A#", BankResult("garbled")),
        ("A01B2#", BankResult("garbled")),
        ("A012", BankResult("garbled")),  # never finished
        ("B0123#", BankResult("garbled")),
        ("123", None),
    ],
)
def test_machine_results(keys: str, expected: BankResult | None):
    assert read(keys) == expected

"""Dialog primitives against a scripted fake line (tests/fakes.py) on a virtual clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from daemon1521.ivr.dialog import (
    CallerHungUp,
    Dialog,
    Invalid,
    LineFailed,
    Outcome,
)
from daemon1521.modem.errors import PortError
from tests.fakes import FakeLine, NamePrompts

# --------------------------------------------------------------------------
# the tests


def dialog(line: FakeLine, **kw: object) -> Dialog:
    options: dict[str, object] = {"timeout_prompt": "no_input", "name": "test"}
    options.update(kw)
    return Dialog(line, NamePrompts(), **options)  # type: ignore[arg-type]


def typed(start: float, keys: str, gap: float = 0.3) -> list[tuple[float, str]]:
    return [(start + i * gap, k) for i, k in enumerate(keys)]


async def test_digits_ended_by_hash() -> None:
    line = FakeLine(keys=typed(1.5, "12345#"))
    result = await dialog(line).collect_digits("ask", max_digits=13)
    assert result.ok and result.digits == "12345"
    assert result.ended_by == "terminator" and result.tries == 1
    assert line.played[0].how == "full"


async def test_barge_in_key_stops_prompt_and_is_the_first_digit() -> None:
    line = FakeLine(keys=typed(0.4, "987#"))
    result = await dialog(line).collect_digits(["intro", "ask"])
    assert result.digits == "987"
    assert [(p.names, p.how) for p in line.played] == [(["intro", "ask"], "cut")]


async def test_type_ahead_skips_the_prompt() -> None:
    line = FakeLine(keys=typed(0.2, "55#"))
    d = dialog(line)
    key = await d.say("welcome")
    assert key == "5"  # stopped the welcome; held as input
    result = await d.collect_digits("ask")
    assert result.digits == "55"
    assert line.heard() == ["welcome"]  # the question itself was never played


async def test_full_length_then_inter_digit_timeout_counts_as_hash() -> None:
    line = FakeLine(keys=typed(1.5, "1234"))
    result = await dialog(line).collect_digits("ask", max_digits=4)
    assert result.ok and result.digits == "1234" and result.ended_by == "full"


async def test_short_entry_left_to_time_out_is_invalid() -> None:
    line = FakeLine(answers={"ask": ["12", "1234#"]})
    result = await dialog(line).collect_digits("ask", max_digits=4, invalid_prompt="bad")
    assert result.digits == "1234" and result.invalid == 1 and result.reason == "incomplete"
    assert line.heard() == ["ask", "bad", "ask"]


async def test_star_clears_and_restarts_the_entry() -> None:
    line = FakeLine(keys=typed(1.5, "12*345#"))
    result = await dialog(line).collect_digits("ask")
    assert result.digits == "345"


async def test_star_restart_waits_for_a_first_digit_again() -> None:
    # 7 s after * is beyond the inter-digit (5 s) but within the first-digit (8 s) timeout
    line = FakeLine(keys=[*typed(1.5, "12*"), (9.0, "3"), (9.3, "#")])
    result = await dialog(line).collect_digits("ask")
    assert result.digits == "3" and result.silent == 0


@pytest.mark.parametrize(("first", "ok"), [(7.8, True), (8.2, False)])
async def test_first_digit_timeout(first: float, ok: bool) -> None:
    # the prompt ends at 1.0 s; the first digit may come up to 8 s later
    line = FakeLine(keys=typed(1.0 + first, "7#"))
    result = await dialog(line).collect_digits("ask", tries=1)
    assert result.ok is ok
    assert result.outcome is (Outcome.OK if ok else Outcome.NO_INPUT)


@pytest.mark.parametrize(("gap", "digits"), [(4.8, "12"), (5.2, None)])
async def test_inter_digit_timeout(gap: float, digits: str | None) -> None:
    line = FakeLine(keys=[(1.5, "1"), (1.5 + gap, "2"), (1.5 + gap + 0.2, "#")])
    result = await dialog(line).collect_digits("ask", invalid_tries=1)
    assert result.digits == digits
    if digits is None:
        assert result.outcome is Outcome.TOO_MANY_INVALID and result.reason == "incomplete"


async def test_silence_three_times_is_no_input() -> None:
    line = FakeLine()
    result = await dialog(line).collect_digits("ask")
    assert result.outcome is Outcome.NO_INPUT and result.digits is None
    assert (result.tries, result.silent, result.invalid) == (3, 3, 0)
    # the timeout prompt after each silent try but the last
    assert line.heard() == ["ask", "no_input", "ask", "no_input", "ask"]
    assert line.now == pytest.approx(3 * 8.0 + 5 * 1.0)


async def test_validator_prompt_says_what_was_wrong_and_limits_tries() -> None:
    def validator(digits: str) -> Invalid | None:
        return Invalid("odd", "odd_prompt") if int(digits) % 2 else None

    line = FakeLine(answers={"ask": ["11#", "13#", "15#"]})
    result = await dialog(line).collect_digits("ask", validator=validator, invalid_prompt="bad")
    assert result.outcome is Outcome.TOO_MANY_INVALID
    assert (result.invalid, result.reason) == (3, "odd")
    assert line.heard() == ["ask", "odd_prompt", "ask", "odd_prompt", "ask", "odd_prompt"]


@pytest.mark.parametrize(
    ("verdict", "reason"), [(False, "invalid"), ("custom", "custom"), (Invalid("x"), "x")]
)
async def test_validator_verdict_forms(verdict: object, reason: str) -> None:
    line = FakeLine(answers={"ask": ["1#"]})
    result = await dialog(line).collect_digits(
        "ask", validator=lambda d: verdict, invalid_tries=1, invalid_prompt="bad"
    )
    assert result.reason == reason and line.heard() == ["ask", "bad"]


@pytest.mark.parametrize(
    ("keys", "reason"), [("#", "empty"), ("12#", "too_short"), ("1234567#", "too_long")]
)
async def test_length_limits(keys: str, reason: str) -> None:
    line = FakeLine(answers={"ask": [keys]})
    result = await dialog(line).collect_digits(
        "ask", min_digits=3, max_digits=6, invalid_tries=1, invalid_prompt="bad"
    )
    assert result.outcome is Outcome.TOO_MANY_INVALID and result.reason == reason


async def test_silent_and_invalid_tries_are_counted_apart() -> None:
    line = FakeLine(answers={"ask": [None, "1#", None, "2#", "123#"]})
    result = await dialog(line).collect_digits("ask", min_digits=3, invalid_prompt="bad")
    assert result.digits == "123"
    assert (result.tries, result.silent, result.invalid) == (5, 2, 2)


async def test_end_at_max_needs_no_terminator() -> None:
    line = FakeLine(keys=typed(1.5, "42"))
    result = await dialog(line).collect_digits("ask", max_digits=2, end_at_max=True)
    assert result.digits == "42" and result.ended_by == "max"
    assert line.now < 1.5 + 1.0  # did not wait for a timeout


async def test_keys_after_the_terminator_stay_for_the_next_question() -> None:
    line = FakeLine(keys=[*typed(1.5, "12#"), (2.1, "1")])
    d = dialog(line)
    assert (await d.collect_digits("ask")).digits == "12"
    answer = await d.confirm("confirm")
    assert answer.yes and line.heard() == ["ask"]


async def test_say_with_flush_forgets_typed_ahead_keys() -> None:
    line = FakeLine(keys=[(0.1, "9")])
    d = dialog(line)
    line.now = 0.5
    assert d.pending() == 1
    await d.say("goodbye", flush=True)
    assert line.played[-1].how == "full" and d.pending() == 0


async def test_say_without_barge_in_queues_keys() -> None:
    line = FakeLine(keys=[(0.3, "4")])
    d = dialog(line)
    assert await d.say("notice", barge_in=False) is None
    assert line.played[-1].how == "full"
    assert await d.next_key(1.0) == "4"


async def test_confirm_yes_no_and_silence() -> None:
    line = FakeLine(answers={"ok?": [None, "1"]})
    answer = await dialog(line).confirm("ok?")
    assert answer.ok and answer.yes and answer.key == "1" and answer.silent == 1
    line = FakeLine(answers={"ok?": ["#"]})
    answer = await dialog(line).confirm("ok?")
    assert answer.ok and not answer.yes and answer.key == "#"
    line = FakeLine()
    answer = await dialog(line).confirm("ok?", tries=2)
    assert answer.outcome is Outcome.NO_INPUT and line.heard() == ["ok?", "no_input", "ok?"]


async def test_menu_refuses_other_keys() -> None:
    line = FakeLine(answers={"menu": ["7", "9", "2"]})
    answer = await dialog(line).menu("menu", "123", invalid_prompt="bad")
    assert answer.key == "2" and answer.invalid == 2 and answer.tries == 3
    assert line.heard() == ["menu", "bad", "menu", "bad", "menu"]
    line = FakeLine(answers={"menu": ["7", "8"]})
    answer = await dialog(line).menu("menu", "12", invalid_tries=2)
    assert answer.outcome is Outcome.TOO_MANY_INVALID


async def test_hang_up_becomes_caller_hung_up() -> None:
    line = FakeLine(hang_up_at=3.0)
    with pytest.raises(CallerHungUp) as info:
        await dialog(line).collect_digits("ask")
    assert info.value.reason == "busy_tone"


async def test_modem_failure_becomes_line_failed() -> None:
    class Broken(FakeLine):
        async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
            raise PortError("/dev/ttyACM0: gone")

    with pytest.raises(LineFailed, match="gone"):
        await dialog(Broken()).say("welcome")


async def test_sensitive_digits_stay_out_of_logs_and_repr() -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="TRACE", format="{message}")
    try:
        line = FakeLine(answers={"pin": ["9876#", "9753#"]})
        result = await dialog(line).collect_digits(
            "pin",
            sensitive=True,
            validator=lambda d: "wrong" if d == "9876" else None,
            invalid_prompt="bad",
        )
    finally:
        logger.remove(sink)
    assert result.digits == "9753"
    assert "9753" not in repr(result) and "<4 digits>" in repr(result)
    text = "".join(lines)
    assert lines and "9876" not in text and "9753" not in text


async def test_not_sensitive_digits_are_logged_masked() -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="TRACE", format="{message}")
    try:
        await dialog(FakeLine(answers={"ask": ["123452468#"]})).collect_digits("ask")
    finally:
        logger.remove(sink)
    assert "*****2468" in "".join(lines) and "12345" not in "".join(lines)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Dialog(FakeLine(), NamePrompts(), tries=0)


async def test_collector_argument_checks() -> None:
    d = dialog(FakeLine())
    with pytest.raises(ValueError):
        await d.collect_digits("ask", min_digits=5, max_digits=4)
    with pytest.raises(ValueError):
        await d.collect_digits("ask", restart_key="#")
    with pytest.raises(ValueError):
        await d.menu("menu", "")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("0123456789*ABCD"), max_size=30))
def test_entry_is_what_follows_the_last_star(keys: list[str]) -> None:
    import asyncio

    line = FakeLine(keys=typed(1.5, "".join(keys) + "#", gap=0.2))
    result = asyncio.run(dialog(line).collect_digits("ask", max_digits=40, invalid_tries=1))
    tail = "".join(keys).rsplit("*", 1)[-1]
    expected = "".join(k for k in tail if k.isdigit())
    if expected:
        assert result.digits == expected
    else:
        assert result.reason == "empty"

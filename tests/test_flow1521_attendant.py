"""The 1521 attendant on one call: answered, recorded, reported, hung up, whatever happens.

The daemon's line task hands each call to :meth:`Attendant.take_call`; here
the call and its modem are fakes (the end-to-end path is tests/test_flow1521.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import CallRecord, Store
from daemon1521.clock import Clock, LoopClock
from daemon1521.ivr.attendant import Attendant
from daemon1521.ivr.flow1521 import Flow1521
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.callerid import CallerInfo
from daemon1521.modem.errors import NotResponding
from daemon1521.modem.voice import IncomingCall
from tests.fakes import FakeLine, NamePrompts

BILL = make_bill_id(4321, 101)


def incoming(number: str | None = "02133445566") -> IncomingCall:
    if number is None:
        return IncomingCall(2, CallerInfo(None, "private", raw=("NMBR=P",)))
    return IncomingCall(2, CallerInfo(number, "number", raw=(f"NMBR={number}",)))


class FakeModem:
    """A modem in one call: the call's audio is a FakeLine."""

    def __init__(self, line: FakeLine) -> None:
        self.line = line
        self.state = "idle"
        self.codec = "fake"
        self.answered = 0
        self.fail_answer: Exception | None = None

    async def answer(self) -> None:
        if self.fail_answer is not None:
            raise self.fail_answer
        self.answered += 1
        self.state = "in_call"

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        return await self.line.play(audio, barge_in=barge_in)

    async def next_key(self, timeout: float) -> str | None:
        return await self.line.next_key(timeout)

    def pending_keys(self) -> int:
        return self.line.pending_keys()

    def flush_keys(self) -> None:
        self.line.flush_keys()


@dataclass
class FakeCall:
    """What the daemon's line task hands the attendant: it counts hang-ups and reports."""

    modem: FakeModem
    store: AsyncStore
    incoming: IncomingCall = field(default_factory=incoming)
    line: str = "line1"
    settings: IvrSettings = field(default_factory=IvrSettings)
    prompts: NamePrompts = field(default_factory=NamePrompts)
    # store reads take real time on the store's thread: not too fast a clock
    clock: Clock = field(default_factory=lambda: LoopClock(100))
    telebank: None = None
    hung_up: int = 0
    reports: list[tuple[int | None, str | None]] = field(default_factory=list)
    asking: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the flow asks for the bill ID."""

    def report(self, *, call_id: int | None = None, state: str | None = None) -> None:
        self.reports.append((call_id, state))
        if state == "ask_bill":
            self.asking.set()

    async def hang_up(self) -> None:
        self.hung_up += 1
        self.modem.state = "idle"

    def outbound(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


class SlowLine(FakeLine):
    """A silent caller whose waits take real time (1/1000 of line time)."""

    async def next_key(self, timeout: float) -> str | None:
        await asyncio.sleep(timeout / 1000)
        return await super().next_key(timeout)


@pytest.fixture
async def store(tmp_path: Path):
    with Store.open(tmp_path / "calls.db") as db:
        db.upsert_bills(
            [{"bill_id": BILL, "payment_id": make_payment_id(BILL, 0, 4, 12), "amount_rials": 0}]
        )
    async with await AsyncStore.open(tmp_path / "calls.db") as live:
        yield live


async def recorded(store: AsyncStore) -> list[CallRecord]:
    """The call records, once the store's queued writes are in."""
    assert await store.flush(5)
    return await store.recent_calls()


def zero_debt_call() -> FakeModem:
    return FakeModem(
        FakeLine(
            answers={
                "ask_bill_id": [BILL + "#"],
                "bill_entered_confirm": ["1"],
                "offer_remember_bill": ["2"],
            }
        )
    )


async def test_calls_are_answered_recorded_and_hung_up(store: AsyncStore) -> None:
    attendant = Attendant()
    first_call = FakeCall(zero_debt_call(), store, line="line7")
    second_call = FakeCall(zero_debt_call(), store, incoming(None), line="line7")
    for call in (first_call, second_call):
        await attendant.take_call(call)
        assert (call.modem.answered, call.hung_up) == (1, 1)
    second, first = await recorded(store)
    assert first.line == "line7" and first.caller_number == "02133445566"
    assert second.caller_number is None
    for record in (first, second):
        assert record.answered_at is not None and record.ended_at is not None
        assert (record.outcome, record.last_state) == ("no_debt", "goodbye")
    # only the caller with a number was asked whether to remember the bill
    assert "offer_remember_bill" in first.states and "offer_remember_bill" not in second.states


async def test_progress_is_reported_as_the_call_goes(store: AsyncStore) -> None:
    call = FakeCall(zero_debt_call(), store)
    await Attendant().take_call(call)
    (record,) = await recorded(store)
    assert call.reports[0] == (record.id, None)
    assert [state for _, state in call.reports[1:]] == list(record.states)


async def test_a_failing_flow_is_recorded_and_does_not_escape(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [RuntimeError("a bug")]
    real_ask = Flow1521.ask_bill

    async def ask_bill(self: Flow1521):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return await real_ask(self)

    monkeypatch.setattr(Flow1521, "ask_bill", ask_bill)
    attendant = Attendant()
    calls = [FakeCall(zero_debt_call(), store), FakeCall(zero_debt_call(), store)]
    for call in calls:
        await attendant.take_call(call)
    second, first = await recorded(store)
    assert (first.outcome, first.last_state) == ("error", "ask_bill")
    assert first.reason == "flow error: RuntimeError" and first.ended_at is not None
    assert second.outcome == "no_debt"
    assert [call.hung_up for call in calls] == [1, 1]


async def test_answer_failure_is_recorded(store: AsyncStore) -> None:
    call = FakeCall(zero_debt_call(), store)
    call.modem.fail_answer = NotResponding("modem stopped answering")
    await Attendant().take_call(call)
    (record,) = await recorded(store)
    assert record.outcome == "error" and "modem failed" in (record.reason or "")
    assert record.answered_at is None and call.hung_up == 1


async def test_call_length_cap_ends_a_call(store: AsyncStore) -> None:
    settings = IvrSettings(max_call_seconds=30, first_digit_timeout=20)
    call = FakeCall(FakeModem(SlowLine()), store, settings=settings, clock=LoopClock(1000))
    await Attendant().take_call(call)
    (record,) = await recorded(store)
    assert (record.outcome, record.last_state) == ("hung_up", "ask_bill")
    assert record.reason == "call length limit reached"
    assert call.hung_up == 1


async def test_store_down_at_the_ring_still_answers(store: AsyncStore) -> None:
    with Store.open(store.path) as db:
        db.db.execute("DROP TABLE calls")
    call = FakeCall(zero_debt_call(), store)
    result = await Attendant().take_call(call)
    assert call.modem.answered == 1 and call.hung_up == 1
    assert result is not None and result.outcome == "no_debt"


async def test_cancelled_mid_call_hangs_up_and_closes_the_record(store: AsyncStore) -> None:
    call = FakeCall(FakeModem(SlowLine()), store, clock=LoopClock(10))
    task = asyncio.create_task(Attendant().take_call(call))
    await asyncio.wait_for(call.asking.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = await recorded(store)
    assert record.outcome == "error" and "stopped" in (record.reason or "")
    assert call.hung_up == 1

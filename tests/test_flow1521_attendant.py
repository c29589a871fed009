"""The answer loop of a line: every call answered, recorded, hung up, whatever happens."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import pytest

from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import Store
from daemon1521.clock import LoopClock
from daemon1521.ivr.attendant import Attendant, serve_line
from daemon1521.ivr.flow1521 import Flow1521
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.callerid import CallerInfo
from daemon1521.modem.errors import NotResponding, PortError
from daemon1521.modem.voice import IncomingCall
from tests.test_dialog import FakeLine, NamePrompts

BILL = make_bill_id(4321, 101)


def incoming(number: str | None = "02133445566") -> IncomingCall:
    if number is None:
        return IncomingCall(2, CallerInfo(None, "private", raw=("NMBR=P",)))
    return IncomingCall(2, CallerInfo(number, "number", raw=(f"NMBR={number}",)))


class FakeModem:
    """Rings with the queued calls, then waits for ever; each call is a FakeLine."""

    def __init__(self, calls: list[tuple[IncomingCall, FakeLine]], speed: float = 1e6):
        self.calls = deque(calls)
        self.clock = LoopClock(speed)
        self.state = "idle"
        self.codec = "fake"
        self.line: FakeLine | None = None
        self.answered = 0
        self.hung_up = 0
        self.fail_answer: Exception | None = None
        self.down_after_call = False

    async def wait_for_call(self, timeout: float | None = None) -> IncomingCall | None:
        if not self.calls:
            await asyncio.Event().wait()
        call, self.line = self.calls.popleft()
        return call

    async def answer(self) -> None:
        if self.fail_answer is not None:
            raise self.fail_answer
        self.answered += 1
        self.state = "in_call"

    async def hang_up(self) -> None:
        self.hung_up += 1
        self.state = "down" if self.down_after_call else "idle"

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        assert self.line is not None
        return await self.line.play(audio, barge_in=barge_in)

    async def next_key(self, timeout: float) -> str | None:
        assert self.line is not None
        return await self.line.next_key(timeout)

    def pending_keys(self) -> int:
        return self.line.pending_keys() if self.line else 0

    def flush_keys(self) -> None:
        if self.line:
            self.line.flush_keys()


class SlowLine(FakeLine):
    """A silent caller whose waits take real time (1/1000 of line time)."""

    async def next_key(self, timeout: float) -> str | None:
        await asyncio.sleep(timeout / 1000)
        return await super().next_key(timeout)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "calls.db") as db:
        db.upsert_bills(
            [{"bill_id": BILL, "payment_id": make_payment_id(BILL, 0, 4, 12), "amount_rials": 0}]
        )
        yield db


def zero_debt_call() -> FakeLine:
    return FakeLine(
        answers={
            "ask_bill_id": [BILL + "#"],
            "bill_entered_confirm": ["1"],
            "offer_remember_bill": ["2"],
        }
    )


async def serve_until(attendant: Attendant, calls: int) -> None:
    """Serve until ``calls`` calls are done and the line waits again; then stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(attendant.serve(stop))
    try:
        while attendant.calls < calls or not attendant.waiting.is_set():
            if task.done():
                task.result()
            await asyncio.sleep(0.001)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_calls_are_answered_recorded_and_hung_up(store: Store) -> None:
    modem = FakeModem([(incoming(), zero_debt_call()), (incoming(None), zero_debt_call())])
    attendant = Attendant(modem, store, NamePrompts(), IvrSettings(), "line7")
    await serve_until(attendant, 2)
    assert (modem.answered, modem.hung_up) == (2, 2)
    second, first = store.recent_calls()
    assert first.line == "line7" and first.caller_number == "02133445566"
    assert second.caller_number is None
    for record in (first, second):
        assert record.answered_at is not None and record.ended_at is not None
        assert (record.outcome, record.last_state) == ("no_debt", "goodbye")
    # only the caller with a number was asked whether to remember the bill
    assert "offer_remember_bill" in first.states and "offer_remember_bill" not in second.states


async def test_a_failing_flow_does_not_stop_the_line(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [RuntimeError("a bug")]
    real_ask = Flow1521.ask_bill

    async def ask_bill(self: Flow1521):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return await real_ask(self)

    monkeypatch.setattr(Flow1521, "ask_bill", ask_bill)
    modem = FakeModem([(incoming(), zero_debt_call()), (incoming(), zero_debt_call())])
    attendant = Attendant(modem, store, NamePrompts(), IvrSettings(), "line1")
    await serve_until(attendant, 2)
    second, first = store.recent_calls()
    assert (first.outcome, first.last_state) == ("error", "ask_bill")
    assert first.reason == "flow error: RuntimeError" and first.ended_at is not None
    assert second.outcome == "no_debt"
    assert modem.hung_up == 2


async def test_answer_failure_is_recorded_and_the_line_goes_on(store: Store) -> None:
    modem = FakeModem([(incoming(), zero_debt_call())])
    modem.fail_answer = NotResponding("modem stopped answering")
    attendant = Attendant(modem, store, NamePrompts(), IvrSettings(), "line1")
    await serve_until(attendant, 1)
    (record,) = store.recent_calls()
    assert record.outcome == "error" and "modem failed" in (record.reason or "")
    assert record.answered_at is None and modem.hung_up == 1


async def test_call_length_cap_ends_a_call(store: Store) -> None:
    settings = IvrSettings(max_call_seconds=30, first_digit_timeout=20)
    modem = FakeModem([(incoming(), SlowLine())], speed=1000)
    attendant = Attendant(modem, store, NamePrompts(), settings, "line1")
    await serve_until(attendant, 1)
    (record,) = store.recent_calls()
    assert (record.outcome, record.last_state) == ("hung_up", "ask_bill")
    assert record.reason == "call length limit reached"
    assert modem.hung_up == 1


async def test_store_down_at_the_ring_still_answers(store: Store) -> None:
    store.db.execute("DROP TABLE calls")
    modem = FakeModem([(incoming(), zero_debt_call())])
    attendant = Attendant(modem, store, NamePrompts(), IvrSettings(), "line1")
    await serve_until(attendant, 1)
    assert modem.answered == 1 and modem.hung_up == 1
    assert attendant.last is not None and attendant.last.outcome == "no_debt"


async def test_a_modem_left_down_ends_the_loop_for_the_supervisor(store: Store) -> None:
    modem = FakeModem([(incoming(), zero_debt_call())])
    modem.down_after_call = True
    with pytest.raises(PortError):
        await serve_line(modem, store, NamePrompts(), IvrSettings(), "line1")
    (record,) = store.recent_calls()
    assert record.outcome == "no_debt"


async def test_stop_while_idle_returns(store: Store) -> None:
    modem = FakeModem([])
    stop = asyncio.Event()
    task = asyncio.create_task(serve_line(modem, store, NamePrompts(), IvrSettings(), "l", stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert modem.answered == 0


async def test_cancelled_mid_call_hangs_up_and_closes_the_record(store: Store) -> None:
    modem = FakeModem([(incoming(), SlowLine())], speed=10)
    attendant = Attendant(modem, store, NamePrompts(), IvrSettings(), "line1")
    task = asyncio.create_task(attendant.serve())
    while attendant.current is None:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = store.recent_calls()
    assert record.outcome == "error" and "stopped" in (record.reason or "")
    assert modem.hung_up == 1

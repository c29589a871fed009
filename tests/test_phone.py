"""Scripted phones: sending, listening, recognising prompts, hanging up at any moment."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.dsp.tones import tone
from daemon1521.emulator.clock import RATE, EmuClock
from daemon1521.emulator.exchange import Exchange
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.toneplan import TonePlan

PLAN = TonePlan(no_answer_timeout=8.0, park_after=2.0, first_digit_timeout=3.0)
A, B = "02188001111", "05118002222"


def melody(freqs: list[int], note: float = 0.12) -> np.ndarray:
    """A recognisable stand-in for a spoken prompt, with a little silence around it."""
    pad = np.zeros(RATE // 10, dtype=np.int16)
    notes = [tone([f, 2 * f + 130], note, level_dbm0=-16.0) for f in freqs]
    return np.concatenate([pad, *notes, pad])


PROMPTS = {
    "welcome": melody([400, 900, 1500, 600, 2100, 1100, 700, 1800, 500, 1300]),
    "goodbye": melody([1700, 500, 1200, 2300, 800, 1500, 450, 1000]),
}


@pytest.fixture
async def exchange():
    ex = Exchange(EmuClock(speed=50), PLAN)
    await ex.start()
    yield ex
    await ex.stop()


async def call(a: Phone, b: Phone) -> None:
    async def answer() -> None:
        await b.wait_for_ring(10)
        await b.answer()

    answering = asyncio.create_task(answer())
    assert await a.dial(b.number) == "answered"
    await answering


def keys_in(audio: np.ndarray) -> str:
    return "".join(e.key for e in DtmfDetector(rate=RATE).feed(audio) if e.kind == "down")


async def test_phone_on_makes_a_line_with_its_presentation(exchange):
    a = Phone.on(exchange, A, presentation="private", label="kiosk")
    assert a.number == A and a.line is exchange.line(A)
    assert a.line.label == "kiosk"
    assert exchange.presentation(A) == "private"
    assert not a.off_hook and a.state == "idle" and len(a.heard) == 0


async def test_heard_is_everything_received_off_hook_and_read_only(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await a.wait(0.5)
    assert len(a.heard) == 0  # nothing while on hook
    await call(a, b)
    b.say(np.linspace(-0.5, 0.5, RATE))  # float audio, -1..1 full scale
    await a.wait(1.2)
    heard = a.heard
    assert heard.dtype == np.int16 and not heard.flags.writeable
    assert heard.max() == pytest.approx(0.5 * 32767, abs=2)
    assert heard.min() == pytest.approx(-0.5 * 32767, abs=2)
    before = len(heard)
    await a.wait(0.2)
    assert len(a.heard) == before + round(0.2 * RATE)
    assert np.array_equal(a.heard[:before], heard)  # earlier views stay valid


async def test_forget_heard_between_calls_and_the_next_call_is_heard_from_zero(exchange):
    a = Phone.on(exchange, A, recordings=PROMPTS)
    b = Phone.on(exchange, B)
    await call(a, b)
    b.say(PROMPTS["welcome"])
    await a.wait(2.0)
    with pytest.raises(RuntimeError, match="off hook"):
        a.forget_heard()
    await a.hang_up()
    assert len(a.heard) > RATE
    a.forget_heard()
    assert len(a.heard) == 0
    await b.hang_up()
    await call(a, b)
    b.say(PROMPTS["goodbye"])
    assert await a.wait_heard("goodbye", timeout=5.0)
    assert [h.name for h in a.transcript() if h.name] == ["goodbye"]  # not the welcome


async def test_wait_for_silence(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    assert not await a.wait_for_silence(0.5, timeout=1.0)  # on hook: nothing to hear
    a.lift()
    assert not await a.wait_for_silence(0.5, timeout=1.0)  # dial tone is not silence
    await a.hang_up()
    await call(a, b)
    b.say(tone([700], 1.0))
    await a.wait(0.1)
    started = exchange.clock.now()
    assert await a.wait_for_silence(0.5, timeout=5.0)
    assert exchange.clock.now() - started == pytest.approx(0.9 + 0.5, abs=0.05)


async def test_wait_heard_and_transcript_recognise_prompts_from_audio(exchange):
    a = Phone.on(exchange, A, recordings=PROMPTS)
    b = Phone.on(exchange, B)
    await call(a, b)
    with pytest.raises(KeyError):
        await a.wait_heard("menu", timeout=0.1)
    b.say(PROMPTS["welcome"])
    assert not await a.wait_heard("welcome", timeout=0.6)  # still playing
    assert await a.wait_heard("welcome", complete=False, timeout=0.1)
    assert await a.wait_heard("welcome", timeout=2.0)
    mark = len(a.heard)
    await a.wait(2.0)
    assert not await a.wait_heard("welcome", since=mark, timeout=0.5)
    b.say(np.zeros(RATE * 3, dtype=np.int16))
    b.say(PROMPTS["goodbye"])
    assert await a.wait_heard("goodbye", since=mark, timeout=6.0)
    assert [h.name for h in a.transcript() if h.name] == ["welcome", "goodbye"]
    with pytest.raises(RuntimeError, match="recordings"):
        b.transcript()


async def test_press_sends_dtmf_and_validates(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    with pytest.raises(RuntimeError, match="on hook"):
        await a.press("1")
    with pytest.raises(ValueError, match="DTMF"):
        await a.press("1x")
    await call(a, b)
    started = exchange.clock.now()
    await a.press("42", on=0.1, gap=0.2)
    # returns once the last tone is out: tone, gap, tone
    assert exchange.clock.now() - started == pytest.approx(0.4, abs=0.03)
    await a.wait(0.3)
    assert keys_in(b.heard) == "42"


async def test_cancelled_press_stops_sending(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await call(a, b)
    mark = len(b.heard)
    pressing = asyncio.create_task(a.press("123456789"))
    await a.wait(0.6)  # keys 1 and 2 and part of the gap out
    pressing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pressing
    await a.wait(1.5)
    assert keys_in(b.heard[mark:]) in ("12", "123")
    await a.press("0")  # still usable
    await a.wait(0.3)
    assert keys_in(b.heard[mark:]).endswith("0")


async def test_hanging_up_mid_press_ends_the_press(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await call(a, b)
    pressing = asyncio.create_task(a.press("0123456789"))
    await a.wait(0.5)
    await a.hang_up()
    await asyncio.wait_for(pressing, timeout=5)
    assert not a.off_hook and exchange.line_state(a.line) == "idle"
    assert exchange.line_state(b.line) == "busy" and b.loop_breaks == 1


async def test_dial_from_a_parked_line_lifts_again(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    assert await a.dial("7") == "congestion"
    await a.wait(PLAN.park_after + 0.5)
    assert a.state == "parked"
    await call(a, b)
    assert a.state == b.state == "connected"


async def test_wait_for_ring_times_out_without_a_call(exchange):
    a = Phone.on(exchange, A)
    started = exchange.clock.now()
    assert await a.wait_for_ring(2.0) is None
    assert exchange.clock.now() - started == pytest.approx(2.0, abs=0.05)


async def test_wait_for_ring_counts_a_call_already_ringing(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    calling = asyncio.create_task(a.dial(B, answer_timeout=30))
    await b.wait(3.0)  # first ring over and caller ID delivered before the wait
    cid = await b.wait_for_ring(1.0)
    assert cid is not None and cid.number == A
    await b.answer()
    assert await calling == "answered"


async def test_no_answer_by_the_exchange_then_a_fresh_call(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    assert await a.dial(B) == "no_answer"  # exchange timeout: 8 s
    assert a.off_hook and a.state == "congestion"
    await a.hang_up()
    await call(a, b)

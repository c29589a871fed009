"""The emulated exchange: tones, routing by DTMF audio, ringing, caller ID, speech paths."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from daemon1521.dsp.dtmf import DtmfDetector, ToneDetector
from daemon1521.dsp.tones import CadencedTone, power_dbm0
from daemon1521.emulator.clock import FRAME, RATE, EmuClock
from daemon1521.emulator.exchange import DELIVERY_SLICE, Exchange
from daemon1521.emulator.line import CallerId, Endpoint
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.toneplan import TonePlan

SPEED = 50
# Iranian defaults, with the long switch timers shortened so tests stay quick.
PLAN = TonePlan(
    no_answer_timeout=12.0,
    park_after=3.0,
    first_digit_timeout=3.0,
    inter_digit_timeout=2.0,
)
A, B, C = "02188001111", "02188002222", "02188003333"


@pytest.fixture
async def exchange():
    ex = Exchange(EmuClock(speed=SPEED), PLAN)
    await ex.start()
    yield ex
    await ex.stop()
    assert not ex.running


def segments(audio: np.ndarray, freq: float = 425.0) -> list[tuple[str, float, float]]:
    """(on/off, start s, length s) runs of ``freq`` in ``audio``; the last run is open."""
    events = ToneDetector(freq, rate=RATE).feed(audio)
    runs = []
    ends = [e.sample for e in events[1:]] + [len(audio)]
    for this, end in zip(events, ends, strict=False):
        runs.append((this.kind, this.sample / RATE, (end - this.sample) / RATE))
    return runs


def assert_cadence(audio: np.ndarray, on: float, off: float) -> None:
    """The 425 Hz tone in ``audio`` repeats ``on`` / ``off`` seconds (within 40 ms)."""
    runs = segments(audio)[:-1]
    ons = [n for kind, _, n in runs if kind == "on"]
    offs = [n for kind, _, n in runs if kind == "off"]
    assert ons and offs, runs
    assert np.median(ons) == pytest.approx(on, abs=0.04)
    assert np.median(offs) == pytest.approx(off, abs=0.04)


def find(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """Index where ``needle`` occurs sample for sample in ``haystack``."""
    for start in np.flatnonzero(haystack == needle[0]):
        if np.array_equal(haystack[start : start + len(needle)], needle):
            return int(start)
    return None


def keys_in(audio: np.ndarray) -> str:
    return "".join(e.key for e in DtmfDetector(rate=RATE).feed(audio) if e.kind == "down")


def events_of(ex: Exchange, number: str) -> list[str]:
    return [e.event for e in ex.events if e.line == number]


async def connect(ex: Exchange, caller: Phone, callee: Phone) -> None:
    """Call ``callee`` from ``caller`` and answer after the caller ID."""

    async def answer() -> None:
        assert await callee.wait_for_ring(10) is not None
        await callee.answer()

    answering = asyncio.create_task(answer())
    assert await caller.dial(callee.number) == "answered"
    await answering
    assert ex.line_state(caller.line) == ex.line_state(callee.line) == "connected"


# -- the tone plan ---------------------------------------------------------------


def test_tone_plan_defaults_are_iranian():
    plan = TonePlan()
    assert plan.dial_freqs == plan.busy_freqs == plan.ringback_freqs == (425.0,)
    assert plan.cadence("dial") is None
    assert plan.cadence("ringback") == [(1.0, 4.0)] == list(plan.ring_cadence)
    assert plan.cadence("busy") == [(0.5, 0.5)]
    on, off = plan.congestion_cadence[0]
    assert on + off < 1.0  # faster than busy
    assert plan.loop_break_on_clear and not plan.polarity_reversal_on_answer


def test_tone_plan_from_mapping():
    plan = TonePlan.from_mapping(
        {
            "busy_cadence": [[0.4, 0.4]],
            "dial_freqs": 400,
            "dial_cadence": None,
            "ringback_freqs": [400, 450],
            "no_answer_timeout": 90,
            "polarity_reversal_on_answer": True,
            "no_answer_tone": "busy",
        }
    )
    assert plan.busy_cadence == ((0.4, 0.4),)
    assert plan.dial_freqs == (400.0,) and plan.dial_cadence == ()
    assert plan.ringback_freqs == (400.0, 450.0)
    assert plan.no_answer_timeout == 90.0 and plan.polarity_reversal_on_answer
    assert plan.no_answer_tone == "busy"
    assert TonePlan.from_mapping({}) == TonePlan()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ring_volume": 3}, "ring_volume"),
        ({"caller_id_delay": 5.0}, "caller_id_delay"),
        ({"busy_cadence": [[0.5]]}, "busy_cadence"),
        ({"loop_break_on_clear": "yes"}, "loop_break_on_clear"),
        ({"first_digit_timeout": 0}, "first_digit_timeout"),
        ({"no_answer_tone": "silence"}, "no_answer_tone"),
        ({"dial_freqs": []}, "dial_freqs"),
    ],
)
def test_tone_plan_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        TonePlan.from_mapping(settings)


# -- configuration -----------------------------------------------------------------


def test_lines_numbers_and_presentation():
    ex = Exchange(EmuClock())
    a = Phone.on(ex, A)
    b = Phone.on(ex, B, presentation="private")
    assert ex.lines == [a.line, b.line]
    assert ex.line(B) is b.line
    assert ex.line_state(a.line) == ex.line_state(B) == "idle"
    assert ex.presentation(B) == "private"
    ex.set_presentation(b.line, "unavailable")
    assert ex.presentation(b.line) == "unavailable"
    with pytest.raises(ValueError, match="presentation"):
        ex.set_presentation(A, "secret")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already"):
        Phone.on(ex, A)
    with pytest.raises(ValueError, match="digits"):
        Phone.on(ex, "12a")
    ex.add_hunt_group("1521", [a.line])
    with pytest.raises(ValueError, match="already"):
        ex.add_hunt_group("1521", [b.line])
    with pytest.raises(KeyError):
        ex.line("999")


async def test_context_manager_starts_and_stops():
    async with Exchange(EmuClock(speed=SPEED)) as ex:
        assert ex.running
        with pytest.raises(RuntimeError):
            await ex.start()
        await ex.clock.sleep(0.1)
    assert not ex.running
    await ex.stop()  # stopping twice is harmless


# -- dial tone and digits --------------------------------------------------------------


async def test_lifting_gives_continuous_dial_tone_at_plan_level(exchange):
    a = Phone.on(exchange, A)
    a.lift()
    assert exchange.line_state(a.line) == "dialtone"
    await a.wait(2.0)
    runs = segments(a.heard)
    assert [kind for kind, _, _ in runs] == ["on"]
    assert runs[0][1] < 0.1
    level = power_dbm0(np.mean(a.heard.astype(np.float64) ** 2))
    assert level == pytest.approx(PLAN.tone_level_dbm0, abs=0.5)
    assert events_of(exchange, A) == ["off-hook", "dialtone"]


@pytest.mark.parametrize(
    ("plan", "tone"),
    [
        (PLAN, "congestion"),
        (PLAN, "busy"),
        (dataclasses.replace(PLAN, congestion_freqs=(400.0, 450.0)), "congestion"),
        # a frequency that never repeats within a frame grid: synthesised live
        (dataclasses.replace(PLAN, congestion_freqs=(425.5,)), "congestion"),
    ],
)
async def test_tones_are_sample_exact_for_long_runs(exchange, plan, tone):
    exchange.plan = plan
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    if tone == "busy":
        b.lift()
    assert await a.dial("9" if tone == "congestion" else B) == tone
    started = next(e.time for e in exchange.events if e.line == A and e.event == tone)
    lifted = next(e.time for e in exchange.events if e.line == A and e.event == "off-hook")
    await a.wait(2.5)
    heard = a.heard[round((started - lifted) * RATE) :]
    expected = CadencedTone(plan.freqs(tone), plan.cadence(tone), plan.tone_level_dbm0, RATE)
    assert np.array_equal(heard, expected.read(len(heard)))


async def test_dial_tone_stops_at_first_digit_and_digits_are_heard_as_audio(exchange):
    a = Phone.on(exchange, A)
    Phone.on(exchange, B)
    a.lift()
    await a.wait(0.5)
    pressed = len(a.heard) / RATE
    await a.press("021")
    assert exchange.line_state(a.line) == "dialling"
    # dial tone gone within the first key press (detection takes 40 ms)
    runs = segments(a.heard)
    assert [kind for kind, _, _ in runs] == ["on", "off"]
    assert pressed < runs[1][1] < pressed + 0.1
    assert [e for e in events_of(exchange, A) if e.startswith("digit")] == [
        "digit 0",
        "digit 2",
        "digit 1",
    ]


async def test_unknown_number_gives_congestion_then_parks(exchange):
    a = Phone.on(exchange, A)
    Phone.on(exchange, B)
    assert await a.dial("0999") == "congestion"
    assert "unknown number 09" in events_of(exchange, A)
    mark = len(a.heard)
    await a.wait(2.0)
    assert_cadence(a.heard[mark:], *PLAN.congestion_cadence[0])
    await a.wait(PLAN.park_after)
    assert exchange.line_state(a.line) == "parked"
    assert await a.wait_for_silence(1.0, timeout=2.0)
    await a.hang_up()
    assert exchange.line_state(a.line) == "idle"


async def test_first_digit_timeout_gives_congestion(exchange):
    a = Phone.on(exchange, A)
    a.lift()
    await a.wait(PLAN.first_digit_timeout + 0.2)
    assert exchange.line_state(a.line) == "congestion"
    assert "first-digit timeout" in events_of(exchange, A)


async def test_inter_digit_timeout_gives_congestion(exchange):
    a = Phone.on(exchange, A)
    Phone.on(exchange, B)
    a.lift()
    await a.wait(0.3)
    await a.press("0218")
    await a.wait(PLAN.inter_digit_timeout - 0.5)
    assert exchange.line_state(a.line) == "dialling"
    await a.wait(1.0)
    assert exchange.line_state(a.line) == "congestion"
    assert "inter-digit timeout" in events_of(exchange, A)


# -- ringing, caller ID, answer --------------------------------------------------------------


class RingLog(Phone):
    """A phone that notes when ringing voltage and caller ID arrive."""

    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange)
        self.log: list[tuple[float, str]] = []

    def ringing(self, on: bool) -> None:
        super().ringing(on)
        self.log.append((self.clock.now(), "ring on" if on else "ring off"))

    def caller_id(self, cid: CallerId) -> None:
        super().caller_id(cid)
        self.log.append((self.clock.now(), "cid"))


@pytest.mark.parametrize(
    ("presentation", "expected"),
    [
        ("number", CallerId("number", A)),
        ("private", CallerId("private")),
        ("unavailable", CallerId("unavailable")),
    ],
)
async def test_ringing_cadence_and_caller_id_between_first_and_second_ring(
    exchange, presentation, expected
):
    a = Phone.on(exchange, A, presentation=presentation)
    b = RingLog(exchange)
    exchange.add_line(B, b)
    calling = asyncio.create_task(a.dial(B, answer_timeout=11.0))
    cid = await b.wait_for_ring(10)
    assert cid is not None
    assert (cid.status, cid.number) == (expected.status, expected.number)
    await b.wait(10.5)
    assert b.rings == 3
    t0 = b.log[0][0]
    timeline = [(round(t - t0, 1), what) for t, what in b.log]
    cid_at = PLAN.ring_cadence[0][0] + PLAN.caller_id_delay
    assert timeline[:6] == [
        (0.0, "ring on"),
        (1.0, "ring off"),
        (cid_at, "cid"),
        (5.0, "ring on"),
        (6.0, "ring off"),
        (10.0, "ring on"),
    ]
    assert b.caller_ids == [cid]  # once per call
    # the caller hears ringback in step with the ringing
    lifted, called = (
        next(e.time for e in exchange.events if e.line == A and e.event.startswith(what))
        for what in ("off-hook", "calling")
    )
    assert_cadence(a.heard[round((called - lifted) * RATE) :], *PLAN.ringback_cadence[0])
    assert await calling == "no_answer"  # gave up after 11 s
    assert not a.off_hook and exchange.line_state(b.line) == "idle"
    assert b.log[-1][1] == "ring off" and not b.is_ringing


async def test_caller_id_time_is_emulated_wall_clock(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    calling = asyncio.create_task(a.dial(B))
    cid = await b.wait_for_ring(10)
    assert cid is not None
    offset = (cid.when - exchange.epoch).total_seconds()
    assert offset == pytest.approx(exchange.clock.now(), abs=0.1)
    await b.answer()
    assert await calling == "answered"


async def test_answer_connects_and_audio_passes_both_ways_intact(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await connect(exchange, a, b)
    assert b.rings >= 1 and not b.is_ringing
    assert a.polarity_reversals == 0  # off in the Iranian plan
    rng = np.random.default_rng(1521)
    to_b = rng.integers(-12000, 12000, 3 * RATE // 2, dtype=np.int16)
    to_a = rng.integers(-12000, 12000, RATE, dtype=np.int16)
    a.say(to_b)
    b.say(to_a)
    await a.wait(2.0)
    assert find(b.heard, to_b) is not None
    assert find(a.heard, to_a) is not None
    # ringback stopped at the answer: the caller hears only b's audio now
    start = find(a.heard, to_a)
    assert start is not None and not np.any(a.heard[start + len(to_a) :])


async def test_dtmf_pressed_by_one_phone_is_detected_in_the_others_audio(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await connect(exchange, a, b)
    mark = len(b.heard)
    await a.press("1521*#")
    await a.wait(0.3)
    assert keys_in(b.heard[mark:]) == "1521*#"
    mark = len(a.heard)
    await b.press("90")
    await b.wait(0.3)
    assert keys_in(a.heard[mark:]) == "90"


async def test_polarity_reversal_on_answer_when_the_plan_says(exchange):
    exchange.plan = dataclasses.replace(PLAN, polarity_reversal_on_answer=True)
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await connect(exchange, a, b)
    assert a.polarity_reversals == 1 and b.polarity_reversals == 0


# -- busy, no answer, abandon, clear ---------------------------------------------------------


async def test_busy_when_called_line_is_off_hook_or_calling_oneself(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    b.lift()  # off hook and idle: still busy to callers
    assert await a.dial(B) == "busy"
    mark = len(a.heard)
    await a.wait(2.6)
    assert_cadence(a.heard[mark:], *PLAN.busy_cadence[0])
    assert b.rings == 0
    await a.hang_up()
    await b.hang_up()
    assert await a.dial(A) == "busy"


async def test_no_answer_releases_the_call(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    assert await a.dial(B) == "no_answer"
    assert exchange.line_state(a.line) == PLAN.no_answer_tone
    assert exchange.line_state(b.line) == "idle"
    assert b.rings == 3 and not b.is_ringing  # rings at 0, 5 and 10 s of 12
    assert "no answer" in events_of(exchange, A)
    assert "ringing stopped: no answer" in events_of(exchange, B)


async def test_caller_abandons_while_ringing(exchange):
    a = Phone.on(exchange, A)
    b = RingLog(exchange)
    exchange.add_line(B, b)
    calling = asyncio.create_task(a.dial(B))
    await b._until(lambda: b.is_ringing, 10)
    await b.wait(0.5)  # mid first ring, before caller ID
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    await a.hang_up()
    assert not b.is_ringing and exchange.line_state(b.line) == "idle"
    await b.wait(6.0)
    assert b.rings == 1 and b.caller_ids == []
    assert [what for _, what in b.log] == ["ring on", "ring off"]
    assert "ringing stopped: caller abandoned" in events_of(exchange, B)
    assert "abandoned" in events_of(exchange, A)


@pytest.mark.parametrize("who_clears", ["callee", "caller"])
async def test_far_end_clear_gives_loop_break_busy_then_silence(exchange, who_clears):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await connect(exchange, a, b)
    clearer, other = (b, a) if who_clears == "callee" else (a, b)
    await other.wait(0.5)
    mark = len(other.heard)
    await clearer.hang_up()
    assert other.loop_breaks == 1 and clearer.loop_breaks == 0
    assert exchange.line_state(other.line) == "busy"
    await other.wait(PLAN.loop_break_seconds + PLAN.park_after + 1.5)
    runs = segments(other.heard[mark:])
    # silent loop break, busy tone for park_after, then silence
    assert runs[0][0] == "on"
    assert runs[0][1] == pytest.approx(PLAN.loop_break_seconds, abs=0.05)
    assert_cadence(other.heard[mark:], *PLAN.busy_cadence[0])
    assert runs[-1][1] == pytest.approx(PLAN.loop_break_seconds + PLAN.park_after, abs=0.55)
    assert exchange.line_state(other.line) == "parked"
    assert await other.wait_for_silence(1.0, timeout=0.1)
    assert events_of(exchange, other.number)[-4:] == [
        "cleared by far end",
        "loop break",
        "busy",
        "parked",
    ]


async def test_no_loop_break_when_the_plan_says_so(exchange):
    exchange.plan = dataclasses.replace(PLAN, loop_break_on_clear=False)
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    await connect(exchange, a, b)
    await b.hang_up()
    assert a.loop_breaks == 0
    mark = len(a.heard)
    await a.wait(0.3)
    kind, start, _ = segments(a.heard[mark:])[0]
    assert kind == "on" and start < 0.01


# -- hunt groups ---------------------------------------------------------------------------


async def test_hunt_group_takes_idle_lines_in_circular_order_then_busy(exchange):
    modems = [Phone.on(exchange, f"0511000{i}") for i in range(3)]
    exchange.add_hunt_group("1521", [m.line for m in modems])
    callers = [Phone.on(exchange, f"0912000000{i}") for i in range(4)]

    async def call(caller: Phone) -> str:
        return await caller.dial("1521", answer_timeout=3.0)

    # first call rings the first line; nobody answers, so it is released
    assert await call(callers[0]) == "no_answer"
    assert [m.rings for m in modems] == [1, 0, 0]
    # the next call starts after the line used last, so the second line rings
    calling = asyncio.create_task(call(callers[1]))
    await modems[1].wait_for_ring(5)
    await modems[1].answer()
    assert await calling == "answered"
    # the third line is taken off hook (out of service): not idle
    modems[2].lift()
    calling = asyncio.create_task(call(callers[2]))
    await modems[0].wait_for_ring(5)
    await modems[0].answer()
    assert await calling == "answered"
    # every line busy: the group is busy
    assert await call(callers[3]) == "busy"
    assert "ringing from 09120000001 via 1521" in events_of(exchange, modems[1].number)


# -- robustness ------------------------------------------------------------------------------


class Faulty(Endpoint):
    """A device that raises from every callback."""

    def __init__(self) -> None:
        self.calls = 0

    def _boom(self, *args: object) -> None:
        self.calls += 1
        raise RuntimeError("device fault")

    transmit = receive = ringing = caller_id = loop_break = _boom  # type: ignore[assignment]


class Counting(Endpoint):
    """Counts the per-frame calls it gets."""

    def __init__(self) -> None:
        self.frames = 0

    def transmit(self) -> np.ndarray | None:
        self.frames += 1
        return None


async def test_a_faulty_endpoint_does_not_stop_the_exchange(exchange):
    a = Phone.on(exchange, A)
    b = Phone.on(exchange, B)
    faulty = Faulty()
    exchange.add_line(C, faulty)
    assert await a.dial(C, answer_timeout=7.0) == "no_answer"  # ringing() raised
    faulty.line.lift()  # type: ignore[union-attr]
    await a.wait(0.5)  # transmit/receive raise every frame
    assert exchange.running
    faults = exchange.faults(C)
    assert faults["ringing"] >= 2 and faults["caller_id"] == 1 and faults["transmit"] > 10
    await connect(exchange, a, b)  # the others still work
    faulty.line.hang_up()  # type: ignore[union-attr]
    assert exchange.line_state(C) == "idle"


async def test_bad_frames_are_repaired(exchange):
    class Sloppy(Endpoint):
        def transmit(self) -> np.ndarray:
            return np.full(100, 0.25)  # short, float

    a = Phone.on(exchange, A)
    sloppy = Sloppy()
    exchange.add_line(B, sloppy)

    async def answer() -> None:
        while exchange.line_state(B) != "ringing":
            await a.wait(0.02)
        sloppy.line.lift()  # type: ignore[union-attr]

    answering = asyncio.create_task(answer())
    assert await a.dial(B) == "answered"
    await answering
    await a.wait(0.2)
    assert exchange.running and exchange.faults(B)["transmit"] > 1
    assert not np.any(a.heard[-FRAME:])  # 0.25 rounds to silence, padded


async def test_on_hook_endpoints_get_signalling_only(exchange):
    counting = Counting()
    exchange.add_line(A, counting)
    await exchange.clock.sleep(0.5)
    assert counting.frames == 0
    counting.line.lift()  # type: ignore[union-attr]
    await exchange.clock.sleep(0.5)
    assert counting.frames == pytest.approx(25, abs=2)


async def test_endpoint_that_answers_from_inside_the_ringing_callback(exchange):
    class AutoAnswer(Phone):
        def ringing(self, on: bool) -> None:
            super().ringing(on)
            if on:
                self.lift()

    a = Phone.on(exchange, A)
    b = AutoAnswer(exchange)
    exchange.add_line(B, b)
    assert await a.dial(B) == "answered"
    assert exchange.line_state(b.line) == "connected" and not b.is_ringing


class Hearing(Endpoint):
    """Keeps the frames it hears, and whether the event loop ran a callback
    that the rack's first line asked for in the same frame."""

    def __init__(self, first: Hearing | None = None) -> None:
        self.heard: list[np.ndarray] = []
        self.first = first
        self.asked = self.answered = 0
        self.loop_ran_between: list[bool] = []

    def receive(self, frame: np.ndarray) -> None:
        self.heard.append(frame.copy())
        if self.first is None:  # the first line asks the loop for a turn
            self.asked += 1
            asyncio.get_running_loop().call_soon(self._answer)
        else:
            first = self.first
            self.loop_ran_between.append(first.answered == first.asked)

    def _answer(self) -> None:
        self.answered += 1


async def test_a_big_rack_hears_every_frame_in_slices_with_the_loop_free_between(exchange):
    # more lines than a slice: the host of a modem is answered between slices
    # of one frame, and still every line hears every frame once, in order
    first = Hearing()
    exchange.add_line("0210000000", first)
    rest = [Hearing(first) for _ in range(3 * DELIVERY_SLICE)]
    for i, endpoint in enumerate(rest, start=1):
        exchange.add_line(f"021{i:07d}", endpoint)
    for endpoint in (first, *rest):
        endpoint.line.lift()  # type: ignore[union-attr]
    await exchange.clock.sleep(0.5)
    await exchange.stop()
    last = rest[-1]
    assert len(last.heard) >= 20
    assert all(last.loop_ran_between)
    assert not any(rest[DELIVERY_SLICE - 2].loop_ran_between)  # in the first slice
    # dial tone, sample for sample the same on every line: no frame lost or doubled
    n = min(len(e.heard) for e in (first, *rest))
    assert max(len(e.heard) for e in (first, *rest)) - n <= 1
    tone = np.concatenate(first.heard[:n])
    for endpoint in rest:
        assert np.array_equal(np.concatenate(endpoint.heard[:n]), tone)

"""The emulated telephone exchange: numbers, lines, tones, ringing and speech paths.

Every device under test hangs on a :class:`~daemon1521.emulator.line.Line` of
one :class:`Exchange`, which behaves like a local switch seen from the
subscriber's side:

- Lifting an idle line gives dial tone. The exchange's digit receiver is a
  DTMF detector fed with what the line transmits, so digits are sound, as on
  a real line. Pulse (loop-disconnect) dialling is not emulated.
- Dial tone stops at the first digit. The call is routed the moment the
  digits equal a known number or hunt group, so a number that is a prefix
  of another makes the longer one unreachable, as on a real switch. Digits
  that no number starts with, or the first-digit / inter-digit timeout,
  give congestion tone.
- An idle called line gets ringing voltage per the plan's cadence and, once,
  caller ID in the silence after the first ring (per the caller's
  presentation); the caller hears ringback in step with the ringing. A line
  that is anything but idle (off hook for any reason, ringing, in a call) is
  busy. Unanswered for the plan's timeout: ringing stops and the caller hears
  the plan's ``no_answer_tone`` (congestion by default: the switch released
  the call).
- Lifting a ringing line connects the call: ringing stops, ringback stops,
  and the caller's polarity is reversed if the plan says so. Each side then
  receives the other's transmitted frames, sample for sample, in the same
  tick (no echo, no added delay, no codec: a clean digital path).
- Whoever hangs up first, the other gets a loop-current break (if the plan
  says), then busy tone for ``park_after`` seconds, then silence until it
  hangs up. A caller who hangs up while the far end rings stops the ringing
  and its caller ID.

Frames handed to ``receive`` may be read-only and may be the sender's own
buffer: an endpoint copies what it keeps. The tick is cheap enough for a rack
of 16 lines far faster than real time: tones are replayed from precomputed
periods, and a line's DTMF receiver only works while digits can come and
sound is arriving.

Not emulated: pulse dialling, hook flash and supplementary services (call
waiting, transfer), metering, line noise and echo, and trunk delays.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from loguru import logger

from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.dsp.tones import CadencedTone
from daemon1521.emulator.clock import FRAME, RATE, EmuClock, Timer
from daemon1521.emulator.line import CallerId, Endpoint, Line
from daemon1521.emulator.toneplan import TonePlan

Presentation = Literal["number", "private", "unavailable"]
"""How a line's number is shown to those it calls."""

LineState = Literal[
    "idle",  # on hook, nothing happening
    "dialtone",  # off hook, waiting for the first digit
    "dialling",  # some digits received, number not complete yet
    "ringback",  # caller: the far end is ringing
    "ringing",  # called line: ringing voltage and caller ID
    "connected",  # in a call
    "busy",  # busy tone: called number busy, or far end cleared
    "congestion",  # congestion tone: unknown number, timeout, no answer
    "parked",  # off hook and silent after busy/congestion ran out
]

_DIGIT_STATES = frozenset({"dialtone", "dialling"})
_PRESENTATIONS = frozenset(get_args(Presentation))
_NUMBER_CHARS = frozenset("0123456789*#")
MAX_EVENTS = 10_000
"""Events kept for observers; older ones are dropped in halves."""
_MAX_TONE_TABLE = 30 * RATE
"""Longest tone period kept precomputed (samples); longer ones are synthesised."""
_FAULT_LOG_EVERY = 1000

DELIVERY_SLICE = 16
"""Lines handed their frame in one turn of the event loop. Handing a 64-line
rack its frames in one go held the loop 8 ms a frame (up to 40 ms when the
process was preempted), and the modems' hosts waited that long for an answer
to every command and every byte of audio they sent: real chips answer their
host on their own, whatever the other lines do. Slices of this many lines
take about a millisecond each, with the loop free to serve the ptys between
them; a frame's slices always end before the next frame starts."""
"""After the first logged traceback, log a misbehaving callback this rarely."""


class ExchangeEvent(NamedTuple):
    """Something that happened on a line, for tests and the CLI to watch."""

    time: float
    line: str
    event: str


class _ToneLoop:
    """A call-progress tone replayed from one precomputed whole period.

    Sample for sample what :class:`CadencedTone` gives, at the price of a
    slice: tones play to every off-hook line that is not in a call, every
    frame, so they are the exchange's main per-tick cost.
    """

    __slots__ = ("_pos", "_table")

    def __init__(self, table: np.ndarray) -> None:
        self._table = table
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        table = self._table
        start, end = self._pos, self._pos + n
        self._pos = end % len(table)
        if end <= len(table):
            return table[start:end]
        return np.concatenate((table[start:], table[: end - len(table)]))


def _tone_period(freqs: Sequence[float], cadence: Sequence[tuple[float, float]] | None) -> int:
    """Samples after which the tone repeats exactly (0 if it never does soon)."""
    period = 1
    for f in freqs:
        if f != int(f):
            return 0
        period = math.lcm(period, RATE // math.gcd(RATE, int(f)))
    if cadence:
        period = math.lcm(period, sum(round(on * RATE) + round(off * RATE) for on, off in cadence))
    return period if period <= _MAX_TONE_TABLE else 0


@dataclass(eq=False)
class _Subscriber:
    """The exchange's side of one line: its call state and what it hears."""

    line: Line
    presentation: Presentation
    state: str = "idle"
    tone: _ToneLoop | CadencedTone | None = None
    detector: DtmfDetector | None = None
    heard_silence: bool = False
    digits: str = ""
    peer: _Subscriber | None = None
    ring_on: bool = False
    alert_start: float | None = None
    via: str | None = None
    timers: list[Timer] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class _HuntGroup:
    """One number answered by several lines, hunted circularly."""

    number: str
    members: list[_Subscriber]
    last: int = -1


class Exchange:
    """A local exchange for emulated lines, ticking one 20 ms frame at a time."""

    def __init__(
        self,
        clock: EmuClock,
        plan: TonePlan = TonePlan(),  # noqa: B008 - frozen, shared safely
        epoch: datetime | None = None,
    ) -> None:
        self.clock = clock
        self.plan = plan
        # Wall-clock time at emulated time 0, for caller-ID DATE/TIME.
        self.epoch = epoch if epoch is not None else datetime.now().replace(microsecond=0)
        self.events: list[ExchangeEvent] = []
        self._subs: dict[str, _Subscriber] = {}
        self._by_line: dict[Line, _Subscriber] = {}
        self._order: list[_Subscriber] = []
        self._groups: dict[str, _HuntGroup] = {}
        self._outbox: deque[tuple[_Subscriber, str, tuple[Any, ...]]] = deque()
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self._sent: dict[_Subscriber, np.ndarray | None] = {}
        self._undelivered: deque[_Subscriber] = deque()
        self._delivery: asyncio.Handle | None = None
        self._tone_tables: dict[tuple[TonePlan, str], np.ndarray] = {}
        silence = np.zeros(FRAME, dtype=np.int16)
        silence.flags.writeable = False
        self._silence = silence

    # -- configuration -------------------------------------------------------

    def add_line(
        self,
        number: str,
        endpoint: Endpoint,
        label: str | None = None,
        presentation: Presentation = "number",
    ) -> Line:
        """Connect ``endpoint`` to a new line with this number."""
        self._check_new_number(number)
        self._check_presentation(presentation)
        line = Line(number, endpoint, self._on_hook_change, label=label)
        sub = _Subscriber(line, presentation)
        self._subs[number] = sub
        self._by_line[line] = sub
        self._order.append(sub)
        if line.off_hook:  # the endpoint lifted while being attached
            self._on_hook_change(line)
        return line

    def add_hunt_group(self, number: str, lines: Sequence[Line]) -> None:
        """Give ``lines`` one more number that rings whichever of them is idle.

        Hunting is circular: each call starts looking at the line after the
        one the previous call took, so calls spread evenly over a rack of
        modems and a dead line does not stop the others from being reached.
        """
        self._check_new_number(number)
        if not lines:
            raise ValueError(f"hunt group {number} needs at least one line")
        members = [self._sub(line) for line in lines]
        self._groups[number] = _HuntGroup(number, members)

    def set_presentation(self, line: Line | str, presentation: Presentation) -> None:
        """Change how this line's number is shown to those it calls."""
        self._check_presentation(presentation)
        self._sub(line).presentation = presentation

    def presentation(self, line: Line | str) -> Presentation:
        return self._sub(line).presentation

    # -- observation ---------------------------------------------------------

    @property
    def lines(self) -> list[Line]:
        """All lines, in the order they were added."""
        return [sub.line for sub in self._order]

    def line(self, number: str) -> Line:
        """The line with this number (KeyError if there is none)."""
        return self._subs[number].line

    def line_state(self, line: Line | str) -> str:
        """The line's call state: one of :data:`LineState`."""
        return self._sub(line).state

    def alerting_since(self, line: Line | str) -> float | None:
        """Emulated time this line started ringing for the current call, or None."""
        return self._sub(line).alert_start

    def hunt_groups(self) -> dict[str, list[Line]]:
        """Each hunt group number and its lines, in hunting order."""
        return {n: [m.line for m in g.members] for n, g in self._groups.items()}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- running -------------------------------------------------------------

    async def start(self) -> None:
        """Start ticking: time, tones and audio flow from now on."""
        if self.running:
            raise RuntimeError("exchange already running")
        self._task = asyncio.create_task(self.clock.run(self._tick), name="exchange-tick")

    async def stop(self) -> None:
        """Stop ticking and wait for the tick task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None
        self._undelivered.clear()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def __aenter__(self) -> Exchange:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- the tick ------------------------------------------------------------

    def _tick(self) -> None:
        self._deliver_all()  # the last frame's, if the loop has not run them all yet
        sent: dict[_Subscriber, np.ndarray | None] = {}
        for sub in self._order:
            if sub.line.off_hook:
                sent[sub] = self._transmit(sub)
        for sub, frame in sent.items():
            if sub.detector is not None and sub.state in _DIGIT_STATES:
                self._listen_for_digits(sub, frame)
        self._flush()
        self._sent = sent
        self._undelivered.extend(sub for sub in self._order if sub.line.off_hook)
        self._deliver_slice()

    def _deliver_slice(self) -> None:
        """Hand the next :data:`DELIVERY_SLICE` lines what they hear this frame."""
        self._delivery = None
        todo = self._undelivered
        for _ in range(min(DELIVERY_SLICE, len(todo))):
            self._deliver(todo.popleft())
        self._flush()
        if todo:
            self._delivery = asyncio.get_running_loop().call_soon(self._deliver_slice)

    def _deliver_all(self) -> None:
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None
        while self._undelivered:
            self._deliver(self._undelivered.popleft())
        self._flush()

    def _deliver(self, sub: _Subscriber) -> None:
        # state as it is now: a line may have hung up or been cleared since the
        # frame started, as it may between two frames
        if not sub.line.off_hook:
            return
        if sub.state == "connected":
            heard = self._sent.get(sub.peer) if sub.peer is not None else None
        elif sub.tone is not None:
            heard = sub.tone.read(FRAME)
        else:
            heard = None
        self._call_endpoint(sub, "receive", self._silence if heard is None else heard)

    def _transmit(self, sub: _Subscriber) -> np.ndarray | None:
        frame = self._call_endpoint(sub, "transmit")
        if frame is None:
            return None
        if isinstance(frame, np.ndarray) and frame.dtype == np.int16 and frame.shape == (FRAME,):
            return frame
        # A wrong length or type is a device bug: log it, and repair what can
        # be read as numbers so the far end still hears something sensible.
        try:
            flat = np.ravel(np.asarray(frame))[:FRAME]
            if flat.dtype.kind == "f":
                flat = np.clip(np.rint(flat), -32768, 32767)
            fixed = np.zeros(FRAME, dtype=np.int16)
            fixed[: flat.size] = flat.astype(np.int16)
        except (TypeError, ValueError):
            fixed = None
        self._fault(sub, "transmit", f"sent {type(frame).__name__} {np.shape(frame)}")
        return fixed

    def _listen_for_digits(self, sub: _Subscriber, frame: np.ndarray | None) -> None:
        detector = sub.detector
        assert detector is not None
        silent = frame is None or not frame.any()
        if silent and sub.heard_silence and detector.key is None:
            # The receiver has already seen a whole silent frame with no key
            # down, so more silence cannot change its state: skip the work.
            return
        sub.heard_silence = silent
        for event in detector.feed(self._silence if frame is None else frame):
            if sub.state not in _DIGIT_STATES:
                break
            if event.kind == "down":
                self._digit(sub, event.key)

    # -- hook changes ----------------------------------------------------------

    def _on_hook_change(self, line: Line) -> None:
        sub = self._by_line.get(line)
        if sub is None:  # still being attached; add_line catches up
            return
        if line.off_hook:
            self._event(sub, "off-hook")
            if sub.state == "ringing":
                self._answer(sub)
            elif sub.state == "idle":
                self._give_dial_tone(sub)
        else:
            self._event(sub, "on-hook")
            self._clear(sub)
        self._flush()

    def _give_dial_tone(self, sub: _Subscriber) -> None:
        self._reset(sub)
        sub.state = "dialtone"
        sub.tone = self._tone("dial")
        sub.detector = DtmfDetector(rate=RATE)
        sub.heard_silence = False
        self._after(sub, self.plan.first_digit_timeout, lambda: self._digit_timeout(sub, "first"))
        self._event(sub, "dialtone")

    def _clear(self, sub: _Subscriber) -> None:
        """``sub`` went on hook: end whatever it was doing."""
        peer = sub.peer
        if sub.state == "ringback" and peer is not None:
            self._event(sub, "abandoned")
            self._stop_ringing(peer)
            self._event(peer, "ringing stopped: caller abandoned")
            self._reset(peer)
        elif sub.state == "connected" and peer is not None:
            self._event(sub, "cleared")
            self._reset(peer)
            self._far_end_cleared(peer)
        self._reset(sub)

    def _far_end_cleared(self, sub: _Subscriber) -> None:
        self._event(sub, "cleared by far end")
        sub.state = "busy"
        if self.plan.loop_break_on_clear:
            self._signal(sub, "loop_break")
            self._event(sub, "loop break")
            self._after(sub, self.plan.loop_break_seconds, lambda: self._busy_after_clear(sub))
        else:
            self._busy_after_clear(sub)

    def _busy_after_clear(self, sub: _Subscriber) -> None:
        sub.tone = self._tone("busy")
        self._event(sub, "busy")
        self._after(sub, self.plan.park_after, lambda: self._park(sub))

    # -- digits and routing ----------------------------------------------------

    def _digit(self, sub: _Subscriber, key: str) -> None:
        self._cancel_timers(sub)
        if sub.state == "dialtone":
            sub.state = "dialling"
            sub.tone = None
        sub.digits += key
        self._event(sub, f"digit {key}")
        self._route(sub)
        if sub.state == "dialling":
            self._after(
                sub, self.plan.inter_digit_timeout, lambda: self._digit_timeout(sub, "inter")
            )

    def _digit_timeout(self, sub: _Subscriber, which: str) -> None:
        if sub.state in _DIGIT_STATES:
            self._event(sub, f"{which}-digit timeout")
            self._fail(sub, "congestion")

    def _route(self, sub: _Subscriber) -> None:
        digits = sub.digits
        if digits in self._subs:
            self._call(sub, self._subs[digits], via=None)
        elif digits in self._groups:
            group = self._groups[digits]
            self._call(sub, self._hunt(group), via=group.number)
        elif not any(n.startswith(digits) for n in (*self._subs, *self._groups)):
            self._event(sub, f"unknown number {digits}")
            self._fail(sub, "congestion")

    def _hunt(self, group: _HuntGroup) -> _Subscriber | None:
        count = len(group.members)
        for step in range(1, count + 1):
            index = (group.last + step) % count
            if group.members[index].state == "idle":
                group.last = index
                return group.members[index]
        return None

    def _call(self, caller: _Subscriber, callee: _Subscriber | None, via: str | None) -> None:
        number = caller.digits
        self._event(caller, f"calling {number}")
        if callee is None or callee.state != "idle":
            self._fail(caller, "busy")
            return
        self._reset(caller)
        caller.state, caller.peer, caller.digits = "ringback", callee, number
        caller.tone = self._tone("ringback")
        callee.state, callee.peer, callee.via = "ringing", caller, via
        callee.alert_start = self.clock.now()
        group = f" via {via}" if via else ""
        self._event(callee, f"ringing from {self._shown_number(caller)}{group}")
        self._after(caller, self.plan.no_answer_timeout, lambda: self._no_answer(caller))
        self._ring(callee, 0)

    def _ring(self, callee: _Subscriber, step: int) -> None:
        on, off = self.plan.ring_cadence[step % len(self.plan.ring_cadence)]
        callee.ring_on = True
        self._signal(callee, "ringing", True)
        self._event(callee, "ring")

        def ring_off() -> None:
            callee.ring_on = False
            self._signal(callee, "ringing", False)
            if step == 0:
                self._after(callee, self.plan.caller_id_delay, lambda: self._send_caller_id(callee))
            self._after(callee, off, lambda: self._ring(callee, step + 1))

        self._after(callee, on, ring_off)

    def _send_caller_id(self, callee: _Subscriber) -> None:
        caller = callee.peer
        if callee.state != "ringing" or caller is None:
            return
        when = self.epoch + timedelta(seconds=self.clock.now())
        if caller.presentation == "number":
            cid = CallerId("number", caller.line.number, when=when)
        else:
            cid = CallerId(caller.presentation, when=when)
        self._signal(callee, "caller_id", cid)
        self._event(callee, f"caller id {cid.number or cid.status}")

    def _answer(self, callee: _Subscriber) -> None:
        caller = callee.peer
        assert caller is not None
        self._stop_ringing(callee)
        self._cancel_timers(caller)
        self._cancel_timers(callee)
        callee.alert_start = None
        for sub in (caller, callee):
            sub.state = "connected"
            sub.tone = None
            sub.detector = None
            self._event(sub, "answered")
        if self.plan.polarity_reversal_on_answer:
            self._signal(caller, "polarity_reversal")
            self._event(caller, "polarity reversal")

    def _no_answer(self, caller: _Subscriber) -> None:
        callee = caller.peer
        if caller.state != "ringback" or callee is None:
            return
        self._stop_ringing(callee)
        self._event(callee, "ringing stopped: no answer")
        self._reset(callee)
        self._event(caller, "no answer")
        self._fail(caller, self.plan.no_answer_tone)

    def _stop_ringing(self, callee: _Subscriber) -> None:
        if callee.ring_on:
            callee.ring_on = False
            self._signal(callee, "ringing", False)

    # -- call endings ----------------------------------------------------------

    def _fail(self, sub: _Subscriber, tone: str) -> None:
        """Play busy or congestion to an off-hook line, then park it."""
        self._reset(sub)
        sub.state = tone
        sub.tone = self._tone(tone)
        self._event(sub, tone)
        self._after(sub, self.plan.park_after, lambda: self._park(sub))

    def _park(self, sub: _Subscriber) -> None:
        if sub.state in ("busy", "congestion") and sub.line.off_hook:
            sub.state = "parked"
            sub.tone = None
            self._event(sub, "parked")

    def _reset(self, sub: _Subscriber) -> None:
        """Forget the call: back to idle (the caller then sets a new state)."""
        self._cancel_timers(sub)
        sub.state = "idle"
        sub.tone = None
        sub.detector = None
        sub.digits = ""
        sub.peer = None
        sub.ring_on = False
        sub.alert_start = None
        sub.via = None

    # -- helpers ---------------------------------------------------------------

    def _tone(self, name: str) -> _ToneLoop | CadencedTone:
        plan = self.plan
        freqs, cadence = plan.freqs(name), plan.cadence(name)
        key = (plan, name)
        table = self._tone_tables.get(key)
        if table is None:
            generator = CadencedTone(freqs, cadence, level_dbm0=plan.tone_level_dbm0, rate=RATE)
            period = _tone_period(freqs, cadence)
            if not period:
                return generator
            table = generator.read(period * -(-FRAME // period))  # at least a frame
            table.flags.writeable = False
            self._tone_tables[key] = table
        return _ToneLoop(table)

    def _shown_number(self, caller: _Subscriber) -> str:
        if caller.presentation == "number":
            return caller.line.number
        return f"{caller.line.number} ({caller.presentation})"

    def _after(self, sub: _Subscriber, seconds: float, action: Callable[[], None]) -> None:
        """Run ``action`` later unless ``sub``'s call state changes first."""

        def fire() -> None:
            action()
            self._flush()

        sub.timers = [t for t in sub.timers if not t.cancelled]
        sub.timers.append(self.clock.call_later(seconds, fire))

    def _cancel_timers(self, sub: _Subscriber) -> None:
        for timer in sub.timers:
            timer.cancel()
        sub.timers.clear()

    def _event(self, sub: _Subscriber, text: str) -> None:
        record = ExchangeEvent(round(self.clock.now(), 3), sub.line.number, text)
        self.events.append(record)
        if len(self.events) > MAX_EVENTS:
            del self.events[: MAX_EVENTS // 2]
        logger.debug("exchange {:.2f} {} {}", record.time, record.line, text)

    def _signal(self, sub: _Subscriber, method: str, *args: Any) -> None:
        """Queue a signalling callback; delivered after the state is settled."""
        self._outbox.append((sub, method, args))

    def _flush(self) -> None:
        # Endpoints may lift or hang up from inside a callback; their hook
        # changes update state at once and queue more signals here, so the
        # outermost flush delivers everything in order without recursion.
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._outbox:
                sub, method, args = self._outbox.popleft()
                self._call_endpoint(sub, method, *args)
        finally:
            self._flushing = False

    def _call_endpoint(self, sub: _Subscriber, method: str, *args: Any) -> Any:
        try:
            return getattr(sub.line.endpoint, method)(*args)
        except Exception as exc:  # a faulty device must not stop the exchange
            self._fault(sub, method, repr(exc), exc)
            return None

    def _fault(
        self, sub: _Subscriber, method: str, what: str, exc: BaseException | None = None
    ) -> None:
        count = sub.faults.get(method, 0) + 1
        sub.faults[method] = count
        if count == 1 or count % _FAULT_LOG_EVERY == 0:
            logger.opt(exception=exc).error(
                "line {} endpoint {}.{} misbehaved ({} time(s)): {}",
                sub.line.label,
                type(sub.line.endpoint).__name__,
                method,
                count,
                what,
            )

    def faults(self, line: Line | str) -> dict[str, int]:
        """How often each endpoint callback of this line has raised or misbehaved."""
        return dict(self._sub(line).faults)

    def _sub(self, line: Line | str) -> _Subscriber:
        if isinstance(line, Line):
            sub = self._by_line.get(line)
            if sub is None:
                raise KeyError(f"{line!r} is not on this exchange")
            return sub
        return self._subs[line]

    def _check_new_number(self, number: str) -> None:
        if not number or not set(number) <= _NUMBER_CHARS:
            raise ValueError(f"a number is digits (and * #), got {number!r}")
        if number in self._subs or number in self._groups:
            raise ValueError(f"number {number} is already in use")

    @staticmethod
    def _check_presentation(presentation: str) -> None:
        if presentation not in _PRESENTATIONS:
            raise ValueError(
                f"presentation must be one of {sorted(_PRESENTATIONS)}, got {presentation!r}"
            )

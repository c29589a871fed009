"""``daemon1521 demo``: the daemon's call handling on an emulated line, with scripted callers.

A new caller dials 1521, types a bill ID, has it remembered and hears the
debt; then calls again from the same number and confirms the remembered bill
ID. Everything runs for real below the script: the daemon itself (as
``daemon1521 run --emulated 1``) supervises the line, and its attendant drives
a voice modem through the driver over a pseudo-terminal, the emulated modem
puts the prompts' audio on an emulated exchange line, and what each caller
heard is recognised from the audio that reached their phone.

:class:`EmulatedSite` and :class:`Caller` are the harness the end-to-end flow
tests use.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import click
import numpy as np

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.audio.say_fa import NUMBER_PROMPTS, PAUSE
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import CallRecord, Store
from daemon1521.config import ControlConfig, LineConfig, default_config
from daemon1521.daemon.app import Daemon
from daemon1521.daemon.notify import Notifier
from daemon1521.daemon.supervisor import Line as SupervisedLine
from daemon1521.emulator.exchange import Presentation
from daemon1521.emulator.modem import available_personalities
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.recognizer import Heard, PromptRecognizer
from daemon1521.emulator.rig import Rig
from daemon1521.ivr import flow1521
from daemon1521.ivr.settings import IvrSettings
from daemon1521.logs import setup_logging

DEFAULT_SPEED = 8.0
DEFAULT_PERSONALITY = "conexant-cx93001"
SAMPLE_RATE = 8000
REPLY_DELAY = 0.3
"""Seconds a scripted caller takes to react once a question has been heard."""
QUIET_SECONDS = 1.0
"""Silence after a prompt that tells a caller the line is waiting for an answer."""
POLL_SECONDS = 0.1
GROUP_PAUSE = 0.2
"""A silence this long between read-back digits separates digit groups."""
TAIL_SECONDS = 3.0
"""Room around a prompt when looking for it at the end of what was heard."""
FULL_LENGTH = 0.85
"""Share of a prompt's length that sound must have lasted for a broken match to count."""
SILENCE_PEAK = 300
"""Received samples below this are silence (about -40 dBFS; prompts are far louder)."""
HANG_UP_WAIT = 30.0
"""Seconds a caller waits for the line to hang up after the last prompt."""

FLOW_PHRASES = flow1521.PROMPTS

DEMO_CALLER = "02166554433"


@dataclass(frozen=True)
class DemoBill:
    """A bill to seed a store with."""

    bill_id: str
    payment_id: str
    amount_rials: int


def sample_bills() -> list[DemoBill]:
    """A few valid electricity bills: one with a debt, one paid up, one more."""
    bills = []
    for file_code, company, amount in (
        (12345678, 101, 2_345_000),
        (4321, 101, 0),
        (8765432, 205, 480_000),
    ):
        bill_id = make_bill_id(file_code, company)
        payment_id = make_payment_id(bill_id, amount, 4, 12)
        bills.append(DemoBill(bill_id, payment_id, amount))
    return bills


# -- hearing -------------------------------------------------------------------


class Ears:
    """Recognises the 1521 prompts in a phone's audio.

    Prompts with identical audio (the digit ``d5`` and the number word ``n5``)
    cannot be told apart; each sound is given one name, the first of its
    kind, and :meth:`canonical` maps any name to it, so expectations compare.
    """

    def __init__(self, prompts: PromptLibrary) -> None:
        self.catalog = prompts.catalog
        names = [*FLOW_PHRASES, *(n for n in NUMBER_PROMPTS if n != PAUSE)]
        self._alias: dict[str, str] = {}
        seen: dict[bytes, str] = {}
        recordings: dict[str, np.ndarray] = {}
        for name in names:
            samples = prompts.samples(name)
            key = samples.tobytes()
            first = seen.setdefault(key, name)
            self._alias[name] = first
            if first == name:
                recordings[name] = samples
        self.recordings: Mapping[str, np.ndarray] = recordings
        self.phrases: Mapping[str, np.ndarray] = {
            name: recordings[name] for name in FLOW_PHRASES if name in recordings
        }
        self._recogniser = PromptRecognizer(recordings)
        # one small recogniser per phrase, built now: building one takes long
        # enough to starve a line if it happened during a call
        self._single = {name: PromptRecognizer({name: rec}) for name, rec in self.phrases.items()}

    def canonical(self, names: Iterable[str]) -> list[str]:
        """Names as the recogniser reports them (silent pauses dropped)."""
        return [self._alias[n] for n in names if n != PAUSE]

    def heard(self, audio: np.ndarray, unknown: bool = False) -> list[Heard]:
        """Every prompt recognised in ``audio``, in order (times in seconds from its
        start); with ``unknown``, sound that matched no prompt too (name None)."""
        return [h for h in self._recogniser.transcribe(audio) if h.name is not None or unknown]

    def ends_with(self, prompt: str, audio: np.ndarray) -> bool:
        """Whether ``audio`` ends with ``prompt`` played to its end (then silence).

        Looks for that one prompt over a window just long enough to hold it,
        quick enough to run while a call goes on. A prompt whose match broke
        off (a gap where the line ran dry) still counts when sound went on
        for its whole length.
        """
        name = self._alias[prompt]
        recording = self.recordings[name]
        recogniser = self._single[name]
        window = audio[-(len(recording) + round(TAIL_SECONDS * SAMPLE_RATE)) :]
        heard = [h for h in recogniser.transcribe(window) if h.name is not None]
        loud = np.flatnonzero(np.abs(window.astype(np.int32)) > SILENCE_PEAK)
        if not heard or not len(loud):
            return False
        last = heard[-1]
        sound_end = (int(loud[-1]) + 1) / SAMPLE_RATE
        if sound_end - last.end > TAIL_SECONDS / 2 and last.complete:
            return False  # something else was heard after it
        played = sound_end - last.start
        return last.complete or played >= FULL_LENGTH * len(recording) / SAMPLE_RATE

    def text(self, name: str) -> str:
        return self.catalog.text(name)

    def is_number(self, name: str) -> bool:
        return self.catalog.entry(name).group == "number"


# -- the site -------------------------------------------------------------------


class EmulatedSite:
    """One 1521 line on the emulator, served by the daemon itself.

    The same :class:`~daemon1521.daemon.app.Daemon` that ``daemon1521 run
    --emulated 1`` starts supervises the line: its supervisor, attendant and
    store take the calls, its driver talks to an emulated modem over a pty.
    ``store_path`` is created if missing and seeded with ``bills``; exit stops
    the daemon (draining a call in progress) and the emulator.
    """

    def __init__(
        self,
        store_path: Path,
        *,
        prompts: PromptLibrary | None = None,
        bills: Sequence[DemoBill] = (),
        speed: float = DEFAULT_SPEED,
        personality: str = DEFAULT_PERSONALITY,
        settings: IvrSettings | None = None,
        ears: Ears | None = None,
        lines: int = 1,
        personalities: Sequence[str] | None = None,
    ) -> None:
        if ears is None:
            if prompts is None:
                raise ValueError("an emulated site needs the prompts or ears that know them")
            ears = Ears(prompts)
        self.speed = speed
        self.personality = personality
        self.ears = ears
        self._scratch = tempfile.TemporaryDirectory(prefix="daemon1521-site-")
        scratch = Path(self._scratch.name)  # short: a Unix socket path has a length limit
        self.rig = Rig(lines, personalities or [personality], speed=speed, link_dir=scratch)
        with Store.open(store_path) as store:
            store.upsert_bills(
                {"bill_id": b.bill_id, "payment_id": b.payment_id, "amount_rials": b.amount_rials}
                for b in bills
            )
        self.config = default_config(
            store=store_path,
            ivr=settings or IvrSettings(),
            control=ControlConfig(socket=scratch / "control.sock"),
        )
        self.daemon: Daemon | None = None
        self._closed = False

    async def __aenter__(self) -> EmulatedSite:
        try:
            await self.rig.start()
            lines = [
                LineConfig(name=f"line{index + 1}", port=str(modem.link), label=personality)
                for index, (modem, personality) in enumerate(
                    zip(self.rig.modems, self.rig.personalities, strict=True)
                )
            ]
            self.daemon = Daemon(
                self.config, time_scale=self.speed, lines=lines, notifier=Notifier(None)
            )
            await self.daemon.start()
            for index in range(len(lines)):
                await self.wait_idle(line=index)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the daemon and the emulator. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.daemon is not None:
            await self.daemon.stop()
            self.daemon = None
        await self.rig.stop()
        self._scratch.cleanup()

    @property
    def lines(self) -> list[SupervisedLine]:
        assert self.daemon is not None and self.daemon.supervisor is not None
        return self.daemon.supervisor.lines

    @property
    def line(self) -> SupervisedLine:
        return self.lines[0]

    @property
    def store(self) -> Store:
        assert self.daemon is not None and self.daemon.store is not None
        return self.daemon.store

    @property
    def line_state(self) -> str:
        """The exchange's state of the modem's line (``idle`` once on hook)."""
        return self.rig.exchange.line_state(self.rig.lines[0])

    async def wait_idle(self, calls: int = 0, timeout: float = 60.0, line: int = 0) -> None:
        """Wait until a line (the first) waits for a ring again after ``calls`` calls."""
        supervised = self.lines[line]

        async def idle() -> None:
            while not (supervised.state == "idle" and supervised.calls_total >= calls):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(idle(), timeout / self.speed + 5.0)

    def caller(self, number: str, presentation: Presentation = "number") -> Caller:
        return Caller(self, self.rig.phone(number, presentation))

    def last_call(self) -> CallRecord:
        calls = self.store.recent_calls(limit=1)
        if not calls:
            raise LookupError("no call recorded")
        return calls[0]


class CallerSite(Protocol):
    """What a :class:`Caller` needs of the site it calls: the wiring and the ears."""

    rig: Rig
    ears: Ears


class Caller:
    """A scripted subscriber: listens for a question, then presses keys."""

    def __init__(self, site: CallerSite, phone: Phone) -> None:
        self.site = site
        self.phone = phone
        self.start = 0
        self.mark = 0
        self.pressed: list[tuple[int, str]] = []

    async def dial(self) -> None:
        self.start = self.mark = len(self.phone.heard)
        self.pressed = []
        outcome = await self.phone.dial(self.site.rig.service_number)
        if outcome != "answered":
            raise RuntimeError(f"1521 did not answer: {outcome}")

    async def hear(self, prompt: str, timeout: float = 60.0) -> None:
        """Wait until ``prompt`` has been heard in full since the last key press, and
        then silence: the line is waiting for an answer.

        The caller looks only when the line has fallen quiet after new sound,
        and only for this one prompt at the end of what it heard, so that
        listening costs little: recognition runs in the event loop, and a
        busy loop would make the emulated line lag the driver's clock.
        """
        heard_end = self.mark
        last_sound: int | None = None
        judged = -1
        waited = 0.0
        quiet = round(QUIET_SECONDS * SAMPLE_RATE)
        while waited < timeout:
            audio = self.phone.heard
            loud = np.flatnonzero(np.abs(audio[heard_end:].astype(np.int32)) > SILENCE_PEAK)
            if len(loud):
                last_sound = heard_end + int(loud[-1])
            heard_end = len(audio)
            if last_sound is not None and last_sound != judged and heard_end - last_sound >= quiet:
                judged = last_sound
                if self.site.ears.ends_with(prompt, audio[self.mark : heard_end]):
                    self.mark = heard_end
                    return
            await self.phone.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        raise AssertionError(f"{self.phone.number} never heard {prompt!r}")

    async def press(self, keys: str) -> None:
        """Press keys; what the line plays from the first key on counts as new."""
        self.mark = len(self.phone.heard)
        self.pressed.append((self.mark, keys))
        await self.phone.press(keys)

    async def answer(self, prompt: str, keys: str, timeout: float = 60.0) -> None:
        """Hear ``prompt``, think for a moment, press ``keys``."""
        await self.hear(prompt, timeout)
        await self.phone.wait(REPLY_DELAY)
        await self.press(keys)

    async def wait(self, seconds: float) -> None:
        await self.phone.wait(seconds)

    async def await_sound(self, timeout: float = 30.0) -> None:
        """Wait until the line plays something new (after the last key or :meth:`hear`)."""
        waited = 0.0
        while waited < timeout:
            fresh = self.phone.heard[self.mark :]
            if len(fresh) and int(np.abs(fresh.astype(np.int32)).max()) > SILENCE_PEAK:
                return
            await self.phone.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        raise AssertionError(f"{self.phone.number} heard nothing new")

    async def until_line_hangs_up(self, timeout: float = HANG_UP_WAIT) -> bool:
        """Wait until 1521 ends the call (the connection is gone); then hang up."""
        waited = 0.0
        while self.phone.state == "connected" and waited < timeout:
            await self.phone.wait(0.1)
            waited += 0.1
        ended = self.phone.state != "connected"
        await self.phone.hang_up()
        return ended

    async def hang_up(self) -> None:
        await self.phone.hang_up()

    # -- what happened ---------------------------------------------------------

    def audio(self) -> np.ndarray:
        return self.phone.heard[self.start :]

    def heard(self, unknown: bool = False) -> list[tuple[str | None, bool]]:
        """(canonical prompt name, complete) recognised in this call's audio, in order;
        with ``unknown``, sound that matched no prompt too (name None)."""
        return [(h.name, h.complete) for h in self.site.ears.heard(self.audio(), unknown)]

    def transcript(self) -> list[tuple[str, str]]:
        """("heard" | "pressed", text) in time order. Number words run together on
        one line, with a comma where the line paused between digit groups."""
        ears = self.site.ears
        events: list[tuple[float, float, str | None, str]] = []
        for h in ears.heard(self.audio()):
            assert h.name is not None
            events.append((h.start, h.end, h.name, ears.text(h.name)))
        for index, keys in self.pressed:
            at = (index - self.start) / SAMPLE_RATE
            events.append((at, at, None, keys))
        events.sort(key=lambda e: (e[0], e[2] is not None))
        lines: list[tuple[str, str]] = []
        numbers_end: float | None = None  # end of the number run the last line holds
        for start, end, name, text in events:
            if name is None:
                lines.append(("pressed", text))
                numbers_end = None
            elif ears.is_number(name) and numbers_end is not None:
                joint = "، " if start - numbers_end >= GROUP_PAUSE else " "
                lines[-1] = ("heard", lines[-1][1] + joint + text)
                numbers_end = end
            else:
                lines.append(("heard", text))
                numbers_end = end if ears.is_number(name) else None
        return lines


# -- the command ------------------------------------------------------------------


async def _first_call(caller: Caller, bill: DemoBill) -> None:
    await caller.dial()
    await caller.answer("ask_bill_id", bill.bill_id + "#")
    await caller.answer("bill_entered_confirm", "1")
    await caller.answer("offer_remember_bill", "1")
    await caller.answer("offer_payment", "2")
    await caller.until_line_hangs_up()


async def _second_call(caller: Caller) -> None:
    await caller.dial()
    await caller.answer("remembered_bill_confirm", "1")
    await caller.answer("offer_payment", "2")
    await caller.until_line_hangs_up()


def _print_call(title: str, caller: Caller, record: CallRecord) -> None:
    click.echo(title)
    for kind, text in caller.transcript():
        label = "heard  " if kind == "heard" else "pressed"
        click.echo(f"  {label} {text}")
    click.echo(
        f"  record: outcome {record.outcome}, last state {record.last_state}, "
        f"bill {record.bill_id}, amount announced {record.amount_announced}"
    )
    click.echo(f"  states: {' > '.join(record.states)}")
    click.echo("")


async def run_demo(speed: float, personality: str) -> None:
    prompts = PromptLibrary(PromptCatalog("fa"))
    bills = sample_bills()
    bill = bills[0]
    with tempfile.TemporaryDirectory(prefix="daemon1521-demo-") as tmp:
        async with EmulatedSite(
            Path(tmp) / "daemon1521.db",
            prompts=prompts,
            bills=bills,
            speed=speed,
            personality=personality,
        ) as site:
            modem = site.line.snapshot().get("modem") or {}
            click.echo(
                f"daemon1521 on one emulated line ({modem.get('model') or personality}, "
                f"codec {modem.get('codec', '?')}), clock at {speed:g}x real time."
            )
            click.echo(
                f"Store seeded with {len(bills)} bills; caller {DEMO_CALLER} owes on "
                f"bill {bill.bill_id} (payment ID {bill.payment_id}).\n"
            )
            caller = site.caller(DEMO_CALLER)
            await _first_call(caller, bill)
            await site.wait_idle(calls=1)
            _print_call(
                f"Call 1: {DEMO_CALLER}, a new caller, types the bill ID and has it remembered",
                caller,
                site.last_call(),
            )
            await caller.wait(2.0)
            await _second_call(caller)
            await site.wait_idle(calls=2)
            _print_call(
                f"Call 2: {DEMO_CALLER} again, confirms the remembered bill ID",
                caller,
                site.last_call(),
            )
            remembered = site.store.remembered_bill(DEMO_CALLER)
            click.echo(f"Remembered for {DEMO_CALLER}: {remembered}")


@click.command()
@click.option(
    "--speed",
    default=DEFAULT_SPEED,
    show_default=True,
    type=click.FloatRange(min=1.0, max=50.0),
    help="Emulated seconds per real second (1 is real time).",
)
@click.option(
    "--personality",
    default=DEFAULT_PERSONALITY,
    show_default=True,
    type=click.Choice(available_personalities()),
    help="Which emulated voice modem answers the line.",
)
@click.pass_context
def demo(ctx: click.Context, speed: float, personality: str) -> None:
    """Two scripted calls to 1521 on an emulated line, and what each caller heard."""
    parent = ctx.parent
    if parent is None or (
        parent.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT
    ):
        # the daemon's own INFO lines would interleave with the transcripts
        setup_logging("WARNING")
    asyncio.run(run_demo(speed, personality))

"""The fakes the tests share: lines, prompts and a bank on virtual time.

:class:`FakeLine` follows VoiceModem's contract (barge-in returns the first key
and stops the prompt, type-ahead skips a prompt, keys stay queued). Prompts
"play" for one second per name; keys arrive at set times (``keys``) or in
answer to a question prompt (``answers``, keyed by the last name of the
sequence played); the caller hangs up at ``hang_up_at`` or half-way through
the first prompt named ``hang_up_on``.

:class:`FakeBank` and :class:`FakeCaller` are the two lines of a bank leg on
a fast time scale (``SCALE``): the bank "speaks" (loud audio) when it asks
something and is silent while it waits, and reports its machine result as
keys; the caller answers each question the bank asks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from daemon1521.modem.linewatch import HungUp
from daemon1521.modem.voice import CallEnded
from daemon1521.telebank.profile import load_profile

SCALE = 50.0
"""Virtual seconds per real second of the fake bank leg."""
BLOCK = 160
PROFILE = load_profile()

PROMPT_SECONDS = 1.0
KEY_GAP = 0.25
ANSWER_DELAY = 0.5


class NamePrompts:
    """A prompt source whose "audio" is the names themselves."""

    def sequence(self, names: Iterable[str], codec: str) -> bytes:
        return "|".join(names).encode()


@dataclass
class Played:
    start: float
    names: list[str]
    how: str  # "full", "cut" (barge-in), "skipped" (type-ahead)


@dataclass
class FakeLine:
    keys: Sequence[tuple[float, str]] = ()
    answers: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    hang_up_at: float | None = None
    hang_up_on: str | None = None
    codec: str = "fake"

    def __post_init__(self) -> None:
        self.now = 0.0
        self.script: list[tuple[float, str]] = sorted(self.keys)
        self.queue: deque[str] = deque()
        self.played: list[Played] = []
        self.pressed: list[str] = []
        self._answers = {name: deque(steps) for name, steps in self.answers.items()}

    # -- the Line protocol ---------------------------------------------------

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        names = audio.decode().split("|")
        self._arrive(self.now)
        if barge_in and self.queue:
            self.played.append(Played(self.now, names, "skipped"))
            return None
        start = self.now
        end = start + PROMPT_SECONDS * len(names)
        if self.hang_up_on is not None and self.hang_up_on in names:
            self.hang_up_at = start + PROMPT_SECONDS * names.index(self.hang_up_on) + 0.5
        if barge_in and self.script and self.script[0][0] <= end:
            at, key = self.script.pop(0)
            at = max(at, start)
            self._hang_up_before(at, names, start)
            self.now = at
            self.pressed.append(key)
            self.played.append(Played(start, names, "cut"))
            return key
        self._hang_up_before(end, names, start)
        self.now = end
        if not barge_in:
            self._arrive(end)
        self.played.append(Played(start, names, "full"))
        self._answer(names[-1])
        return None

    async def next_key(self, timeout: float) -> str | None:
        self._arrive(self.now)
        if self.queue:
            return self.queue.popleft()
        deadline = self.now + timeout
        if self.script and self.script[0][0] <= deadline:
            at, key = self.script.pop(0)
            self._hang_up_before(at)
            self.now = max(self.now, at)
            self.pressed.append(key)
            return key
        self._hang_up_before(deadline)
        self.now = deadline
        return None

    def pending_keys(self) -> int:
        self._arrive(self.now)
        return len(self.queue)

    def flush_keys(self) -> None:
        self.queue.clear()

    # -- what happened ---------------------------------------------------------

    def heard(self) -> list[str]:
        """Prompt names heard (fully or cut short), in order."""
        return [name for p in self.played if p.how != "skipped" for name in p.names]

    def questions(self) -> list[str]:
        """The last prompt name of each played sequence: the question asked."""
        return [p.names[-1] for p in self.played if p.how != "skipped"]

    # -- internals ---------------------------------------------------------------

    def _arrive(self, until: float) -> None:
        while self.script and self.script[0][0] <= until:
            self.queue.append(self.script.pop(0)[1])
            self.pressed.append(self.queue[-1])

    def _hang_up_before(
        self, until: float, names: list[str] | None = None, start: float = 0.0
    ) -> None:
        if self.hang_up_at is not None and self.hang_up_at <= until:
            if names is not None:
                self.played.append(Played(start, names, "cut"))
            self.now = max(self.now, self.hang_up_at)
            raise CallEnded(HungUp("busy_tone"))

    def _answer(self, question: str) -> None:
        steps = self._answers.get(question)
        if not steps:
            return
        keys = steps.popleft()
        if keys is None:  # stays silent this time
            return
        for i, key in enumerate(keys):
            self.script.append((self.now + ANSWER_DELAY + i * KEY_GAP, key))
        self.script.sort()


class FakeBank:
    """Asks after answering, after each navigation step, after the card (read-back),
    after the confirm key and after the PIN's #; then keys its result and hangs up."""

    codec = "ulaw"

    def __init__(self, result: str = "A0777#", dial: list[str] | None = None) -> None:
        self.result = result
        self.dial_results = deque(dial or ["answered"])
        self.sends: list[str] = []
        self.asked = 0
        self.speaking = 0  # blocks of speech left
        self.out: deque[str] = deque()
        self.typed: list[str] = []
        self.hung_up = False
        self.on_hook = True
        self.dials = 0

    def ask(self) -> None:
        self.asked += 1
        self.speaking = 40  # 0.8 s of "speech"

    async def dial(self, number: str, timeout: float | None = None) -> str:
        self.dials += 1
        result = self.dial_results.popleft() if self.dial_results else "answered"
        if result == "answered":
            self.on_hook = False
            self.ask()
        return result

    async def send_dtmf(self, keys: str) -> None:
        self.sends.append(keys)
        await asyncio.sleep(0.01 * len(keys) / SCALE)
        if len(self.sends) <= len(PROFILE.navigate):
            self.ask()
            return
        for key in keys:
            self.typed.append(key)
            if len(self.typed) == 16:
                self.ask()  # read-back
            elif len(self.typed) == 17:
                self.ask()  # "your PIN"
            elif key == "#":
                self.out.extend(self.result)

    async def record(self, timeout, on_audio: Callable[[np.ndarray], None], stop=None):
        while True:
            if self.hung_up:
                raise CallEnded(HungUp("busy_tone"))
            if self.out:
                key = self.out.popleft()
                if not self.out:
                    self.hung_up = True
                return key
            if stop is not None and stop.is_set():
                return None
            loud = self.speaking > 0
            self.speaking -= 1 if loud else 0
            on_audio(np.full(BLOCK, 3000 if loud else 0, dtype=np.int16))
            await asyncio.sleep(BLOCK / 8000 / SCALE)

    async def hang_up(self) -> None:
        self.on_hook = True


class FakeCaller:
    """Answers the bank's questions (its n-th answer after the n-th question heard)."""

    codec = "ulaw"

    def __init__(self, bank: FakeBank, answers: list[str], hang_up_after: int | None = None):
        self.bank = bank
        self.answers = deque(answers)
        self.keys: deque[str] = deque()
        self.heard = 0.0
        self.answered = len(PROFILE.navigate) + 1  # navigation questions are not the caller's
        self.hang_up_after = hang_up_after
        self.gone = False

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        self._check()
        self.heard += len(audio) / 8000
        await asyncio.sleep(len(audio) / 8000 / SCALE)
        return None

    async def record(self, timeout: float, on_audio, stop=None) -> str | None:
        """Listens until a key, ``stop`` or ``timeout``; answers a question once asked."""
        waited = 0.0
        while True:
            self._check()
            asked = self.bank.asked > self.answered - 1 and self.bank.speaking <= 0
            if not self.keys and asked and self.answers:
                self.answered += 1
                given = self.answered - 1 - len(PROFILE.navigate) - 1
                if self.hang_up_after is not None and given >= self.hang_up_after:
                    self.gone = True
                    self._check()
                self.keys.extend(self.answers.popleft())
            if self.keys:
                return self.keys.popleft()
            if waited >= timeout or (stop is not None and stop.is_set()):
                return None
            step = min(0.25, timeout - waited)
            await asyncio.sleep(step / SCALE)
            waited += step

    def _check(self) -> None:
        if self.gone:
            raise CallEnded(HungUp("busy_tone"))

"""IVR primitives: prompts with barge-in and type-ahead, digit collection, yes/no and menus.

What Asterisk's Read() and FreeSWITCH's play_and_get_digits do, in one
collector: a prompt (names from the prompt catalogue, played in the line's
codec), minimum and maximum digits, terminator keys, ``*`` to clear and start
again, first-digit and inter-digit timeouts, separate limits for silent and
for invalid tries, a validator whose verdict can choose the prompt that says
what was wrong, and a ``sensitive`` flag that keeps the digits out of every
log line and every repr. Entries that are not sensitive (a bill ID) are
logged masked all the same, and a prompt list that reads digits back is
logged with the digits collapsed: a DEBUG log holds no caller's bill ID.

Input rules (CALLFLOW.md): a key pressed while a prompt plays stops it and
counts as input; keys typed ahead skip the prompts of the questions they
answer; a full-length entry followed by the inter-digit timeout counts as if
the terminator had been pressed.

The line is anything shaped like :class:`~daemon1521.modem.voice.VoiceModem`
in a call (:class:`Line`), so flows run against a small fake in unit tests.
Its failures come out as :class:`CallerHungUp` or :class:`LineFailed`, so a
flow never handles modem exceptions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Protocol, TypeVar

from loguru import logger

from daemon1521.logs import mask_tail
from daemon1521.modem.errors import ModemError
from daemon1521.modem.voice import CallEnded

DIGITS = "0123456789"
KEYS = "0123456789*#ABCD"
OVERRUN = 1
"""Digits kept beyond ``max_digits``: enough to know an entry was too long."""

Prompt = str | Sequence[str]
"""A prompt name, or names played back to back as one stream."""

T = TypeVar("T")


class Line(Protocol):
    """The part of a voice modem in a call that a dialog needs."""

    codec: str

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None: ...

    async def next_key(self, timeout: float) -> str | None: ...

    def pending_keys(self) -> int: ...

    def flush_keys(self) -> None: ...


class PromptSource(Protocol):
    """Prompt audio by name in a codec, like :class:`~daemon1521.audio.prompts.PromptLibrary`."""

    def sequence(self, names: Iterable[str], codec: str) -> bytes: ...


class CallGone(Exception):
    """The call cannot go on; ``reason`` says why (never holds digits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallerHungUp(CallGone):
    """The far end hung up (busy tone, loop break, dial tone, silence, port failure)."""


class LineFailed(CallGone):
    """The modem failed during the call (stopped answering, port error)."""


class Default(Enum):
    """Marks an argument left to the dialog's own default (None means "none")."""

    PROMPT = "default"


class Outcome(StrEnum):
    """How a question ended."""

    OK = "ok"
    NO_INPUT = "no_input"  # every allowed try was silent
    TOO_MANY_INVALID = "too_many_invalid"


@dataclass(frozen=True)
class Invalid:
    """A validator's refusal: a stable ``reason`` code, and optionally the
    prompt that tells the caller what was wrong (else the question's own)."""

    reason: str
    prompt: Prompt | None = None


Verdict = Invalid | str | bool | None
"""What a validator returns: None or True accepts; False, a reason code or an
:class:`Invalid` refuses."""
Validator = Callable[[str], Verdict]


@dataclass(frozen=True, repr=False)
class Collected:
    """The result of :meth:`Dialog.collect_digits`.

    ``digits`` is set only when ``outcome`` is OK. ``ended_by`` says how the
    accepted entry ended: ``terminator``, ``full`` (full length, then the
    inter-digit timeout) or ``max`` (``end_at_max``). ``reason`` is the last
    refusal's code (``timeout`` for a silent try). ``tries`` counts the times
    the question was asked.
    """

    outcome: Outcome
    digits: str | None = None
    tries: int = 0
    silent: int = 0
    invalid: int = 0
    reason: str | None = None
    ended_by: str | None = None
    sensitive: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def __repr__(self) -> str:
        digits = self.digits
        if digits is not None and self.sensitive:
            digits = f"<{len(digits)} digits>"
        return (
            f"Collected(outcome={self.outcome.value}, digits={digits!r}, tries={self.tries}, "
            f"silent={self.silent}, invalid={self.invalid}, reason={self.reason!r}, "
            f"ended_by={self.ended_by!r})"
        )


@dataclass(frozen=True)
class Answer:
    """The result of a one-key question (:meth:`Dialog.confirm`, :meth:`Dialog.menu`)."""

    outcome: Outcome
    key: str | None = None
    yes: bool = False
    """For :meth:`Dialog.confirm`: the yes key was pressed."""
    tries: int = 0
    silent: int = 0
    invalid: int = 0
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def prompt_names(prompt: Prompt | None) -> list[str]:
    """A prompt as a list of names (empty for None)."""
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [prompt]
    return list(prompt)


def _verdict(result: Verdict) -> Invalid | None:
    if result is None or result is True:
        return None
    if result is False:
        return Invalid("invalid")
    if isinstance(result, str):
        return Invalid(result)
    return result


class Dialog:
    """Questions and announcements on one call.

    Defaults for timeouts and tries come from the constructor; every question
    may override them. ``timeout_prompt`` is played after a silent try that
    is not the last one. Keys taken from the line but not yet used (a key
    that stopped a prompt) are held here and come first.
    """

    def __init__(
        self,
        line: Line,
        prompts: PromptSource,
        *,
        first_digit_timeout: float = 8.0,
        inter_digit_timeout: float = 5.0,
        tries: int = 3,
        invalid_tries: int = 3,
        timeout_prompt: Prompt | None = None,
        name: str = "line",
    ) -> None:
        if tries < 1 or invalid_tries < 1:
            raise ValueError("tries and invalid_tries must be at least 1")
        self.line = line
        self.prompts = prompts
        self.first_digit_timeout = first_digit_timeout
        self.inter_digit_timeout = inter_digit_timeout
        self.tries = tries
        self.invalid_tries = invalid_tries
        self.timeout_prompt = timeout_prompt
        self.name = name
        self._held: deque[str] = deque()

    # -- keys --------------------------------------------------------------

    def pending(self) -> int:
        """Keys typed ahead and not yet used."""
        return len(self._held) + self.line.pending_keys()

    def flush(self) -> None:
        """Forget keys typed ahead (before a question that must not take them)."""
        self._held.clear()
        self.line.flush_keys()

    async def next_key(self, timeout: float) -> str | None:
        """The next key: held, typed ahead, or pressed within ``timeout``; None on timeout."""
        if self._held:
            return self._held.popleft()
        return await self._guard(self.line.next_key(timeout))

    # -- prompts -----------------------------------------------------------

    async def say(
        self,
        prompt: Prompt | None,
        *,
        barge_in: bool = True,
        flush: bool = False,
        sensitive: bool = False,
    ) -> str | None:
        """Play a prompt; the key that stopped it, which stays queued as input.

        With keys already typed ahead (and ``barge_in``) the prompt is skipped.
        ``flush`` forgets typed-ahead keys first, for announcements the caller
        must hear (a key still stops them). ``sensitive`` keeps the prompt
        names (digit read-backs) out of the log.
        """
        if flush:
            self.flush()
        names = prompt_names(prompt)
        if not names:
            return None
        shown = f"<{len(names)} prompts>" if sensitive else _names_shown(names)
        if barge_in and self.pending():
            logger.debug("{}: skip {} (keys typed ahead)", self.name, shown)
            return None
        logger.debug("{}: play {}", self.name, shown)
        audio = self.prompts.sequence(names, self.line.codec)
        key = await self._guard(self.line.play(audio, barge_in=barge_in))
        if key is not None:
            self._held.append(key)
            logger.debug("{}: prompt stopped by a key", self.name)
        return key

    # -- questions -----------------------------------------------------------

    async def collect_digits(
        self,
        prompt: Prompt,
        *,
        min_digits: int = 1,
        max_digits: int = 20,
        terminators: str = "#",
        restart_key: str | None = "*",
        end_at_max: bool = False,
        first_timeout: float | None = None,
        inter_timeout: float | None = None,
        tries: int | None = None,
        invalid_tries: int | None = None,
        validator: Validator | None = None,
        invalid_prompt: Prompt | None = None,
        timeout_prompt: Prompt | Default | None = Default.PROMPT,
        sensitive: bool = False,
        label: str = "digits",
    ) -> Collected:
        """Ask for a number until a valid one is typed or the tries run out.

        An entry ends with a terminator key, with the inter-digit timeout once
        ``max_digits`` are typed, or (``end_at_max``) at once on the last
        digit. A shorter entry left to time out, one outside ``min_digits`` ..
        ``max_digits``, or one the validator refuses is an invalid try: the
        validator's prompt (or ``invalid_prompt``) is played and the question
        asked again. ``restart_key`` clears the entry and waits for a first
        digit again. Keys outside 0-9, the terminators and the restart key
        are ignored.
        """
        if not 1 <= min_digits <= max_digits:
            raise ValueError("need 1 <= min_digits <= max_digits")
        if restart_key is not None and restart_key in terminators:
            raise ValueError("the restart key cannot also be a terminator")
        first = self.first_digit_timeout if first_timeout is None else first_timeout
        inter = self.inter_digit_timeout if inter_timeout is None else inter_timeout
        max_silent = self.tries if tries is None else tries
        max_invalid = self.invalid_tries if invalid_tries is None else invalid_tries
        on_timeout = self.timeout_prompt if timeout_prompt is Default.PROMPT else timeout_prompt
        silent = invalid = asked = 0
        reason: str | None = None
        while True:
            asked += 1
            await self.say(prompt)
            entry, ended_by = await self._read_entry(
                max_digits, terminators, restart_key, end_at_max, first, inter
            )
            if ended_by == "timeout" and not entry:
                silent += 1
                reason = "timeout"
                logger.debug("{}: {}: no input (try {})", self.name, label, asked)
                if silent >= max_silent:
                    return Collected(
                        Outcome.NO_INPUT, None, asked, silent, invalid, reason, None, sensitive
                    )
                await self.say(on_timeout)
                continue
            refusal = self._refusal(entry, ended_by, min_digits, max_digits, validator)
            shown = f"<{len(entry)} digits>" if sensitive else mask_tail(entry)
            if refusal is None:
                logger.debug("{}: {}: {} ({})", self.name, label, shown, ended_by)
                return Collected(
                    Outcome.OK, entry, asked, silent, invalid, reason, ended_by, sensitive
                )
            invalid += 1
            reason = refusal.reason
            logger.debug("{}: {}: {} refused: {}", self.name, label, shown, reason)
            await self.say(refusal.prompt if refusal.prompt is not None else invalid_prompt)
            if invalid >= max_invalid:
                return Collected(
                    Outcome.TOO_MANY_INVALID, None, asked, silent, invalid, reason, None, sensitive
                )

    async def confirm(
        self,
        prompt: Prompt,
        *,
        yes_key: str = "1",
        timeout: float | None = None,
        tries: int | None = None,
        timeout_prompt: Prompt | Default | None = Default.PROMPT,
        label: str = "confirm",
    ) -> Answer:
        """ "Press 1 if correct, any other key otherwise": any key answers."""
        return await self._ask_key(
            prompt, None, yes_key, None, timeout, tries, None, timeout_prompt, label
        )

    async def menu(
        self,
        prompt: Prompt,
        keys: Iterable[str],
        *,
        invalid_prompt: Prompt | None = None,
        timeout: float | None = None,
        tries: int | None = None,
        invalid_tries: int | None = None,
        timeout_prompt: Prompt | Default | None = Default.PROMPT,
        label: str = "menu",
    ) -> Answer:
        """A choice among ``keys``; any other key is an invalid try."""
        choices = frozenset(keys)
        if not choices or not choices <= set(KEYS):
            raise ValueError("menu keys must be telephone keys")
        return await self._ask_key(
            prompt,
            choices,
            None,
            invalid_prompt,
            timeout,
            tries,
            invalid_tries,
            timeout_prompt,
            label,
        )

    # -- internals -------------------------------------------------------------

    async def _read_entry(
        self,
        max_digits: int,
        terminators: str,
        restart_key: str | None,
        end_at_max: bool,
        first: float,
        inter: float,
    ) -> tuple[str, str]:
        """One entry and how it ended: terminator, full, max or timeout."""
        entry = ""
        while True:
            key = await self.next_key(inter if entry else first)
            if key is None:
                return entry, "full" if len(entry) >= max_digits else "timeout"
            if key in terminators:
                return entry, "terminator"
            if key == restart_key:
                entry = ""
                logger.debug("{}: entry restarted", self.name)
                continue
            if key not in DIGITS:
                continue
            if len(entry) < max_digits + OVERRUN:
                entry += key
            if end_at_max and len(entry) >= max_digits:
                return entry, "max"

    @staticmethod
    def _refusal(
        entry: str,
        ended_by: str,
        min_digits: int,
        max_digits: int,
        validator: Validator | None,
    ) -> Invalid | None:
        if ended_by == "timeout":
            return Invalid("incomplete")
        if not entry:
            return Invalid("empty")
        if len(entry) < min_digits:
            return Invalid("too_short")
        if len(entry) > max_digits:
            return Invalid("too_long")
        return _verdict(validator(entry)) if validator is not None else None

    async def _ask_key(
        self,
        prompt: Prompt,
        choices: frozenset[str] | None,
        yes_key: str | None,
        invalid_prompt: Prompt | None,
        timeout: float | None,
        tries: int | None,
        invalid_tries: int | None,
        timeout_prompt: Prompt | Default | None,
        label: str,
    ) -> Answer:
        wait = self.first_digit_timeout if timeout is None else timeout
        max_silent = self.tries if tries is None else tries
        max_invalid = self.invalid_tries if invalid_tries is None else invalid_tries
        on_timeout = self.timeout_prompt if timeout_prompt is Default.PROMPT else timeout_prompt
        silent = invalid = asked = 0
        reason: str | None = None
        while True:
            asked += 1
            await self.say(prompt)
            key = await self.next_key(wait)
            if key is None:
                silent += 1
                reason = "timeout"
                logger.debug("{}: {}: no input (try {})", self.name, label, asked)
                if silent >= max_silent:
                    return Answer(Outcome.NO_INPUT, None, False, asked, silent, invalid, reason)
                await self.say(on_timeout)
                continue
            if choices is None or key in choices:
                logger.debug("{}: {}: {}", self.name, label, key)
                yes = yes_key is not None and key == yes_key
                return Answer(Outcome.OK, key, yes, asked, silent, invalid, reason)
            invalid += 1
            reason = "not_a_choice"
            logger.debug("{}: {}: {} is not a choice", self.name, label, key)
            await self.say(invalid_prompt)
            if invalid >= max_invalid:
                return Answer(Outcome.TOO_MANY_INVALID, None, False, asked, silent, invalid, reason)

    async def _guard(self, operation: Awaitable[T]) -> T:
        """Run a line operation; the line's failures as :class:`CallGone`."""
        try:
            return await operation
        except CallEnded as exc:
            raise CallerHungUp(exc.hung_up.reason) from None
        except ModemError as exc:
            raise LineFailed(f"{type(exc).__name__}: {exc}") from None


_DIGIT_NAMES = frozenset(f"d{digit}" for digit in range(10))
_BETWEEN_DIGITS = frozenset({"pause"})


def _names_shown(names: Sequence[str]) -> str:
    """Prompt names for the log, each read-back of digits as ``<N digits>``."""
    shown: list[str] = []
    run = 0
    for name in [*names, ""]:
        if name in _DIGIT_NAMES:
            run += 1
            continue
        if run and name in _BETWEEN_DIGITS:
            continue
        if run:
            shown.append(f"<{run} digits>")
            run = 0
        if name:
            shown.append(name)
    return " ".join(shown)

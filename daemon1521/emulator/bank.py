"""The emulated telephone bank: a human-facing bank IVR on a line of the exchange.

It answers, speaks its own Persian prompts (:mod:`bank_voice`), hears keys
only as DTMF in the audio it receives, and runs the dialogue that the
shipped Bank Parsian telebank profile assumes:

    welcome, "for bill payment press 3" → bill ID # → payment ID # →
    16-digit card (Luhn and Shetab BIN; a bad one is asked again) →
    read-back, 1 confirms, 2 asks again → second PIN # → the result
    spoken, the machine result ``A<code><tracking>#`` keyed → goodbye,
    hang up.

The bill and payment IDs are checked as the bill-payment scheme says, the
card and PIN against its own accounts (one may take only one-time dynamic
PINs, issued as by SMS with :meth:`TelephoneBank.issue_dynamic_pin`), and a
payment is debited exactly once: the :attr:`ledger` is what tests inspect.
Faults: busy for a while, never answering, hanging up or going silent on
reaching a phase, garbling its machine result, or leaving it out.

Written from the profile's contract, not from the daemon's telebank code:
nothing here imports ``telebank``, ``modem`` or ``ivr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from daemon1521.audio.prompts import PromptLibrary
from daemon1521.billing.cards import mask_card, validate_card
from daemon1521.billing.ids import normalize_bill_id, validate_payment_id
from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.exchange import Exchange
from daemon1521.emulator.phone import Phone

PHASES = ("welcome", "bill", "payment", "card", "confirm", "pin", "result")
"""Where in the dialogue a fault can be set to strike."""
FIRST_KEY_TIMEOUT = 10.0
NEXT_KEY_TIMEOUT = 5.0
TRIES = 3
RESULT_KEY_SECONDS = 0.1
THINK = 1.0
"""Seconds between an answer and the next question, as a real IVR pauses."""
ANSWER_AFTER = 2.5
"""Seconds of ringing before the bank answers."""
ANSWER_SETTLE = 0.4
"""Seconds after answering before the bank speaks and listens."""
FIRST_TRACKING = 100_201
"""The tracking number of a bank's first debit; later ones count up from it."""


class _Gone(Exception):
    """The caller hung up (or the bank was told to go away)."""


@dataclass
class Account:
    """A card the bank issued: its static second PIN (or none, for a card
    that takes only dynamic PINs) and the balance in rials."""

    card: str
    balance: int
    pin: str | None = field(default=None, repr=False)
    dynamic: bool = False
    _dynamic_pins: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class Debit:
    """One payment made: the ledger's line (the card masked)."""

    card: str
    bill_id: str
    payment_id: str
    amount: int
    tracking: str
    time: float


@dataclass
class BankFaults:
    """What the bank does wrong; all off by default."""

    busy_until: float = 0.0
    """Emulated time until which its line is engaged (callers hear busy)."""
    no_answer: bool = False
    hang_up_at: str | None = None
    """Hang up on reaching this phase (one of :data:`PHASES`)."""
    silent_at: str | None = None
    """Stop speaking and listening on reaching this phase, staying on the line."""
    garble_result: bool = False
    machine_result: bool = True


@dataclass
class BankCall:
    """What happened in one call to the bank (never the PIN)."""

    phases: list[str] = field(default_factory=list)
    outcome: str | None = None
    tracking: str | None = None
    card: str | None = None
    """Masked."""


class TelephoneBank(Phone):
    """The bank's IVR on its line; :meth:`start` it, then dial its number."""

    def __init__(
        self,
        exchange: Exchange,
        accounts: Mapping[str, Account] | None = None,
        voice: PromptLibrary | None = None,
        first_tracking: int = FIRST_TRACKING,
    ) -> None:
        """``first_tracking``: the first debit's tracking number (banks on several
        exchanges, as in a rack split over processes, each take their own series)."""
        super().__init__(exchange)
        self.voice = voice or bank_voice()
        self.accounts: dict[str, Account] = dict(accounts or {})
        self.faults = BankFaults()
        self.ledger: list[Debit] = []
        self.calls: list[BankCall] = []
        self._paid: set[tuple[str, str]] = set()
        self._keys: deque[str] = deque()
        self._detector = DtmfDetector()
        self._task: asyncio.Task[None] | None = None
        self._tracking = itertools.count(first_tracking)
        self._speaking_until = 0
        self._clerks: list[TelephoneBank] = []
        """The bank's other lines (see :meth:`on_exchange`), sharing its books."""

    @classmethod
    def on_exchange(
        cls,
        exchange: Exchange,
        number: str,
        accounts: Mapping[str, Account] | None = None,
        voice: PromptLibrary | None = None,
        lines: int = 1,
        first_tracking: int = FIRST_TRACKING,
    ) -> TelephoneBank:
        if lines < 1:
            raise ValueError(f"a telephone bank needs at least one line, got {lines}")
        bank = cls(exchange, accounts, voice, first_tracking)
        if lines == 1:
            exchange.add_line(number, bank, label="telephone bank")
            return bank
        # A real telephone bank answers many calls at once: its lines hunt on
        # the one number and keep one set of books. The bank returned is the
        # handle for all of them (accounts, faults, ledger, calls, start, stop).
        bank._clerks = [cls(exchange, voice=bank.voice) for _ in range(lines - 1)]
        for clerk in bank._clerks:
            clerk._keep_books_of(bank)
        members = [
            exchange.add_line(f"{number}{index:03d}", clerk, label=f"telephone bank line {index}")
            for index, clerk in enumerate([bank, *bank._clerks], start=1)
        ]
        exchange.add_hunt_group(number, members)
        return bank

    def _keep_books_of(self, bank: TelephoneBank) -> None:
        """Serve as another line of ``bank``: one set of accounts, faults,
        ledger, calls, paid bills and tracking numbers for all its lines."""
        self.accounts, self.faults, self.ledger = bank.accounts, bank.faults, bank.ledger
        self.calls, self._paid, self._tracking = bank.calls, bank._paid, bank._tracking

    # -- the test's handle -----------------------------------------------------------

    def add_account(self, card: str, balance: int, pin: str | None = None) -> Account:
        account = Account(card, balance, pin, dynamic=pin is None)
        self.accounts[card] = account
        return account

    def issue_dynamic_pin(self, card: str) -> str:
        """A one-time PIN for ``card``, as the bank's app or SMS would give it."""
        account = self.accounts[card]
        pin = f"{(len(account._dynamic_pins) * 7919 + 482_913) % 1_000_000:06d}"
        account._dynamic_pins.append(pin)
        return pin

    def debits(self, bill_id: str | None = None) -> list[Debit]:
        if bill_id is None:
            return list(self.ledger)
        key = normalize_bill_id(bill_id)
        return [d for d in self.ledger if d.bill_id == key]

    def busy_for(self, seconds: float) -> None:
        """Engage the line now for ``seconds`` of emulated time."""
        self.faults.busy_until = self.clock.now() + seconds

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name="emulated-bank")
        for clerk in self._clerks:
            clerk.start()

    async def stop(self) -> None:
        for clerk in self._clerks:
            await clerk.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.off_hook:
            await self.hang_up()

    async def __aenter__(self) -> TelephoneBank:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the line ------------------------------------------------------------------------

    def receive(self, frame: np.ndarray) -> None:
        super().receive(frame)
        for event in self._detector.feed(frame):
            if event.kind == "down":
                self._keys.append(event.key)

    async def _serve(self) -> None:
        while True:
            if self.faults.busy_until > self.clock.now():
                self.lift()
                await self.clock.sleep(self.faults.busy_until - self.clock.now())
                await self.hang_up()
                continue
            await self._until(lambda: self.state == "ringing" or self._busy_soon())
            if self.state != "ringing":
                continue
            if self.faults.no_answer:
                await self._until(lambda: self.state != "ringing")
                continue
            # a caller hears ringback first, as from any bank's IVR
            await self._until(lambda: self.state != "ringing", ANSWER_AFTER)
            if self.state != "ringing":
                continue
            call = BankCall()
            self.calls.append(call)
            self._keys.clear()
            self._detector.reset()
            self.lift()
            # the tail of the caller's last dialled digit may still arrive
            await self.clock.sleep(ANSWER_SETTLE)
            self._keys.clear()
            try:
                await self._dialogue(call)
                await self.clock.sleep(ANSWER_SETTLE)  # let the last word reach the caller
            except _Gone:
                pass
            if self.off_hook:
                await self.hang_up()
            self.forget_heard()  # what the call said is in its BankCall; the audio is not kept

    def _busy_soon(self) -> bool:
        return self.faults.busy_until > self.clock.now()

    # -- the dialogue ----------------------------------------------------------------------

    async def _dialogue(self, call: BankCall) -> None:
        await self._enter(call, "welcome")
        if await self._ask(["bank_welcome"], 1) != "3":
            await self._reply(["bank_goodbye"])
            return
        await self._enter(call, "bill")
        bill = await self._ask(["bank_ask_bill"], 14, end="#")
        await self._enter(call, "payment")
        payment = await self._ask(["bank_ask_payment"], 14, end="#")
        check = validate_payment_id(bill or "", payment or "") if bill and payment else None
        if check is None or not check.ok:
            await self._reply(["bank_bill_invalid", "bank_goodbye"])
            return
        assert check.payment_id is not None and check.amount_rials is not None
        bill_id = normalize_bill_id(bill or "")
        if (bill_id, check.payment_id) in self._paid:
            await self._reply(["bank_already_paid", "bank_goodbye"])
            return
        card = await self._card(call)
        if card is None:
            call.outcome = "card_refused"
            await self._finish(call, "bank_card_refused", "3")
            return
        call.card = mask_card(card)
        await self._enter(call, "pin")
        pin = await self._ask(["bank_ask_pin"], 12, end="#")
        await self._enter(call, "result")
        account = self.accounts.get(card)
        if account is None:
            call.outcome = "card_refused"
            await self._finish(call, "bank_card_refused", "3")
            return
        if not pin or not self._pin_ok(account, pin):
            call.outcome = "declined_pin"
            await self._finish(call, "bank_wrong_pin", "1")
            return
        if account.balance < check.amount_rials:
            call.outcome = "insufficient_funds"
            await self._finish(call, "bank_insufficient", "2")
            return
        account.balance -= check.amount_rials
        tracking = str(next(self._tracking))
        self._paid.add((bill_id, check.payment_id))
        self.ledger.append(
            Debit(
                mask_card(card),
                bill_id,
                check.payment_id,
                check.amount_rials,
                tracking,
                self.clock.now(),
            )
        )
        call.outcome, call.tracking = "paid", tracking
        await self._finish(call, "bank_paid", "0" + tracking, spoken=tracking)

    async def _card(self, call: BankCall) -> str | None:
        """The card number, checked and read back; None after too many bad ones."""
        for _ in range(TRIES):
            await self._enter(call, "card")
            card = await self._ask(["bank_ask_card"], 16)
            if card is None or len(card) != 16 or not validate_card(card).ok:
                await self._reply(["bank_card_invalid"])
                continue
            await self._enter(call, "confirm")
            groups = [card[i : i + 4] for i in range(0, 16, 4)]
            read_back = ["bank_card_is"]
            for group in groups:
                read_back += [f"bank_d{d}" for d in group] + ["bank_pause"]
            if await self._ask([*read_back, "bank_card_confirm"], 1) == "1":
                return card
        return None

    def _pin_ok(self, account: Account, pin: str) -> bool:
        if account.dynamic:
            if pin in account._dynamic_pins:
                account._dynamic_pins.remove(pin)  # one time only
                return True
            return False
        return account.pin is not None and pin == account.pin

    async def _finish(self, call: BankCall, prompt: str, code: str, spoken: str = "") -> None:
        await self._reply([prompt, *(f"bank_d{d}" for d in spoken)])
        if self.faults.machine_result:
            frame = "A" + code + "#"
            if self.faults.garble_result:
                frame = "A" + code[:1] + "B" + code[1:] + "#"
            await self.clock.sleep(0.3)
            self._check_line()
            await self.press(frame, on=RESULT_KEY_SECONDS, gap=RESULT_KEY_SECONDS)
        await self._speak(["bank_goodbye"])

    async def _enter(self, call: BankCall, phase: str) -> None:
        call.phases.append(phase)
        if self.faults.hang_up_at == phase:
            raise _Gone(phase)
        if self.faults.silent_at == phase:
            await self._until(lambda: self.state != "connected")
            raise _Gone(phase)

    # -- speaking and listening ---------------------------------------------------------------

    def _check_line(self) -> None:
        if self.state != "connected":
            raise _Gone("the caller hung up")

    async def _reply(self, names: list[str]) -> None:
        """Answer what the caller keyed, after the moment a real IVR takes to check it."""
        await self.clock.sleep(THINK)
        await self._speak(names)

    async def _speak(self, names: list[str], barge_in: bool = False) -> None:
        """Say prompts; with ``barge_in`` a key stops them (and stays queued)."""
        self._check_line()
        audio = np.concatenate([self.voice.samples(name) for name in names])
        start = self._sent
        self.say(audio)
        end = start + len(audio)
        keys = len(self._keys)
        await self._until(
            lambda: (
                self._sent >= end
                or self.state != "connected"
                or (barge_in and len(self._keys) > keys)
            )
        )
        if self._sent < end:
            self._drop_outgoing()
        self._check_line()

    async def _ask(self, prompt: list[str], most: int, end: str | None = None) -> str | None:
        """Prompt (barge-in allowed), then keys: up to ``most`` digits, or until
        ``end``; None when nothing came in time, after the bank asked ``TRIES`` times."""
        for _ in range(TRIES):
            if not self._keys:
                await self.clock.sleep(THINK)
                await self._speak(prompt, barge_in=True)
            typed: list[str] = []
            timeout = FIRST_KEY_TIMEOUT
            while True:
                key = await self._key(timeout)
                if key is None:
                    break
                if end is not None and key == end:
                    return "".join(typed)
                typed.append(key)
                if len(typed) >= most and end is None:
                    return "".join(typed)
                if len(typed) > most:
                    return "".join(typed)  # too long: the caller of _ask refuses it
                timeout = NEXT_KEY_TIMEOUT
            if typed:
                return "".join(typed)
        return None

    async def _key(self, timeout: float) -> str | None:
        got = await self._until(lambda: bool(self._keys) or self.state != "connected", timeout)
        self._check_line()
        if not got or not self._keys:
            return None
        return self._keys.popleft()

"""Scripted callers for load runs: the 1521 flow again and again, by ear.

Each caller dials 1521, listens for each question and answers it with human
key timing (150-300 ms from one key to the next), up to the payment offer.
Most decline it; a paying caller accepts it and, through the daemon's bank
leg, gives the telephone bank its card (or confirms the card 1521
remembered for it), hears it read back, keys the second PIN, hears 1521 tell
the outcome and usually declines to have the card remembered. Then the
caller waits for the line to hang up, rests a moment and calls again. A
seeded mix of styles covers what a rack meets: plain callers, callers who
barge in on a prompt, callers who type ahead, callers who pay and callers
who hang up mid-call (the first callers' first calls take one style each).
Callers start staggered so that rings do not all coincide.

Paying needs the emulated telephone bank: each caller has an account there
(its own card, :func:`paying_card`) and each payment a bill of its own that
the bank has not been paid for (:func:`payable_bills`), since the bank
refuses to be paid twice for one bill. Now and then a paying caller keys a
wrong PIN: the bank declines, and that counts as a declined payment, not a
failure. What the caller heard of the outcome is in
:attr:`CallResult.payment`.

While a caller is through to the bank, the keys it presses are answered by
the bank, not by 1521; where the modem serving the call has a line meter,
the caller marks that stretch on it (:attr:`LineMeter.relayed`), so those
keys and the bank leg's audio are counted apart from 1521's prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from daemon1521.billing.cards import luhn_ok
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.emulator.bank import TelephoneBank
from daemon1521.emulator.meter import LineMeter
from daemon1521.emulator.rig import Rig
from daemon1521.ivr import flow1521
from daemon1521.telebank import leg
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.site import DemoBill

FIRST_CALLER = 9_121_000_000
"""Callers' numbers (0912 100 0000 on), far from the modems' own block."""
STYLES: tuple[tuple[str, float], ...] = (
    ("plain", 0.35),
    ("pay", 0.2),
    ("barge-in", 0.15),
    ("type-ahead", 0.15),
    ("hang-up", 0.15),
)
"""Call styles and how often each is drawn (``pay`` only when there is a bank). The
first call of each of the first callers takes the styles in this order, so that
a short run has each of them; every later call is drawn."""
KEY_ON = (0.08, 0.11)
KEY_GAP = (0.07, 0.19)
"""Seconds a key sounds and the silence after it: 150-300 ms key to key."""
THINK = (0.2, 0.6)
"""Seconds a caller takes to react once a question has ended."""
REST = (1.0, 3.0)
"""Seconds on hook between one call and the next."""
HANG_UP_AFTER = (3.0, 25.0)
"""Seconds after the answer at which a hang-up caller leaves."""
WRONG_PIN_SHARE = 0.1
"""Share of payments in which the caller keys a wrong second PIN."""
REMEMBER_CARD_SHARE = 0.25
"""Share of the offers to remember the card that a caller accepts."""
WRONG_PIN = "11111"
BANK_WAIT = 180.0
"""Seconds a paying caller waits for the bank's first question: the leg dials
(with the profile's retries) and navigates the bank's menu meanwhile."""
OUTCOME_WAIT = 120.0
"""Seconds a paying caller waits, after the PIN, for 1521 to tell the outcome."""
BALANCE = 10**12
"""Rials in each caller's account: enough for any run."""
CARD_ISSUERS = (("622106", "83917"), ("610433", "246810"))
"""Shetab BINs (Parsian, Melli) and the second PINs of the callers' cards, as the
end-to-end payment tests use; each caller's card has its own account digits."""
PAYABLE_FIRST_FILE = 30_000_000
"""File codes of :func:`payable_bills` start here, apart from the sample bills'."""

BANK_ASK_CARD = "bank_ask_card"
BANK_CARD_CONFIRM = "bank_card_confirm"
BANK_ASK_PIN = "bank_ask_pin"
"""The telephone bank's questions (its own voice, through the relay)."""
OUTCOMES: dict[str, tuple[str, str]] = {
    flow1521.PAYMENT_SUCCESS: ("paid", ""),
    flow1521.WRONG_PIN: ("declined", "wrong PIN"),
    flow1521.INSUFFICIENT_FUNDS: ("declined", "insufficient funds"),
    flow1521.CARD_REFUSED: ("declined", "card refused"),
    flow1521.PAYMENT_UNKNOWN: ("failed", "result unknown"),
    leg.BANK_LINES_BUSY: ("failed", "no outbound line free"),
    leg.BANK_UNREACHABLE: ("failed", "bank unreachable"),
}
"""What 1521 says at the end of a payment, as (payment, why) in :class:`CallResult`."""
NO_OUTBOUND_LINE = "no outbound line free"


@dataclass(frozen=True)
class CallResult:
    """One scripted call: its style and how it ended (``done`` when it went to
    the line's own hang-up after the payment offer or the payment).

    ``payment`` is None when no payment was attempted (the offer was declined
    or never reached), else what the caller heard: ``paid``, ``declined`` (by
    the bank: a wrong PIN and the like) or ``failed``, with ``payment_why``."""

    caller: str
    style: str
    ended: str
    payment: str | None = None
    payment_why: str = ""


def paying_card(index: int) -> tuple[str, str]:
    """Caller ``index``'s card number and second PIN."""
    issuer, pin = CARD_ISSUERS[index % len(CARD_ISSUERS)]
    body = f"{issuer}{index % 100_000:05d}1234"
    card = next(body + d for d in "0123456789" if luhn_ok(body + d))
    return card, pin


def payable_bills(count: int) -> list[DemoBill]:
    """``count`` valid electricity bills with a debt, each to be paid once."""
    bills = []
    for index in range(count):
        bill_id = make_bill_id(PAYABLE_FIRST_FILE + index, 101 + index % 7)
        amount = 1000 * (100 + index % 900)
        bills.append(DemoBill(bill_id, make_payment_id(bill_id, amount, 4, 12), amount))
    return bills


class _Site:
    """What :class:`~daemon1521.testbed.caller.Caller` needs: the wiring and the ears."""

    def __init__(self, rig: Rig, ears: Ears, listening: Executor | None) -> None:
        self.rig = rig
        self.ears = ears
        self.listening = listening


@dataclass
class _Payment:
    """What one call's payment came to, as the script learns it."""

    outcome: str | None = None
    why: str = ""


class LoadCallers:
    """``callers`` scripted callers on ``rig``, each typing one of ``bill_ids``.

    With ``bank`` (the emulated telephone bank on ``rig``'s exchange, whose
    voice ``ears`` must know) and ``pay_bills`` (bills in the daemon's store
    that nobody has paid), some callers pay, each payment one bill of
    ``pay_bills``, in order; once they are used up, callers decline again.
    Each caller's account is opened at the bank here. ``styles`` replaces
    :data:`STYLES`; ``wrong_pin`` is the share of payments with a wrong PIN.

    ``first`` is the index of the first of these callers among all the callers
    of a run split over several test-bed processes: it sets their numbers,
    cards and random streams, so no two processes have the same caller. The
    daemon may then carry a caller's payment to the bank of any process, so
    ``accounts`` names every caller whose account each bank must hold
    (default: these callers'). ``listening``: where the callers recognise
    prompts (see :class:`~daemon1521.testbed.caller.CallerSite`).
    """

    def __init__(
        self,
        rig: Rig,
        ears: Ears,
        bill_ids: Sequence[str],
        *,
        callers: int,
        stagger: float = 0.5,
        seed: int = 1521,
        bank: TelephoneBank | None = None,
        pay_bills: Sequence[str] = (),
        styles: Sequence[tuple[str, float]] = STYLES,
        wrong_pin: float = WRONG_PIN_SHARE,
        first: int = 0,
        accounts: Iterable[int] | None = None,
        listening: Executor | None = None,
    ) -> None:
        if not bill_ids:
            raise ValueError("load callers need at least one bill ID to type")
        self.site = _Site(rig, ears, listening)
        self.bill_ids = list(bill_ids)
        self.callers = callers
        self.first = first
        self.stagger = stagger
        self.seed = seed
        self.pay_bills = deque(pay_bills)
        self.styles = [(s, w) for s, w in styles if s != "pay" or bank is not None]
        if not self.styles:
            raise ValueError("no call style left to draw (paying needs a bank)")
        self.wrong_pin = wrong_pin
        self.results: list[CallResult] = []
        self.in_progress = 0
        self.paying = 0
        """Calls in progress that have accepted the payment offer."""
        self._modems = {
            line.number: modem for line, modem in zip(rig.lines, rig.modems, strict=True)
        }
        self._remembered: set[int] = set()
        """Callers who asked 1521 to remember their card."""
        self._spot: Callable[[np.ndarray], list[str]] | None = None
        if bank is not None:
            for index in range(first, first + callers) if accounts is None else accounts:
                card, pin = paying_card(index)
                bank.add_account(card, BALANCE, pin)
            # built now: building a recogniser during the calls would stall the lines
            self._spot = ears.spotter(list(OUTCOMES))

    async def run(self) -> None:
        """Run every caller until cancelled; results gather in :attr:`results`."""
        async with asyncio.TaskGroup() as group:
            for index in range(self.first, self.first + self.callers):
                group.create_task(self._subscriber(index))

    async def _subscriber(self, index: int) -> None:
        rng = random.Random(self.seed * 100_003 + index)
        number = f"0{FIRST_CALLER + index}"
        caller = Caller(self.site, self.site.rig.phone(number))
        bill_id = self.bill_ids[index % len(self.bill_ids)]
        local = index - self.first
        await caller.wait(local * self.stagger)
        first = True
        while True:
            style = rng.choices([s for s, _ in self.styles], [w for _, w in self.styles])[0]
            if first and local < len(self.styles):
                style = self.styles[local][0]
            first = False
            bill = bill_id
            if style == "pay":
                if self.pay_bills:
                    bill = self.pay_bills.popleft()
                else:
                    style = "plain"  # every payable bill is paid: decline
            payment = _Payment()
            self.in_progress += 1
            try:
                ended = await self._call(caller, style, bill, rng, index, payment)
            finally:
                self.in_progress -= 1
                with contextlib.suppress(Exception):
                    await caller.hang_up()
            if not caller.phone.off_hook:
                caller.phone.forget_heard()  # an hour of calls would keep ~60 MB a line
            self.results.append(CallResult(number, style, ended, payment.outcome, payment.why))
            await caller.wait(rng.uniform(*REST))

    async def _call(
        self,
        caller: Caller,
        style: str,
        bill_id: str,
        rng: random.Random,
        index: int,
        payment: _Payment,
    ) -> str:
        try:
            await caller.dial()
        except RuntimeError as exc:
            return str(exc)
        if style == "pay":
            meter = self._meter_of(caller.phone.number)
            try:
                return await self._pay(caller, bill_id, rng, index, payment, meter)
            finally:
                if meter is not None:
                    meter.relayed = False
        script = asyncio.create_task(self._script(caller, style, bill_id, rng))
        if style != "hang-up":
            return await script
        leave = asyncio.create_task(caller.wait(rng.uniform(*HANG_UP_AFTER)))
        done, _ = await asyncio.wait({script, leave}, return_when=asyncio.FIRST_COMPLETED)
        for task in (script, leave):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if script in done and not script.cancelled():
            return script.result()
        return "caller hung up mid-call"

    async def _script(self, caller: Caller, style: str, bill_id: str, rng: random.Random) -> str:
        try:
            await self._up_to_the_offer(caller, style, bill_id, rng, answer="2")
        except AssertionError as exc:
            return _broke_off(caller, exc)
        return await self._line_hangs_up(caller)

    async def _up_to_the_offer(
        self, caller: Caller, style: str, bill_id: str, rng: random.Random, answer: str
    ) -> None:
        """The flow in ``style`` up to the payment offer, answered with ``answer``."""
        if style == "barge-in":
            await caller.await_sound()
            await caller.wait(rng.uniform(1.0, 3.0))  # into the welcome or the question
        else:
            await self._hear(caller, flow1521.ASK_BILL_ID, rng)
        if style == "type-ahead":
            await self._type(caller, bill_id + "#1", rng)
        else:
            await self._type(caller, bill_id + "#", rng)
            if style == "barge-in":
                await caller.wait(rng.uniform(1.5, 3.0))  # into the read-back
            else:
                await self._hear(caller, flow1521.BILL_ENTERED_CONFIRM, rng)
            await self._type(caller, "1", rng)
        await self._hear(caller, flow1521.OFFER_REMEMBER_BILL, rng)
        await self._type(caller, "2", rng)
        await self._hear(caller, flow1521.OFFER_PAYMENT, rng)
        await self._type(caller, answer, rng)

    async def _pay(
        self,
        caller: Caller,
        bill_id: str,
        rng: random.Random,
        index: int,
        payment: _Payment,
        meter: LineMeter | None,
    ) -> str:
        """Up to the offer as a plain caller, accept it, and pay through the bank."""
        try:
            await self._up_to_the_offer(caller, "plain", bill_id, rng, answer="1")
        except AssertionError as exc:
            return _broke_off(caller, exc)
        self.paying += 1
        try:
            return await self._bank(caller, rng, index, payment, meter)
        finally:
            self.paying -= 1

    async def _bank(
        self,
        caller: Caller,
        rng: random.Random,
        index: int,
        payment: _Payment,
        meter: LineMeter | None,
    ) -> str:
        """The payment offer accepted: through the bank leg to 1521's outcome."""
        card, pin = paying_card(index)
        payment.outcome, payment.why = "failed", "outcome not heard"
        accepted = caller.mark
        try:
            # from the last key 1521 answers itself, the bank leg: hold, then the bank
            remembered = index in self._remembered
            if meter is not None and not remembered:
                meter.relayed = True
            heard = await self._hear_one_of(
                caller, (BANK_ASK_CARD, flow1521.REMEMBERED_CARD_CONFIRM), rng, BANK_WAIT
            )
            if heard == flow1521.REMEMBERED_CARD_CONFIRM:
                await self._type(caller, "1", rng)
                if meter is not None:
                    meter.relayed = True
                heard = await self._hear_one_of(caller, (BANK_ASK_PIN,), rng, BANK_WAIT)
            elif heard == BANK_ASK_CARD:
                if meter is not None:
                    meter.relayed = True
                heard = await self._give_card(caller, card, rng)
            if heard is None:  # 1521 ended the call: no outbound line, no bank, ...
                await self._judge(caller, accepted, payment)
                return await self._line_hangs_up(caller)
            wrong = rng.random() < self.wrong_pin
            await self._type(caller, (WRONG_PIN if wrong else pin) + "#", rng)
            keyed = caller.mark
            offer = await self._hear_one_of(
                caller, (flow1521.OFFER_REMEMBER_CARD,), rng, OUTCOME_WAIT
            )
            await self._judge(caller, keyed, payment)
            if payment.why == "wrong PIN" and not wrong:
                payment.why = "wrong PIN, though the right one was keyed"
            if meter is not None:
                meter.relayed = False  # 1521 asks again: its own question
            if offer is not None:
                keep = rng.random() < REMEMBER_CARD_SHARE
                await self._type(caller, "1" if keep else "2", rng)
                if keep:
                    self._remembered.add(index)
        except AssertionError as exc:
            why = _broke_off(caller, exc)
            payment.outcome, payment.why = "failed", why
            return why
        return await self._line_hangs_up(caller)

    async def _give_card(self, caller: Caller, card: str, rng: random.Random) -> str | None:
        """Key the card (again, if the bank asks again), confirm the read-back: the
        bank's PIN question once heard, or None if the call ended."""
        heard: str | None = None
        for _ in range(3):
            await self._type(caller, card, rng)
            heard = await self._hear_one_of(caller, (BANK_CARD_CONFIRM, BANK_ASK_CARD), rng, 60.0)
            if heard != BANK_ASK_CARD:
                break
        if heard != BANK_CARD_CONFIRM:
            return heard
        await self._type(caller, "1", rng)
        return await self._hear_one_of(caller, (BANK_ASK_PIN,), rng, 60.0)

    async def _judge(self, caller: Caller, since: int, payment: _Payment) -> None:
        """What 1521 said of the payment in what was heard from sample ``since`` on."""
        assert self._spot is not None
        for name in await caller.recognise(self._spot, caller.phone.heard[since:]):
            payment.outcome, payment.why = OUTCOMES[name]
            return

    def _meter_of(self, number: str) -> LineMeter | None:
        """The line meter of the modem that answered ``number``'s call, if it has one."""
        for event in reversed(self.site.rig.exchange.events):
            words = event.event.split()
            if words[:2] == ["ringing", "from"] and words[2:3] == [number]:
                modem = self._modems.get(event.line)
                return None if modem is None else modem.meter
        return None

    @staticmethod
    async def _line_hangs_up(caller: Caller) -> str:
        if not await caller.until_line_hangs_up():
            return "line never hung up"
        return "done"

    @staticmethod
    async def _hear(caller: Caller, prompt: str, rng: random.Random, timeout: float = 60.0) -> None:
        await caller.hear(prompt, timeout)
        await caller.wait(rng.uniform(*THINK))

    @staticmethod
    async def _hear_one_of(
        caller: Caller, prompts: Sequence[str], rng: random.Random, timeout: float
    ) -> str | None:
        """The first of ``prompts`` heard, or None if the line hung up first."""
        heard = await caller.hear_one_of(prompts, timeout, or_call_ends=True)
        if heard is not None:
            await caller.wait(rng.uniform(*THINK))
        return heard

    @staticmethod
    async def _type(caller: Caller, keys: str, rng: random.Random) -> None:
        """Press ``keys`` one by one at a human pace; later sound counts as new."""
        caller.mark = len(caller.phone.heard)
        for key in keys:
            await caller.phone.press(key, on=rng.uniform(*KEY_ON), gap=rng.uniform(*KEY_GAP))


def _broke_off(caller: Caller, exc: AssertionError) -> str:
    """Why a script stopped, without the caller's number (results are grouped by it)."""
    return f"script broke off: {exc}".replace(caller.phone.number, "caller")

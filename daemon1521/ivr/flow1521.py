"""The 1521 call script (CALLFLOW.md), the payment through the bank leg included.

A small explicit state machine: one method per state, each returning the next
state (None after goodbye). Every state entered is noted in the call record;
the flow closes the record itself with the outcome and the last state,
including when the caller hangs up anywhere. It speaks only through a
:class:`~daemon1521.ivr.dialog.Dialog`, so nothing here knows about modems.

Outcome vocabulary is :class:`~daemon1521.billing.store.CallOutcome`. Once a
state has decided how the call ends (no debt, not paid, no input...), a
hang-up during the closing prompts keeps that outcome; before that a hang-up
is ``hung_up``, and ``last_state`` says where.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from loguru import logger

from daemon1521.audio.say_fa import say_amount, say_digits
from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cardbook import CardBook
from daemon1521.billing.cards import CARD_GROUPS
from daemon1521.billing.ids import bill_id_groups, normalize_bill_id, validate_bill_id
from daemon1521.billing.store import Bill, CallOutcome, StoreUnavailable
from daemon1521.ivr.dialog import (
    Answer,
    CallerHungUp,
    Dialog,
    Invalid,
    Line,
    LineFailed,
    Outcome,
    PromptSource,
)
from daemon1521.ivr.settings import IvrSettings
from daemon1521.telebank.leg import LegResult


class State(StrEnum):
    """The states of CALLFLOW.md, as recorded in ``calls.states``."""

    WELCOME = "welcome"
    REMEMBERED_BILL = "remembered_bill"
    ASK_BILL = "ask_bill"
    READ_BACK_BILL = "read_back_bill"
    OFFER_REMEMBER_BILL = "offer_remember_bill"
    LOOKUP = "lookup"
    ANNOUNCE = "announce"
    OFFER_PAYMENT = "offer_payment"
    PAYMENT = "payment"
    OFFER_REMEMBER_CARD = "offer_remember_card"
    GOODBYE = "goodbye"


# Prompt names (prompts/fa/catalog.toml), by where the flow uses them.
WELCOME = "welcome"
REMEMBERED_BILL_IS = "remembered_bill_is"
REMEMBERED_BILL_CONFIRM = "remembered_bill_confirm"
ASK_BILL_ID = "ask_bill_id"
INVALID_BILL_ID = "invalid_bill_id"
NOT_ELECTRICITY_BILL = "not_electricity_bill"
BILL_ENTERED = "bill_entered"
BILL_ENTERED_CONFIRM = "bill_entered_confirm"
OFFER_REMEMBER_BILL = "offer_remember_bill"
BILL_SAVED = "bill_saved"
BILL_NOT_FOUND = "bill_not_found"
SERVICE_UNAVAILABLE = "service_unavailable"
NO_DEBT = "no_debt"
DEBT_IS = "debt_is"
OFFER_PAYMENT = "offer_payment"
PAYMENT_NOT_AVAILABLE = "payment_not_available"
REMEMBERED_CARD_IS = "remembered_card_is"
REMEMBERED_CARD_DROP = "remembered_card_drop"
REMEMBERED_CARD_CONFIRM = "remembered_card_confirm"
CARD_FORGOTTEN = "card_forgotten"
PAYMENT_SUCCESS = "payment_success"
TRACKING_NUMBER_IS = "tracking_number_is"
WRONG_PIN = "wrong_pin"
INSUFFICIENT_FUNDS = "insufficient_funds"
CARD_REFUSED = "card_refused"
PAYMENT_UNKNOWN = "payment_unknown"
OFFER_REMEMBER_CARD = "offer_remember_card"
CARD_SAVED = "card_saved"
DROP_CARD_KEY = "9"
"""The key that drops a remembered card (named in ``remembered_card_drop``)."""
NO_INPUT = "no_input"
NO_INPUT_GOODBYE = "no_input_goodbye"
TOO_MANY_INVALID = "too_many_invalid"
GOODBYE = "goodbye"

PROMPTS: tuple[str, ...] = (
    WELCOME,
    REMEMBERED_BILL_IS,
    REMEMBERED_BILL_CONFIRM,
    ASK_BILL_ID,
    INVALID_BILL_ID,
    NOT_ELECTRICITY_BILL,
    BILL_ENTERED,
    BILL_ENTERED_CONFIRM,
    OFFER_REMEMBER_BILL,
    BILL_SAVED,
    BILL_NOT_FOUND,
    SERVICE_UNAVAILABLE,
    NO_DEBT,
    DEBT_IS,
    OFFER_PAYMENT,
    PAYMENT_NOT_AVAILABLE,
    REMEMBERED_CARD_IS,
    REMEMBERED_CARD_DROP,
    REMEMBERED_CARD_CONFIRM,
    CARD_FORGOTTEN,
    PAYMENT_SUCCESS,
    TRACKING_NUMBER_IS,
    WRONG_PIN,
    INSUFFICIENT_FUNDS,
    CARD_REFUSED,
    PAYMENT_UNKNOWN,
    OFFER_REMEMBER_CARD,
    CARD_SAVED,
    NO_INPUT,
    NO_INPUT_GOODBYE,
    TOO_MANY_INVALID,
    GOODBYE,
)
"""Every catalogue phrase the flow plays (number words come from say_fa)."""


@dataclass(frozen=True)
class FlowResult:
    """How a call went: the record's outcome and reason, and where it ended."""

    outcome: CallOutcome
    last_state: State | None
    reason: str | None
    states: tuple[State, ...]
    bill_id: str | None = None
    amount: int | None = None


class Flow1521:
    """One call through the 1521 script. Create per call; :meth:`run` once.

    ``call_id`` is the call record (None when the store could not open one:
    the flow still runs, recording nothing). ``caller`` is the caller's
    number, None without caller ID.
    """

    def __init__(
        self,
        dialog: Dialog,
        store: AsyncStore,
        settings: IvrSettings,
        *,
        call_id: int | None,
        caller: str | None,
        name: str = "line",
        on_state: Callable[[State], None] | None = None,
        payments: Payments | None = None,
    ) -> None:
        self.dialog = dialog
        self.on_state = on_state
        """Told each state the call enters (the line shows it in ``status``)."""
        self.payments = payments
        self.learned_card: str | None = None
        """A new card the bank accepted (for the remember question); never logged."""
        self.store = store
        self.settings = settings
        self.call_id = call_id
        self.caller = caller
        self.name = name
        self.state: State | None = None
        self.states: list[State] = []
        self.outcome: CallOutcome | None = None
        self.reason: str | None = None
        self.closing = GOODBYE
        self.closed = False
        self.entered: str | None = None
        """The bill ID as typed (its length decides the read-back groups)."""
        self.bill_id: str | None = None
        """The bill ID in canonical 13-digit form once settled."""
        self.remembered: str | None = None
        self.bill: Bill | None = None
        self.not_found = 0
        self._handlers: dict[State, Callable[[], Awaitable[State | None]]] = {
            State.WELCOME: self.welcome,
            State.REMEMBERED_BILL: self.remembered_bill,
            State.ASK_BILL: self.ask_bill,
            State.READ_BACK_BILL: self.read_back_bill,
            State.OFFER_REMEMBER_BILL: self.offer_remember_bill,
            State.LOOKUP: self.lookup,
            State.ANNOUNCE: self.announce,
            State.OFFER_PAYMENT: self.offer_payment,
            State.PAYMENT: self.payment,
            State.OFFER_REMEMBER_CARD: self.offer_remember_card,
            State.GOODBYE: self.goodbye,
        }

    @classmethod
    def on_line(
        cls,
        line: Line,
        prompts: PromptSource,
        store: AsyncStore,
        settings: IvrSettings,
        *,
        call_id: int | None,
        caller: str | None,
        name: str = "line",
        on_state: Callable[[State], None] | None = None,
        payments: Payments | None = None,
    ) -> Flow1521:
        """A flow with a dialog on ``line`` using the settings' timeouts and tries."""
        dialog = Dialog(
            line,
            prompts,
            first_digit_timeout=settings.first_digit_timeout,
            inter_digit_timeout=settings.inter_digit_timeout,
            tries=settings.tries,
            invalid_tries=settings.invalid_tries,
            timeout_prompt=NO_INPUT,
            name=name,
        )
        return cls(
            dialog,
            store,
            settings,
            call_id=call_id,
            caller=caller,
            name=name,
            on_state=on_state,
            payments=payments,
        )

    # -- running -----------------------------------------------------------

    async def run(self, *, close_record: bool = True) -> FlowResult:
        """Run the call to its end; never raises for a hang-up.

        The record is closed here unless ``close_record`` is False: the
        attendant hangs up first and then calls :meth:`close`, so that the
        line is free again without waiting for the store.
        """
        state: State | None = State.WELCOME
        try:
            while state is not None:
                self._enter(state)
                try:
                    state = await self._handlers[state]()
                except StoreUnavailable as exc:
                    state = await self._store_failed(exc)
        except CallerHungUp as exc:
            if self.outcome is None:
                self.outcome = CallOutcome.HUNG_UP
                self.reason = f"hung up in {self.state} ({exc.reason})"
            logger.info("{}: caller hung up in {} ({})", self.name, self.state, exc.reason)
        except LineFailed as exc:
            self.outcome = CallOutcome.ERROR
            self.reason = f"line failed in {self.state}: {exc.reason}"
            logger.warning("{}: {}", self.name, self.reason)
        if self.outcome is None:
            self.outcome, self.reason = CallOutcome.ERROR, "flow ended without an outcome"
        if close_record:
            self.close(self.outcome, self.reason)
        return self.result()

    def result(self) -> FlowResult:
        return FlowResult(
            outcome=self.outcome or CallOutcome.ERROR,
            last_state=self.state,
            reason=self.reason,
            states=tuple(self.states),
            bill_id=self.bill_id,
            amount=self.bill.amount_rials if self.bill is not None else None,
        )

    def close(self, outcome: CallOutcome, reason: str | None) -> None:
        """Close the call record (once; later calls change nothing)."""
        if self.closed:
            return
        self.closed = True
        self.outcome, self.reason = outcome, reason
        logger.info(
            "{}: call ended in {}: {}{}",
            self.name,
            self.state,
            outcome,
            f" ({reason})" if reason else "",
        )
        if self.call_id is None:
            return
        try:
            self.store.close_call(self.call_id, outcome, reason)
        except StoreUnavailable as exc:
            logger.warning("{}: could not close call record {}: {}", self.name, self.call_id, exc)

    def _enter(self, state: State) -> None:
        self.state = state
        self.states.append(state)
        logger.debug("{}: state {}", self.name, state)
        if self.on_state is not None:
            self.on_state(state)
        self._record(lambda call_id: self.store.add_state(call_id, state))

    def _record(self, write: Callable[[int], None]) -> None:
        """A best-effort write to the call record: a failing store must not end the call."""
        if self.call_id is None:
            return
        try:
            write(self.call_id)
        except StoreUnavailable as exc:
            logger.warning("{}: call record {} not updated: {}", self.name, self.call_id, exc)

    def _finish(
        self, outcome: CallOutcome, reason: str | None = None, closing: str = GOODBYE
    ) -> State:
        """Decide how the call ends; the goodbye state plays ``closing`` and hangs up."""
        self.outcome, self.reason, self.closing = outcome, reason, closing
        return State.GOODBYE

    def _gave_up(self, answer: Answer | Outcome, what: str) -> State:
        """The end of a question that got no usable answer."""
        outcome = answer if isinstance(answer, Outcome) else answer.outcome
        if outcome is Outcome.NO_INPUT:
            return self._finish(CallOutcome.NO_INPUT, f"no input to {what}", NO_INPUT_GOODBYE)
        return self._finish(
            CallOutcome.INVALID_INPUT, f"too many invalid answers to {what}", TOO_MANY_INVALID
        )

    async def _store_failed(self, exc: StoreUnavailable) -> State:
        logger.error("{}: store unavailable in {}: {}", self.name, self.state, exc)
        self._finish(CallOutcome.SERVICE_UNAVAILABLE, f"store unavailable: {exc}")
        await self.dialog.say(SERVICE_UNAVAILABLE, flush=True)
        return State.GOODBYE

    def _read_back(self, digits: str) -> list[str]:
        return say_digits(digits, bill_id_groups(len(digits)))

    # -- the states ----------------------------------------------------------

    async def welcome(self) -> State:
        """1. Welcome; then the remembered bill if this caller has one."""
        await self.dialog.say(WELCOME)
        if self.caller is not None:
            self.remembered = await self.store.remembered_bill(self.caller)
        return State.REMEMBERED_BILL if self.remembered else State.ASK_BILL

    async def remembered_bill(self) -> State:
        """2. "Your bill ID is ... press 1 if correct, any other key for another"."""
        assert self.remembered is not None
        digits = normalize_bill_id(self.remembered)
        answer = await self.dialog.confirm(
            [REMEMBERED_BILL_IS, *self._read_back(digits), REMEMBERED_BILL_CONFIRM],
            yes_key=self.settings.yes_key,
            label="remembered bill",
        )
        if not answer.ok:
            return self._gave_up(answer, "the remembered bill question")
        if answer.yes:
            self.entered = self.bill_id = digits
            return State.LOOKUP
        return State.ASK_BILL

    async def ask_bill(self) -> State:
        """3. The bill ID, ended with #: 6-13 digits, check digit, electricity."""
        result = await self.dialog.collect_digits(
            ASK_BILL_ID,
            min_digits=self.settings.bill_min_digits,
            max_digits=self.settings.bill_max_digits,
            validator=_electricity_bill,
            invalid_prompt=INVALID_BILL_ID,
            label="bill ID",
        )
        if not result.ok:
            return self._gave_up(result.outcome, "the bill ID question")
        assert result.digits is not None
        self.entered = result.digits
        self.bill_id = normalize_bill_id(result.digits)
        return State.READ_BACK_BILL

    async def read_back_bill(self) -> State:
        """4. "You entered ... press 1 if correct"."""
        assert self.entered is not None and self.bill_id is not None
        answer = await self.dialog.confirm(
            [BILL_ENTERED, *self._read_back(self.entered), BILL_ENTERED_CONFIRM],
            yes_key=self.settings.yes_key,
            label="bill read-back",
        )
        if not answer.ok:
            return self._gave_up(answer, "the bill read-back")
        if not answer.yes:
            return State.ASK_BILL
        can_remember = self.settings.remember_bills and self.caller is not None
        if can_remember and self.remembered != self.bill_id:
            return State.OFFER_REMEMBER_BILL
        return State.LOOKUP

    async def offer_remember_bill(self) -> State:
        """5. "Shall we remember this bill ID?" 1 stores it for this number."""
        assert self.caller is not None and self.bill_id is not None
        answer = await self.dialog.confirm(
            OFFER_REMEMBER_BILL, yes_key=self.settings.yes_key, label="remember bill"
        )
        if not answer.ok:
            return self._gave_up(answer, "the remember question")
        if answer.yes:
            self.store.remember_bill(self.caller, self.bill_id)
            self.remembered = self.bill_id
            logger.info("{}: bill ID remembered for the caller", self.name)
            await self.dialog.say(BILL_SAVED)
        return State.LOOKUP

    async def lookup(self) -> State:
        """6. Find the bill; not found asks again (up to the limit)."""
        assert self.bill_id is not None
        bill_id = self.bill_id
        self._record(lambda call_id: self.store.update_call(call_id, bill_id=bill_id))
        bill = await self.store.get_bill(bill_id)
        if bill is None:
            self.not_found += 1
            logger.info("{}: bill not found ({} time(s))", self.name, self.not_found)
            await self.dialog.say(BILL_NOT_FOUND)
            if self.not_found >= self.settings.not_found_tries:
                return self._finish(
                    CallOutcome.INVALID_INPUT,
                    f"bill not found {self.not_found} times",
                    TOO_MANY_INVALID,
                )
            return State.ASK_BILL
        self.bill = bill
        return State.ANNOUNCE

    async def announce(self) -> State:
        """7. The debt in Persian words, or "no outstanding debt"."""
        assert self.bill is not None
        amount = self.bill.amount_rials
        self._record(lambda call_id: self.store.update_call(call_id, amount_announced=amount))
        if amount == 0:
            self._finish(CallOutcome.NO_DEBT, "no debt")
            await self.dialog.say(NO_DEBT, flush=True)
            return State.GOODBYE
        words = say_amount(
            amount,
            unit=self.settings.unit,
            formal_hundred=self.settings.formal_hundred,
            formal_thousand=self.settings.formal_thousand,
        )
        await self.dialog.say([DEBT_IS, *words])
        return State.OFFER_PAYMENT

    async def offer_payment(self) -> State:
        """8. "To pay now press 1; to end the call press any other key"."""
        answer = await self.dialog.confirm(
            OFFER_PAYMENT, yes_key=self.settings.yes_key, label="offer payment"
        )
        if not answer.ok:
            return self._gave_up(answer, "the payment offer")
        if answer.yes:
            return State.PAYMENT
        return self._finish(CallOutcome.NOT_PAID, "caller chose not to pay")

    async def payment(self) -> State:
        """9. The bank leg (TELEBANK.md); without one, payment is not available."""
        assert self.bill is not None and self.bill_id is not None
        desk = self.payments
        if desk is None or not self.bill.payment_id:
            self._finish(CallOutcome.NOT_PAID, "payment chosen; no bank leg available")
            await self.dialog.say(PAYMENT_NOT_AVAILABLE, flush=True)
            return State.GOODBYE
        card: str | None = None
        cards = desk.cards
        known = await cards.card_for(self.caller) if cards is not None and self.caller else None
        if known is not None:
            answer = await self.dialog.confirm(
                [
                    REMEMBERED_CARD_IS,
                    *say_digits(known.number, CARD_GROUPS),
                    REMEMBERED_CARD_DROP,
                    REMEMBERED_CARD_CONFIRM,
                ],
                yes_key=self.settings.yes_key,
                label="remembered card",
            )
            if not answer.ok:
                return self._gave_up(answer, "the remembered card question")
            if answer.yes:
                card = known.number
            elif answer.key == DROP_CARD_KEY and cards is not None and self.caller:
                cards.forget(self.caller)
                logger.info("{}: the caller dropped the remembered card", self.name)
                await self.dialog.say(CARD_FORGOTTEN)
        self.dialog.flush()
        result = await desk.pay(
            self.dialog.line, self.bill_id, self.bill.payment_id, card, name=self.name
        )
        self._record_payment(result)
        outcome = str(result.outcome)
        words: list[str] = []
        if outcome == "paid":
            self._finish(CallOutcome.PAID, f"paid, tracking {result.tracking}")
            words = [PAYMENT_SUCCESS]
            if result.tracking:
                words += [TRACKING_NUMBER_IS, *say_digits(result.tracking, (len(result.tracking),))]
        elif outcome in _DECLINED:
            self._finish(CallOutcome.DECLINED, outcome)
            words = [_DECLINED[outcome]]
        elif outcome == "bank_busy":
            self._finish(CallOutcome.BANK_BUSY, "no outbound line free")
        elif outcome == "bank_unreachable":
            self._finish(CallOutcome.BANK_UNREACHABLE, result.detail or "bank unreachable")
        elif not (result.caller_gone and outcome == "caller_hung_up"):
            self._finish(CallOutcome.PAYMENT_UNKNOWN, result.detail or outcome)
            words = [PAYMENT_UNKNOWN]
        if result.caller_gone:
            # a caller who left after the PIN keeps the bank's outcome (paid, declined)
            raise CallerHungUp(f"hung up during the payment ({result.outcome})")
        if words:
            await self.dialog.say(words, flush=True)
        refused = outcome in ("card_refused", "bank_busy", "bank_unreachable")
        if (
            result.learned
            and not refused
            and card is None
            and cards is not None
            and self.caller is not None
        ):
            self.learned_card = result.learned
            return State.OFFER_REMEMBER_CARD
        return State.GOODBYE

    async def offer_remember_card(self) -> State:
        """After the payment: "shall we remember this card?" 1 stores it, encrypted."""
        assert self.payments is not None and self.payments.cards is not None
        assert self.caller is not None and self.learned_card is not None
        card, self.learned_card = self.learned_card, None
        answer = await self.dialog.confirm(
            OFFER_REMEMBER_CARD, yes_key=self.settings.yes_key, label="remember card"
        )
        if answer.ok and answer.yes and self.payments.cards.remember(self.caller, card):
            logger.info("{}: card remembered for the caller", self.name)
            await self.dialog.say(CARD_SAVED)
        return State.GOODBYE

    def _record_payment(self, result: LegResult) -> None:
        assert self.bill is not None and self.bill_id is not None
        bill, bill_id = self.bill, self.bill_id
        try:
            self.store.record_payment(
                call_id=self.call_id,
                bill_id=bill_id,
                payment_id=bill.payment_id,
                amount=bill.amount_rials,
                card_masked=result.card_masked,
                result=str(result.outcome),
                tracking=result.tracking,
                started_at=result.started_at,
                ended_at=result.ended_at,
            )
        except StoreUnavailable as exc:
            logger.error("{}: payment attempt not recorded: {}", self.name, exc)

    async def goodbye(self) -> None:
        """10. The closing prompt; the attendant then hangs up."""
        await self.dialog.say(self.closing, flush=True)
        return None


_DECLINED = {
    "declined_pin": WRONG_PIN,
    "insufficient_funds": INSUFFICIENT_FUNDS,
    "card_refused": CARD_REFUSED,
}


class Payments(Protocol):
    """What the flow needs to take a payment (:class:`~daemon1521.telebank.desk.PaymentDesk`)."""

    cards: CardBook | None

    async def pay(
        self, line: Line, bill_id: str, payment_id: str, card: str | None = None, name: str = ...
    ) -> LegResult: ...


def _electricity_bill(digits: str) -> Invalid | None:
    """The bill-ID validator: a wrong check digit and a non-electricity bill get
    different prompts."""
    check = validate_bill_id(digits, electricity_only=True)
    if check.ok:
        return None
    assert check.reason is not None
    if check.service_type is not None and not check.is_electricity:
        return Invalid(check.reason.code, NOT_ELECTRICITY_BILL)
    return Invalid(check.reason.code, INVALID_BILL_ID)

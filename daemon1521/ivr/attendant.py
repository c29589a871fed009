"""The 1521 attendant: answer one ringing call and run the 1521 flow on it.

The daemon's line task owns the call (it waits for the ring, hands the call
here, and hangs up afterwards whatever happened); this is what happens in
between. Every call gets a record (opened at the ring, with the caller's
number when caller ID came), a length cap, and its progress reported to the
line as it goes. The attendant hangs up itself before closing the record, so
the line is free again without waiting for the store. A fault of the call
never escapes, except a cancellation (the line was stopped or reset).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from loguru import logger

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.store import CallOutcome, StoreUnavailable
from daemon1521.clock import Clock
from daemon1521.ivr.dialog import Line, PromptSource
from daemon1521.ivr.flow1521 import Flow1521, FlowResult
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.errors import ModemError
from daemon1521.modem.voice import IncomingCall


class CallModem(Line, Protocol):
    """What the attendant needs of a voice modem (:class:`~daemon1521.modem.voice.VoiceModem`)."""

    async def answer(self) -> None: ...


class AttendedCall(Protocol):
    """What the attendant needs of the call it is given (the daemon's ``Call``)."""

    line: str
    incoming: IncomingCall
    modem: CallModem
    settings: IvrSettings
    store: AsyncStore | None
    prompts: PromptSource | None
    clock: Clock
    telebank: Any
    """The bank leg's setup, or None: payment is then not available."""

    def report(self, *, call_id: int | None = None, state: str | None = None) -> None: ...

    async def hang_up(self) -> None: ...

    def outbound(self) -> AbstractAsyncContextManager[Any]: ...


class Attendant:
    """Serves calls with the 1521 flow; one serves every line (it keeps no call state)."""

    async def take_call(self, call: AttendedCall) -> FlowResult | None:
        """Answer, run the flow, hang up, close the record; never raises for the call's faults."""
        store, prompts, settings = call.store, call.prompts, call.settings
        if store is None or prompts is None:
            raise RuntimeError("the 1521 flow needs the store and the prompts")
        incoming = call.incoming
        caller = incoming.number
        # the bank leg holds its outbound line inside this call: call.outbound()
        # puts it back on hook and in the pool however the call ends
        payments = (
            call.telebank.desk(call.outbound, prompts, call.clock)
            if call.telebank is not None
            else None
        )
        call_id = _open_record(store, call.line, caller)
        call.report(call_id=call_id)
        # Every line of this call carries the line and the call record's id;
        # the caller's number stays in the record (the line logs it masked).
        tag = f"{call.line} call {call_id}" if call_id is not None else call.line
        logger.info(
            "{}: answering ({})",
            tag,
            "caller ID" if caller else _no_number(incoming) or "no caller ID",
        )
        flow: Flow1521 | None = None
        result: FlowResult | None = None
        try:
            await call.modem.answer()
            _record(store, call_id, tag, answered_at=datetime.now(UTC))
            flow = Flow1521.on_line(
                call.modem,
                prompts,
                store,
                settings,
                call_id=call_id,
                caller=caller,
                name=tag,
                on_state=lambda state: call.report(state=str(state)),
                payments=payments,
            )
            try:
                async with call.clock.timeout(settings.max_call_seconds) as deadline:
                    result = await flow.run(close_record=False)
            except TimeoutError:
                if not deadline.expired():
                    raise
                logger.warning(
                    "{}: call reached the {:g} s limit in {}; ending it",
                    tag,
                    settings.max_call_seconds,
                    flow.state,
                )
                result = _end(
                    store, call_id, flow, CallOutcome.HUNG_UP, "call length limit reached"
                )
        except asyncio.CancelledError:
            _end(store, call_id, flow, CallOutcome.ERROR, "call cut off: the line was stopped")
            raise
        except ModemError as exc:
            logger.error("{}: modem failed: {}", tag, exc)
            result = _end(store, call_id, flow, CallOutcome.ERROR, f"modem failed: {exc}")
        except Exception as exc:
            logger.opt(exception=True).error("{}: call flow failed", tag)
            result = _end(
                store, call_id, flow, CallOutcome.ERROR, f"flow error: {type(exc).__name__}"
            )
        finally:
            await call.hang_up()
            if flow is not None and flow.outcome is not None:
                flow.close(flow.outcome, flow.reason)  # no-op when already closed
        return result


def _open_record(store: AsyncStore, line: str, caller: str | None) -> int | None:
    try:
        return store.open_call(line, caller)
    except StoreUnavailable as exc:
        logger.error("{}: cannot open a call record: {}", line, exc)
        return None


def _record(store: AsyncStore, call_id: int | None, tag: str, **fields: object) -> None:
    if call_id is None:
        return
    try:
        store.update_call(call_id, **fields)
    except StoreUnavailable as exc:
        logger.warning("{}: call record not updated: {}", tag, exc)


def _end(
    store: AsyncStore,
    call_id: int | None,
    flow: Flow1521 | None,
    outcome: CallOutcome,
    reason: str,
) -> FlowResult | None:
    """Close the record of a call the flow could not finish itself."""
    if flow is not None:
        flow.close(outcome, reason)
        return flow.result()
    if call_id is not None:
        try:
            store.close_call(call_id, outcome, reason)
        except StoreUnavailable as exc:
            logger.warning("could not close call record {}: {}", call_id, exc)
    return None


def _no_number(incoming: IncomingCall) -> str | None:
    """Why there is no number: the caller-ID status (private, unavailable), if any came."""
    return incoming.caller.status if incoming.caller is not None else None

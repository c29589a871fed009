"""The answer loop of one inbound line: wait for a call, answer, run the 1521 flow, hang up.

The daemon's supervisor owns opening, identifying and recovering the modem;
this is what runs on a healthy line between those. Every call gets a record
(opened at the ring, with the caller's number when caller ID came), is hung
up whatever happened (a hang-up, a flow bug, the call-length cap, the daemon
stopping), and leaves the line on hook and waiting for the next ring. A
failing call never ends the loop; a port that failed does (:class:`PortError`),
because only the supervisor can bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol

from loguru import logger

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.store import CallOutcome, StoreUnavailable
from daemon1521.ivr.dialog import Line, PromptSource
from daemon1521.ivr.flow1521 import Flow1521, FlowResult, Payments
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.errors import ModemError, PortError
from daemon1521.modem.voice import IncomingCall


class CallModem(Line, Protocol):
    """What the answer loop needs of a voice modem (:class:`~daemon1521.modem.voice.VoiceModem`)."""

    state: str
    time_scale: float

    async def wait_for_call(self, timeout: float | None = None) -> IncomingCall | None: ...

    async def answer(self) -> None: ...

    async def hang_up(self) -> None: ...


class Attendant:
    """Takes the calls of one line, one after another, until told to stop.

    ``calls`` counts calls taken; ``last`` is the result of the latest one;
    ``waiting`` is set while the line is on hook waiting for a ring.
    """

    def __init__(
        self,
        modem: CallModem,
        store: AsyncStore,
        prompts: PromptSource,
        settings: IvrSettings,
        line_name: str,
        payments: Payments | None = None,
    ) -> None:
        self.modem = modem
        self.payments = payments
        self.store = store
        self.prompts = prompts
        self.settings = settings
        self.line_name = line_name
        self.calls = 0
        self.last: FlowResult | None = None
        self.current: Flow1521 | None = None
        self.waiting = asyncio.Event()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Answer calls until ``stop`` is set (a call in progress is finished first).

        Raises :class:`PortError` when the port fails, for the supervisor.
        """
        stop = stop or asyncio.Event()
        self._preload()
        try:
            while not stop.is_set():
                incoming = await self._next_call(stop)
                if incoming is None:
                    break
                await self.take_call(incoming)
                if self.modem.state == "down":
                    raise PortError(f"{self.line_name}: the modem is down")
        finally:
            self.waiting.clear()

    async def take_call(self, incoming: IncomingCall) -> FlowResult | None:
        """Answer one ringing call, run the flow, hang up; never raises for the call's faults."""
        caller = incoming.number
        self.calls += 1
        call_id = self._open_record(caller)
        # Every line of this call carries the line and the call record's id;
        # the caller's number stays in the record (the supervisor logs it masked).
        tag = f"{self.line_name} call {call_id}" if call_id is not None else self.line_name
        logger.info(
            "{}: answering ({})",
            tag,
            "caller ID" if caller else _no_number(incoming) or "no caller ID",
        )
        flow: Flow1521 | None = None
        try:
            await self.modem.answer()
            self._record(call_id, answered_at=datetime.now(UTC))
            flow = Flow1521.on_line(
                self.modem,
                self.prompts,
                self.store,
                self.settings,
                call_id=call_id,
                caller=caller,
                name=tag,
                payments=self.payments,
            )
            self.current = flow
            cap = self.settings.max_call_seconds / self.modem.time_scale
            try:
                async with asyncio.timeout(cap) as deadline:
                    self.last = await flow.run(close_record=False)
            except TimeoutError:
                if not deadline.expired():
                    raise
                logger.warning(
                    "{}: call reached the {:g} s limit in {}; ending it",
                    self.line_name,
                    self.settings.max_call_seconds,
                    flow.state,
                )
                self._end(call_id, flow, CallOutcome.HUNG_UP, "call length limit reached")
        except asyncio.CancelledError:
            self._end(call_id, flow, CallOutcome.ERROR, "call cut off: the line was stopped")
            raise
        except ModemError as exc:
            logger.error("{}: modem failed: {}", self.line_name, exc)
            self._end(call_id, flow, CallOutcome.ERROR, f"modem failed: {exc}")
        except Exception as exc:
            logger.opt(exception=True).error("{}: call flow failed", self.line_name)
            self._end(call_id, flow, CallOutcome.ERROR, f"flow error: {type(exc).__name__}")
        finally:
            self.current = None
            await self._hang_up()
            if flow is not None and flow.outcome is not None:
                flow.close(flow.outcome, flow.reason)  # no-op when already closed
        return self.last

    # -- internals -------------------------------------------------------------

    def _preload(self) -> None:
        """Convert every prompt for this line's codec now, not in the middle of a call."""
        preload = getattr(self.prompts, "preload", None)
        if preload is None:
            return
        for problem in preload([self.modem.codec]):
            logger.warning("{}: {}", self.line_name, problem)

    async def _next_call(self, stop: asyncio.Event) -> IncomingCall | None:
        """The next call that rang enough, or None once ``stop`` is set.

        One wait spans the whole idle period: restarting it would forget a
        ring already counted and the caller ID that came after it.
        """
        self.waiting.set()
        ring = asyncio.create_task(self.modem.wait_for_call(), name=f"{self.line_name}-ring")
        stopped = asyncio.create_task(stop.wait(), name=f"{self.line_name}-stop")
        try:
            await asyncio.wait({ring, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting.clear()
            for task in (ring, stopped):
                if not task.done():
                    task.cancel()
            for task in (ring, stopped):
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
        if ring.done() and not ring.cancelled():
            return ring.result()
        return None

    def _open_record(self, caller: str | None) -> int | None:
        try:
            return self.store.open_call(self.line_name, caller)
        except StoreUnavailable as exc:
            logger.error("{}: cannot open a call record: {}", self.line_name, exc)
            return None

    def _record(self, call_id: int | None, **fields: object) -> None:
        if call_id is None:
            return
        try:
            self.store.update_call(call_id, **fields)
        except StoreUnavailable as exc:
            logger.warning("{}: call record {} not updated: {}", self.line_name, call_id, exc)

    def _end(
        self, call_id: int | None, flow: Flow1521 | None, outcome: CallOutcome, reason: str
    ) -> None:
        """Close the record of a call the flow could not finish itself."""
        if flow is not None:
            flow.close(outcome, reason)
            self.last = flow.result()
            return
        if call_id is None:
            return
        try:
            self.store.close_call(call_id, outcome, reason)
        except StoreUnavailable as exc:
            logger.warning("{}: could not close call record {}: {}", self.line_name, call_id, exc)

    async def _hang_up(self) -> None:
        try:
            await self.modem.hang_up()
        except ModemError as exc:
            logger.error("{}: hang-up failed: {}", self.line_name, exc)


async def serve_line(
    modem: CallModem,
    store: AsyncStore,
    prompts: PromptSource,
    settings: IvrSettings,
    line_name: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Answer calls on ``modem`` until ``stop`` is set; see :class:`Attendant`."""
    await Attendant(modem, store, prompts, settings, line_name).serve(stop)


def _no_number(incoming: IncomingCall) -> str | None:
    """Why there is no number: the caller-ID status (private, unavailable), if any came."""
    return incoming.caller.status if incoming.caller is not None else None

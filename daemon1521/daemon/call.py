"""One call as its handler sees it: the line's modem, the services, and a second line on lease.

The supervisor's line task owns a call from the ring to the hang-up: it
builds a :class:`Call`, hands it to the call handler (the 1521 attendant),
and hangs up afterwards whatever happened. The handler reports progress
(the call record's id, the flow's state) through :meth:`Call.report`, and
borrows an outbound line with ``async with call.outbound() as modem``, which
gives the line back on hook and records the lease whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from loguru import logger

from daemon1521.audio.prompts import PromptLibrary
from daemon1521.billing.async_store import AsyncStore
from daemon1521.clock import Clock
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.errors import ModemError
from daemon1521.modem.voice import IncomingCall, VoiceModem

if TYPE_CHECKING:
    from daemon1521.daemon.supervisor import OutboundPool

LeaseEnd = Literal["returned", "failed", "cancelled"]


class CallHandler(Protocol):
    """Serves one ringing call from answer to end; the 1521 attendant is one."""

    async def take_call(self, call: Call) -> object:
        """Answer ``call.incoming`` on ``call.modem`` and serve it; the line hangs up after."""
        ...


@dataclass
class Lease:
    """An outbound line a call held: which, from when to when (line time), how it ended."""

    line: str
    started: float
    ended: float | None = None
    end: LeaseEnd | None = None


@dataclass
class Call:
    """One call's view of the daemon, handed to the call handler.

    ``caller`` is the full number, for the flow's own use; it is shown masked
    everywhere. ``settings``, ``store`` and ``prompts`` are the set the call
    began with: a reload changes the next call's.
    """

    line: str
    label: str | None
    incoming: IncomingCall
    modem: VoiceModem
    settings: IvrSettings
    store: AsyncStore | None
    prompts: PromptLibrary | None
    pool: OutboundPool
    clock: Clock
    started: float = 0.0
    telebank: Any = None
    """The bank leg's setup (:class:`~daemon1521.telebank.desk.Telebank`); None: no payments."""
    """Line time the call began (the clock's ``now``)."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    call_id: int | None = None
    flow_state: str | None = None
    leases: list[Lease] = field(default_factory=list)
    hang_up_failure: ModemError | None = None
    _hung_up: bool = False

    @property
    def caller(self) -> str | None:
        return self.incoming.number

    @property
    def tag(self) -> str:
        """``line1 call 17``: how log lines about this call begin."""
        return f"{self.line} call {self.call_id if self.call_id is not None else '-'}"

    def report(self, *, call_id: int | None = None, state: str | None = None) -> None:
        """The handler's progress: the call record it opened, the state it entered."""
        if call_id is not None:
            self.call_id = call_id
        if state is not None:
            self.flow_state = str(state)

    async def hang_up(self) -> None:
        """Put the line on hook; once per call, whoever asks first (the handler or the line).

        A modem that fails to hang up is logged here and reported to the
        line's task afterwards, which recovers it.
        """
        if self._hung_up or self.modem.state != "in_call":
            return
        try:
            await self.modem.hang_up()
        except ModemError as exc:
            logger.error("{}: hang-up failed: {}", self.tag, exc)
            self.hang_up_failure = exc
        # not reached when cancelled halfway: the line's task then hangs up again
        self._hung_up = True

    @contextlib.asynccontextmanager
    async def outbound(self) -> AsyncIterator[VoiceModem | None]:
        """``async with call.outbound() as modem``: an idle outbound line for this call,
        or None when none is free. On leaving the block, however it is left (an
        error, the caller hanging up, the daemon stopping), the line goes on hook
        and back to the pool, and :attr:`leases` records it."""
        async with self.pool.lease_line() as line:
            if line is None:
                yield None
                return
            lease = Lease(line.name, self.clock.now())
            self.leases.append(lease)
            logger.info("{}: holding {} for an outgoing call", self.tag, line.name)
            try:
                yield line.modem
                lease.end = "returned"
            except asyncio.CancelledError:
                lease.end = "cancelled"
                raise
            except BaseException:
                lease.end = "failed"
                raise
            finally:
                lease.ended = self.clock.now()
                logger.info(
                    "{}: gave {} back after {:.0f} s ({})",
                    self.tag,
                    line.name,
                    lease.ended - lease.started,
                    lease.end,
                )

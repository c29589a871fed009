"""One task per telephone line: bring the modem up, take calls, recover from faults.

A line's task opens its port, identifies and initialises the modem, then
waits for calls and hands each to the call handler (the 1521 attendant) as a
:class:`~daemon1521.daemon.call.Call`: the line's task owns the call from
the ring to the hang-up, which it makes whatever the handler did. Faults
(a port that fails, a modem that stops answering) close the port and retry
with exponential backoff; after repeated failures the line is marked out of
service and retried at a slow pace, without touching any other line. A call
in progress is a sub-task of its line, so a modem unplugged mid-call costs
that call only, and shutdown can let calls finish (drain) before the lines
close.

Operators act on lines through :class:`Supervisor`: busy out (the modem goes
off hook so the exchange hunts past it), return to service, reset. Lines
with the outbound role form the pool the bank leg borrows from
(:class:`OutboundPool`, through ``call.outbound()``).

Durations from the config are line seconds, kept by the supervisor's clock
(:mod:`daemon1521.clock`), which it shares with the modem driver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from loguru import logger

from daemon1521.audio.prompts import PromptLibrary
from daemon1521.billing.async_store import AsyncStore
from daemon1521.clock import Clock, LoopClock
from daemon1521.config import LineConfig, RecoveryConfig
from daemon1521.daemon.call import Call, CallHandler
from daemon1521.daemon.privacy import mask_caller
from daemon1521.ivr.settings import IvrSettings
from daemon1521.modem.errors import ModemError
from daemon1521.modem.profile import FirmwareProfile
from daemon1521.modem.voice import CallEnded, IncomingCall, ModemInfo, VoiceModem

LineState = Literal[
    "starting", "idle", "in_call", "busy", "recovering", "out_of_service", "stopped"
]
Admin = Literal["in_service", "busy"]
STATE_WORDS: dict[str, str] = {
    "idle": "idle",
    "in_call": "in call",
    "out_of_service": "out of service",
    "busy": "busied out",
    "recovering": "recovering",
    "starting": "starting",
    "stopped": "stopped",
}
"""STATUS= wording; the first three are always shown, the rest when non-zero."""
ALWAYS_SHOWN = ("idle", "in_call", "out_of_service")
CANCEL_GRACE = 5.0
"""Real seconds a cancelled call gets to hang up before its line is abandoned."""


class LineActionError(Exception):
    """An operator's request that cannot be done; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Services:
    """What calls share; replaced as a whole on reload, so a call keeps the set it began with."""

    settings: IvrSettings
    store: AsyncStore | None = None
    prompts: PromptLibrary | None = None
    telebank: Any = None
    """The bank leg's setup (:class:`~daemon1521.telebank.desk.Telebank`); None: no payments."""


ModemFactory = Callable[[LineConfig], VoiceModem]


class _Reset(Exception):
    """An operator asked for the line to be reset (close and open again)."""


class Line:
    """One line's state and its supervising task."""

    def __init__(self, config: LineConfig, supervisor: Supervisor) -> None:
        self.config = config
        self.name = config.name
        self.sup = supervisor
        self.modem = supervisor.make_modem(config)
        self.state: LineState = "starting"
        self.admin: Admin = "in_service"
        self.info: ModemInfo | None = None
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.since = datetime.now(UTC)
        self.calls_total = 0
        self._calls_today = 0
        self._today = date.today()
        self.current: Call | None = None
        self.initialised = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._next_retry: float | None = None
        self._up_since: float | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._reset_requested = False
        self._call_task: asyncio.Task[None] | None = None
        self._lease_request: asyncio.Future[VoiceModem | None] | None = None
        self._lease_done = asyncio.Event()
        self._returned = asyncio.Event()
        self._returned.set()

    # -- what others see ----------------------------------------------------------

    @property
    def calls_today(self) -> int:
        if date.today() != self._today:
            self._today, self._calls_today = date.today(), 0
        return self._calls_today

    @property
    def answers_calls(self) -> bool:
        return self.config.role in ("inbound", "both")

    @property
    def dials_out(self) -> bool:
        return self.config.role in ("outbound", "both")

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def snapshot(self) -> dict[str, Any]:
        """The line as ``daemon1521 status`` shows it (no caller number in clear)."""
        now = self.sup.clock.now()
        call = self.current
        retry = None
        if self._next_retry is not None and self.state in ("recovering", "out_of_service"):
            retry = round(max(0.0, self._next_retry - now), 1)
        info = self.info
        return {
            "name": self.name,
            "label": self.config.label,
            "port": self.config.port,
            "role": self.config.role,
            "state": self.state,
            "admin": self.admin,
            "since": self.since.isoformat(),
            "caller": mask_caller(call.caller) if call else None,
            "call_id": call.call_id if call else None,
            "flow_state": call.flow_state if call else None,
            "call_seconds": round(now - call.started) if call else None,
            "modem": (
                {
                    "manufacturer": info.manufacturer,
                    "model": info.model,
                    "firmware": info.firmware,
                    "profile": info.profile,
                    "codec": info.codec,
                }
                if info
                else None
            ),
            "calls_today": self.calls_today,
            "calls_total": self.calls_total,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "retry_in": retry,
        }

    async def next_change(self) -> None:
        """Return once the line's state next changes."""
        await self._changed.wait()

    async def wait_for(self, predicate: Callable[[Line], bool], timeout: float) -> bool:
        """Wait (real seconds) until ``predicate(self)`` holds; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            left = deadline - loop.time()
            if left <= 0:
                return False
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
        return True

    # -- operator requests ---------------------------------------------------------

    def request_busy(self) -> None:
        self.admin = "busy"
        self.wake()

    def request_free(self) -> None:
        self.admin = "in_service"
        if self.state in ("recovering", "out_of_service"):
            self.failures = 0
        self.wake()

    def request_reset(self, cut_call: bool) -> None:
        self._reset_requested = True
        self.failures = 0
        if cut_call:
            self.cut_call()
        self.wake()

    @property
    def reset_pending(self) -> bool:
        return self._reset_requested

    def cut_call(self) -> bool:
        """End the call in progress now (its handler is cancelled); False if there is none."""
        if self._call_task is None or self._call_task.done():
            return False
        self._call_task.cancel()
        return True

    def wake(self) -> None:
        self._wake.set()

    # -- the outbound pool's side ------------------------------------------------------

    def lendable(self) -> bool:
        return (
            self.dials_out
            and self.state == "idle"
            and self.admin == "in_service"
            and self._lease_request is None
            and not self.sup.stopping
        )

    async def lend(self) -> VoiceModem | None:
        """Hand the modem to the bank leg; None if the line failed meanwhile."""
        future: asyncio.Future[VoiceModem | None] = asyncio.get_running_loop().create_future()
        self._lease_request = future
        self._lease_done.clear()
        self.wake()
        try:
            return await future
        except asyncio.CancelledError:
            self._lease_request = None
            self._lease_done.set()
            raise

    def give_back(self) -> None:
        self._lease_done.set()

    async def wait_returned(self) -> None:
        """Return once a lent line is on hook again (or its task has ended)."""
        await self._returned.wait()

    # -- the task --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.sup.stopping:
                try:
                    if self.modem.state in ("closed", "down"):
                        await self._open()
                    await self._serve()
                except _Reset:
                    logger.info("{}: reset by the operator", self.name)
                    self._reset_requested = False
                    await self._close_modem()
                except (ModemError, OSError) as exc:
                    await self._failed(exc)
        finally:
            self._set_state("stopped")
            self.initialised.set()
            self._refuse_lease()
            self._returned.set()
            # The driver cuts a cancelled task's awaits short (as it should);
            # closing in a task of its own lets the port really close.
            closer = asyncio.create_task(self._close_modem(), name=f"daemon1521-close-{self.name}")
            await asyncio.wait({closer})

    async def _open(self) -> None:
        if self.state not in ("recovering", "out_of_service"):
            self._set_state("starting")  # a failed line keeps its state while it is retried
        self.info = await self.modem.open()
        self._up_since = self.sup.clock.now()
        info = self.info
        logger.info(
            "{}: in service on {}: {} {} firmware {} (profile {})",
            self.name,
            self.config.port,
            info.manufacturer or "?",
            info.model or "?",
            info.firmware or "?",
            info.profile,
        )
        self._set_state("idle")
        self.initialised.set()

    async def _serve(self) -> None:
        while not self.sup.stopping:
            if self._reset_requested:
                raise _Reset
            if self._lease_request is not None:
                await self._lent()
                continue
            if self.admin == "busy":
                await self._busied_out()
                continue
            self._set_state("idle")
            call = await self._wait()
            if call is None:
                continue
            if self.sup.stopping or self.admin == "busy" or self._reset_requested:
                logger.info("{}: not answering a call: the line is being taken down", self.name)
                continue
            self._refuse_lease()  # a call came first; the bank leg tries another line
            await self._take_call(call)

    async def _wait(self) -> IncomingCall | None:
        """A call (inbound lines), or None when woken or due for a health check."""
        check = self.sup.recovery.health_check
        timeout = check if check > 0 else None
        if self.answers_calls:
            waiter = asyncio.ensure_future(self.modem.wait_for_call(timeout))
        else:
            waiter = asyncio.ensure_future(self._sleep_line(timeout))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            was_woken = woken.done() and not woken.cancelled()
            for task in (woken, waiter):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if was_woken:
            self._wake.clear()
        if waiter.cancelled():
            return None
        call = waiter.result()  # raises the modem's failure
        if call is None and not was_woken:
            await self._health_check()
        return call

    async def _sleep_line(self, timeout: float | None) -> None:
        """An outbound line's idle wait: until woken (cancelled), or the next health check."""
        if timeout is None:
            await asyncio.Event().wait()
        else:
            await self.sup.clock.sleep(timeout)

    async def _health_check(self) -> None:
        """Re-initialise an idle modem: a chip that stopped answering shows up here."""
        await self.modem.initialise()
        self.failures = 0

    async def _take_call(self, incoming: IncomingCall) -> None:
        services = self.sup.services
        call = Call(
            line=self.name,
            label=self.config.label,
            incoming=incoming,
            modem=self.modem,
            settings=services.settings,
            store=services.store,
            prompts=services.prompts,
            pool=self.sup.pool,
            clock=self.sup.clock,
            started=self.sup.clock.now(),
            telebank=services.telebank,
        )
        self.current = call
        self.calls_total += 1
        self._calls_today = self.calls_today + 1
        self._set_state("in_call")
        shown = mask_caller(incoming.number) or (
            incoming.caller.status if incoming.caller else "no caller ID"
        )
        logger.info("{}: incoming call from {} after {} ring(s)", self.name, shown, incoming.rings)
        task = asyncio.create_task(
            self.sup.handler.take_call(call), name=f"daemon1521-call-{self.name}"
        )
        self._call_task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
            raise
        finally:
            self._call_task = None
        failure: BaseException | None = None
        if task.cancelled():
            why = "cut short at shutdown" if self.sup.stopping else "cut by an operator's reset"
            logger.warning("{}: call {}", call.tag, why)
        elif isinstance(task.exception(), CallEnded):
            pass
        elif isinstance(task.exception(), ModemError | OSError):
            failure = task.exception()
        elif task.exception() is not None:
            exc = task.exception()
            logger.opt(exception=exc).error("{}: call handler failed: {}", call.tag, exc)
        try:
            await call.hang_up()  # the one hang-up: a no-op if the handler made it
        finally:
            elapsed = self.sup.clock.now() - call.started
            state = f", last state {call.flow_state}" if call.flow_state else ""
            logger.info(
                "{}: call ended after {:.0f} s{}",
                call.tag if call.call_id is not None else self.name,
                elapsed,
                state,
            )
            self.current = None
        failure = failure or call.hang_up_failure
        if failure is not None:
            raise failure
        if self.modem.state == "down":
            raise ModemError(f"{self.config.port}: the port failed during the call")
        self.failures = 0

    async def _busied_out(self) -> None:
        """Off hook until returned to service: the exchange skips a busy line."""
        await self.modem.answer()
        self._set_state("busy")
        logger.info("{}: busied out", self.name)
        try:
            while (
                self.admin == "busy"
                and not self._reset_requested
                and not self.sup.stopping
                and self._lease_request is None
            ):
                await self._wake.wait()
                self._wake.clear()
        finally:
            if self.modem.state == "in_call":
                await self.modem.hang_up()
        if self.admin != "busy":
            logger.info("{}: returned to service", self.name)

    async def _lent(self) -> None:
        request = self._lease_request
        assert request is not None
        if request.done() or self.admin == "busy":
            self._lease_request = None
            if not request.done():
                request.set_result(None)
            return
        self._set_state("in_call")
        logger.info("{}: lent for an outgoing call", self.name)
        self._returned.clear()
        request.set_result(self.modem)
        try:
            await self._lease_done.wait()
        finally:
            self._lease_request = None
            try:
                if self.modem.state == "in_call":
                    await self.modem.hang_up()
            finally:
                self._returned.set()
                logger.info("{}: back from an outgoing call", self.name)
        if self.modem.state == "down":
            raise ModemError(f"{self.config.port}: the port failed during an outgoing call")

    def _refuse_lease(self) -> None:
        request, self._lease_request = self._lease_request, None
        if request is not None and not request.done():
            request.set_result(None)

    async def _failed(self, exc: BaseException) -> None:
        self._refuse_lease()
        await self._close_modem()
        clock = self.sup.clock
        recovery = self.sup.recovery
        now = clock.now()
        if self._up_since is not None and now - self._up_since >= recovery.healthy_after:
            self.failures = 0
        self._up_since = None
        self.failures += 1
        self.last_error = _describe(exc)
        self.last_error_at = datetime.now(UTC)
        if self.failures >= recovery.failures_before_out_of_service:
            delay = recovery.out_of_service_retry
            if self.failures == recovery.failures_before_out_of_service:
                logger.error(
                    "{}: out of service after {} failures ({}); retrying every {:g} s",
                    self.name,
                    self.failures,
                    self.last_error,
                    delay,
                )
            else:
                logger.debug("{}: still out of service ({})", self.name, self.last_error)
            self._set_state("out_of_service")
        else:
            delay = min(recovery.backoff_initial * 2 ** (self.failures - 1), recovery.backoff_max)
            logger.warning(
                "{}: {} (failure {}); retrying in {:g} s",
                self.name,
                self.last_error,
                self.failures,
                delay,
            )
            self._set_state("recovering")
        self.initialised.set()
        self._next_retry = now + delay
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(self._wake.wait(), delay)
        self._wake.clear()
        self._reset_requested = False

    async def _close_modem(self) -> None:
        with contextlib.suppress(ModemError, OSError):
            await self.modem.close()

    def _set_state(self, state: LineState) -> None:
        if state == self.state:
            return
        self.state = state
        self.since = datetime.now(UTC)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self.sup.changed()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class OutboundPool:
    """The lines the bank leg may dial out on; lines with role ``outbound`` are tried first."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def free(self) -> int:
        return sum(1 for line in self._sup.lines if line.lendable())

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[VoiceModem | None]:
        """``async with pool.lease() as modem``: an idle outbound modem, or None if none is free.

        Calls borrow through ``call.outbound()``, which also records the lease.
        """
        async with self.lease_line() as line:
            yield line.modem if line is not None else None

    @contextlib.asynccontextmanager
    async def lease_line(self) -> AsyncIterator[Line | None]:
        """``async with pool.lease_line() as line``: an idle outbound line, or None.

        The line is the caller's until the block ends, however it ends; then
        its task hangs it up (and notices if the port failed meanwhile), and
        the block is left once the line is on hook.
        """
        candidates = sorted(
            (line for line in self._sup.lines if line.lendable()),
            key=lambda line: line.config.role != "outbound",
        )
        for line in candidates:
            if not line.lendable():
                continue
            modem = await line.lend()
            if modem is None:
                continue
            try:
                yield line
            finally:
                line.give_back()
                await line.wait_returned()
            return
        yield None


class Supervisor:
    """Every line's task, and the operator's handle on them."""

    def __init__(
        self,
        lines: Sequence[LineConfig],
        handler: CallHandler,
        services: Services,
        recovery: RecoveryConfig,
        *,
        clock: Clock | None = None,
        profiles: Sequence[FirmwareProfile] | None = None,
        modem_factory: ModemFactory | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.services = services
        self.recovery = recovery
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.profiles = list(profiles) if profiles is not None else None
        self._modem_factory = modem_factory
        self._on_change = on_change
        self.stopping = False
        self.pool = OutboundPool(self)
        self.lines = [Line(config, self) for config in lines]

    def make_modem(self, config: LineConfig) -> VoiceModem:
        if self._modem_factory is not None:
            return self._modem_factory(config)
        return VoiceModem(
            config.port,
            profile=config.profile,
            profiles=self.profiles,
            region=config.region,
            rtscts=config.rtscts,
            baudrate=config.baudrate,
            clock=self.clock,
            rings_to_answer=config.rings,
            trace=config.trace,
        )

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        for line in self.lines:
            line.task = asyncio.create_task(line.run(), name=f"daemon1521-line-{line.name}")

    async def wait_initialised(self, timeout: float | None = None) -> bool:
        """True once every line has made its first attempt (in service or not)."""
        waits = [asyncio.ensure_future(line.initialised.wait()) for line in self.lines]
        if not waits:
            return True
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return not pending

    def all_alive(self) -> bool:
        """Every line task is running (the watchdog's condition)."""
        return all(line.alive() for line in self.lines)

    async def drain(
        self,
        timeout: float,
        tick: Callable[[float], None] | None = None,
        cut: asyncio.Event | None = None,
    ) -> bool:
        """Stop answering, let calls in progress finish within ``timeout`` line seconds.

        ``tick(seconds_left)`` is called about once a second while calls run
        (the daemon extends systemd's stop timeout from it). Calls still
        running at the deadline, or once ``cut`` is set, are cut. True when
        every call ended by itself.
        """
        self.stopping = True
        for line in self.lines:
            line.wake()
        self.changed()
        tasks = [line.task for line in self.lines if line.task is not None]
        clock = self.clock
        deadline = clock.now() + timeout
        pending = {task for task in tasks if not task.done()}
        while pending and not (cut is not None and cut.is_set()):
            left = deadline - clock.now()
            if left <= 0:
                break
            if tick is not None:
                tick(left)
            with contextlib.suppress(TimeoutError):
                await clock.wait_for(asyncio.wait(pending), min(1.0, left))
            pending = {task for task in pending if not task.done()}
        finished = not pending
        if pending:
            busy = [line.name for line in self.lines if line.current is not None]
            logger.warning("drain: cutting calls still in progress on {}", ", ".join(busy) or "-")
            for line in self.lines:
                line.cut_call()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_GRACE)
        await self.stop()
        return finished

    async def stop(self) -> None:
        """Cancel every line task and close the modems."""
        self.stopping = True
        tasks = [line.task for line in self.lines if line.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- operators --------------------------------------------------------------------------

    def line(self, name: str) -> Line:
        for line in self.lines:
            if line.name == name:
                return line
        known = ", ".join(line.name for line in self.lines) or "none"
        raise LineActionError("unknown_line", f"no line named {name!r} (lines: {known})")

    async def busy(self, name: str, wait: float = 5.0) -> Line:
        """Busy a line out; a line in a call goes busy when the call ends."""
        line = self.line(name)
        line.request_busy()
        if line.current is None:
            await line.wait_for(lambda ln: ln.state != "idle", wait)
        return line

    async def free(self, name: str, wait: float = 5.0) -> Line:
        """Return a line to service (and retry a failed one now)."""
        line = self.line(name)
        line.request_free()
        if line.state == "busy":
            await line.wait_for(lambda ln: ln.state != "busy", wait)
        return line

    async def reset(self, name: str, force: bool = False, wait: float = 10.0) -> Line:
        """Close and reopen a line's modem; refuses to cut a call unless ``force``."""
        line = self.line(name)
        if line.current is not None and not force:
            raise LineActionError(
                "in_call", f"{name} is in a call; busy it out first, or reset with --force"
            )
        line.request_reset(cut_call=force)
        await line.wait_for(lambda ln: not ln.reset_pending, wait)
        # a call cut mid-audio can leave the modem to the recovery path first:
        # the operator's answer comes once the line is back, or after ``wait``
        await line.wait_for(lambda ln: ln.state not in ("starting", "in_call", "recovering"), wait)
        return line

    # -- status ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATE_WORDS, 0)
        for line in self.lines:
            counts[line.state] += 1
        return counts

    def status_text(self) -> str:
        counts = self.counts()
        parts = [
            f"{counts[state]} {word}"
            for state, word in STATE_WORDS.items()
            if state in ALWAYS_SHOWN or counts[state]
        ]
        total = len(self.lines)
        draining = "; stopping" if self.stopping else ""
        return f"{total} line{'s' if total != 1 else ''}: {', '.join(parts)}{draining}"

    def snapshot(self) -> list[dict[str, Any]]:
        return [line.snapshot() for line in self.lines]

    def changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

"""The daemon process: config in, lines up, calls answered, a clean exit on SIGTERM.

Start-up order: firmware profiles, the store, the prompts (every file read
and converted before the first call), the control socket, then the line
tasks; READY=1 goes to systemd once every line has made its first attempt,
so ``systemctl start`` returns with the lines' real state in STATUS=.

Signals: SIGTERM and SIGINT stop answering new calls, let calls in progress
finish within ``daemon.drain_timeout`` (asking systemd for more time as they
run) and exit 0; a second one cuts the calls at once. SIGHUP re-reads the
config's IVR settings, logging levels and the prompts: calls in progress
keep what they started with, the next call gets the new set. Line and path
changes need a restart and are reported as such.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from daemon1521 import __version__
from daemon1521.audio.prompts import PromptCatalog, PromptError, PromptLibrary
from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.store import CallCounts, StoreUnavailable
from daemon1521.clock import Clock, LoopClock
from daemon1521.config import Config, ConfigError, LineConfig, load_config
from daemon1521.daemon.call import CallHandler
from daemon1521.daemon.control import ControlServer, ControlSocketError, RequestError
from daemon1521.daemon.heap import trim_heap_every
from daemon1521.daemon.notify import Notifier, watchdog_interval, watchdog_loop
from daemon1521.daemon.privacy import call_record, payment_record
from daemon1521.daemon.supervisor import (
    LineActionError,
    ModemFactory,
    Services,
    Supervisor,
)
from daemon1521.ivr.attendant import Attendant
from daemon1521.logs import setup_logging
from daemon1521.modem.errors import ProfileError
from daemon1521.modem.profile import load_profiles

READY_WAIT = 120.0
"""Real seconds start-up waits for every line's first attempt before READY=1 anyway."""
STOP_MARGIN = 15.0
"""Seconds beyond the drain asked of systemd, for closing ports and the store."""
MAX_CALLS_LISTED = 1000
RECORDS_SETTLE = 1.0
"""Real seconds a listing waits for records just queued to be written."""


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


def build_prompts(config: Config) -> PromptLibrary:
    """The prompt library the config describes, every file read now."""
    try:
        catalog = PromptCatalog(
            config.language, defaults_dir=config.shipped_prompts, uploads_dir=config.prompts
        )
    except PromptError as exc:
        raise StartupError(f"prompts: {exc}") from None
    library = PromptLibrary(catalog)
    for problem in library.preload():
        logger.warning("prompts: {}", problem)
    return library


async def open_telebank(config: Config, store: AsyncStore) -> Any:
    """The bank leg's setup, or None when ``[telebank] enabled = false``."""
    from daemon1521.billing.vault import KEY_FILE
    from daemon1521.schema import SchemaError
    from daemon1521.telebank.desk import Telebank

    if not config.telebank.enabled:
        logger.info("telebank: disabled in the config; callers will hear payment is unavailable")
        return None
    key = config.telebank.vault_key or Path(config.store).parent / KEY_FILE
    try:
        telebank = await Telebank.open(config.telebank.profile, store, key)
    except SchemaError as exc:
        raise StartupError(f"telebank profile: {exc}") from None
    except StoreUnavailable as exc:
        raise StartupError(f"telebank: the remembered cards cannot be read: {exc}") from None
    if telebank.profile.assumed:
        logger.warning(
            "telebank: the {} profile is an assumed dialogue; check it against the bank",
            telebank.profile.name,
        )
    return telebank


class Daemon:
    """One daemon1521 process; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        handler: CallHandler | None = None,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        lines: Sequence[LineConfig] | None = None,
        modem_factory: ModemFactory | None = None,
        log_level: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``handler`` serves each call (the 1521 attendant unless told);
        ``lines`` replaces the config's lines (emulated runs); ``clock`` is
        the lines' time (the event loop's unless an emulator keeps it);
        ``log_level`` fixes the level whatever the config says (the CLI's
        --log-level)."""
        self.config = config
        self.handler: CallHandler = handler if handler is not None else Attendant()
        self.notifier = notifier if notifier is not None else Notifier.from_env(env)
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.lines = tuple(lines) if lines is not None else config.lines
        self.modem_factory = modem_factory
        self.log_level = log_level
        self.env = env if env is not None else os.environ
        self.supervisor: Supervisor | None = None
        self.control: ControlServer | None = None
        self.store: AsyncStore | None = None
        self.started_at = datetime.now(UTC)
        self.stop_requested = asyncio.Event()
        self.cut_calls = asyncio.Event()
        self.reloads = 0
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._stopped = False

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Bring everything up and tell systemd we are ready; raises :class:`StartupError`."""
        config = self.config
        try:
            profiles = load_profiles(config.firmware_profiles)
        except ProfileError as exc:
            raise StartupError(f"firmware profiles: {exc}") from None
        try:
            self.store = await AsyncStore.open(config.store, on_problem=self._store_changed)
        except StoreUnavailable as exc:
            raise StartupError(str(exc)) from None
        try:
            prompts = build_prompts(config)
            telebank = await open_telebank(config, self.store)
            self.supervisor = Supervisor(
                self.lines,
                self.handler,
                Services(settings=config.ivr, store=self.store, prompts=prompts, telebank=telebank),
                config.recovery,
                clock=self.clock,
                profiles=profiles,
                modem_factory=self.modem_factory,
                on_change=self._lines_changed,
            )
            self.control = ControlServer(
                config.control.socket, self._handlers(), config.control.group
            )
            await self.control.start()
        except (ControlSocketError, StartupError) as exc:
            await self.store.close()
            self.store = None
            raise StartupError(str(exc)) from None
        logger.info(
            "daemon1521 {} starting {} line(s){}",
            __version__,
            len(self.lines),
            _pace(self.clock),
        )
        self.supervisor.start()
        if not await self.supervisor.wait_initialised(READY_WAIT):
            logger.warning("some lines are still starting; reporting ready anyway")
        self._preload_codecs(prompts)
        self._spawn(lambda: trim_heap_every(self.clock))
        self.notifier.ready(self.supervisor.status_text())
        logger.info("ready: {}", self.supervisor.status_text())
        interval = watchdog_interval(self.env)
        if interval is not None:
            self._watchdog = asyncio.create_task(
                watchdog_loop(self.notifier, interval, self.healthy), name="daemon1521-watchdog"
            )

    def healthy(self) -> bool:
        """Every line task and the control server are running."""
        return (
            self.supervisor is not None
            and self.supervisor.all_alive()
            and self.control is not None
            and self.control.serving
        )

    async def stop(self) -> bool:
        """Drain calls, close everything; True when every call ended by itself."""
        if self._stopped:
            return True
        self._stopped = True
        self.stop_requested.set()
        supervisor = self.supervisor
        finished = True
        if supervisor is not None:
            drain = self.config.drain_timeout
            in_call = sum(1 for line in supervisor.lines if line.current is not None)
            self.notifier.stopping(
                f"stopping: {in_call} call(s) in progress" if in_call else "stopping"
            )
            self.notifier.extend_timeout(drain + STOP_MARGIN)
            logger.info("stopping: no new calls; {} call(s) in progress", in_call)

            def tick(left: float) -> None:
                busy = sum(1 for line in supervisor.lines if line.current is not None)
                self.notifier.extend_timeout(left + STOP_MARGIN)
                self.notifier.status(f"stopping: {busy} call(s) in progress")

            finished = await supervisor.drain(drain, tick, cut=self.cut_calls)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.control is not None:
            await self.control.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
        logger.info("stopped{}", "" if finished else " (calls were cut)")
        self.notifier.close()
        return finished

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain and stop; the exit code."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload_logged)
        try:
            await self.start()
            await self.stop_requested.wait()
            loop.remove_signal_handler(signal.SIGHUP)
            await self.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    def request_stop(self, why: str = "request") -> None:
        if self.stop_requested.is_set():
            logger.warning("{} again: cutting calls in progress", why)
            self.cut_calls.set()
            return
        logger.info("{}: stopping", why)
        self.stop_requested.set()

    def _spawn(self, make: Callable[[], Awaitable[Any]]) -> None:
        task = asyncio.create_task(make())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except RequestError as exc:
            logger.error("reload failed: {}", exc.message)

    # -- reload -------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Re-read IVR settings, logging and prompts for the next calls (SIGHUP)."""
        supervisor = self.supervisor
        if supervisor is None:
            raise RequestError("not_ready", "the daemon is still starting")
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                return self._reload(supervisor)
            finally:
                self.notifier.ready(supervisor.status_text())

    def _reload(self, supervisor: Supervisor) -> dict[str, Any]:
        config = self.config
        if config.path is not None:
            try:
                config = load_config(config.path, require_lines=bool(self.config.lines))
            except ConfigError as exc:
                raise RequestError("bad_config", f"kept the running settings: {exc}") from None
        try:
            prompts = build_prompts(config)
        except StartupError as exc:
            raise RequestError("bad_prompts", f"kept the running prompts: {exc}") from None
        self._preload_codecs(prompts)
        restart = _needs_restart(self.config, config)
        for what in restart:
            logger.warning("reload: {} changed; it takes effect on restart", what)
        supervisor.services = dataclasses.replace(
            supervisor.services, settings=config.ivr, prompts=prompts
        )
        self.config = dataclasses.replace(
            self.config,
            ivr=config.ivr,
            logging=config.logging,
            prompts=config.prompts,
            shipped_prompts=config.shipped_prompts,
            language=config.language,
        )
        if self.log_level is None:
            setup_logging(config.logging.level, config.logging.modules)
        self.reloads += 1
        logger.info("reloaded: IVR settings and {} prompts", len(prompts.catalog))
        return {"prompts": len(prompts.catalog), "restart_needed": restart}

    def _preload_codecs(self, prompts: PromptLibrary) -> None:
        supervisor = self.supervisor
        assert supervisor is not None
        codecs_ = {line.info.codec for line in supervisor.lines if line.info is not None}
        for problem in prompts.preload(sorted(codecs_)):
            logger.warning("prompts: {}", problem)

    # -- the control socket -------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]]:
        return {
            "status": self._status,
            "line.busy": self._line_action,
            "line.free": self._line_action,
            "line.reset": self._line_action,
            "reload": self._reload_request,
            "calls": self._calls,
            "stats": self._stats,
        }

    def _sup(self) -> Supervisor:
        if self.supervisor is None:
            raise RequestError("not_ready", "the daemon is still starting")
        return self.supervisor

    def _daemon_info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "uptime": round((datetime.now(UTC) - self.started_at).total_seconds(), 1),
            "stopping": self.stop_requested.is_set(),
            "reloads": self.reloads,
            "time_scale": self.clock.speed,
        }

    async def _status(self, request: Mapping[str, Any]) -> dict[str, Any]:
        supervisor = self._sup()
        lines = supervisor.snapshot()
        totals: dict[str, Any] = {"lines": len(lines), **supervisor.counts()}
        counts = await self._counts_today()
        if counts is not None:  # the records, as ``stats`` counts them
            for line in lines:
                line["calls_today"] = counts.lines.get(line["name"], 0)
            totals["calls_today"] = counts.total
        else:
            totals["calls_today"] = sum(line["calls_today"] for line in lines)
        return {
            "daemon": self._daemon_info(),
            "status": supervisor.status_text(),
            "lines": lines,
            "totals": totals,
            "store": self._store_health(),
        }

    def _store_health(self) -> dict[str, Any]:
        if self.store is None:
            return {"ok": False, "problem": "the store is not open", "queued": 0}
        return self.store.health().as_dict()

    async def _counts_today(self) -> CallCounts | None:
        """Today's calls in the records (and queued for them); None when unreadable."""
        if self.store is None:
            return None
        if self.store.problem is None:
            await self.store.flush(RECORDS_SETTLE)
        try:
            return await self.store.count_calls(_midnight())
        except StoreUnavailable as exc:
            logger.warning("status: the call records cannot be counted: {}", exc)
            return None

    async def _line_action(self, request: Mapping[str, Any]) -> dict[str, Any]:
        supervisor = self._sup()
        name = request.get("line")
        if not isinstance(name, str) or not name:
            raise RequestError("bad_request", 'name the line: {"line": "NAME"}')
        action = str(request["cmd"]).removeprefix("line.")
        try:
            if action == "busy":
                line = await supervisor.busy(name)
            elif action == "free":
                line = await supervisor.free(name)
            else:
                line = await supervisor.reset(name, force=bool(request.get("force", False)))
        except LineActionError as exc:
            raise RequestError(exc.code, exc.message) from None
        logger.info("control: {} {}", action, name)
        return {"line": line.snapshot()}

    async def _reload_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {"reloaded": await self.reload()}

    async def _calls(self, request: Mapping[str, Any]) -> dict[str, Any]:
        since = _since(request.get("since"))
        limit = request.get("limit", 100)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_CALLS_LISTED
        ):
            raise RequestError("bad_request", f"limit must be 1 to {MAX_CALLS_LISTED}")
        line = request.get("line")
        records = await self._records(since, limit if line is None else MAX_CALLS_LISTED)
        if line is not None:
            records = [r for r in records if r.line == line][:limit]
        payments = await self._payments([r.id for r in records])
        return {
            "calls": [
                {**call_record(r), "payments": [payment_record(p) for p in payments.get(r.id, [])]}
                for r in records
            ]
        }

    async def _stats(self, request: Mapping[str, Any]) -> dict[str, Any]:
        supervisor = self._sup()
        today = await self._counts_today()
        if today is None:
            raise RequestError("store_unavailable", "the call store cannot be read now")
        payments = await self._payments_today()
        return {
            "daemon": self._daemon_info(),
            "stats": {
                "calls_since_start": sum(line.calls_total for line in supervisor.lines),
                "calls_today": today.total,
                "outcomes_today": dict(today.outcomes),
                "payments_today": payments,
                "lines": {
                    line.name: {
                        "state": line.state,
                        "calls_today": today.lines.get(line.name, 0),
                        "calls_since_start": line.calls_total,
                        "failures": line.failures,
                    }
                    for line in supervisor.lines
                },
                "outbound_free": supervisor.pool.free(),
            },
        }

    async def _records(self, since: datetime | None, limit: int) -> list[Any]:
        if self.store is None:
            raise RequestError("store_unavailable", "the store is not open")
        if self.store.problem is None:  # the records of calls just ended, unless writes wait
            await self.store.flush(RECORDS_SETTLE)
        try:
            return await self.store.recent_calls(since=since, limit=limit)
        except StoreUnavailable:
            raise RequestError("store_unavailable", "the call store cannot be read now") from None

    async def _payments(self, call_ids: list[int]) -> dict[int, list[Any]]:
        """The payment attempts of these calls (their records already settled)."""
        if self.store is None or not call_ids:
            return {}
        try:
            return await self.store.payments_of_calls(call_ids)
        except StoreUnavailable:
            raise RequestError("store_unavailable", "the call store cannot be read now") from None

    async def _payments_today(self) -> dict[str, int]:
        """Today's payment attempts by result (after :meth:`_counts_today` settled them)."""
        assert self.store is not None
        try:
            return await self.store.count_payments(_midnight())
        except StoreUnavailable:
            raise RequestError("store_unavailable", "the call store cannot be read now") from None

    def _lines_changed(self) -> None:
        if self.supervisor is not None and not self.stop_requested.is_set():
            self.notifier.status(self._status_line())

    def _store_changed(self, problem: str | None) -> None:
        self._lines_changed()

    def _status_line(self) -> str:
        """systemd's STATUS=: the lines, and the store's problem if it has one."""
        assert self.supervisor is not None
        text = self.supervisor.status_text()
        problem = self.store.problem if self.store is not None else None
        return f"{text}; store: {problem}" if problem else text


def _midnight() -> datetime:
    """Today's start in local time (as UTC): what "calls today" counts from."""
    local = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def _pace(clock: Clock) -> str:
    """How line time runs, for the start-up line: nothing when it is real time."""
    if clock.speed is None:
        return " on an emulator's clock, as fast as the host allows"
    return f" at {clock.speed:g}x line time" if clock.speed != 1 else ""


def _since(value: Any) -> datetime | None:
    """``since`` of a calls request: an ISO 8601 time, or a span like ``2h`` / ``30m`` / ``1d``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RequestError("bad_request", "since must be an ISO 8601 time or a span like 2h")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            "bad_request", f"since {value!r} is not an ISO 8601 time or a span like 2h"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _needs_restart(old: Config, new: Config) -> list[str]:
    changed = []
    if old.lines and old.lines != new.lines:
        changed.append("lines")
    for what in ("store", "control", "firmware_profiles", "drain_timeout", "recovery"):
        if getattr(old, what) != getattr(new, what):
            changed.append(what)
    return changed

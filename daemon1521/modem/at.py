"""The AT command channel of one modem: a pure response parser and an async engine.

:class:`ResponseParser` turns the bytes a modem sends into classified items,
whatever the echo setting, the case of the answers, the line endings (CR, LF,
CR LF, missing blank lines), line noise, and however the bytes were split
across reads. In command mode it also picks out ``DLE <c>`` events (Conexant
reports ring in voice mode as ``DLE R``); after a ``CONNECT`` it can switch to
the DLE-shielded data stream of ``+VTX``/``+VRX``/``+VTR`` and back at the
modem's ``DLE ETX``.

:class:`AtEngine` owns the port's only reader task. Commands run one at a time
and wait for their final result; unsolicited items (rings, assembled caller
ID, DLE events, other lines) go to :attr:`AtEngine.events`; and
:meth:`AtEngine.stream` hands a voice data stream to the layer above.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeAlias

from loguru import logger

from daemon1521.clock import Cancellable, Clock, LoopClock
from daemon1521.logs import LogThrottle
from daemon1521.modem.callerid import (
    BLOCK_QUIET_S,
    NUMBER_QUIET_S,
    CallerIdAssembler,
    CallerIdLine,
    CallerInfo,
    parse_callerid_line,
)
from daemon1521.modem.dle import ABORT_RX, CANCEL_TX, END_TX, DleDecoder, DleEvent, shield
from daemon1521.modem.errors import (
    AtError,
    AtTimeout,
    ModemError,
    PortClosed,
    PortError,
    StreamError,
    redact_command,
)
from daemon1521.modem.transport import Port

# Final result codes, verbose (ATV1) and numeric (ATV0), as canonical codes.
FINAL_RESULTS = {
    "OK": "OK",
    "ERROR": "ERROR",
    "CONNECT": "CONNECT",
    "VCON": "VCON",
    "NO CARRIER": "NO CARRIER",
    "BUSY": "BUSY",
    "NO DIALTONE": "NO DIALTONE",
    "NO DIAL TONE": "NO DIALTONE",
    "NO ANSWER": "NO ANSWER",
}
NUMERIC_RESULTS = {
    "0": "OK",
    "1": "CONNECT",
    "3": "NO CARRIER",
    "4": "ERROR",
    "6": "NO DIALTONE",
    "7": "BUSY",
    "8": "NO ANSWER",
}
NUMERIC_RING = "2"
ERROR_RESULTS = frozenset({"ERROR", "NO CARRIER", "BUSY", "NO DIALTONE", "NO ANSWER"})
SUCCESS_RESULTS = frozenset({"OK", "CONNECT", "VCON"})

_RING = re.compile(r"^RING(?:\s*([1-5A-E]))?$", re.IGNORECASE)
_UNSOLICITED = re.compile(r"^(?:RINGING|RINGBACK|DRON\s*=.*|DROF\s*=.*|CPON|CPOF|CWON|CWOF)$", re.I)
_CONNECT = re.compile(r"^CONNECT\b", re.IGNORECASE)
_EXTENDED_ERROR = re.compile(r"^\+CM[ES] ERROR\b", re.IGNORECASE)
_EOL = re.compile(rb"[\r\n]")
_NOT_TEXT = re.compile(rb"[^\x20-\x7e]+")  # line noise and control bytes
_BASIC_TOKEN = re.compile(r"S\d+(?:=\d*|\?)?|&[A-Z]\d*|\\[A-Z]\d*|%[A-Z]\d*|[A-CE-Z]\d*")
MAX_LINE = 512  # longer "lines" are noise: cut them
RECENT_COMMANDS = 4  # echoes of this many recent commands are recognised

# Engine timings in line seconds (the engine's clock).
RESYNC_QUIET_S = 0.15
RESYNC_LIMIT_S = 1.0
RESYNC_PROBE_TIMEOUT_S = 1.0
RESYNC_BUDGET_S = 6.0  # a modem silent for this long after a timeout is given up on
STREAM_FINISH_TIMEOUT_S = 5.0
ABORT_TIMEOUT_S = 1.0
EVENT_QUEUE_LIMIT = 1024
_QUEUE_FULL = LogThrottle()
"""A modem spewing noise overflows the queue thousands of times a second:
one warning per port, then a count of the rest at most every few seconds."""
NUMERIC_SETTLE_S = 0.05  # ATV0: a digit line + CR with no LF after this long is a result


@dataclass(frozen=True, slots=True)
class FinalResult:
    """A final result code: ``code`` canonical (``NO DIALTONE``), ``text`` as received."""

    code: str
    text: str

    @property
    def is_error(self) -> bool:
        return self.code in ERROR_RESULTS


@dataclass(frozen=True, slots=True)
class InfoLine:
    """A line of information text (the answer to ``ATI3``, ``AT+VSM=?``...)."""

    text: str


@dataclass(frozen=True, slots=True)
class Echo:
    """The modem repeating a command we sent (echo on)."""

    text: str


@dataclass(frozen=True, slots=True)
class Ring:
    """An incoming ring: ``RING``, ``RING2``, ``RINGB`` or ``DLE R`` in voice mode."""

    text: str
    via_dle: bool = False

    @property
    def cadence(self) -> str | None:
        """The distinctive-ring suffix (``"1"``..``"5"``, ``"A"``..``"E"``), if any."""
        match = _RING.match(self.text)
        return match.group(1).upper() if match and match.group(1) else None


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """Any other line the modem sent on its own (RINGING, DRON=, CWON...)."""

    text: str


@dataclass(frozen=True, slots=True)
class PortDown:
    """The port failed; the engine has stopped. ``reason`` is safe to log."""

    reason: str


ParserItem: TypeAlias = (
    FinalResult | InfoLine | Echo | Ring | Unsolicited | CallerIdLine | DleEvent | bytes
)
Event: TypeAlias = Ring | CallerInfo | DleEvent | Unsolicited | PortDown


def _normalise_command(text: str) -> str:
    return "".join(text.split()).upper()


def verbose_setting(command: str) -> bool | None:
    """What a command does to the result-code form: True verbose, False numeric, None same.

    Reads the basic-command part only (``ATE0V0`` -> False); ``ATZ`` and
    ``AT&F`` are taken to restore verbose codes, the factory default.
    """
    text = _normalise_command(command)
    if not text.startswith("AT"):
        return None
    setting = None
    pos = 2
    while pos < len(text):
        match = _BASIC_TOKEN.match(text, pos)
        if not match:
            break
        token = match.group(0)
        if token[0] == "V":
            setting = token != "V0"
        elif token[0] == "Z" or token == "&F" or token == "&F0":
            setting = True
        pos = match.end()
    return setting


class ResponseParser:
    """Incremental classifier of what a modem sends; pure, no I/O, no clock.

    Item types: :class:`FinalResult`, :class:`InfoLine`, :class:`Echo`,
    :class:`Ring`, :class:`Unsolicited`, :class:`CallerIdLine`,
    :class:`DleEvent`, and in data mode ``bytes`` of audio.
    """

    def __init__(self, *, numeric_results: bool = False, dle_sub: bool = True) -> None:
        self.numeric_results = numeric_results
        self._dle_sub = dle_sub
        # in command mode a DLE X report holds text lines (caller ID): keep them lines
        self._text = DleDecoder(dle_sub=False, complex_events=False)
        self._data = DleDecoder(dle_sub=dle_sub)
        self._line = bytearray()
        self._in_data = False
        self._armed = False
        self._skip_lf = False
        self._held: str | None = None
        self._echoes: collections.deque[str] = collections.deque(maxlen=RECENT_COMMANDS)

    @property
    def in_data(self) -> bool:
        """True while bytes are a DLE-shielded voice stream, not text."""
        return self._in_data

    def expect_echo(self, command: str) -> None:
        """Note a command being sent, so that its echo is recognised as such."""
        self._echoes.append(_normalise_command(command))

    def arm_data_mode(self) -> None:
        """Switch to data mode at the next ``CONNECT`` (disarmed by any other final)."""
        self._armed = True

    def disarm_data_mode(self) -> None:
        self._armed = False

    def end_data(self) -> None:
        """Back to command mode now (the host ended the stream; the modem owes no ETX)."""
        self._in_data = False
        self._armed = False
        self._skip_lf = False
        self._data = DleDecoder(dle_sub=self._dle_sub)

    def set_dle_sub(self, dle_sub: bool) -> None:
        """Read DLE SUB as the identified chip does, from the next stream on."""
        self._dle_sub = dle_sub
        if not self._in_data:
            self._data = DleDecoder(dle_sub=dle_sub)

    def feed(self, data: bytes) -> list[ParserItem]:
        items: list[ParserItem] = []
        view = bytes(data)
        while view:
            if self._in_data:
                if self._skip_lf:
                    self._skip_lf = False
                    if view[:1] == b"\n":
                        view = view[1:]
                        continue
                decoded, rest = self._data.feed_until_etx(view)
                items.extend(decoded)
                if rest is None:
                    break
                self._in_data = False
                view = rest
            else:
                switch_at = self._feed_text(view, items)
                if switch_at is None:
                    break
                view = view[switch_at:]
        return items

    # -- command mode ----------------------------------------------------------

    def _feed_text(self, view: bytes, items: list[ParserItem]) -> int | None:
        """Parse text up to the end of a data-mode CONNECT line; returns where data starts."""
        start = 0
        while start < len(view):
            if self._held is not None and self._resolve_held(view[start], items):
                return start
            eol = _EOL.search(view, start)
            end = eol.end() if eol else len(view)
            if self._segment(view[start:end], items):
                self._skip_lf = view[end - 1 : end] == b"\r"
                return end
            start = end
        return None

    @property
    def holding(self) -> bool:
        """A numeric result waits for the next byte (LF: it was information text)."""
        return self._held is not None

    def flush(self) -> list[ParserItem]:
        """Nothing more came after a held numeric line: it was a final result."""
        items: list[ParserItem] = []
        if self._held is not None:
            self._resolve_held(-1, items)
        return items

    def _resolve_held(self, next_byte: int, items: list[ParserItem]) -> bool:
        """V.250 numeric form: results end with CR alone, information text with CR LF."""
        text = self._held or ""
        self._held = None
        if next_byte == 0x0A:
            items.append(InfoLine(text))
            return False
        if text == NUMERIC_RING:
            items.append(Ring(text))
            return False
        return self._take_final(FinalResult(NUMERIC_RESULTS[text], text), items)

    def _take_final(self, final: FinalResult, items: list[ParserItem]) -> bool:
        items.append(final)
        if self._armed and final.code == "CONNECT":
            self._armed = False
            self._in_data = True
            return True
        self._armed = False
        return False

    def _segment(self, segment: bytes, items: list[ParserItem]) -> bool:
        """Decode a piece ending at most at one raw CR/LF; True if data mode begins."""
        for piece in self._text.feed(segment):
            if isinstance(piece, DleEvent):
                items.append(piece)
                continue
            body = piece
            ending = body[-1:] if body[-1:] in (b"\r", b"\n") else b""
            if ending:
                body = body[:-1]
            self._append(body, items)
            if ending and self._end_line(items, by_cr=ending == b"\r"):
                return True
        return False

    def _append(self, body: bytes, items: list[ParserItem]) -> None:
        while len(self._line) + len(body) > MAX_LINE:
            # a "line" this long is noise: pass it on as text, never as a result
            room = MAX_LINE - len(self._line)
            self._line += body[:room]
            body = body[room:]
            text = _NOT_TEXT.sub(b"", self._line).decode("ascii").strip()
            self._line.clear()
            if text:
                items.append(InfoLine(text))
        self._line += body

    def _end_line(self, items: list[ParserItem], by_cr: bool) -> bool:
        text = _NOT_TEXT.sub(b"", self._line).decode("ascii").strip()
        self._line.clear()
        if not text:
            return False
        if self.numeric_results and by_cr and (text in NUMERIC_RESULTS or text == NUMERIC_RING):
            self._held = text  # decided by the next byte
            return False
        item = self.classify(text)
        if isinstance(item, FinalResult):
            return self._take_final(item, items)
        items.append(item)
        return False

    def classify(
        self, text: str
    ) -> FinalResult | InfoLine | Echo | Ring | Unsolicited | CallerIdLine:
        """Classify one complete line (no line ending); numeric results are not lines."""
        key = " ".join(text.upper().split())
        if key.replace(" ", "") in self._echoes:
            return Echo(text)
        code = FINAL_RESULTS.get(key)
        if code is None and _CONNECT.match(key):
            code = "CONNECT"
        if code is None and _EXTENDED_ERROR.match(key):
            code = "ERROR"
        if code is not None:
            return FinalResult(code, text)
        if _RING.match(key):
            return Ring(text)
        if _UNSOLICITED.match(key):
            return Unsolicited(text)
        callerid = parse_callerid_line(text)
        if callerid is not None:
            return callerid
        return InfoLine(text)


@dataclass(slots=True)
class Response:
    """What a command got back: the canonical final code, its text, and information lines."""

    final: str
    lines: list[str] = field(default_factory=list)
    text: str = ""


class _Pending:
    """The one command waiting for its final result."""

    def __init__(self, command: str, future: asyncio.Future[FinalResult]) -> None:
        self.command = command
        self.future = future
        self.lines: list[str] = []


class AtEngine:
    """Commands, events and data streams over one :class:`Port`.

    Start it with ``async with AtEngine(port) as engine`` (or :meth:`start` /
    :meth:`close`); it does not close the port. Every timeout given to it is
    in line seconds of ``clock`` (the event loop's time unless told).
    """

    def __init__(
        self,
        port: Port,
        *,
        clock: Clock | None = None,
        numeric_results: bool = False,
        dle_sub: bool = True,
        cid_number_quiet: float = NUMBER_QUIET_S,
        cid_block_quiet: float = BLOCK_QUIET_S,
    ) -> None:
        self.port = port
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._parser = ResponseParser(numeric_results=numeric_results, dle_sub=dle_sub)
        self._cid = CallerIdAssembler(number_quiet=cid_number_quiet, block_quiet=cid_block_quiet)
        self._cid_timer: Cancellable | None = None
        self._settle_timer: Cancellable | None = None
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._stream: DataStream | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: PortError | None = None
        self._closed = False
        self._resync_needed = False
        self._stale_finals = 0
        self._last_rx = 0.0

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._reader is None:
            self._last_rx = self.clock.now()
            self._reader = asyncio.create_task(self._read_loop(), name=f"at-reader {self.port.url}")

    async def close(self) -> None:
        """Stop the reader; commands still waiting fail with PortClosed. Idempotent."""
        self._closed = True
        for timer in (self._cid_timer, self._settle_timer):
            if timer is not None:
                timer.cancel()
        self._cid_timer = self._settle_timer = None
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            self._reader = None
        self._fail_waiters(PortClosed(f"{self.port.url}: AT engine closed"))

    async def __aenter__(self) -> AtEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def alive(self) -> bool:
        """True while the reader runs and the port has not failed."""
        return self._reader is not None and not self._reader.done() and self._failure is None

    def set_dle_sub(self, dle_sub: bool) -> None:
        """Whether DLE SUB in received audio stands for two 0x10 bytes (the chip's profile)."""
        self._parser.set_dle_sub(dle_sub)

    @property
    def numeric_results(self) -> bool:
        return self._parser.numeric_results

    @numeric_results.setter
    def numeric_results(self, value: bool) -> None:
        self._parser.numeric_results = value

    # -- commands --------------------------------------------------------------

    async def command(
        self,
        cmd: str,
        timeout: float = 2.0,
        expect: Iterable[str] | None = None,
        check: bool = True,
    ) -> Response:
        """Send ``cmd`` + CR and wait for its final result.

        ``expect``: the final codes that count as success (default OK, CONNECT,
        VCON); with ``check`` any other final raises :class:`AtError`.
        Raises :class:`AtTimeout` after ``timeout`` line seconds; the
        next command first resynchronises, so a late final is never taken for
        its own.
        """
        accepted = frozenset(code.upper() for code in expect) if expect else SUCCESS_RESULTS
        async with self._lock:
            self._check_usable()
            if self._resync_needed:
                await self._resync(cmd)
            final, lines = await self._exchange(cmd, timeout)
        response = Response(final.code, lines, final.text)
        if check and final.code not in accepted:
            raise AtError(cmd, final.code, lines)
        return response

    def stream(
        self, cmd: str, *, timeout: float = 5.0, receive: bool = False, batch: float = 0.0
    ) -> DataStream:
        """A voice data stream: ``async with engine.stream("AT+VTX") as s: ...``.

        ``receive``: the modem sends audio (``+VRX``, ``+VTR``); the stream is
        then ended with ``DLE !`` (or the caller's end code) and runs until the
        modem's ``DLE ETX``. Without it (``+VTX``), the stream ends with
        ``DLE ETX`` and the modem's final result follows directly.
        ``batch``: a receive stream's audio may come in pieces this many
        seconds apart (DLE codes still at once; :meth:`Port.batch_reads`).
        """
        return DataStream(self, cmd, timeout=timeout, receive=receive, batch=batch)

    async def _exchange(self, cmd: str, timeout: float) -> tuple[FinalResult, list[str]]:
        """Send a command and wait for its final; the caller holds the lock."""
        data = _encode_command(cmd)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FinalResult] = loop.create_future()
        pending = _Pending(cmd, future)
        self._pending = pending
        self._prepare_send(cmd)
        try:
            await self.port.write(data)
            final = await self._wait_final(future, timeout, cmd)
        except asyncio.CancelledError:
            self._resync_needed = True  # its final may still come
            raise
        finally:
            self._pending = None
        return final, pending.lines

    def _prepare_send(self, cmd: str) -> None:
        self._parser.expect_echo(cmd)
        verbose = verbose_setting(cmd)
        if verbose is not None:
            self._parser.numeric_results = not verbose

    async def _wait_final(
        self, future: asyncio.Future[FinalResult], timeout: float, cmd: str
    ) -> FinalResult:
        try:
            async with self.clock.timeout(timeout):
                # shielded: a timeout must not cancel the future itself, which a
                # stream's abort awaits again (it would raise CancelledError there)
                return await asyncio.shield(future)
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()
            self._resync_needed = True
            logger.debug("{}: {} timed out", self.port.url, redact_command(cmd))
            raise AtTimeout(cmd, timeout) from None

    async def _resync(self, cmd: str) -> None:
        """After a timeout: let late answers arrive and be dropped, then prove sync.

        A probe ``AT`` must get ``OK`` and no stray final may follow it within
        a quiet spell; otherwise the stray final was the previous command's,
        and the probe is repeated.
        """
        clock = self.clock
        give_up = clock.now() + RESYNC_BUDGET_S
        while clock.now() < give_up:
            await self._wait_quiet(RESYNC_QUIET_S, RESYNC_LIMIT_S)
            stale_before = self._stale_finals
            try:
                final, _ = await self._exchange("AT", RESYNC_PROBE_TIMEOUT_S)
            except AtTimeout:
                continue
            if final.code != "OK":
                continue
            await self._wait_quiet(RESYNC_QUIET_S, RESYNC_LIMIT_S)
            if self._stale_finals == stale_before:
                self._resync_needed = False
                logger.debug("{}: command channel back in step", self.port.url)
                return
        self._resync_needed = True
        raise AtTimeout(cmd, RESYNC_BUDGET_S)

    async def _wait_quiet(self, quiet: float, limit: float) -> None:
        clock = self.clock
        give_up = clock.now() + limit
        while True:
            self._check_usable()
            now = clock.now()
            gap = now - self._last_rx
            if gap >= quiet or now >= give_up:
                return
            await clock.sleep(min(quiet - gap, give_up - now))

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise type(self._failure)(str(self._failure))
        if self._closed:
            raise PortClosed(f"{self.port.url}: AT engine closed")
        if self._reader is None:
            raise ModemError("AT engine not started")

    # -- reader ----------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.port.read()
                self._last_rx = self.clock.now()
                if self._settle_timer is not None:
                    self._settle_timer.cancel()
                    self._settle_timer = None
                for item in self._parser.feed(data):
                    self._dispatch(item)
                if self._parser.holding:
                    self._settle_timer = self.clock.call_later(NUMERIC_SETTLE_S, self._settle)
        except PortError as exc:
            self._stop_on(exc)
        except Exception as exc:  # a bug must not leave commands waiting forever
            logger.exception("{}: AT reader failed", self.port.url)
            self._stop_on(PortError(f"{self.port.url}: AT reader failed ({type(exc).__name__})"))

    def _settle(self) -> None:
        self._settle_timer = None
        for item in self._parser.flush():
            self._dispatch(item)

    def _stop_on(self, exc: PortError) -> None:
        self._failure = exc
        logger.warning("{}: port failed: {}", self.port.url, exc)
        self._fail_waiters(exc)
        self._emit(PortDown(str(exc)))

    def _dispatch(self, item: ParserItem) -> None:
        stream = self._stream
        if isinstance(item, bytes):
            if stream is not None:
                stream._put(item)
        elif isinstance(item, FinalResult):
            self._on_final(item)
        elif isinstance(item, DleEvent):
            # after the stream's final result nobody reads its queue any more:
            # later events (a key pressed just then) belong to command mode
            if stream is not None and stream._connected and stream.final is None:
                if item.code == "ETX":
                    stream._modem_done = True
                    stream._unbatch()
                stream._put(item)
            elif item.code == "R":
                self._on_ring(Ring("DLE R", via_dle=True))
            else:
                self._emit(item)
        elif isinstance(item, Echo):
            return
        elif isinstance(item, InfoLine):
            if self._pending is not None:
                self._pending.lines.append(item.text)
            elif stream is not None:
                stream.lines.append(item.text)
            elif not self._resync_needed:
                self._emit(Unsolicited(item.text))
        elif isinstance(item, Ring):
            self._on_ring(item)
        elif isinstance(item, CallerIdLine):
            done = self._cid.add(item, self.clock.now())
            if done is not None:
                self._emit(done)
            self._schedule_cid()
        else:
            self._emit(item)

    def _on_final(self, final: FinalResult) -> None:
        stream = self._stream
        if stream is not None and stream._owns_final():
            stream._on_final(final)
        elif self._pending is not None and not self._pending.future.done():
            self._pending.future.set_result(final)
        else:
            self._stale_finals += 1
            logger.debug("{}: dropped a late {}", self.port.url, final.code)

    def _on_ring(self, ring: Ring) -> None:
        info = self._cid.ring()
        if info is not None:
            self._emit(info)
        self._emit(ring)

    def _schedule_cid(self) -> None:
        if self._cid_timer is not None:
            self._cid_timer.cancel()
            self._cid_timer = None
        deadline = self._cid.deadline()
        if deadline is not None and not self._closed:
            self._cid_timer = self.clock.call_later(deadline - self.clock.now(), self._cid_due)

    def _cid_due(self) -> None:
        self._cid_timer = None
        info = self._cid.poll(self.clock.now())
        if info is not None:
            self._emit(info)
        self._schedule_cid()

    def _emit(self, event: Event) -> None:
        if self.events.qsize() >= EVENT_QUEUE_LIMIT:
            self.events.get_nowait()
            _QUEUE_FULL.warning(
                self.port.url, "{}: event queue full, oldest event dropped", self.port.url
            )
        self.events.put_nowait(event)

    def _fail_waiters(self, exc: PortError) -> None:
        if self._pending is not None and not self._pending.future.done():
            self._pending.future.set_exception(exc)
        if self._stream is not None:
            self._stream._fail(exc)


def _encode_command(cmd: str) -> bytes:
    if not cmd or not cmd.isascii() or not cmd.isprintable():
        raise ValueError("an AT command must be printable ASCII without line endings")
    return cmd.encode("ascii") + b"\r"


_END = object()  # queue marker: the stream's final result has arrived


class DataStream:
    """A ``+VTX`` / ``+VRX`` / ``+VTR`` data stream, held by the engine's command lock.

    Entering sends the command and waits for ``CONNECT``; then :meth:`read`
    gives audio ``bytes`` and :class:`DleEvent` (DTMF, busy, ``ETX``...) and
    :meth:`write` / :meth:`send_audio` send to the modem. :meth:`finish` ends
    the stream and returns the final result. Leaving the block without
    finishing aborts the stream (``abort_code``) and waits briefly for the
    modem to return to command mode.

    A receive stream switches the parser to raw data at ``CONNECT`` and back
    at the modem's ``DLE ETX``. A transmit stream stays in text mode: the
    modem sends no audio during ``+VTX``, only DLE events, so a final result
    it sends on its own is seen, ends the stream, and further writes are
    refused instead of reaching the modem as commands.
    """

    def __init__(
        self, engine: AtEngine, cmd: str, *, timeout: float, receive: bool, batch: float = 0.0
    ) -> None:
        self._engine = engine
        self.command = cmd
        self.timeout = timeout
        self.receive = receive
        self.batch = batch if receive else 0.0
        self.end_code = ABORT_RX if receive else END_TX
        self.abort_code = ABORT_RX if receive else CANCEL_TX + END_TX
        self.lines: list[str] = []
        self.final: FinalResult | None = None
        self._queue: asyncio.Queue[bytes | DleEvent | object] = asyncio.Queue()
        self._connect: asyncio.Future[FinalResult] | None = None
        self._done: asyncio.Future[FinalResult] | None = None
        self._connected = False
        self._modem_done = False
        self._finishing = False
        self._failure: PortError | None = None
        self._entered = False

    # -- context ---------------------------------------------------------------

    async def __aenter__(self) -> DataStream:
        engine = self._engine
        await engine._lock.acquire()
        try:
            engine._check_usable()
            if engine._resync_needed:
                await engine._resync(self.command)
            await self._start()
        except BaseException:
            engine._parser.disarm_data_mode()
            engine._stream = None
            engine._lock.release()
            raise
        self._entered = True
        return self

    async def _start(self) -> None:
        engine = self._engine
        loop = asyncio.get_running_loop()
        data = _encode_command(self.command)
        self._connect = loop.create_future()
        self._done = loop.create_future()
        engine._stream = self
        engine._prepare_send(self.command)
        if self.receive:
            engine._parser.arm_data_mode()
        await engine.port.write(data)
        final = await engine._wait_final(self._connect, self.timeout, self.command)
        if final.code != "CONNECT":
            raise AtError(self.command, final.code, self.lines)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine = self._engine
        try:
            if self.final is None and self._failure is None:
                try:
                    await self._end(self.abort_code, ABORT_TIMEOUT_S)
                except (ModemError, asyncio.CancelledError) as problem:
                    engine._resync_needed = True
                    logger.debug("{}: stream abort: {}", engine.port.url, type(problem).__name__)
                    if isinstance(problem, asyncio.CancelledError):
                        raise
        finally:
            self._unbatch()
            engine._parser.end_data()
            engine._stream = None
            self._entered = False
            engine._lock.release()

    def _unbatch(self) -> None:
        """Every byte at once again: the stream is ending, and what follows
        (DLE ETX, the final result, command replies) is waited for."""
        if self.batch:
            self._engine.port.batch_reads(0.0)

    # -- data ------------------------------------------------------------------

    async def read(self) -> bytes | DleEvent | None:
        """The next audio chunk or event; ``None`` once the stream has ended."""
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            if self._failure is not None:
                raise self._failure
            return None
        assert isinstance(item, bytes | DleEvent)
        return item

    def read_nowait(self) -> bytes | DleEvent | None:
        """Like :meth:`read` but returns ``None`` at once when nothing is queued."""
        if self._queue.empty():
            return None
        item = self._queue.get_nowait()
        if item is _END:
            self._queue.put_nowait(_END)
            if self._failure is not None:
                raise self._failure
            return None
        assert isinstance(item, bytes | DleEvent)
        return item

    def __aiter__(self) -> DataStream:
        return self

    async def __anext__(self) -> bytes | DleEvent:
        item = await self.read()
        if item is None:
            raise StopAsyncIteration
        return item

    @property
    def ended(self) -> bool:
        """True once the modem has left data mode (its DLE ETX or its final result)."""
        return self._modem_done or self.final is not None or self._failure is not None

    async def write(self, data: bytes) -> None:
        """Send bytes as they are (already shielded, or DLE codes)."""
        if not self._entered or self._finishing:
            raise StreamError("stream is not open for writing")
        if self.ended:
            # the modem is in command mode again: audio would be read as commands
            raise StreamError("the modem has ended the stream")
        await self._engine.port.write(data)

    async def send_audio(self, audio: bytes) -> None:
        """Send audio, DLE-shielded."""
        await self.write(shield(audio))

    async def finish(self, end: bytes | None = None, *, timeout: float | None = None) -> Response:
        """End the stream (``end`` defaults to ``DLE !`` receiving, ``DLE ETX`` else).

        Waits for the final result and returns it; raises :class:`AtError` if
        it is an error result and :class:`AtTimeout` if none comes.
        """
        if not self._entered:
            raise StreamError("stream is not open")
        final = await self._end(
            self.end_code if end is None else end,
            STREAM_FINISH_TIMEOUT_S if timeout is None else timeout,
        )
        if final.code not in SUCCESS_RESULTS:
            raise AtError(self.command, final.code, self.lines)
        return Response(final.code, list(self.lines), final.text)

    async def _end(self, code: bytes, timeout: float) -> FinalResult:
        engine = self._engine
        if self._failure is not None:
            raise self._failure
        assert self._done is not None
        if self.final is None and not self._finishing:
            self._finishing = True
            self._unbatch()
            if not self._modem_done:
                await engine.port.write(code)
            if not self.receive:
                # a transmit stream carries no audio from the modem: parse the
                # reply (DLE ETX on some chips, then the final) as text
                engine._parser.end_data()
        try:
            return await engine._wait_final(self._done, timeout, self.command)
        except AtTimeout:
            engine._parser.end_data()
            raise

    # -- called by the engine's reader ----------------------------------------

    def _owns_final(self) -> bool:
        return self.final is None and self._failure is None

    def _on_final(self, final: FinalResult) -> None:
        if not self._connected:
            assert self._connect is not None
            if not self._connect.done():
                # set here, not when __aenter__ resumes: what follows CONNECT in
                # the same read (a stray DLE u...) already belongs to the stream
                self._connected = final.code == "CONNECT"
                self._connect.set_result(final)
                if self._connected and self.batch:
                    engine = self._engine
                    engine.port.batch_reads(self.batch, engine.clock.call_later)
            return
        self._unbatch()
        self.final = final
        self._modem_done = True
        if self._done is not None and not self._done.done():
            self._done.set_result(final)
        self._queue.put_nowait(_END)

    def _put(self, item: bytes | DleEvent) -> None:
        self._queue.put_nowait(item)

    def _fail(self, exc: PortError) -> None:
        self._failure = exc
        for fut in (self._connect, self._done):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        self._queue.put_nowait(_END)

"""VoiceModem: the one API the upper layers use to drive a voice modem.

Open, identify, initialise, wait for a call, answer, play with barge-in,
collect keys, send DTMF, dial, hang up, reset. One operation at a time, and
clean events whatever the chip: one key per press (:mod:`.keys`), one
:class:`~.linewatch.HungUp` whatever the evidence (:mod:`.linewatch`).

Time: every duration here is in line seconds of the modem's clock (see
:mod:`daemon1521.clock`): the event loop's for a real modem, the emulator's
for an emulated one, so the same code drives both.

Failures: a modem that stops answering is reset (DTR drop where the port
supports it, ``ATZ``, re-initialisation) and the operation raises
:class:`~.errors.NotResponding`; a port that fails raises :class:`CallEnded`
during a call and :class:`PortError` otherwise; closing and opening again
brings it back when the device returns (the daemon's line task retries with
its backoff). Nothing waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from loguru import logger

from daemon1521.clock import Clock, Flag, LoopClock
from daemon1521.dsp import codecs
from daemon1521.modem.at import AtEngine, CallerInfo, DataStream, PortDown, Ring, Unsolicited
from daemon1521.modem.audiokeys import AudioKeys
from daemon1521.modem.dle import ABORT_RX, CANCEL_TX, END_DUPLEX, END_TX, DleEvent
from daemon1521.modem.errors import (
    AtError,
    AtTimeout,
    ModemError,
    NotResponding,
    PortError,
    StreamError,
)
from daemon1521.modem.keys import DtmfFramer
from daemon1521.modem.linewatch import HungUp, LineWatch
from daemon1521.modem.profile import (
    FirmwareProfile,
    identify,
    load_profiles,
    parse_vsm_listing,
)
from daemon1521.modem.trace import TracedPort
from daemon1521.modem.transport import Port, open_port

DialResult = Literal["answered", "busy", "no_answer", "no_dialtone", "failed"]
State = Literal["closed", "idle", "in_call", "down"]

RING_GAP = 8.0
"""Seconds without a ring after which a half-counted call is forgotten (cadence 1 s/4 s)."""
RING_MIN_INTERVAL = 2.0
"""Rings closer together than this are not separate rings of a cadence: one
ring reported twice, or noise; and a ring counts only this long after the last
burst of noise (see :func:`_noise`)."""
NOISE_BURST = 16
"""Noise events (or rings too close together) within RING_MIN_INTERVAL that
make a burst. A few stray ones (codes left over from a reset) are normal."""
_ON_HOOK_LINES = re.compile(r"(?:RINGING|RINGBACK|DRON\s*=.*|DROF\s*=.*|CPON|CPOF|CWON|CWOF)", re.I)
DTR_DROP = 0.5
"""Real seconds DTR stays low: the port's wire, not the line, keeps that time."""
STREAM_BREAK_SETTLE = 0.2
"""Seconds for a modem that was streaming to answer the codes that end it."""
RX_STALL = 2.0
"""Seconds of nothing at all on a +VRX stream (which carries 8000 samples a
second) after which the modem is taken to have hung."""
KEY_TONE_MS = 120
STOP_POLL = 0.02
"""Real seconds between looks at a recording's stop event."""
COMMAND_BODY_MAX = 40
"""Characters after "AT" that every modem takes on one line (V.250 5.2.1's minimum
buffer); a longer +VTS is ERROR on chips with that little (card numbers!)."""
STREAMING_CODECS = frozenset(codecs.CODECS)
VSD_INTERVAL_MAX = 255
"""The longest +VSD silence interval, in 0.1 s, that every chip takes (one byte)."""
U8_CENTRE = 0x80


class LiveAudio(bytearray):
    """Audio that grows while it plays (a relay's far end): :meth:`VoiceModem.play`
    keeps playing what is appended until :meth:`finish` is called and all of it
    has played."""

    finished = False

    def finish(self) -> None:
        self.finished = True


class CallEnded(ModemError):
    """The call is over (the far end hung up, or the line failed)."""

    def __init__(self, hung_up: HungUp) -> None:
        self.hung_up = hung_up
        super().__init__(f"call ended: {hung_up.reason}")


@dataclass(frozen=True)
class ModemInfo:
    """What the modem said about itself, and what the driver chose for it."""

    url: str
    profile: str
    matched_by: str
    manufacturer: str
    model: str
    firmware: str
    ati0: str
    ati3: str
    usb_id: tuple[int, int] | None
    codecs: tuple[str, ...]
    codec: str
    codec_code: int
    caller_id: bool
    full_duplex: bool
    firmware_warning: str = ""
    """Set when the firmware is older than the profile's minimum: what goes wrong."""

    def as_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["usb_id"] = f"{self.usb_id[0]:04x}:{self.usb_id[1]:04x}" if self.usb_id else None
        data["codecs"] = list(self.codecs)
        return data


@dataclass(frozen=True)
class IncomingCall:
    """A call that has rung ``rings`` times; ``caller`` is None without caller ID."""

    rings: int
    caller: CallerInfo | None = None

    @property
    def number(self) -> str | None:
        return self.caller.number if self.caller and self.caller.status == "number" else None


@dataclass
class _Call:
    watch: LineWatch
    answered_at: float = 0.0
    keys: deque[str] = field(default_factory=deque)
    audio_keys: AudioKeys | None = None
    """Key presses found in the recorded audio, where the chip reports none during +VRX."""


class VoiceModem:
    """A voice modem on one port; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        profile: str = "auto",
        profiles: Sequence[FirmwareProfile] | None = None,
        profiles_dir: str | Path | None = None,
        region: str | None = None,
        rtscts: bool = False,
        baudrate: int = 115200,
        clock: Clock | None = None,
        rings_to_answer: int = 2,
        silence_hangup: float = 30.0,
        tone_hz: float = 425.0,
        trace: str | Path | None = None,
    ) -> None:
        if rings_to_answer < 1:
            raise ValueError("rings_to_answer must be at least 1")
        self.url = url
        self.profile_name = profile
        self.profiles = list(profiles) if profiles is not None else load_profiles(profiles_dir)
        self.region = region
        self.rtscts = rtscts
        self.baudrate = baudrate
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.rings_to_answer = rings_to_answer
        self.silence_hangup = silence_hangup
        self.tone_hz = tone_hz
        self.trace = trace
        """File recording the dialogue with the modem (digits as ``*``); None: no trace."""
        self.profile: FirmwareProfile = self._named_profile("generic-v253")
        self.info: ModemInfo | None = None
        self.codec = "u8"
        self.state: State = "closed"
        self._port: Port | None = None
        self._engine: AtEngine | None = None
        self._op = asyncio.Lock()
        self._framer = DtmfFramer()
        self._call: _Call | None = None
        self._codec_code = 1
        self._codec_names: tuple[str, ...] = ()
        self._chip_silence = False
        self._recovering = False

    # -- life cycle ------------------------------------------------------------

    async def open(self) -> ModemInfo:
        """Open the port, identify the modem and initialise it for voice."""
        async with self._op:
            await self._connect()
            return await self._identify_and_init()

    async def close(self) -> None:
        """Hang up if needed and close the port. Idempotent."""
        async with self._op:
            if self.state == "in_call":
                with contextlib.suppress(ModemError, OSError):
                    await self._hang_up()
            await self._disconnect()
            self.state = "closed"

    async def __aenter__(self) -> VoiceModem:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def in_call(self) -> bool:
        return self.state == "in_call"

    @property
    def duplex_command(self) -> str | None:
        """The command of a full-duplex stream (+VTR), or None where the chip has none.

        A relay between two lines (the bank leg) streams both ways at once
        only with it; without it, it must take turns.
        """
        commands, capabilities = self.profile.commands, self.profile.capabilities
        return commands.duplex if capabilities.full_duplex and commands.duplex else None

    # -- identification and initialisation -------------------------------------

    async def identify(self) -> ModemInfo:
        async with self._op:
            return await self._identify_and_init()

    async def initialise(self) -> None:
        """Reset the modem and set it up for voice (caller ID always re-enabled)."""
        async with self._op:
            await self._initialise()

    async def reset(self) -> None:
        """Drop DTR where the port allows it, then reset and initialise."""
        async with self._op:
            await self._reset()

    # -- incoming calls ----------------------------------------------------------

    async def wait_for_call(self, timeout: float | None = None) -> IncomingCall | None:
        """Wait until a call has rung ``rings_to_answer`` times; None on timeout.

        A timeout that falls due while a call is ringing waits for that call
        (until it is answered or stops ringing): the daemon's idle health check
        is such a timeout, and returning then would drop the rings counted, so
        the call would be answered a whole ring cadence late.
        Caller ID arrives between the first and second ring; a call that stops
        ringing before the count is reached is forgotten. A port spewing noise
        is not ringing: rings too close together, or within a burst of
        events no on-hook modem sends, are not counted.
        """
        async with self._op:
            engine = self._usable()
            clock = self.clock
            deadline = None if timeout is None else clock.now() + timeout
            rings = 0
            caller: CallerInfo | None = None
            last_ring = heard = noisy = -math.inf
            noise, noise_since = 0, -math.inf
            settle = RING_MIN_INTERVAL
            while True:
                wait = None if deadline is None else max(0.0, deadline - clock.now())
                if rings:  # ringing: the call is answered or forgotten first
                    wait = last_ring + RING_GAP - clock.now()
                try:
                    event = await clock.wait_for(engine.events.get(), wait)
                except TimeoutError:
                    if not rings:
                        return None  # the deadline
                    logger.debug("{}: ringing stopped after {} ring(s)", self.url, rings)
                    rings, caller = 0, None
                    continue
                if isinstance(event, PortDown):
                    self.state = "down"
                    raise PortError(f"{self.url}: {event.reason}")
                if isinstance(event, CallerInfo):
                    caller = event
                    continue
                now = clock.now()
                ring = isinstance(event, Ring) or (
                    isinstance(event, DleEvent) and event.code == "R"
                )
                too_soon = False
                if ring:
                    too_soon, heard = now - heard < settle, now
                noise_event = _noise(event)
                if noise_event and rings:
                    rings, caller = 0, None  # a ringing line is quiet between rings
                if too_soon or noise_event:
                    if now - noise_since > settle:
                        noise, noise_since = 0, now
                    noise += 1
                    if noise >= NOISE_BURST:
                        # a modem spewing bytes is not ringing: count afresh
                        noisy, rings, caller = now, 0, None
                elif ring and now - noisy >= settle:
                    rings += 1
                    last_ring = clock.now()
                    if rings >= self.rings_to_answer:
                        # caller ID after this ring would be too late to use
                        return IncomingCall(rings, caller)

    async def answer(self) -> None:
        """Go off hook on a ringing line and start a call."""
        async with self._op:
            engine = self._usable()
            self._start_call()
            for command in self.profile.commands.answer:
                await self._command(command, self.profile.timeouts.answer)
            assert self._call is not None
            self._call.answered_at = self.clock.now()
            self._drain_events(engine)

    # -- in a call ---------------------------------------------------------------

    async def play(self, audio: bytes, *, barge_in: bool = True) -> str | None:
        """Play ``audio`` (already in :attr:`codec`); return the key that stopped it.

        ``audio`` may be :class:`LiveAudio`, played as it grows until finished.

        With ``barge_in`` the first key press cancels playback at once
        (``DLE CAN``) and is returned; keys typed earlier skip the prompt
        altogether (type-ahead) and stay queued for :meth:`next_key`. Without
        it, keys pressed meanwhile are queued. Raises :class:`CallEnded`.
        """
        async with self._op:
            call = self._in_call()
            self._drain_events(self._usable())
            if barge_in and call.keys:
                return None
            if not audio:
                return None
            return await self._play(call, _u8_to_chip(audio, self.codec, self.profile), barge_in)

    async def next_key(self, timeout: float) -> str | None:
        """The next key press (typed ahead, or within ``timeout``); None on timeout."""
        async with self._op:
            call = self._in_call()
            self._drain_events(self._usable())
            if call.keys:
                return call.keys.popleft()
            return await self._listen(call, timeout)

    async def record(
        self,
        timeout: float,
        on_audio: Callable[[np.ndarray], None],
        stop: asyncio.Event | None = None,
    ) -> str | None:
        """Listen like :meth:`next_key`, handing each block of received audio
        (decoded samples) to ``on_audio``; also ends when ``stop`` is set.
        For a relay, which must hear the far end while waiting for its keys."""
        async with self._op:
            call = self._in_call()
            self._drain_events(self._usable())
            if call.keys:
                return call.keys.popleft()
            return await self._listen(call, timeout, on_audio, stop)

    def pending_keys(self) -> int:
        """Keys typed ahead and not yet taken (including ones the modem reported since)."""
        self._take_typed_ahead()
        return len(self._call.keys) if self._call else 0

    def flush_keys(self) -> None:
        """Forget keys typed ahead (e.g. before a question that must not take them)."""
        self._take_typed_ahead()
        if self._call:
            self._call.keys.clear()

    def _take_typed_ahead(self) -> None:
        # Between operations the modem reports key presses as events; an
        # operation in progress owns them, so leave its events alone.
        engine = self._engine
        if self._call is not None and engine is not None and engine.alive and not self._op.locked():
            self._drain_events(engine)

    async def send_dtmf(self, keys: str, *, tone_ms: int = KEY_TONE_MS) -> None:
        """Send ``keys`` as DTMF tones on the line; never logged (they may be a PIN)."""
        if not keys or any(k not in "0123456789*#ABCD" for k in keys):
            raise ValueError("DTMF keys must be 0-9 * # A-D")
        async with self._op:
            self._in_call()
            units = max(1, round(tone_ms / 10))
            for batch in self._tone_commands([f"{{{k},{units}}}" for k in keys]):
                duration = batch.count("{") * tone_ms * 2 / 1000
                await self._command(batch, self.profile.timeouts.command + duration)

    def _tone_commands(self, tones: list[str]) -> list[str]:
        """+VTS commands that each fit the shortest command buffer V.250 allows."""
        template = self.profile.commands.tones
        commands: list[str] = []
        batch: list[str] = []
        for tone in tones:
            longer = template.format(tones=",".join([*batch, tone]))
            if batch and len(longer) - 2 > COMMAND_BODY_MAX:  # "AT" is not counted
                commands.append(template.format(tones=",".join(batch)))
                batch = []
            batch.append(tone)
        commands.append(template.format(tones=",".join(batch)))
        return commands

    async def dial(self, number: str, timeout: float | None = None) -> DialResult:
        """Go off hook and dial; the result of call progress, as the chip reports it."""
        if not number or any(c not in "0123456789*#,ABCDW" for c in number):
            raise ValueError("a dial string is digits, * # and , pauses")
        async with self._op:
            engine = self._usable()
            self._start_call()
            limit = timeout if timeout is not None else self.profile.timeouts.dial
            commands = self.profile.commands.dial
            try:
                for command in commands[:-1]:
                    await self._command(command.format(number=number), limit)
                response = await engine.command(
                    commands[-1].format(number=number),
                    limit,
                    expect=("OK", "VCON", "BUSY", "NO ANSWER", "NO DIALTONE", "NO CARRIER"),
                )
            except AtTimeout:
                # Still ringing when our time ran out: the chip's own no-answer
                # timer (S7) may be longer. Not a dead modem: the next command
                # resynchronises, and its first byte aborts the dial (V.250).
                try:
                    await self._hang_up()
                except (NotResponding, AtError):
                    return "failed"
                return "no_answer"
            except (AtError, NotResponding):
                await self._end_call_quietly()
                return "failed"
            except PortError as exc:
                self._port_failed()
                raise PortError(f"{self.url}: {exc}") from None
            result: DialResult = {
                "OK": "answered",
                "VCON": "answered",
                "BUSY": "busy",
                "NO ANSWER": "no_answer",
                "NO CARRIER": "no_answer",
                "NO DIALTONE": "no_dialtone",
            }.get(response.final, "failed")  # type: ignore[assignment]
            if result != "answered":
                await self._end_call_quietly()
            else:
                assert self._call is not None
                self._call.answered_at = self.clock.now()
                self._drain_events(engine)
            return result

    async def hang_up(self) -> None:
        """Go on hook and get ready for the next call (caller ID re-enabled)."""
        async with self._op:
            await self._hang_up()

    # -- internals: connection ---------------------------------------------------

    async def _connect(self) -> None:
        self._port = await open_port(self.url, self.baudrate, self.rtscts)
        if self.trace is not None:
            self._port = TracedPort(self._port, self.trace)
        self._engine = AtEngine(
            self._port, clock=self.clock, dle_sub=self.profile.capabilities.dle_sub
        )
        await self._engine.start()

    async def _disconnect(self) -> None:
        engine, port = self._engine, self._port
        self._engine, self._port, self._call = None, None, None
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.close()
        if port is not None:
            with contextlib.suppress(Exception):
                await port.close()

    def _usable(self) -> AtEngine:
        if self._engine is None:
            raise PortError(f"{self.url}: the port is not open")
        if not self._engine.alive:
            self.state = "down"
            raise PortError(f"{self.url}: the port has failed")
        return self._engine

    async def _identify_and_init(self) -> ModemInfo:
        # Talk first: a modem left in a data stream or with echo on must
        # still answer; a reset gives a known state before asking anything.
        await self._break_out_of_stream()
        await self._command(self.profile.commands.reset, self.profile.timeouts.reset, retries=2)
        ati0 = await self._ask("ATI0")
        ati3 = await self._ask("ATI3")
        gmi = await self._ask("AT+GMI")
        gmm = await self._ask("AT+GMM")
        gmr = await self._ask("AT+GMR")
        assert self._port is not None
        usb_id = self._port.usb_id
        if self.profile_name == "auto":
            self.profile, matched_by = identify(self.profiles, ati3, gmm, gmi, usb_id)
        else:
            self.profile, matched_by = self._named_profile(self.profile_name), "configured"
        assert self._engine is not None
        self._engine.set_dle_sub(self.profile.capabilities.dle_sub)
        self._framer = DtmfFramer()
        answers = {"ATI0": ati0, "ATI3": ati3, "AT+GMI": gmi, "AT+GMM": gmm, "AT+GMR": gmr}
        firmware = self.profile.firmware
        model = firmware.model(await self._answer_to(firmware.model_query, answers))
        version = firmware.version(await self._answer_to(firmware.version_query, answers))
        warning = ""
        if firmware.older_than_minimum(version):
            warning = f"older than {firmware.minimum}: {firmware.too_old or 'update it'}"
            logger.warning(
                "{}: {} firmware {} is {}", self.url, self.profile.name, version, warning
            )
        await self._initialise()
        caller_id = bool(self.profile.callerid.enable)
        self.info = ModemInfo(
            url=self.url,
            profile=self.profile.name,
            matched_by=matched_by,
            manufacturer=_strip_prefix(gmi),
            model=model or _strip_prefix(gmm),
            firmware=version or _strip_prefix(gmr),
            ati0=ati0,
            ati3=ati3,
            usb_id=usb_id,
            codecs=self._codec_names,
            codec=self.codec,
            codec_code=self._codec_code,
            caller_id=caller_id,
            full_duplex=self.duplex_command is not None,
            firmware_warning=warning,
        )
        logger.info(
            "{}: {} ({} {}, firmware {}), profile {} by {}, codec {}",
            self.url,
            ati3 or "?",
            self.info.manufacturer or "?",
            self.info.model or "?",
            self.info.firmware or "?",
            self.profile.name,
            matched_by,
            self.codec,
        )
        return self.info

    async def _answer_to(self, query: str, answers: dict[str, str]) -> str:
        """The answer to an identification query, asked only if not asked already."""
        if not query:
            return ""
        known = answers.get(query.upper())
        return known if known is not None else await self._ask(query)

    async def _ask(self, command: str) -> str:
        """An identification query; a modem that does not know it answers ''."""
        try:
            response = await self._command(command, self.profile.timeouts.command)
        except AtError:
            return ""
        return " ".join(line.strip() for line in response.lines if line.strip())

    async def _initialise(self, *, reset_retries: int = 2) -> None:
        """Reset, voice mode, init, caller ID, silence detection, codec: the modem made idle."""
        profile = self.profile
        await self._command(profile.commands.reset, profile.timeouts.reset, retries=reset_retries)
        commands = profile.init_commands(self.region, rtscts=self.rtscts)
        if profile.commands.voice not in commands:
            commands.insert(0, profile.commands.voice)
        for command in commands:
            await self._command(command, profile.timeouts.command)
        self._chip_silence = await self._silence_detection()
        listing: list[str] | None
        try:
            listing = (await self._command(profile.codecs.query, profile.timeouts.command)).lines
        except AtError:
            listing = None
        options = [line for line in listing or [] if line.strip()]
        choice = profile.choose_codec(options or None)
        if choice.format not in STREAMING_CODECS:
            raise ModemError(f"{self.url}: codec {choice.format} cannot be streamed")
        await self._command(profile.select_command(choice), profile.timeouts.command)
        self.codec, self._codec_code = choice.format, choice.code
        self._codec_names = tuple(_codec_names(options)) or (choice.format,)
        self.state = "idle"
        self._call = None

    async def _silence_detection(self) -> bool:
        """Tell a chip that detects silence the call's limit; whether its reports now count.

        +VSD takes at most 25.5 s; a longer limit switches the chip's
        detection off and leaves it to the audio analysis. A chip that
        refuses the command (an unknown chip on the generic profile) is
        judged from its audio alone too.
        """
        profile = self.profile
        if not (profile.capabilities.silence_detection and profile.commands.silence):
            return False
        interval = round(self.silence_hangup * 10)
        interval = interval if 0 < interval <= VSD_INTERVAL_MAX else 0
        command = profile.commands.silence.format(interval=interval)
        try:
            await self._command(command, profile.timeouts.command)
        except AtError:
            logger.info("{}: the modem refuses {}; silence is judged from audio", self.url, command)
            return False
        return interval > 0

    async def _reset(self) -> None:
        self._call = None
        if self._port is not None:
            with contextlib.suppress(PortError):
                await self._port.pulse_dtr(DTR_DROP)
        await self._break_out_of_stream()
        await self._initialise()

    async def _break_out_of_stream(self) -> None:
        """End a voice stream the modem may still be in (a hang, a host restart).

        ATZ is only audio to a modem in +VRX or +VTX, and a port without DTR
        (a pty, many USB adapters) cannot reset it. These codes end each kind
        of stream and are ignored in command mode; a modem that was streaming
        answers OK, which arrives, and is dropped, before the next command.
        """
        engine = self._engine
        if engine is None or not engine.alive:
            return
        with contextlib.suppress(PortError):
            await engine.port.write(ABORT_RX + END_DUPLEX + CANCEL_TX + END_TX)
            await self.clock.sleep(STREAM_BREAK_SETTLE)

    def _named_profile(self, name: str) -> FirmwareProfile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        known = ", ".join(sorted(p.name for p in self.profiles))
        raise ValueError(f"unknown firmware profile {name!r} (known: {known})")

    # -- internals: commands -----------------------------------------------------

    async def _command(
        self,
        command: str,
        timeout: float,
        *,
        expect: Iterable[str] | None = None,
        retries: int = 0,
    ):
        """One command; a modem that stops answering is reset once, then given up."""
        engine = self._usable()
        for attempt in range(retries + 1):
            try:
                return await engine.command(command, timeout, expect=expect, check=True)
            except AtTimeout:
                if attempt < retries:
                    continue
                if self._recovering:
                    raise
                logger.warning("{}: modem not answering; resetting it", self.url)
                await self._recover()
                raise NotResponding(f"{self.url}: modem stopped answering") from None
            except PortError as exc:
                self._port_failed()
                raise PortError(f"{self.url}: {exc}") from None
        raise AssertionError("unreachable")

    async def _recover(self) -> None:
        """DTR drop and a reset; leaves the modem idle or marks it down."""
        call, self._call = self._call, None
        if call is not None:
            call.watch.hung_up = call.watch.hung_up or HungUp("modem_reset")
        engine = self._engine
        if engine is None:
            return
        self._recovering = True
        try:
            if self._port is not None:
                await self._port.pulse_dtr(DTR_DROP)
            await self._break_out_of_stream()
            await self._initialise(reset_retries=0)
            logger.info("{}: modem answered again after a reset", self.url)
        except (ModemError, OSError, ValueError):
            self.state = "down"
            logger.error("{}: modem does not answer even after a reset", self.url)
        finally:
            self._recovering = False

    def _port_failed(self) -> None:
        self.state = "down"
        if self._call is not None:
            self._call.watch.port_failed()

    # -- internals: calls ----------------------------------------------------------

    def _start_call(self) -> None:
        watch = LineWatch(
            self.profile.capabilities,
            tone_hz=self.tone_hz,
            silence_hangup=self.silence_hangup,
            chip_silence=self._chip_silence,
        )
        audio_keys = None
        if not self.profile.capabilities.events_during_vrx:
            audio_keys = AudioKeys(self.profile.codecs.rate)  # the chip is mute while recording
        self._call = _Call(watch, audio_keys=audio_keys)
        self._framer.reset()
        self.state = "in_call"

    def _in_call(self) -> _Call:
        call = self._call
        if call is None or self.state != "in_call":
            if call is not None and call.watch.hung_up is not None:
                raise CallEnded(call.watch.hung_up)
            raise ModemError(f"{self.url}: no call in progress")
        if call.watch.hung_up is not None:
            raise CallEnded(call.watch.hung_up)
        return call

    async def _hang_up(self) -> None:
        call, self._call = self._call, None
        if self._engine is None or not self._engine.alive:
            self.state = "down"
            return
        try:
            for command in self.profile.commands.hangup:
                await self._command(command, self.profile.timeouts.command)
            # Some chips forget caller ID on the way; it costs nothing to repeat.
            for command in self.profile.callerid.enable:
                with contextlib.suppress(AtError):
                    await self._command(command, self.profile.timeouts.command)
            self.state = "idle"
        except PortError:
            # a modem that is gone has dropped the line with it: nothing to hang up
            logger.debug("{}: port failed while hanging up", self.url)
        finally:
            if call is not None:
                # what came meanwhile is the call's, but for a new call's ring: a
                # busy hunt group rings a line the moment it is on hook, and a
                # ring dropped here would be answered a whole cadence late
                self._drain_events(self._engine, call, keep_rings=True)

    async def _end_call_quietly(self) -> None:
        with contextlib.suppress(ModemError):
            await self._hang_up()

    def _drain_events(
        self, engine: AtEngine, call: _Call | None = None, *, keep_rings: bool = False
    ) -> None:
        """Take what arrived in command mode: keys for the call, hang-up evidence.
        With ``keep_rings``, rings and caller ID stay queued for the next call."""
        call = call or self._call
        kept = []
        while not engine.events.empty():
            event = engine.events.get_nowait()
            if keep_rings and (
                isinstance(event, Ring | CallerInfo)
                or (isinstance(event, DleEvent) and event.code == "R")
            ):
                kept.append(event)
            elif isinstance(event, PortDown):
                self._port_failed()
            elif isinstance(event, DleEvent) and call is not None:
                key = self._judge(call, event)
                if key is not None:
                    call.keys.append(key)  # pressed between operations: type-ahead
        for event in kept:
            engine.events.put_nowait(event)

    def _judge(self, call: _Call, event: DleEvent, *, playing: bool = False) -> str | None:
        """A key, or hang-up evidence noted on the call's watch."""
        key = self._framer.feed(event)
        if key is not None:
            if call.audio_keys is not None and not call.audio_keys.chip_key(key):
                return None  # a press already found in the audio
            return key
        call.watch.chip_event(event, playing=playing)
        return None

    def _check_ended(self, call: _Call) -> None:
        if call.watch.hung_up is not None:
            raise CallEnded(call.watch.hung_up)

    async def _play(self, call: _Call, audio: bytes, barge_in: bool) -> str | None:
        engine = self._usable()
        clock = self.clock
        rate = self.profile.codecs.rate * codecs.bytes_per_sample(self.codec)
        pacing = self.profile.pacing
        # Never more in flight than the chip's own buffer holds: the rest would
        # wait in the OS and USB buffers, where the DLE CAN of a barge-in
        # queues behind it and the prompt plays on after the caller's key.
        queued_max = max(2, min(rate * pacing.max_queued_ms // 1000, pacing.transmit_buffer))
        chunk = max(1, min(rate * pacing.chunk_ms // 1000, queued_max // 2))
        key: str | None = None
        try:
            async with engine.stream(
                self.profile.commands.play, timeout=self.profile.timeouts.stream_start
            ) as stream:
                # keys reported before CONNECT came ahead of the stream's own
                self._drain_events(engine, call)
                start = clock.now()
                sent = 0
                stop = Flag()
                if barge_in and call.keys:
                    stop.set()  # typed ahead while the stream was starting
                watcher = asyncio.create_task(self._watch_play(call, stream, barge_in, stop))
                try:
                    while not stop.is_set():
                        if sent >= len(audio):
                            if not isinstance(audio, LiveAudio) or audio.finished:
                                break
                            await stop.wait(clock, chunk / rate)  # more is coming
                            continue
                        played = (clock.now() - start) * rate
                        if played > sent:
                            # the chip ran dry and played silence meanwhile:
                            # count from now, or the backlog would grow for good
                            start = clock.now() - sent / rate
                            played = sent
                        ahead = sent - played
                        if ahead > queued_max - chunk:
                            wait = (ahead - (queued_max - chunk)) / rate
                            await stop.wait(clock, wait)
                            continue
                        try:
                            await stream.send_audio(audio[sent : sent + chunk])
                        except StreamError:
                            break  # the stream ended under us: the port, or the modem
                        sent += len(audio[sent : sent + chunk])
                    # let the modem's buffer play out, still listening for keys
                    while not stop.is_set():
                        played = (clock.now() - start) * rate
                        left = (sent - played) / rate
                        if left <= 0:
                            break
                        await stop.wait(clock, left)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        key = await watcher
                end = CANCEL_TX + END_TX if stop.is_set() else END_TX
                if not stream.ended:
                    await stream.finish(end, timeout=self.profile.timeouts.stream_end)
        except AtTimeout:
            await self._recover()
            raise NotResponding(f"{self.url}: modem stopped answering during playback") from None
        except PortError:
            self._port_failed()
        if not engine.alive:
            self._port_failed()  # seen by the reader while the watcher was being stopped
        self._check_ended(call)
        return key

    async def _watch_play(
        self, call: _Call, stream: DataStream, barge_in: bool, stop: Flag
    ) -> str | None:
        """Events during playback: the barge-in key, or the far end hanging up."""
        try:
            while True:
                item = await stream.read()
                if item is None:
                    stop.set()
                    return None
                if not isinstance(item, DleEvent):
                    continue
                key = self._judge(call, item, playing=True)
                if key is not None:
                    if barge_in:
                        stop.set()
                        return key
                    call.keys.append(key)
                if call.watch.hung_up is not None:
                    stop.set()
                    return None
        except PortError:
            self._port_failed()
            stop.set()
            return None

    async def _listen(
        self,
        call: _Call,
        timeout: float,
        on_audio: Callable[[np.ndarray], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> str | None:
        engine = self._usable()
        clock = self.clock
        deadline = clock.now() + timeout
        call.watch.restart_audio()
        key: str | None = None
        width = codecs.bytes_per_sample(self.codec)
        rest = b""

        def samples_of(item: bytes) -> np.ndarray:
            nonlocal rest
            data = rest + item
            cut = len(data) - len(data) % width
            rest = data[cut:]
            return decode_received(data[:cut], self.codec, self.profile.codecs.silence_u8)

        def found(keys: Iterable[str | None]) -> None:
            # the operation's key is the first; later ones are type-ahead
            nonlocal key
            for extra in keys:
                if extra is not None and key is None:
                    key = extra
                elif extra is not None:
                    call.keys.append(extra)

        try:
            # only waiting for keys, which come as DLE codes: audio may come in
            # batches (a relay hears the far end, software DTMF needs every chunk)
            keys_only = on_audio is None and call.audio_keys is None
            async with engine.stream(
                self.profile.commands.record,
                timeout=self.profile.timeouts.stream_start,
                receive=True,
                batch=self.profile.pacing.receive_batch_ms / 1000 if keys_only else 0.0,
            ) as stream:
                # keys reported before CONNECT came ahead of the stream's own
                self._drain_events(engine, call)
                if call.keys:
                    key = call.keys.popleft()
                heard_at = clock.now()
                while key is None and call.watch.hung_up is None:
                    now = clock.now()
                    left = deadline - now
                    stall = heard_at + RX_STALL - now
                    if left <= 0 or (stop is not None and stop.is_set()):
                        break
                    if stop is not None:
                        left = min(left, STOP_POLL)
                    if stall <= 0:
                        # ending the stream will tell: a hung modem times out and is reset
                        logger.warning("{}: the modem stopped streaming", self.url)
                        break
                    try:  # a timeout scope, not wait_for: no task per received chunk
                        async with clock.timeout(min(left, stall)):
                            item = await stream.read()
                    except TimeoutError:
                        continue
                    heard_at = clock.now()
                    if item is None:
                        break
                    if isinstance(item, DleEvent):
                        key = self._judge(call, item)
                    else:
                        samples = samples_of(item)
                        if on_audio is not None:
                            on_audio(samples)
                        call.watch.audio(samples)
                        if call.audio_keys is not None:
                            found(call.audio_keys.audio(samples))
                if not stream.ended:
                    await stream.finish(timeout=self.profile.timeouts.stream_end)
                # keys that arrived while the stream was ending
                while (item := stream.read_nowait()) is not None:
                    if isinstance(item, DleEvent):
                        found([self._judge(call, item)])
                    elif call.audio_keys is not None:
                        found(call.audio_keys.audio(samples_of(item)))
        except AtTimeout:
            await self._recover()
            raise NotResponding(f"{self.url}: modem stopped answering while listening") from None
        except PortError:
            self._port_failed()
        self._check_ended(call)
        return key


def _noise(event: object) -> bool:
    """An event no idle, on-hook modem sends: a shielded code other than a ring,
    or a line of text that is not a known unsolicited report."""
    if isinstance(event, DleEvent):
        return event.code != "R"
    if isinstance(event, Unsolicited):
        return _ON_HOOK_LINES.fullmatch(event.text.strip()) is None
    return False


def _strip_prefix(text: str) -> str:
    head, sep, tail = text.partition(":")
    return tail.strip() if sep and head.strip().upper().startswith("+GM") else text.strip()


def _codec_names(listing: list[str]) -> list[str]:
    return [f"{option.code}:{option.format}" for option in parse_vsm_listing(listing)]


def decode_received(data: bytes, codec: str, silence_u8: int = U8_CENTRE) -> np.ndarray:
    """Received audio as samples; 8-bit unsigned audio centred on the chip's idle byte.

    A chip whose idle byte is 0x7F (VOICE-MODEMS.md section 2) would
    otherwise hear its own silence one step (256 in 16-bit) off zero, above
    the silence threshold.
    """
    if codec == "u8" and silence_u8 != U8_CENTRE:
        data = _shift_u8(data, U8_CENTRE - silence_u8)
    return codecs.decode(data, codec)


def _u8_to_chip(audio: bytes, codec: str, profile: FirmwareProfile) -> bytes:
    """Prompts (encoded around 0x80) moved onto the chip's own idle byte."""
    silence_u8 = profile.codecs.silence_u8
    if codec != "u8" or silence_u8 == U8_CENTRE:
        return audio
    return _shift_u8(audio, silence_u8 - U8_CENTRE)


def _shift_u8(data: bytes, offset: int) -> bytes:
    shifted = np.frombuffer(data, np.uint8).astype(np.int16) + offset
    return np.clip(shifted, 0, 255).astype(np.uint8).tobytes()

"""The emulated voice modem: V.250/V.253 behaviour on one exchange line.

:class:`VoiceModem` is the chip. On one side it takes the host's bytes and
produces the bytes the host reads (through whatever port carries them: the
pty server in :mod:`serve` or a test harness). On the other it is an
:class:`~daemon1521.emulator.line.Endpoint` on an exchange line, ticked once
per 20 ms frame: it plays what the host streams, records what the line
carries, hears DTMF and call-progress tones in that audio, and reports rings,
caller ID and line events. Every difference between chips comes from its
:class:`~daemon1521.emulator.modem.personality.Personality`.

Timing model. Audio moves only in the exchange's ticks: ``transmit`` takes
one frame's bytes from the transmit buffer, ``receive`` encodes one frame for
the host. Commands that take time (dialling, ``+VTS``, data-mode answer) run
as generators stepped once per frame by a clock timer, so nothing here is an
asyncio task and emulated time is the only clock.

Decisions where the standard and the chip facts are silent (each is
documented where it is made): streaming needs the line off hook; an
underrun is counted only once audio has flowed (after ``DLE CAN``, once it
flows again), so a host that is slow to send its first bytes is not
penalised at high clock speeds, while the chip's own stray ``DLE u`` after
CONNECT comes from the personality; closing the port behaves like DTR dropping with ``&D2``
(hang up, back to command state); ``+VEM`` is stored but the chip reports
the events its personality lists; gains are stored and audio passes at 0 dB.
A chip whose personality says ``events_during_vrx = false`` reports nothing
at all while in ``+VRX`` (``+VTR`` is not affected): DTMF, call-progress
tones, silence, line events and overrun.

The chip is one class assembled from mixins, one module per part, so each
stays small: :mod:`atcommands` (the command line and basic commands),
:mod:`voicecommands` (extended and voice commands), :mod:`timedcommands`
(dialling, call progress, ``+VTS``), :mod:`streams` (``+VTX`` / ``+VRX`` /
``+VTR``), :mod:`detection` (DTMF, tones, silence), :mod:`lineside` (hook,
rings, caller ID) and :mod:`hostoutput` (results and events to the host).
This module holds the state they share and the entry points the port and
the exchange call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon1521.dsp.dtmf import DtmfDetector, ToneDetector
from daemon1521.emulator.clock import FRAME, RATE, EmuClock, Timer
from daemon1521.emulator.line import Endpoint
from daemon1521.emulator.meter import LineMeter
from daemon1521.emulator.modem.atcommands import AtCommandsMixin, _Profile
from daemon1521.emulator.modem.chipbase import Mode, Proc, guarded
from daemon1521.emulator.modem.detection import DetectionMixin
from daemon1521.emulator.modem.hostoutput import HostOutputMixin
from daemon1521.emulator.modem.lineside import LineSideMixin
from daemon1521.emulator.modem.personality import Codec, Personality, load_personality
from daemon1521.emulator.modem.progress import CadenceClassifier
from daemon1521.emulator.modem.shielding import HostDecoder
from daemon1521.emulator.modem.streams import StreamsMixin
from daemon1521.emulator.modem.timedcommands import TimedCommandsMixin
from daemon1521.emulator.modem.v250 import Command, LineEditor
from daemon1521.emulator.modem.voicecommands import VoiceCommandsMixin

__all__ = ["VoiceModem", "guarded"]


class VoiceModem(
    LineSideMixin,
    DetectionMixin,
    StreamsMixin,
    TimedCommandsMixin,
    VoiceCommandsMixin,
    AtCommandsMixin,
    HostOutputMixin,
    Endpoint,
):
    """One emulated voice-modem chip; see the module docstring."""

    def __init__(
        self,
        clock: EmuClock,
        personality: Personality | str | Path,
        *,
        cid_scheme: str | None = None,
    ) -> None:
        self.clock = clock
        self.personality = (
            personality if isinstance(personality, Personality) else load_personality(personality)
        )
        self.cid_scheme = cid_scheme
        """The caller-ID signalling of the line (e.g. ``etsi-fsk``), checked
        against the chip's region setting where it has one; None: any."""
        self.faults: dict[str, int] = {}
        # the port side
        self._sink: Callable[[bytes], None] | None = None
        self._backlog: Callable[[], int] = lambda: 0
        self._room_cb: Callable[[], None] | None = None
        self._muted = False
        self._nvram: _Profile | None = None
        self._ring_timer: Timer | None = None
        self._pump_timer: Timer | None = None
        self._proc: Proc | None = None
        self._alerting = False
        self._params: dict[str, tuple[str, ...]] = {}
        v = self.personality.voice
        self._decoder = HostDecoder(dle_sub=v.dle_sub)
        self._editor = LineEditor(
            self.personality.command_line.max_length,
            self.personality.command_line.backspace_echo,
        )
        self._dtmf = DtmfDetector(rate=RATE)
        cp = self.personality.call_progress
        self._tone = ToneDetector(cp.freq, rate=RATE, min_level_dbm0=cp.min_level_dbm0)
        self._cadence = CadenceClassifier(cp)
        self.meter: LineMeter | None = None
        """Measurements of what the caller feels, when a benchmark attaches one."""
        self.power_on()

    # -- public state ----------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """``command``, ``tx`` / ``rx`` / ``duplex`` (streaming) or ``proc`` (a timed command)."""
        return self._mode

    @property
    def fclass(self) -> str:
        return self._fclass

    @property
    def off_hook(self) -> bool:
        return self.line is not None and self.line.off_hook

    @property
    def answering(self) -> bool:
        """False while the modem is hung (see :meth:`stop_answering`)."""
        return not self._muted

    def sreg(self, n: int) -> int:
        return self._sregs[n]

    def parameter(self, name: str) -> tuple[str, ...]:
        """The current values of an extended parameter (``+VCID``)."""
        return self._params[name]

    # -- port wiring -------------------------------------------------------------

    def connect_port(
        self,
        sink: Callable[[bytes], None] | None,
        backlog: Callable[[], int] = lambda: 0,
        room_available: Callable[[], None] | None = None,
    ) -> None:
        """Attach the byte sink to the host, its queue gauge, and a wake-up for reading."""
        self._sink = sink
        self._backlog = backlog
        self._room_cb = room_available

    @guarded()
    def host_bytes(self, data: bytes) -> None:
        """Bytes the host wrote."""
        if self._muted or not data:
            return
        self._last_host = self.clock.now()
        self._pending += data
        self._process()

    def input_room(self) -> int | None:
        """How many more bytes the modem takes now; None: any amount, 0: stop reading.

        0 is back-pressure: a full transmit buffer during ``+VTX``, a buffer
        draining after ``DLE ETX``, or ``+VTS`` playing (whose input waits).
        """
        if self._muted:
            return None
        mode = self._mode
        if mode in ("tx", "duplex"):
            if self._draining:
                return 0
            cap = self.personality.voice.tx_buffer
            return max(0, cap - len(self._tx_buf) - len(self._pending))
        if mode == "proc" and not self._proc_abortable:
            return 0
        return None

    @guarded()
    def host_closed(self) -> None:
        """The host closed the port: like DTR dropping with ``&D2``."""
        self._end_activity()
        self._hang_up()
        self._pending.clear()
        self._editor.reset()

    def stop_answering(self) -> None:
        """Hang the modem: it reads and ignores input and sends nothing."""
        self._muted = True
        self._pending.clear()

    def resume(self) -> None:
        """Recover from :meth:`stop_answering`, in whatever state it was left."""
        self._muted = False
        self._editor.reset()

    # -- power ------------------------------------------------------------------

    def power_on(self) -> None:
        """The state after power-up: the stored profile (or factory), on hook, data mode."""
        self._params = {n: q.default for n, q in self.personality.parameters.items()}
        self._reset()
        self._current_reg = 0
        self._last_line: str | None = None
        self._pending = bytearray()
        self._after_final: list[bytes] = []
        self._queue: list[Command] = []
        self._line_error = False
        self._compact = False
        self._last_host = self.clock.now()
        self._processing = False
        self._alerting = False
        self._editor.reset()

    def _reset(self) -> None:
        """What power-on and ATZ share: on hook, stored profile, data mode, default codec."""
        self._end_activity()
        self._hang_up()
        self._load_profile(self._nvram)
        self._reset_params(keep_atz=True)
        self._fclass = "0"
        v = self.personality.voice
        self._codec: Codec = v.codec(v.default_codec)  # type: ignore[assignment]
        self._rate = v.default_rate

    def _factory_profile(self) -> _Profile:
        p = self.personality
        return _Profile(
            p.defaults["E"],
            p.defaults["V"],
            p.defaults["Q"],
            p.defaults["X"],
            {n: r.default for n, r in p.registers.items()},
        )

    def _load_profile(self, profile: _Profile | None) -> None:
        if profile is None:
            profile = self._factory_profile()
        self._e, self._v, self._q, self._x = profile.e, profile.v, profile.q, profile.x
        self._sregs = dict(profile.sregs)

    def _end_activity(self) -> None:
        """Stop any stream or timed command without reporting anything."""
        if self.meter is not None:
            self.meter.on_stream_stopped()
        self._cancel_proc()
        self._mode: Mode = "command"
        self._tx_buf = bytearray()
        self._draining = False
        self._tx_started = False
        self._underrun = False
        self._overrun = False
        self._tone_out = np.zeros(0, dtype=np.int16)
        self._decoder.reset()

    # -- Endpoint: the line side ------------------------------------------------------

    @guarded()
    def transmit(self) -> np.ndarray | None:
        if self._muted:
            return None
        if len(self._tone_out):
            frame = self._tone_out[:FRAME]
            self._tone_out = self._tone_out[FRAME:]
            if len(frame) < FRAME:
                frame = np.concatenate((frame, np.zeros(FRAME - len(frame), dtype=np.int16)))
            return frame
        if self._mode in ("tx", "duplex"):
            return self._play_frame()
        return None

    @guarded()
    def receive(self, frame: np.ndarray) -> None:
        if self._muted:
            return
        start = self._rx_count
        self._rx_count += len(frame)
        voice = self._fclass == "8"
        events: list[tuple[int, bytes]] = []
        if voice:
            self._hear_dtmf(frame, start, events)
        progress = self._cadence.feed(self._tone.feed(frame), self._rx_count)
        if progress:
            if self._proc is not None:  # a dial listens to these
                self._progress.extend(progress)
            if voice and not self._keying:
                self._progress_events(progress, start, events)
        recording = self._mode in ("rx", "duplex")
        if recording and voice:
            self._detect_silence(frame, events)
        self._check_inactivity()
        if recording and self._mode in ("rx", "duplex"):
            if self._silent_recording:
                events.clear()  # heard and tracked, never reported
            self._record_frame(frame, events)
        else:
            for _, data in sorted(events, key=lambda e: e[0]):
                self._write(data)

    # -- host input -------------------------------------------------------------

    def _process(self) -> None:
        """Consume pending host bytes as far as the current mode allows."""
        if self._processing:
            return
        self._processing = True
        try:
            while self._pending and not self._muted:
                mode = self._mode
                if mode == "command":
                    self._command_byte(self._pending.pop(0))
                elif mode in ("tx", "duplex"):
                    if not self._stream_in(tx=True):
                        break
                elif mode == "rx":
                    self._stream_in(tx=False)
                elif self._proc_abortable:
                    del self._pending[0]  # V.250: the aborting character is discarded
                    self._abort_proc()
                else:
                    break
        finally:
            self._processing = False

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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from loguru import logger

from daemon1521.audio import codecs
from daemon1521.audio.dtmf import DtmfDetector, ToneDetector, dtmf_tone
from daemon1521.audio.tones import power_dbm0, tone
from daemon1521.emulator.clock import FRAME, FRAME_SECONDS, RATE, EmuClock, Timer
from daemon1521.emulator.line import CallerId, Endpoint
from daemon1521.emulator.modem import shielding
from daemon1521.emulator.modem.dialstring import DialStringError, parse_dial
from daemon1521.emulator.modem.personality import (
    Codec,
    Parameter,
    Personality,
    load_personality,
)
from daemon1521.emulator.modem.progress import CadenceClassifier, Progress
from daemon1521.emulator.modem.shielding import CAN, ETX, NUL, Control, HostDecoder
from daemon1521.emulator.modem.v250 import (
    OVERFLOW,
    REPEAT,
    Command,
    LineEditor,
    parse_line,
    split_args,
)
from daemon1521.emulator.modem.vts import ToneStep, VtsError, VtsRules, parse_vts

Mode = Literal["command", "tx", "rx", "duplex", "proc"]
Proc = Generator[None, None, str]

EMULATED_RATE = RATE
"""The only sample rate the emulated line carries; other listed rates answer ERROR."""
RING_RESET_SECONDS = 8.0
"""S1 (ring count) goes back to 0 after this long without a ring (V.250 S1)."""
SILENCE_THRESHOLD_DBM0 = -43.0
"""Frame level under which +VSD counts silence at the nominal sensitivity 128;
each 4 steps of sensitivity move it by 1 dB (higher = more sensitive)."""
FAULT_LOG_EVERY = 1000
_WAIT = object()
"""What a command handler returns when it started something that takes time."""

T = TypeVar("T")


def guarded(default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Run a callback so that an exception inside the modem is logged, not raised.

    The exchange and the pty loop call into the modem; a fault in one modem
    must not stop them or the other lines.
    """

    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def run(self: VoiceModem, *args: Any) -> T:
            try:
                return method(self, *args)
            except Exception as exc:
                self._fault(method.__name__, exc)
                return default

        return run

    return wrap


@dataclass
class _Profile:
    """What ``AT&W`` stores and ``ATZ`` restores: E, V, Q, X and the S-registers."""

    e: int
    v: int
    q: int
    x: int
    sregs: dict[int, int]


class VoiceModem(Endpoint):
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
        self._last_host = self.clock.now
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
        self._last_host = self.clock.now
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

    def _load_profile(self, profile: _Profile | None) -> None:
        p = self.personality
        if profile is None:
            profile = _Profile(
                p.defaults["E"],
                p.defaults["V"],
                p.defaults["Q"],
                p.defaults["X"],
                {n: r.default for n, r in p.registers.items()},
            )
        self._e, self._v, self._q, self._x = profile.e, profile.v, profile.q, profile.x
        self._sregs = dict(profile.sregs)

    def _end_activity(self) -> None:
        """Stop any stream or timed command without reporting anything."""
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

    @guarded()
    def ringing(self, on: bool) -> None:
        if not on or self._muted or self.off_hook:
            return
        self._alerting = True
        self._sregs[1] = min(255, self._sregs[1] + 1)
        if self._ring_timer is not None:
            self._ring_timer.cancel()
        self._ring_timer = self.clock.call_later(RING_RESET_SECONDS, self._ring_reset)
        if self._fclass == "8" and self.personality.voice.ring == "dle":
            self._write(shielding.event("R"))
        else:
            self._unsolicited("RING")
        rings = self._sregs[0]
        if rings and self._sregs[1] >= rings and self._mode == "command":
            self._auto_answer()

    @guarded()
    def caller_id(self, cid: CallerId) -> None:
        if self._muted or self._params["+VCID"] != ("1",):
            return
        fmt = self.personality.caller_id
        for name, value in fmt.requires.items():
            if self._params[name] != (value,):
                return
        if fmt.region_parameter and self.cid_scheme is not None:
            region = self._params[fmt.region_parameter][0]
            if fmt.regions.get(region) != self.cid_scheme:
                return
        self._write(self.format_caller_id(cid).encode("latin-1", "replace"))

    @guarded()
    def loop_break(self) -> None:
        if not self._muted and self._fclass == "8" and self.off_hook:
            self._event("l")

    @guarded()
    def polarity_reversal(self) -> None:
        if self._muted:
            return
        self._polarity_seen = True
        if self._fclass == "8" and self.off_hook:
            self._event("L")

    def format_caller_id(self, cid: CallerId) -> str:
        """The caller-ID block as this chip writes it."""
        fmt = self.personality.caller_id
        values: dict[str, str] = {
            "DATE": cid.when.strftime("%m%d"),
            "TIME": cid.when.strftime("%H%M"),
            "NMBR": cid.number or "",
        }
        if cid.name:
            values["NAME"] = cid.name
        if fmt.mesg:
            values["MESG"] = fmt.mesg
        if cid.status == "private":
            values.update(fmt.private)
        elif cid.status == "unavailable" or not cid.number:
            values.update(fmt.unavailable)
        if "NAME" in values and fmt.name_width:
            values["NAME"] = values["NAME"][: fmt.name_width].ljust(fmt.name_width)
        lines = [f"{key}{fmt.separator}{values[key]}" for key in fmt.order if key in values]
        return fmt.block_start + "".join(line + fmt.line_end for line in lines)

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

    def _command_byte(self, byte: int) -> None:
        echo, line = self._editor.feed(byte, cr=self._sregs[3], bs=self._sregs[5])
        if self._e:
            self._write(echo)
        if line is None:
            return
        if line is OVERFLOW:
            self._final("ERROR")
            return
        if line is REPEAT:
            line = self._last_line if self._last_line is not None else ""
        assert isinstance(line, str)
        self._last_line = line
        parsed = parse_line(line)
        self._queue = list(parsed.commands)
        self._line_error = parsed.error
        self._run_queue()

    def _stream_in(self, tx: bool) -> bool:
        """Take streamed bytes; False when the transmit buffer has no room."""
        if tx and self._draining:
            return False
        if tx:
            room = self.personality.voice.tx_buffer - len(self._tx_buf)
            if room <= 0:
                return False
            chunk = bytes(self._pending[:room])
        else:
            chunk = bytes(self._pending)
        items, used = self._decoder.feed_until_control(chunk)
        del self._pending[:used]
        for item in items:
            if isinstance(item, bytes):
                if tx and item:
                    self._tx_buf += item
                    self._tx_started = True
            else:
                self._stream_control(item)
        return True

    def _stream_control(self, control: Control) -> None:
        code = control.code
        mode = self._mode
        v = self.personality.voice
        if code == NUL:
            return
        if mode in ("tx", "duplex") and code == CAN:
            self._tx_buf.clear()
            self._tx_started = False
            self._underrun = False
        elif mode in ("tx", "duplex") and code == ETX:
            self._draining = True
        elif mode == "duplex" and control.char == "^":
            self._tx_buf.clear()
            self._end_stream(etx=True)
        elif mode == "rx" and control.char in v.rx_end_codes:
            self._end_stream(etx=True)
        # every other code is ignored, as chips ignore codes they do not know

    # -- command execution ------------------------------------------------------

    def _run_queue(self) -> None:
        while self._queue:
            command = self._queue.pop(0)
            outcome = self._execute(command)
            if outcome is _WAIT:
                return
            if outcome is not None:
                self._queue.clear()
                self._final(outcome)
                return
        self._final("ERROR" if self._line_error else "OK")
        self._line_error = False

    def _execute(self, c: Command) -> object:
        try:
            handler = self._handler(c)
            if handler is None:
                return "ERROR"
            return handler(c)
        except (ValueError, KeyError) as exc:
            logger.debug("modem {}: AT{}{}{} -> ERROR ({})", self._label, c.name, c.op, c.arg, exc)
            return "ERROR"

    def _handler(self, c: Command) -> Callable[[Command], object] | None:
        name = c.name
        special = {
            "+FCLASS": self._cmd_fclass,
            "+VSM": self._cmd_vsm,
            "+VLS": self._cmd_vls,
            "+VTX": self._cmd_stream,
            "+VRX": self._cmd_stream,
            "+VTR": self._cmd_stream,
            "+VTS": self._cmd_vts,
            "+GMI": self._cmd_identity,
            "+GMM": self._cmd_identity,
            "+GMR": self._cmd_identity,
            "+GCAP": self._cmd_identity,
        }
        if name in special:
            return special[name]
        if name in self.personality.parameters:
            return self._cmd_parameter
        if name[0] in "+-!#$":
            return None
        if name == "S" or (name[0] == "S" and name[1:].isdigit()):
            return self._cmd_sreg
        basic = {
            "A": self._cmd_answer,
            "D": self._cmd_dial,
            "E": self._cmd_flag,
            "V": self._cmd_flag,
            "Q": self._cmd_flag,
            "X": self._cmd_flag,
            "H": self._cmd_hook,
            "Z": self._cmd_reset,
            "&F": self._cmd_reset,
            "&W": self._cmd_store,
            "I": self._cmd_info,
            "T": self._cmd_noop,
            "P": self._cmd_noop,
        }
        if name in basic:
            return basic[name]
        if name in self.personality.accepted_basic:
            return self._cmd_accepted
        return None

    @staticmethod
    def _number(c: Command) -> int:
        if c.arg and not c.arg.isdigit():
            raise ValueError("not a number")
        return int(c.arg) if c.arg else 0

    def _cmd_flag(self, c: Command) -> object:
        n = self._number(c)
        limit = 4 if c.name == "X" else 1
        if n > limit:
            return "ERROR"
        setattr(self, "_" + c.name.lower(), n)
        return None

    def _cmd_noop(self, c: Command) -> object:
        return None

    def _cmd_accepted(self, c: Command) -> object:
        lo, hi = self.personality.accepted_basic[c.name]
        return None if lo <= self._number(c) <= hi else "ERROR"

    def _cmd_info(self, c: Command) -> object:
        lines = self.personality.identity.ati.get(self._number(c))
        if lines is None:
            return "ERROR"
        self._info(lines, c.key)
        return None

    def _cmd_identity(self, c: Command) -> object:
        ident = self.personality.identity
        if c.op == "=?":
            return None
        if c.op:
            return "ERROR"
        lines = {
            "+GMI": ident.gmi,
            "+GMM": ident.gmm,
            "+GMR": ident.gmr,
            "+GCAP": ident.gcap,
        }[c.name]
        if lines is None:
            return "ERROR"
        if ident.gm_prefix and c.name != "+GCAP":
            lines = tuple(f"{c.name}: {line}" for line in lines)
        self._info(lines, c.key)
        return None

    def _cmd_sreg(self, c: Command) -> object:
        n = self._current_reg if c.name == "S" else int(c.name[1:])
        reg = self.personality.registers.get(n)
        if reg is None:
            return "ERROR"
        self._current_reg = n  # any reference selects it, as on Hayes modems
        if c.op == "?":
            self._info((f"{self._sregs[n]:03d}",), c.key)
        elif c.op == "=":
            value = self._number(c)
            if not reg.low <= value <= reg.high:
                return "ERROR"
            self._sregs[n] = value
        return None

    def _cmd_hook(self, c: Command) -> object:
        n = self._number(c)
        if n == 0:
            self._hang_up()
        elif n == 1:
            self._lift()
        else:
            return "ERROR"
        return None

    def _cmd_reset(self, c: Command) -> object:
        if self._number(c) > 1:
            return "ERROR"
        if c.name == "&F":
            self._load_profile(None)
            self._reset_params(keep_atz=True)
            return None
        # ATZ: hang up, stored profile, data mode; the rest of the line is not run
        self._reset()
        self._queue.clear()
        return None

    def _reset_params(self, keep_atz: bool) -> None:
        """Back to defaults; with ``keep_atz``, parameters the chip keeps over ATZ stay."""
        for name, param in self.personality.parameters.items():
            if param.reset_on_atz or not keep_atz:
                self._params[name] = param.default

    def _cmd_store(self, c: Command) -> object:
        if self._number(c) > 1:
            return "ERROR"
        self._nvram = _Profile(self._e, self._v, self._q, self._x, dict(self._sregs))
        return None

    # -- extended commands ------------------------------------------------------------

    def _voice_only(self) -> bool:
        return self._fclass == "8"

    def _test_answer(self, lines: tuple[str, ...], c: Command) -> None:
        if self.personality.command_line.lower_case_tests:
            lines = tuple(line.lower() for line in lines)
        self._info(lines, c.key)

    def _read_answer(self, value: str, c: Command) -> None:
        if self.personality.command_line.read_prefix:
            value = f"{c.name}: {value}"
        self._info((value,), c.key)

    def _cmd_parameter(self, c: Command) -> object:
        param = self.personality.parameters[c.name]
        if param.voice_only and not self._voice_only():
            return "ERROR"
        if c.op == "?":
            self._read_answer(",".join(self._params[c.name]), c)
            return None
        if c.op == "=?":
            self._test_answer(param.test_lines(), c)
            return None
        if c.op != "=":
            return "ERROR"
        values = self._parse_values(param, c.arg)
        if values is None:
            return "ERROR"
        return self._set_parameter(param, values)

    def _parse_values(self, param: Parameter, arg: str) -> tuple[str, ...] | None:
        parts = split_args(arg) if arg else []
        if len(parts) > len(param.args):
            return None
        current = list(self._params[param.name])
        for i, part in enumerate(parts):
            if part == "":
                continue
            value = param.args[i].canonical(part)
            if value is None:
                return None
            current[i] = value
        return tuple(current)

    def _set_parameter(self, param: Parameter, values: tuple[str, ...]) -> object:
        self._params[param.name] = values
        return None

    def _cmd_vls(self, c: Command) -> object:
        param = self.personality.parameters["+VLS"]
        if c.op != "=":
            return self._cmd_parameter(c)
        if not self._voice_only():
            return "ERROR"
        values = self._parse_values(param, c.arg)
        if values is None:
            return "ERROR"
        self._params["+VLS"] = values
        v = self.personality.voice
        if int(values[0]) in v.vls_off_hook:
            if not self.off_hook:
                self._lift()
                for code in v.vls1_events:
                    self._after_final.append(shielding.event(code))
        else:
            self._hang_up()
        return None

    def _cmd_fclass(self, c: Command) -> object:
        p = self.personality
        if c.op == "?":
            self._read_answer(self._fclass, c)
            return None
        if c.op == "=?":
            self._test_answer(p.fclass_test, c)
            return None
        if c.op != "=" or c.arg not in p.fclass_values:
            return "ERROR"
        if self._fclass == "8" and c.arg != "8":
            self._hang_up()
        self._fclass = c.arg
        return None

    def _cmd_vsm(self, c: Command) -> object:
        v = self.personality.voice
        if not self._voice_only():
            return "ERROR"
        if c.op == "?":
            self._read_answer(v.vsm_read.format(code=self._codec.code, rate=self._rate), c)
            return None
        if c.op == "=?":
            self._test_answer(v.vsm_test, c)
            return None
        if c.op != "=":
            return "ERROR"
        parts = split_args(c.arg)
        if not 1 <= len(parts) <= 4 or not all(p.isdigit() for p in parts if p):
            return "ERROR"
        if not parts[0]:
            return "ERROR"
        codec = v.codec(int(parts[0]))
        rate = int(parts[1]) if len(parts) > 1 and parts[1] else self._rate
        if codec is None or codec.format is None or rate not in codec.rates:
            return "ERROR"
        if rate != EMULATED_RATE:
            return "ERROR"
        if any(int(p) > 255 for p in parts[2:] if p):
            return "ERROR"
        self._codec, self._rate = codec, rate
        return None

    def _cmd_stream(self, c: Command) -> object:
        v = self.personality.voice
        if not self._voice_only():
            return "ERROR"
        if c.name == "+VTR" and not v.vtr:
            return "ERROR"
        if c.op == "=?":
            return None
        if c.op or not self.off_hook:
            return "ERROR"
        mode: Mode = {"+VTX": "tx", "+VRX": "rx", "+VTR": "duplex"}[c.name]  # type: ignore[assignment]
        self._end_activity()
        self._mode = mode
        self._silence_reset()
        if mode in ("tx", "duplex") and v.stray_underrun and "u" in v.events:
            self._after_final.append(shielding.event("u"))
        self._queue.clear()
        return "CONNECT"

    def _cmd_vts(self, c: Command) -> object:
        v = self.personality.voice
        if not self._voice_only():
            return "ERROR"
        rules = self._vts_rules()
        if c.op == "=?":
            lo, hi = f"{rules.min_freq:g}", f"{rules.max_freq:g}"
            self._test_answer((f"({lo}-{hi}),({lo}-{hi}),(0-{rules.max_duration})",), c)
            return None
        if c.op != "=":
            return "ERROR"
        try:
            steps = parse_vts(c.arg, rules)
        except VtsError as exc:
            logger.debug("modem {}: +VTS rejected: {}", self._label, exc)
            return "ERROR"
        gap = v.vts.dtmf_gap_ms / 1000
        self._start_proc(self._vts_proc(steps, gap), abortable=False)
        return _WAIT

    def _vts_rules(self) -> VtsRules:
        lim = self.personality.voice.vts
        return VtsRules(
            default_duration=int(self._params["+VTD"][0]),
            max_duration=lim.max_duration,
            min_freq=lim.min_freq,
            max_freq=lim.max_freq,
            single_tone_zero=lim.single_tone_zero,
            flash_seconds=lim.flash_ms / 1000,
        )

    def _cmd_answer(self, c: Command) -> object:
        self._queue.clear()
        if self._fclass == "8":
            self._lift()
            result = self.personality.results.voice_answer
            return None if result == "OK" else result
        self._lift()
        self._start_proc(self._data_answer_proc(), abortable=True)
        return _WAIT

    def _cmd_dial(self, c: Command) -> object:
        try:
            dial = parse_dial(c.arg)
        except DialStringError:
            return "ERROR"
        voice = self._fclass == "8"
        self._start_proc(self._dial_proc(dial.steps, dial.semicolon, voice), abortable=True)
        return _WAIT

    # -- timed commands -------------------------------------------------------------

    def _start_proc(self, proc: Proc, abortable: bool) -> None:
        self._proc = proc
        self._proc_abortable = abortable
        self._mode = "proc"
        self._arm_pump()

    def _arm_pump(self) -> None:
        if self._pump_timer is None or self._pump_timer.cancelled:
            self._pump_timer = self.clock.call_later(FRAME_SECONDS, self._pump)

    def _pump(self) -> None:
        """Step the running command once per frame (after the tick's audio)."""
        self._pump_timer = None
        proc = self._proc
        if proc is None:
            return
        if not self.off_hook and len(self._tone_out):
            self._tone_out = self._tone_out[FRAME:]  # played to the local speaker
        try:
            next(proc)
        except StopIteration as stop:
            self._finish_proc(stop.value)
            return
        except Exception as exc:
            self._fault("timed command", exc)
            self._finish_proc("ERROR")
            return
        self._arm_pump()

    def _cancel_proc(self) -> None:
        proc, self._proc = self._proc, None
        self._proc_abortable = False
        self._keying = False
        if proc is not None:
            proc.close()
        if self._pump_timer is not None:
            self._pump_timer.cancel()
            self._pump_timer = None

    def _finish_proc(self, result: str) -> None:
        self._cancel_proc()
        self._mode = "command"
        self._tone_out = np.zeros(0, dtype=np.int16)
        if result == "OK":
            self._run_queue()
        else:
            self._queue.clear()
            self._final(result)
        self._process()
        self._wake_reader()

    def _abort_proc(self) -> None:
        self._cancel_proc()
        self._mode = "command"
        self._tone_out = np.zeros(0, dtype=np.int16)
        self._hang_up()
        self._queue.clear()
        self._final("NO CARRIER")

    def _frames(self, seconds: float) -> Generator[None, None, None]:
        for _ in range(self.clock.frames(seconds)):
            yield

    def _play(self, samples: np.ndarray) -> Generator[None, None, None]:
        self._tone_out = np.concatenate((self._tone_out, samples.astype(np.int16)))
        while len(self._tone_out):
            yield

    def _vts_proc(self, steps: list[ToneStep], gap: float) -> Proc:
        level = self.personality.call_progress.dtmf_level_dbm0
        for step in steps:
            if step.kind == "flash":
                yield from self._flash(step.seconds)
            elif step.kind == "dtmf":
                audio = dtmf_tone(step.key, step.seconds, level_dbm0=level)
                silence = np.zeros(round(gap * RATE), dtype=np.int16)
                yield from self._play(np.concatenate((audio, silence)))
            else:
                yield from self._play(tone(step.freqs, step.seconds))
        return "OK"

    def _flash(self, seconds: float) -> Generator[None, None, None]:
        """A hook flash: on hook for ``seconds``, then off hook again."""
        if self.line is None or not self.line.off_hook:
            yield from self._frames(seconds)
            return
        self.line.hang_up()
        yield from self._frames(seconds)
        self._lift()

    def _data_answer_proc(self) -> Proc:
        # No data modulation is emulated: no carrier ever comes.
        yield from self._frames(self._sregs[7])
        self._hang_up()
        return "NO CARRIER"

    def _wait_dialtone(self) -> Generator[None, None, bool]:
        cp = self.personality.call_progress
        waited = 0.0
        while self._cadence.on_for(self._rx_count) < cp.dialtone_min:
            if waited >= cp.dialtone_wait:
                return False
            yield
            waited += FRAME_SECONDS
        return True

    def _dial_proc(self, steps: tuple[str, ...], semicolon: bool, voice: bool) -> Proc:
        """ATD: dial tone, DTMF digits, then call progress.

        The rule: with X2/X4 wait for dial tone (else NO DIALTONE), with
        X0/X1/X3 wait S6 seconds; key each digit as S11 ms of DTMF and S11 ms
        of silence. A data-mode ``ATD...;`` ends there with OK. Then listen:
        busy (or congestion) -> BUSY (X3/X4); ringback seen and then silent
        for +VRA x 0.1 s (+VRA=0: at the first ringback), or no ringback at
        all within +VRN seconds, or a polarity reversal -> answered (voice:
        the chip's answered result, line kept; data: NO CARRIER, as no data
        carrier is emulated); still undecided after S7 seconds -> NO ANSWER
        (voice) / NO CARRIER (data). Failures put the line on hook.
        """
        if not self.off_hook:
            self._lift()
        # the dial tone ending at the first digit is no ringback: report no
        # call-progress tones until the number is out
        self._keying = True
        yield
        if self._x in (2, 4):
            if not (yield from self._wait_dialtone()):
                self._hang_up()
                return self.personality.results.no_dialtone
        else:
            yield from self._frames(self._sregs[6])
        s11 = self._sregs[11] / 1000
        level = self.personality.call_progress.dtmf_level_dbm0
        for step in steps:
            if step == ",":
                yield from self._frames(self._sregs[8])
            elif step == "W":
                if not (yield from self._wait_dialtone()):
                    self._hang_up()
                    return self.personality.results.no_dialtone
            elif step == "!":
                yield from self._flash(self.personality.voice.vts.flash_ms / 1000)
            else:
                audio = dtmf_tone(step, s11, level_dbm0=level)
                yield from self._play(np.concatenate((audio, np.zeros_like(audio))))
        self._keying = False
        if semicolon and not voice:
            return "OK"
        return (yield from self._call_progress(voice))

    def _call_progress(self, voice: bool) -> Proc:
        start = self.clock.now
        self._progress.clear()
        self._polarity_seen = False
        vra = int(self._params["+VRA"][0]) * 0.1
        vrn = int(self._params["+VRN"][0])
        if voice and vrn == 0:
            return self._answered(voice)
        ringback = False
        while True:
            yield
            events, self._progress = self._progress, []
            for event in events:
                if event.kind == "busy" and self._x in (3, 4):
                    self._hang_up()
                    return "BUSY"
                if event.kind == "ringback":
                    ringback = True
                    if vra == 0:
                        return self._answered(voice)
            if self._polarity_seen:
                return self._answered(voice)
            quiet = self._cadence.off_for(self._rx_count)
            elapsed = self.clock.now - start
            if ringback and quiet is not None and quiet >= vra:
                return self._answered(voice)
            if not ringback and elapsed >= vrn and not self._cadence.on:
                return self._answered(voice)
            if elapsed >= self._sregs[7]:
                self._hang_up()
                return "NO ANSWER" if voice else "NO CARRIER"

    def _answered(self, voice: bool) -> str:
        if voice:
            return self.personality.results.voice_dial_answered
        self._hang_up()
        return "NO CARRIER"

    def _auto_answer(self) -> None:
        self._queue.clear()
        if self._fclass == "8":
            self._lift()
            self._final(self.personality.results.voice_answer)
            return
        self._lift()
        self._start_proc(self._data_answer_proc(), abortable=True)

    # -- streaming audio --------------------------------------------------------------

    def _bytes_per_frame(self) -> int:
        return FRAME * codecs.bytes_per_sample(self._format)

    @property
    def _format(self) -> str:
        assert self._codec.format is not None
        return self._codec.format

    def _play_frame(self) -> np.ndarray:
        fmt = self._format
        need = self._bytes_per_frame()
        width = codecs.bytes_per_sample(fmt)
        buf = self._tx_buf
        if len(buf) >= need:
            data = bytes(buf[:need])
            del buf[:need]
            self._underrun = False
        else:
            usable = len(buf) - len(buf) % width
            data = bytes(buf[:usable])
            del buf[:usable]
            if not self._draining and self._tx_started and not self._underrun:
                self._underrun = True
                self._event("u")
            data += codecs.silence(fmt, (need - len(data)) // width)
        frame = codecs.decode(data, fmt)
        if self._draining and not buf and self._mode == "tx":
            self._end_stream(etx=self.personality.voice.vtx_end_etx)
        elif self._draining and not buf and self._mode == "duplex":
            self._end_stream(etx=True)
        self._wake_reader()
        return frame

    def _record_frame(self, frame: np.ndarray, events: list[tuple[int, bytes]]) -> None:
        v = self.personality.voice
        audio = codecs.encode(frame, self._format)
        backlog = self._backlog()
        if backlog > v.rx_backlog:
            if not self._overrun:
                self._overrun = True
                if "o" in v.events and not self._silent_recording:
                    events.append((FRAME, shielding.event("o")))
            for _, data in sorted(events, key=lambda e: e[0]):
                self._write(data)
            return
        if backlog < v.rx_backlog // 2:
            self._overrun = False
        width = codecs.bytes_per_sample(self._format)
        out = bytearray()
        pos = 0
        for offset, data in sorted(events, key=lambda e: e[0]):
            cut = max(0, min(FRAME, offset)) * width
            if cut > pos:
                out += shielding.shield(audio[pos:cut], dle_sub=v.dle_sub)
                pos = cut
            out += data
        out += shielding.shield(audio[pos:], dle_sub=v.dle_sub)
        self._write(bytes(out))

    def _end_stream(self, etx: bool) -> None:
        self._end_activity()
        if etx:
            self._write(bytes((shielding.DLE, ETX)))
        self._final("OK")
        self._wake_reader()

    def _wake_reader(self) -> None:
        """Room in the transmit buffer: take waiting bytes, then let the port read again."""
        if self._pending and not self._processing:
            self._process()
        if self._room_cb is not None and self.input_room() != 0:
            self._room_cb()

    # -- detection ----------------------------------------------------------------------

    def _hear_dtmf(self, frame: np.ndarray, start: int, events: list[tuple[int, bytes]]) -> None:
        dtmf = self.personality.voice.dtmf
        wrapped = dtmf.framing == "wrapped"
        period = max(1, round(dtmf.repeat_ms * RATE / 1000)) if dtmf.repeat_ms else 0

        def repeats_until(limit: int) -> None:
            if self._held is None or not period:
                return
            key, due = self._held
            while due < limit:
                events.append((due - start, shielding.event(key)))
                due += period
            self._held = (key, due)

        for event in self._dtmf.feed(frame):
            repeats_until(event.sample)
            offset = event.sample - start
            if event.kind == "down":
                if wrapped:
                    events.append((offset, shielding.event("/") + shielding.event(event.key)))
                    self._held = (event.key, event.sample + period)
                else:
                    events.append((offset, shielding.event(event.key)))
            elif wrapped:
                self._held = None
                events.append((offset, shielding.event("~")))
        repeats_until(start + len(frame))

    def _progress_events(
        self, progress: list[Progress], start: int, events: list[tuple[int, bytes]]
    ) -> None:
        v = self.personality.voice
        context = {"tx": "tx", "rx": "rx", "duplex": "rx"}.get(self._mode, "command")
        for item in progress:
            if item.kind == "busy":
                if "b" not in v.events or context not in v.busy_contexts:
                    continue
                code = "b"
            else:
                code = "d" if item.kind == "dialtone" else "r"
                if code not in v.events:
                    continue
            events.append((item.sample - start, shielding.event(code)))

    def _silence_reset(self) -> None:
        self._sil_voice = False
        self._sil_quiet_from = self._rx_count
        self._sil_told = False

    def _detect_silence(self, frame: np.ndarray, events: list[tuple[int, bytes]]) -> None:
        v = self.personality.voice
        if not v.silence_detection:
            return
        sds, sdi = (int(x) for x in self._params["+VSD"])
        if sdi == 0:
            return
        level = power_dbm0(float(np.mean(frame.astype(np.float64) ** 2)))
        threshold = SILENCE_THRESHOLD_DBM0 - (sds - 128) / 4
        if level >= threshold:
            self._sil_voice = True
            self._sil_quiet_from = self._rx_count
            self._sil_told = False
            return
        if self._sil_told or self._rx_count - self._sil_quiet_from < sdi * 0.1 * RATE:
            return
        self._sil_told = True
        code = "q" if self._sil_voice else "s"
        if code in v.events:
            events.append((FRAME, shielding.event(code)))

    def _check_inactivity(self) -> None:
        vit = int(self._params["+VIT"][0])
        if not vit or self._fclass != "8":
            return
        if self.clock.now - self._last_host < vit * self.personality.voice.vit_unit:
            return
        # V.253 inactivity timer: back to data mode and on hook
        streaming = self._mode in ("tx", "rx", "duplex")
        self._end_activity()
        self._hang_up()
        self._fclass = "0"
        self._last_host = self.clock.now
        if streaming:
            self._write(bytes((shielding.DLE, ETX)))
            self._final("OK")

    # -- line -----------------------------------------------------------------------------

    def _lift(self) -> None:
        if self.line is None or self.line.off_hook:
            return
        self._reset_detectors()
        if self._alerting and self.personality.voice.ring_after_answer:
            # the chip's ring report lags the hook change (VOICE-MODEMS.md section 7)
            if self._fclass == "8" and self.personality.voice.ring == "dle":
                self._after_final.append(shielding.event("R"))
            elif not self._q:
                self._after_final.append(self._format_result("RING"))
        self._alerting = False
        self.line.lift()

    def _hang_up(self) -> None:
        if "+VLS" in self._params:
            self._params["+VLS"] = self.personality.parameters["+VLS"].default
        if self.line is not None and self.line.off_hook:
            self.line.hang_up()
        self._reset_detectors()

    def _reset_detectors(self) -> None:
        self._dtmf.reset()
        self._tone.reset()
        self._cadence.reset()
        self._rx_count = 0
        self._held: tuple[str, int] | None = None
        self._progress: list[Progress] = []
        self._polarity_seen = False
        self._silence_reset()

    def _ring_reset(self) -> None:
        self._ring_timer = None
        self._sregs[1] = 0
        self._alerting = False

    # -- output to the host ----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and self._sink is not None and not self._muted:
            self._sink(data)

    @property
    def _crlf(self) -> bytes:
        return bytes((self._sregs[3], self._sregs[4]))

    def _event(self, code: str) -> None:
        """Report a DLE event now, if the chip reports it (voice mode only)."""
        reported = self._fclass == "8" and code in self.personality.voice.events
        if reported and not self._silent_recording:
            self._write(shielding.event(code))

    @property
    def _silent_recording(self) -> bool:
        """Recording (+VRX) on a chip that reports no DLE events meanwhile.

        Its detectors keep running, so a key already down when the stream ends
        is not reported again afterwards: that press is only in the audio.
        """
        return self._mode == "rx" and not self.personality.voice.events_during_vrx

    def _format_result(self, name: str) -> bytes:
        numeric = self.personality.results.numeric
        if self._v or name not in numeric:
            head = b"" if self._compact else self._crlf
            return head + name.encode() + self._crlf
        return str(numeric[name]).encode() + bytes((self._sregs[3],))

    def _final(self, name: str) -> None:
        if not self._q:
            self._write(self._format_result(name))
        self._compact = False
        after, self._after_final = self._after_final, []
        for data in after:
            self._write(data)

    def _unsolicited(self, name: str) -> None:
        if not self._q:
            self._compact = False
            self._write(self._format_result(name))

    def _info(self, lines: tuple[str, ...], key: str) -> None:
        if not lines:
            return
        crlf = self._crlf
        body = crlf.join(line.encode("latin-1", "replace") for line in lines) + crlf
        self._write(crlf + body if self._v else body)
        self._compact = bool(self._v) and key in self.personality.command_line.compact_info

    # -- faults --------------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return self.line.label if self.line is not None else self.personality.name

    def _fault(self, where: str, exc: BaseException) -> None:
        count = self.faults.get(where, 0) + 1
        self.faults[where] = count
        if count == 1 or count % FAULT_LOG_EVERY == 0:
            logger.opt(exception=exc).error(
                "emulated modem {} failed in {} ({} time(s))", self._label, where, count
            )

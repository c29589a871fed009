"""The extended commands: parameters the personality lists, ``+FCLASS``, the
V.253 voice commands (``+VLS``, ``+VSM``, ``+VTX`` / ``+VRX`` / ``+VTR``, ``+VTS``)
and ``ATA`` / ``ATD``, which start timed commands (see :mod:`timedcommands`).
"""

from __future__ import annotations

from loguru import logger

from daemon1521.emulator.clock import RATE
from daemon1521.emulator.modem import shielding
from daemon1521.emulator.modem.chipbase import _WAIT, Mode
from daemon1521.emulator.modem.dialstring import DialStringError, parse_dial
from daemon1521.emulator.modem.personality import Parameter
from daemon1521.emulator.modem.v250 import Command, split_args
from daemon1521.emulator.modem.vts import VtsError, VtsRules, parse_vts

EMULATED_RATE = RATE
"""The only sample rate the emulated line carries; other listed rates answer ERROR."""


class VoiceCommandsMixin:
    """Extended and voice command handlers for :class:`~.voicemodem.VoiceModem`."""

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

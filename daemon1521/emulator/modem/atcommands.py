"""The AT command line as run: one line's commands in turn, the final result,
and the basic (V.250) commands with the stored profile of ``AT&W`` / ``ATZ``.

Extended and voice commands are in :mod:`voicecommands`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from daemon1521.emulator.modem.chipbase import _WAIT
from daemon1521.emulator.modem.v250 import OVERFLOW, REPEAT, Command, parse_line


@dataclass
class _Profile:
    """What ``AT&W`` stores and ``ATZ`` restores: E, V, Q, X and the S-registers."""

    e: int
    v: int
    q: int
    x: int
    sregs: dict[int, int]


class AtCommandsMixin:
    """Command-line execution and basic commands for :class:`~.voicemodem.VoiceModem`."""

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
            "&V": self._cmd_view,
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

    def _cmd_view(self, c: Command) -> object:
        """``AT&V``: the active profile, then each stored one (the last ones factory)."""
        view = self.personality.profile_view
        if view is None or self._number(c) != 0:
            return "ERROR"
        active = _Profile(self._e, self._v, self._q, self._x, dict(self._sregs))
        factory = self._factory_profile()
        stored = [self._nvram or factory] + [factory] * (len(view.stored) - 1)
        lines: list[str] = []
        for heading, profile in zip((view.active, *view.stored), (active, *stored), strict=True):
            if lines:
                lines.append("")
            lines += [heading, *_profile_lines(profile)]
        self._info(tuple(lines), c.key)
        return None


REGISTERS_PER_LINE = 10
"""S-registers per line of an ``AT&V`` listing (as Rockwell-style chips print them)."""


def _profile_lines(profile: _Profile) -> list[str]:
    """One profile as ``AT&V`` prints it: the flags, then the S-registers ``S07:050``."""
    lines = [f"E{profile.e} Q{profile.q} V{profile.v} X{profile.x}"]
    regs = [f"S{n:02d}:{value:03d}" for n, value in sorted(profile.sregs.items())]
    for i in range(0, len(regs), REGISTERS_PER_LINE):
        lines.append(" ".join(regs[i : i + REGISTERS_PER_LINE]))
    return lines

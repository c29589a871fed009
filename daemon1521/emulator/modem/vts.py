"""The argument of ``AT+VTS``: DTMF digits, dual tones, silences and hook flashes.

V.253 ``+VTS`` takes comma-separated elements (VOICE-MODEMS.md section 2):

- a bare ``0-9 * # A-D``: that DTMF digit for the ``+VTD`` duration;
- ``!``: a hook flash;
- ``{k,d}``: DTMF digit (or ``!``) ``k`` for ``d`` x 10 ms;
- ``[f1,f2,d]``: frequencies ``f1`` and ``f2`` together for ``d`` x 10 ms;
  an empty or zero frequency is absent, so ``[,,50]`` is 500 ms of silence.
  An empty duration is the ``+VTD`` value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon1521.emulator.modem.v250 import split_args

DTMF_KEYS = frozenset("0123456789*#ABCD")
DURATION_UNIT = 0.01
"""Seconds per unit of a ``+VTS`` / ``+VTD`` duration."""


class VtsError(ValueError):
    """The ``+VTS`` argument is not valid for this chip (the modem answers ERROR)."""


@dataclass(frozen=True)
class ToneStep:
    """One element of ``+VTS``, ready to play."""

    kind: Literal["dtmf", "tones", "flash"]
    seconds: float
    key: str = ""
    freqs: tuple[float, ...] = ()


@dataclass(frozen=True)
class VtsRules:
    """What a chip accepts in ``+VTS`` (from its personality)."""

    default_duration: int = 100
    """The current ``+VTD`` value, in units of 10 ms."""
    max_duration: int = 255
    min_freq: float = 200.0
    max_freq: float = 3300.0
    single_tone_zero: bool = True
    """Whether ``[f,0,d]`` (one tone, the other zero) is accepted; the USR 5637 says no."""
    flash_seconds: float = 0.5
    """How long ``!`` without a duration holds the line on hook."""


def parse_vts(arg: str, rules: VtsRules) -> list[ToneStep]:
    """The steps of a ``+VTS`` argument, or :class:`VtsError`."""
    if not arg:
        raise VtsError("empty +VTS")
    steps: list[ToneStep] = []
    for element in split_args(arg):
        if not element:
            raise VtsError("empty +VTS element")
        if element.startswith("{"):
            steps.append(_braced(element, rules))
        elif element.startswith("["):
            steps.append(_bracketed(element, rules))
        elif element == "!":
            steps.append(ToneStep("flash", rules.flash_seconds))
        elif element in DTMF_KEYS:
            steps.append(ToneStep("dtmf", _seconds(None, rules), key=element))
        else:
            raise VtsError(f"bad +VTS element {element!r}")
    return steps


def _inner(element: str, close: str, count: int) -> list[str]:
    if not element.endswith(close):
        raise VtsError(f"unterminated +VTS element {element!r}")
    fields = element[1:-1].split(",")
    if len(fields) > count:
        raise VtsError(f"too many fields in {element!r}")
    return fields + [""] * (count - len(fields))


def _number(text: str, what: str) -> int | None:
    if text == "":
        return None
    if not text.isdigit():
        raise VtsError(f"bad {what} {text!r}")
    return int(text)


def _seconds(units: int | None, rules: VtsRules) -> float:
    if units is None:
        units = rules.default_duration
    if units > rules.max_duration:
        raise VtsError(f"duration {units} above {rules.max_duration}")
    return units * DURATION_UNIT


def _braced(element: str, rules: VtsRules) -> ToneStep:
    key, duration = _inner(element, "}", 2)
    units = _number(duration, "duration")
    if key == "!":
        seconds = rules.flash_seconds if units is None else _seconds(units, rules)
        return ToneStep("flash", seconds)
    if key not in DTMF_KEYS:
        raise VtsError(f"bad DTMF digit {key!r}")
    return ToneStep("dtmf", _seconds(units, rules), key=key)


def _bracketed(element: str, rules: VtsRules) -> ToneStep:
    f1, f2, duration = _inner(element, "]", 3)
    freqs = [_number(f1, "frequency") or 0, _number(f2, "frequency") or 0]
    for f in freqs:
        if f and not rules.min_freq <= f <= rules.max_freq:
            raise VtsError(f"frequency {f} outside {rules.min_freq:g}-{rules.max_freq:g}")
    if not rules.single_tone_zero and (freqs[0] == 0) != (freqs[1] == 0):
        raise VtsError("this chip needs both frequencies (use [f,f,d] for one tone)")
    seconds = _seconds(_number(duration, "duration"), rules)
    return ToneStep("tones", seconds, freqs=tuple(float(f) for f in freqs if f))

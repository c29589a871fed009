"""The emulated exchange's settings: its tones, ringing and timers.

Defaults follow the Iranian public network as ITU-T E.180 (the Complement of
national tones published with the ITU Operational Bulletin) lists it: a single
425 Hz frequency for every call-progress tone, told apart by cadence. Where a
value is not a published national figure it says so, and what it rests on.
Everything is overridable from a config mapping (:meth:`TonePlan.from_mapping`)
so a test bed can imitate a particular switch or a PBX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Cadence = tuple[tuple[float, float], ...]
"""(on seconds, off seconds) pairs, repeated; an empty cadence is continuous."""

NoAnswerTone = Literal["congestion", "busy"]

_TONE_FIELDS = ("dial", "ringback", "busy", "congestion")


@dataclass(frozen=True)
class TonePlan:
    """What an exchange plays, rings and waits for; immutable, one per exchange."""

    # -- audible tones (to the subscriber's ear) ---------------------------
    # E.180, Iran: dial tone 425 Hz continuous.
    dial_freqs: tuple[float, ...] = (425.0,)
    dial_cadence: Cadence = ()
    # E.180, Iran: ringing tone 425 Hz, 1 s on 4 s off (the European-style
    # cadence, the same as the ringing current below).
    ringback_freqs: tuple[float, ...] = (425.0,)
    ringback_cadence: Cadence = ((1.0, 4.0),)
    # E.180, Iran: busy tone 425 Hz, 0.5 s on 0.5 s off.
    busy_freqs: tuple[float, ...] = (425.0,)
    busy_cadence: Cadence = ((0.5, 0.5),)
    # Congestion / number unobtainable: 425 Hz at twice the busy rate. E.180
    # asks for congestion to be a faster cadence than busy; 0.25/0.25 is the
    # usual 425 Hz-plan figure and is what we use until an operator's own
    # specification says otherwise.
    congestion_freqs: tuple[float, ...] = (425.0,)
    congestion_cadence: Cadence = ((0.25, 0.25),)
    # -10 dBm0: the nominal sending level of call-progress tones in E.180's
    # recommended range, and what a voice modem's tone detectors expect.
    tone_level_dbm0: float = -10.0

    # -- ringing current and caller ID (to the called line) ----------------
    # Ringing voltage follows the ringing tone cadence: 1 s on, 4 s off.
    ring_cadence: Cadence = ((1.0, 4.0),)
    # ETSI EN 300 659-1 (caller ID with ringing) and Telcordia GR-30: the
    # data burst starts at least 500 ms after the end of the first ring and
    # is over well before the second; the endpoint receives it demodulated
    # at this moment.
    caller_id_delay: float = 0.5

    # -- supervision signals ------------------------------------------------
    # A short loop-current break tells the remaining party the other has
    # cleared (the "calling/called party control" disconnect signal). Modem
    # chips report breaks longer than a couple of hundred ms as DLE l.
    loop_break_on_clear: bool = True
    loop_break_seconds: float = 0.3
    # Answer supervision by reversing the caller's line polarity is a
    # payphone/PBX trunk feature, not given to ordinary Iranian subscriber
    # lines: off by default.
    polarity_reversal_on_answer: bool = False

    # -- timers (switch defaults, not national figures; set per test bed) ---
    # How long busy (after a far-end clear or to a busy number) or congestion
    # plays to an off-hook line before the exchange parks it in silence.
    park_after: float = 30.0
    # No digit this long after dial tone starts -> congestion.
    first_digit_timeout: float = 15.0
    # No further digit this long after the last one -> congestion.
    inter_digit_timeout: float = 10.0
    # Ringing unanswered this long -> the call is released and the caller
    # hears ``no_answer_tone``.
    no_answer_timeout: float = 60.0
    no_answer_tone: NoAnswerTone = "congestion"

    def __post_init__(self) -> None:
        for name in _TONE_FIELDS:
            freqs = getattr(self, f"{name}_freqs")
            if not freqs or any(f <= 0 for f in freqs):
                raise ValueError(f"{name}_freqs must be positive frequencies, got {freqs!r}")
            _check_cadence(f"{name}_cadence", getattr(self, f"{name}_cadence"))
        _check_cadence("ring_cadence", self.ring_cadence)
        if not self.ring_cadence:
            raise ValueError("ring_cadence must not be empty: ringing needs silent gaps")
        first_gap = self.ring_cadence[0][1]
        if not 0 < self.caller_id_delay < first_gap:
            raise ValueError(
                f"caller_id_delay must fall inside the first ring's silence "
                f"(0 < delay < {first_gap}), got {self.caller_id_delay!r}"
            )
        for name in (
            "loop_break_seconds",
            "park_after",
            "first_digit_timeout",
            "inter_digit_timeout",
            "no_answer_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.no_answer_tone not in ("congestion", "busy"):
            raise ValueError(
                f"no_answer_tone must be 'congestion' or 'busy', got {self.no_answer_tone!r}"
            )

    def freqs(self, tone: str) -> tuple[float, ...]:
        """Frequencies of ``tone`` (one of dial, ringback, busy, congestion)."""
        return getattr(self, f"{_tone_name(tone)}_freqs")

    def cadence(self, tone: str) -> list[tuple[float, float]] | None:
        """Cadence of ``tone`` as a tone generator takes it (None = continuous)."""
        cadence = getattr(self, f"{_tone_name(tone)}_cadence")
        return list(cadence) or None

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> TonePlan:
        """Build a plan from config settings; unset keys keep their defaults.

        Cadences come as lists of ``[on, off]`` pairs and frequencies as a
        number or a list of numbers, as TOML or JSON would give them.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in settings.items():
            if key not in known:
                raise ValueError(f"unknown tone plan setting {key!r}")
            values[key] = _convert(key, raw)
        return cls(**values)


def _tone_name(tone: str) -> str:
    if tone not in _TONE_FIELDS:
        raise ValueError(f"unknown tone {tone!r}; expected one of {', '.join(_TONE_FIELDS)}")
    return tone


def _check_cadence(name: str, cadence: Cadence) -> None:
    for pair in cadence:
        if len(pair) != 2:
            raise ValueError(f"{name}: each step is (on, off) seconds, got {pair!r}")
        on, off = pair
        if on <= 0 or off < 0:
            raise ValueError(f"{name}: on must be > 0 and off >= 0 seconds, got {pair!r}")


def _convert(key: str, raw: Any) -> Any:
    """Coerce one config value to the type the field holds."""
    try:
        if key.endswith("_freqs"):
            items = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else [raw]
            return tuple(float(f) for f in items)
        if key.endswith("_cadence"):
            if raw is None:
                return ()
            return tuple((float(on), float(off)) for on, off in raw)
        if key in ("loop_break_on_clear", "polarity_reversal_on_answer"):
            if not isinstance(raw, bool):
                raise TypeError("expected true or false")
            return raw
        if key == "no_answer_tone":
            return str(raw)
        if isinstance(raw, bool):
            raise TypeError("expected a number")
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tone plan setting {key!r}: bad value {raw!r} ({exc})") from None

"""Call-progress tones told apart by cadence, as a modem's tone detector does.

Iran's exchanges (and the emulated one) send every call-progress tone at
425 Hz; only the on/off rhythm differs. This classifier takes the on/off
edges of a single-frequency detector and reports:

- ``dialtone``: the tone has been on without a break for a while (once per
  on period);
- ``ringback``: a burst of ringback length ended;
- ``busy``: a short burst ended after a short gap, once enough short bursts
  came in a row, then at every further burst (so busy is reported repeatedly
  while it lasts, as chips do). Congestion (the faster cadence) counts as
  busy too, as it does on real modems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from daemon1521.dsp.dtmf import ToneEvent
from daemon1521.emulator.clock import RATE
from daemon1521.emulator.modem.personality import CallProgress


@dataclass(frozen=True)
class Progress:
    kind: Literal["dialtone", "busy", "ringback"]
    sample: int


class CadenceClassifier:
    """Feed tone edges and the current sample count; get progress events."""

    def __init__(self, settings: CallProgress, rate: int = RATE) -> None:
        self.settings = settings
        self.rate = rate
        self.reset()

    def reset(self) -> None:
        self._on_since: int | None = None
        self._off_since: int | None = None
        self._last_gap: float | None = None
        self._short_run = 0
        self._dialtone_told = False

    @property
    def on(self) -> bool:
        return self._on_since is not None

    def on_for(self, now: int) -> float:
        """Seconds the tone has been on without a break (0 when off)."""
        if self._on_since is None:
            return 0.0
        return max(0, now - self._on_since) / self.rate

    def off_for(self, now: int) -> float | None:
        """Seconds since the tone last stopped (None if it never stopped or is on)."""
        if self._on_since is not None or self._off_since is None:
            return None
        return max(0, now - self._off_since) / self.rate

    def feed(self, edges: list[ToneEvent], now: int) -> list[Progress]:
        out: list[Progress] = []
        s = self.settings
        for edge in edges:
            if edge.kind == "on":
                if self._off_since is not None:
                    self._last_gap = (edge.sample - self._off_since) / self.rate
                self._on_since = edge.sample
                self._dialtone_told = False
                continue
            if self._on_since is None:
                continue
            length = (edge.sample - self._on_since) / self.rate
            self._on_since = None
            self._off_since = edge.sample
            gap = self._last_gap
            if s.busy_on[0] <= length <= s.busy_on[1]:
                if gap is not None and s.busy_off[0] <= gap <= s.busy_off[1]:
                    self._short_run += 1
                else:
                    self._short_run = 1
                if self._short_run >= s.busy_cycles:
                    out.append(Progress("busy", edge.sample))
            else:
                self._short_run = 0
                if s.ringback_on[0] <= length <= s.ringback_on[1]:
                    out.append(Progress("ringback", edge.sample))
        if (
            self._on_since is not None
            and not self._dialtone_told
            and self.on_for(now) >= s.dialtone_event_min
        ):
            self._dialtone_told = True
            out.append(Progress("dialtone", now))
        return out

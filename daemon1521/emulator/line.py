"""The subscriber loop: what passes between the exchange and what hangs on a line.

An analog line carries hook state one way, ringing voltage, caller ID, loop
breaks and polarity reversals the other way, and audio both ways. Every
emulated device (phone, voice modem, bank) is an :class:`Endpoint`; the
exchange owns each :class:`Line` and calls the endpoint once per 20 ms frame.

Not emulated: line voltages and impedance, echo, the caller-ID FSK/DTMF
burst itself (the endpoint receives it already demodulated, as a modem chip's
own decoder would hand it over), and metering pulses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

CallerIdStatus = Literal["number", "private", "unavailable"]


@dataclass(frozen=True)
class CallerId:
    """Caller identity as the exchange sends it between the first two rings."""

    status: CallerIdStatus
    number: str | None = None
    name: str | None = None
    when: datetime = field(default_factory=datetime.now)

    @classmethod
    def of(cls, number: str | None, status: CallerIdStatus = "number") -> CallerId:
        if status != "number" or not number:
            return cls(status="unavailable" if status == "number" else status)
        return cls(status="number", number=number)


class Endpoint:
    """Base for devices on a line; subclasses override what they react to.

    ``transmit`` and ``receive`` are called only while the endpoint is off
    hook, once per frame, from the exchange's tick: they must not block.
    """

    line: Line | None = None

    def attached(self, line: Line) -> None:
        self.line = line

    def transmit(self) -> np.ndarray | None:
        """One frame (int16, FRAME samples) sent into the line; None is silence."""
        return None

    def receive(self, frame: np.ndarray) -> None:
        """One frame heard from the line."""

    def ringing(self, on: bool) -> None:
        """Ringing voltage starts (True) or stops (False)."""

    def caller_id(self, cid: CallerId) -> None:
        """Caller ID delivered in the silence after the first ring."""

    def loop_break(self) -> None:
        """Loop current interrupted briefly: the far end has cleared."""

    def polarity_reversal(self) -> None:
        """Line polarity reversed: the far end answered (where the exchange signals it)."""


class Line:
    """One subscriber line: a number, its endpoint and its hook state."""

    def __init__(
        self,
        number: str,
        endpoint: Endpoint,
        on_hook_change: Callable[[Line], None],
        label: str | None = None,
    ) -> None:
        self.number = number
        self.endpoint = endpoint
        self.label = label or number
        self.off_hook = False
        self._on_hook_change = on_hook_change
        endpoint.attached(self)

    def lift(self) -> None:
        """Go off hook: answer a ringing line or ask for dial tone."""
        if not self.off_hook:
            self.off_hook = True
            self._on_hook_change(self)

    def hang_up(self) -> None:
        """Go on hook: clear the call, or stop asking for dial tone."""
        if self.off_hook:
            self.off_hook = False
            self._on_hook_change(self)

    def __repr__(self) -> str:
        hook = "off-hook" if self.off_hook else "on-hook"
        return f"<Line {self.label} {self.number} {hook}>"

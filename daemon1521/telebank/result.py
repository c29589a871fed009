"""The bank's in-band machine result: DTMF ``A``-``D`` digits no caller can key.

``A0<tracking>#`` says paid with a tracking number; ``A1#`` wrong PIN, and
so on (the profile's ``end.result``). Keys heard from the bank outside such
a frame are ignored; a frame that is malformed (an unknown code, a stray
key inside it) is *garbled*: the payment's outcome is then unknown and the
caller is told to check with the bank.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon1521.telebank.profile import Result

MAX_TRACKING = 20


@dataclass(frozen=True)
class BankResult:
    outcome: str
    """One of the profile's outcomes, or ``garbled``."""
    code: str | None = None
    tracking: str | None = None


class ResultReader:
    """Fed the keys found in the bank's audio; :attr:`result` once a frame is complete."""

    def __init__(self, spec: Result) -> None:
        self.spec = spec
        self.result: BankResult | None = None
        self._frame: list[str] | None = None

    def key(self, key: str) -> BankResult | None:
        if self.result is not None:
            return self.result
        if self._frame is None:
            if key == self.spec.start:
                self._frame = []
            elif key in "ABCD":
                self.result = BankResult("garbled")
            return self.result
        if key == self.spec.end:
            self.result = self._decode(self._frame)
        elif key.isdigit() and len(self._frame) <= MAX_TRACKING:
            self._frame.append(key)
        else:
            self.result = BankResult("garbled")
        return self.result

    def _decode(self, frame: list[str]) -> BankResult:
        if not frame or frame[0] not in self.spec.codes:
            return BankResult("garbled", frame[0] if frame else None)
        code, tracking = frame[0], "".join(frame[1:]) or None
        outcome = self.spec.codes[code]
        if outcome == "paid" and tracking is None:
            return BankResult("garbled", code)
        return BankResult(outcome, code, tracking)

    @property
    def started(self) -> bool:
        """The bank has begun its machine result (or garbled one): what follows is
        not for the caller's ears."""
        return self._frame is not None or self.result is not None

    def ended(self) -> BankResult | None:
        """The result at the end of the leg: a frame left open is garbled."""
        if self.result is None and self._frame is not None:
            self.result = BankResult("garbled")
        return self.result

"""The dial string of ``ATD``: what to key, where to pause, whether to stay in command state.

V.250 section 6.3.1: digits ``0-9 * # A-D``; ``,`` pauses S8 seconds; ``W``
waits for a (second) dial tone; ``!`` flashes the hook; ``;`` at the end
returns to command state after dialling (the voice-call form). ``T`` and
``P`` select tone or pulse dialling, ``R`` reverse mode and ``@`` quiet
answer; punctuation people write in numbers is ignored, as V.250 says of any
character the DCE does not know. Stored numbers (``S=n``, ``L``) are not
emulated and make the command fail.
"""

from __future__ import annotations

from dataclasses import dataclass

DIGITS = frozenset("0123456789*#ABCD")
MODIFIERS = frozenset(",W!")
IGNORED = frozenset("TPR@ -().")


class DialStringError(ValueError):
    pass


@dataclass(frozen=True)
class DialString:
    steps: tuple[str, ...]
    """Digits and the modifiers ``,`` ``W`` ``!``, in order."""
    semicolon: bool

    @property
    def digits(self) -> str:
        return "".join(s for s in self.steps if s in DIGITS)


def parse_dial(text: str) -> DialString:
    steps: list[str] = []
    semicolon = False
    for ch in text.upper():
        if semicolon:
            break
        if ch in DIGITS or ch in MODIFIERS:
            steps.append(ch)
        elif ch == ";":
            semicolon = True
        elif ch in ("S", "L"):
            raise DialStringError("stored numbers are not emulated")
        elif ch in IGNORED or ord(ch) < 0x20:
            continue
        # V.250: characters the DCE does not recognise are ignored
    return DialString(tuple(steps), semicolon)

"""What every part of the emulated chip shares: its mode and timed-command types,
the handler result meaning "still running", and the guard for callbacks.

Kept apart from :mod:`voicemodem` so that the mixins the chip is built from
import these without importing the chip (no import cycle).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from daemon1521.emulator.modem.voicemodem import VoiceModem

Mode = Literal["command", "tx", "rx", "duplex", "proc"]
Proc = Generator[None, None, str]

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

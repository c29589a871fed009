"""Emulated V.253 voice modems, byte for byte, on pseudo-terminals.

Built from ITU-T V.250 / V.253 and the chip facts in
``shared/design/VOICE-MODEMS.md``, never from the daemon's own modem
driver (nothing here imports ``daemon1521.modem``, ``ivr`` or ``telebank``),
so that a misunderstanding in the driver is not mirrored in the test bed.

    modem = EmulatedModem(clock, "conexant-cx93001", link=tmp_path / "ttyModem0")
    exchange.add_line("5550001", modem)
    async with modem:
        ...  # the host opens modem.path like /dev/ttyACM0
"""

from daemon1521.emulator.modem.personality import (
    Personality,
    PersonalityError,
    available_personalities,
    load_personality,
    parse_personality,
)
from daemon1521.emulator.modem.serve import EmulatedModem
from daemon1521.emulator.modem.voicemodem import VoiceModem

__all__ = [
    "EmulatedModem",
    "Personality",
    "PersonalityError",
    "VoiceModem",
    "available_personalities",
    "load_personality",
    "parse_personality",
]

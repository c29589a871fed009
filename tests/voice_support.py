"""What the VoiceModem integration tests share: an emulated site, calls, and the ear.

Every test drives the real driver over a real pseudo-terminal against an
emulated modem of one personality, and judges it by what the far phone heard
and what the driver returned. Time: the exchange clock runs as fast as the
host allows unless a test asks for a speed, and the driver runs on that same
clock; every duration below is emulated seconds. ``REAL_LIMIT`` (real seconds) bounds each
scenario so a hang fails fast instead of waiting for pytest's timeout.

The barge-in test reads one private attribute of the emulated modem (its
sink to the host) to date the chip's key report; nothing reads the driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from daemon1521.dsp import codecs
from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.emulator.clock import FRAME
from daemon1521.emulator.exchange import Presentation
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.rig import Rig, wait_cancelled
from daemon1521.emulator.toneplan import TonePlan
from daemon1521.modem.voice import IncomingCall, VoiceModem

PERSONALITIES = (
    "conexant-cx93001",
    "conexant-cx93001-v2013",
    "usr-5637",
    "generic-v253",
    "field-quirks",
    "multitech-mt5634zpx",
)
REAL_LIMIT = 20.0
CALLER = "09121234567"
LOUD = 300
"""A received sample above this (about -40 dBm0) is sound, not silence."""

# What the driver should make of each emulated chip (VOICE-MODEMS.md, and the
# personality files' own comments): the firmware profile it picks, and the
# codec it chooses from the chip's +VSM=? listing.
EXPECTED_PROFILE = {
    "conexant-cx93001": "conexant-cx930xx",
    "conexant-cx93001-v2013": "conexant-cx930xx",
    "usr-5637": "usr-5637",
    "generic-v253": "generic-v253",
    "field-quirks": "generic-v253",
    "multitech-mt5634zpx": "agere-mt5634zpx",
}
EXPECTED_CODEC = {
    "conexant-cx93001": ("u8", 1),  # no G.711 on this firmware revision
    "conexant-cx93001-v2013": ("ulaw", 131),  # V0.2013 lists Mu-Law
    "usr-5637": ("ulaw", 131),
    "generic-v253": ("ulaw", 4),
    "field-quirks": ("ulaw", 131),  # from the listing: the generic table says 4
    "multitech-mt5634zpx": ("ulaw", 131),
}


@contextlib.asynccontextmanager
async def emulated_site(
    personality: str,
    *,
    speed: float | None = None,
    plan: TonePlan | None = None,
    real_limit: float = REAL_LIMIT,
    **modem_options: Any,
) -> AsyncIterator[tuple[Rig, VoiceModem]]:
    """A one-line exchange with the driver opened on its modem; all closed after."""
    async with asyncio.timeout(real_limit):
        async with Rig(1, [personality], speed=speed, plan=plan or TonePlan()) as rig:
            modem = VoiceModem(str(rig.modems[0].link), clock=rig.clock, **modem_options)
            try:
                await modem.open()
                yield rig, modem
            finally:
                await modem.close()


async def call_in(
    rig: Rig,
    modem: VoiceModem,
    caller: str = CALLER,
    presentation: Presentation = "number",
) -> tuple[Phone, IncomingCall]:
    """A subscriber calls the service number; the driver waits, answers; both connected."""
    phone = rig.phone(caller, presentation)
    dialling = asyncio.create_task(phone.dial(rig.service_number))
    try:
        incoming = await modem.wait_for_call(timeout=30)
        assert incoming is not None, "no call came"
        await modem.answer()
        outcome = await dialling
    finally:
        if not dialling.done():
            await wait_cancelled(dialling)
    assert outcome == "answered"
    return phone, incoming


def frame_of(rig: Rig, phone: Phone, sample: int) -> int:
    """The exchange frame in which ``phone`` received sample ``sample`` of :attr:`Phone.heard`.

    The phone's tape grows by one frame per tick while it is off hook, and
    between ticks the clock already points at the next frame.
    """
    last = len(phone.heard) - 1
    return rig.clock.frame - 1 - (last - sample) // FRAME


def sound_frames(rig: Rig, phone: Phone, since: int = 0) -> np.ndarray:
    """Frames (exchange frame numbers) after sample ``since`` in which the phone heard sound."""
    heard = phone.heard[since:].astype(np.int32)
    whole = len(heard) - len(heard) % FRAME
    loud = np.abs(heard[:whole].reshape(-1, FRAME)).max(axis=1) > LOUD
    first = frame_of(rig, phone, since)
    return first + np.flatnonzero(loud)


def dtmf_heard(audio: np.ndarray) -> str:
    """The keys a DTMF receiver hears in ``audio``, one per press."""
    detector = DtmfDetector()
    events = detector.feed(np.asarray(audio, dtype=np.int16))
    events += detector.feed(np.zeros(800, dtype=np.int16))
    return "".join(e.key for e in events if e.kind == "down")


def awkward_audio(codec: str, seconds: float = 0.5) -> bytes:
    """Encoded audio full of the bytes shielding must get right, and no padding look-alike.

    Every byte value appears (0x10 DLE in runs and before ETX, SUB, CAN, !,
    XON/XOFF, CR...), except those that decode to the same sample as the
    modem's underrun padding, so that the audio can be found again in what
    the phone heard whatever silence an underrun slipped in.
    """
    pad = codecs.decode(codecs.silence(codec, 1), codec)[0]
    width = codecs.bytes_per_sample(codec)
    nasty = b"\x10\x10\x10\x03\x10\x1a\x10\x18\x10!\x10\x11\x13\x0d\x0a\x10\x10\x03\x03"
    rng = np.random.default_rng(1521)
    body = rng.integers(0, 256, size=round(seconds * 8000 * width), dtype=np.uint8).tobytes()
    raw = (nasty + bytes(range(256)) + body)[: len(body)]
    raw = raw[: len(raw) - len(raw) % width]
    samples = codecs.decode(raw, codec)
    keep = samples != pad
    if width == 1:
        return bytes(np.frombuffer(raw, dtype=np.uint8)[keep])
    return samples[keep].astype("<i2").tobytes()


def contains_exactly(heard: np.ndarray, expected: np.ndarray, pad: int) -> bool:
    """``expected`` appears in ``heard``, sample for sample, once padding is left out."""
    stream = heard[heard != pad].astype(np.int16).tobytes()
    wanted = expected.astype(np.int16).tobytes()
    start = stream.find(wanted)
    while start >= 0 and start % 2:
        start = stream.find(wanted, start + 1)
    return start >= 0


async def collect_keys(modem: VoiceModem, count: int, timeout: float = 8.0) -> list[str]:
    """Keys as the IVR takes them: one next_key() at a time until ``count`` or a timeout."""
    keys: list[str] = []
    while len(keys) < count:
        key = await modem.next_key(timeout)
        if key is None:
            break
        keys.append(key)
    return keys

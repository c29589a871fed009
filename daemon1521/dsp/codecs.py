"""Sample formats that voice modems stream, to and from 16-bit linear samples.

A voice modem moves audio as one of a few byte formats (chosen with
``AT+VSM``): 8-bit unsigned linear, 16-bit signed little-endian linear, or
ITU-T G.711 A-law / mu-law. Everything above the modem works on numpy int16
arrays at 8000 Hz; this module is the one place that knows the byte formats.

G.711 is done with lookup tables: 256 entries to decode, 65536 entries (one
per int16 value) to encode. They are built once, on first use, and make a
second of audio a single numpy ``take`` either way.

The G.711 tables agree with the classic reference implementation that most
telephony software uses (and Python's former ``audioop``): A-law works on the
13 most significant bits with negative values taken as one's complement;
mu-law works on the 14 most significant bits, rounding negative values away
from zero, and clips at the top of the last segment.
"""

from __future__ import annotations

from functools import cache

import numpy as np

CODECS = ("u8", "s16le", "alaw", "ulaw")

_BYTES_PER_SAMPLE = {"u8": 1, "s16le": 2, "alaw": 1, "ulaw": 1}

#: The byte (pattern) a codec uses for a zero sample.
_SILENCE = {"u8": b"\x80", "s16le": b"\x00\x00", "alaw": b"\xd5", "ulaw": b"\xff"}

#: G.711 bytes are sent with some bits inverted so that an idle line is not a
#: run of zeros: A-law inverts the even bits, mu-law inverts every bit.
_ALAW_XOR = 0x55
_ULAW_XOR = 0xFF
#: mu-law's bias (in 16-bit units): segments are octaves of magnitude + bias.
_ULAW_BIAS = 132

_INT16_MIN = -32768
_INT16_MAX = 32767


def _check(codec: str) -> None:
    if codec not in _BYTES_PER_SAMPLE:
        raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")


def bytes_per_sample(codec: str) -> int:
    """How many bytes one sample takes in ``codec``."""
    _check(codec)
    return _BYTES_PER_SAMPLE[codec]


def silence(codec: str, n: int) -> bytes:
    """``n`` samples of digital silence in ``codec``."""
    _check(codec)
    if n < 0:
        raise ValueError(f"negative sample count {n}")
    return _SILENCE[codec] * n


def _as_int16(samples: np.ndarray) -> np.ndarray:
    """Samples as int16; other numeric dtypes are rounded and clipped, not wrapped."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr.ravel()
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    return np.clip(arr, _INT16_MIN, _INT16_MAX).astype(np.int16).ravel()


def encode(samples: np.ndarray, codec: str) -> bytes:
    """Encode int16 samples to the byte stream of ``codec``."""
    _check(codec)
    x = _as_int16(samples)
    if codec == "s16le":
        return x.astype("<i2", copy=False).tobytes()
    if codec == "u8":
        # round to the nearest step of 256 instead of truncating
        wide = (x.astype(np.int32) + 128) >> 8
        return (np.minimum(wide, 127) + 128).astype(np.uint8).tobytes()
    table = _alaw_encode_table() if codec == "alaw" else _ulaw_encode_table()
    return table.take(x.view(np.uint16)).tobytes()


def decode(data: bytes, codec: str) -> np.ndarray:
    """Decode a byte stream of ``codec`` to int16 samples."""
    _check(codec)
    raw = np.frombuffer(data, dtype=np.uint8)
    if codec == "s16le":
        if len(raw) % 2:
            raise ValueError(f"s16le data has an odd byte count ({len(raw)})")
        return raw.view("<i2").astype(np.int16)
    if codec == "u8":
        return ((raw.astype(np.int16) - 128) << 8).astype(np.int16)
    table = _alaw_decode_table() if codec == "alaw" else _ulaw_decode_table()
    return table.take(raw)


# --- G.711 tables -----------------------------------------------------------
#
# Both laws split the magnitude range into 8 segments of 16 equal steps; a
# code is sign + segment (3 bits) + step (4 bits). Below, a "level" is the
# 7-bit segment/step index 0..127 of a magnitude, and decoding gives the
# middle of that level's interval.


def _alaw_level(mag13: np.ndarray) -> np.ndarray:
    """A-law level of 13-bit magnitudes (0..4095)."""
    seg = np.zeros_like(mag13)
    # segment 0 and 1 have the same step (2); segment s >= 1 starts at 2**(s+4)
    for s in range(1, 8):
        seg[mag13 >= (1 << (s + 4))] = s
    shift = np.maximum(seg, 1)
    step = (mag13 >> shift) & 0x0F
    return (seg << 4) | step


def _ulaw_level(mag14: np.ndarray) -> np.ndarray:
    """mu-law level of 14-bit magnitudes (clipped to the top level)."""
    biased = np.minimum(mag14 + (_ULAW_BIAS >> 2), 8159)
    seg = np.zeros_like(biased)
    for s in range(1, 8):
        seg[biased >= (1 << (s + 5))] = s
    step = (biased >> (seg + 1)) & 0x0F
    return (seg << 4) | step


@cache
def _alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    c = codes ^ _ALAW_XOR
    seg = (c >> 4) & 0x07
    step = c & 0x0F
    # interval start in 16-bit units: segment 0 starts at 0 with step 16,
    # segment s >= 1 starts at 2**(s+7) with step 2**(s+3)
    width = np.where(seg == 0, 16, 8 << seg)
    start = np.where(seg == 0, 0, 128 << seg) + step * width
    mag = start + width // 2
    return np.where(c & 0x80, mag, -mag).astype(np.int16)


@cache
def _ulaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    c = codes ^ _ULAW_XOR
    seg = (c >> 4) & 0x07
    step = c & 0x0F
    mag = (((step << 3) + _ULAW_BIAS) << seg) - _ULAW_BIAS
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


@cache
def _alaw_encode_table() -> np.ndarray:
    x = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    negative = x < 0
    mag13 = np.where(negative, ~x, x) >> 3
    level = _alaw_level(mag13)
    sign = np.where(negative, 0x00, 0x80)
    return ((sign | level) ^ _ALAW_XOR).astype(np.uint8)


@cache
def _ulaw_encode_table() -> np.ndarray:
    x = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
    negative = x < 0
    # arithmetic shift floors, so negative values round away from zero
    mag14 = np.abs(x >> 2)
    level = _ulaw_level(mag14)
    sign = np.where(negative, 0x80, 0x00)
    return ((sign | level) ^ _ULAW_XOR).astype(np.uint8)

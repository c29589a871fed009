"""Voice-modem sample formats: exact byte round trips, bounded sample errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from daemon1521.dsp import codecs
from daemon1521.dsp.codecs import CODECS, bytes_per_sample, decode, encode, silence

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
int16_arrays = hnp.arrays(np.int16, st.integers(0, 400))

#: mu-law has two codes for zero; the negative one (0x7F) decodes to 0, and 0
#: encodes as the positive one (0xFF), so 0x7F alone does not survive a round trip.
ULAW_NEGATIVE_ZERO = 0x7F


def max_error(codec: str, x: np.ndarray) -> np.ndarray:
    """Half a quantisation step at each sample (what a codec may lose)."""
    mag = np.abs(x.astype(np.int64))
    if codec == "alaw":
        return mag / 32 + 8
    if codec == "ulaw":
        return (mag + 132) / 32 + 4
    if codec == "u8":
        return np.where(x > 32639, 255, 128)
    return np.zeros(len(x))


def test_codec_names_and_sizes():
    assert CODECS == ("u8", "s16le", "alaw", "ulaw")
    assert [bytes_per_sample(c) for c in CODECS] == [1, 2, 1, 1]


@pytest.mark.parametrize("func", [bytes_per_sample, lambda c: silence(c, 3)])
def test_unknown_codec_is_named(func):
    with pytest.raises(ValueError, match="gsm610"):
        func("gsm610")


def test_unknown_codec_in_encode_and_decode():
    with pytest.raises(ValueError, match="adpcm"):
        encode(np.zeros(4, np.int16), "adpcm")
    with pytest.raises(ValueError, match="adpcm"):
        decode(b"\x00\x00", "adpcm")


def test_s16le_odd_byte_count_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        decode(b"\x00\x01\x02", "s16le")


@pytest.mark.parametrize("codec", CODECS)
def test_silence_decodes_to_zeros(codec):
    data = silence(codec, 160)
    assert len(data) == 160 * bytes_per_sample(codec)
    # A-law has no zero: its idle code is the smallest positive level, +8
    assert (np.abs(decode(data, codec)) <= (8 if codec == "alaw" else 0)).all()
    assert encode(np.zeros(160, np.int16), codec) == data
    assert silence(codec, 0) == b""


def test_silence_bytes():
    assert silence("u8", 2) == b"\x80\x80"
    assert silence("alaw", 1) == b"\xd5"
    assert silence("ulaw", 1) == b"\xff"


@pytest.mark.parametrize("codec", CODECS)
def test_decode_gives_int16(codec):
    out = decode(silence(codec, 5), codec)
    assert out.dtype == np.int16 and out.shape == (5,)


def test_every_alaw_byte_round_trips():
    every = bytes(range(256))
    assert encode(decode(every, "alaw"), "alaw") == every


def test_every_ulaw_byte_but_negative_zero_round_trips():
    others = bytes(b for b in range(256) if b != ULAW_NEGATIVE_ZERO)
    assert encode(decode(others, "ulaw"), "ulaw") == others
    assert decode(bytes([ULAW_NEGATIVE_ZERO]), "ulaw")[0] == 0
    assert encode(np.zeros(1, np.int16), "ulaw") == b"\xff"


@pytest.mark.parametrize("codec", ["u8", "s16le"])
def test_every_linear_byte_round_trips(codec):
    every = bytes(range(256)) * 2
    assert encode(decode(every, codec), codec) == every


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_alaw_bytes_round_trip(data):
    assert encode(decode(data, "alaw"), "alaw") == data


@settings(max_examples=200)
@given(st.binary(max_size=300).map(lambda b: b.replace(bytes([ULAW_NEGATIVE_ZERO]), b"\xff")))
def test_ulaw_bytes_round_trip(data):
    assert encode(decode(data, "ulaw"), "ulaw") == data


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_u8_bytes_round_trip(data):
    assert encode(decode(data, "u8"), "u8") == data


@settings(max_examples=200)
@given(st.binary(max_size=300).filter(lambda b: len(b) % 2 == 0))
def test_s16le_bytes_round_trip(data):
    assert encode(decode(data, "s16le"), "s16le") == data


@settings(max_examples=200)
@given(int16_arrays)
def test_s16le_samples_round_trip(x):
    assert np.array_equal(decode(encode(x, "s16le"), "s16le"), x)


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=100)
@given(x=int16_arrays)
def test_samples_round_trip_within_quantisation(codec, x):
    y = decode(encode(x, codec), codec)
    assert y.shape == x.shape
    err = np.abs(y.astype(np.int64) - x.astype(np.int64))
    assert (err <= max_error(codec, x)).all()


@pytest.mark.parametrize("codec", CODECS)
def test_every_int16_value_within_quantisation(codec):
    y = decode(encode(ALL_INT16, codec), codec)
    err = np.abs(y.astype(np.int64) - ALL_INT16.astype(np.int64))
    assert (err <= max_error(codec, ALL_INT16)).all()


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_is_monotonic_and_symmetric(codec):
    y = decode(encode(ALL_INT16, codec), codec).astype(np.int64)
    assert (np.diff(y) >= 0).all()
    positive = decode(encode(np.arange(1, 32767, dtype=np.int16), codec), codec)
    negative = decode(encode(-np.arange(1, 32767, dtype=np.int16), codec), codec)
    # one's-complement / rounding conventions shift negatives by at most one level
    assert (np.abs(positive.astype(np.int64) + negative) <= max_error(codec, positive) * 2).all()


def test_u8_layout():
    assert decode(b"\x80\x81\x7f\x00\xff", "u8").tolist() == [0, 256, -256, -32768, 32512]
    assert encode(np.array([0, 127, 128, -129, 32767, -32768], np.int16), "u8") == bytes(
        [0x80, 0x80, 0x81, 0x7F, 0xFF, 0x00]
    )


def test_s16le_is_little_endian():
    assert encode(np.array([0x1234, -2], np.int16), "s16le") == b"\x34\x12\xfe\xff"


def test_known_g711_values():
    # well-known code points: the loudest codes and the smallest steps
    assert decode(b"\xaa\x2a\xd5\x55", "alaw").tolist() == [32256, -32256, 8, -8]
    assert decode(b"\x80\x00\xff\x7f\xfe", "ulaw").tolist() == [32124, -32124, 0, 0, 8]


def test_non_int16_input_is_clipped_not_wrapped():
    assert decode(encode(np.array([40000.4, -1e9, 1.6]), "s16le"), "s16le").tolist() == [
        32767,
        -32768,
        2,
    ]
    assert decode(encode(np.array([70000], np.int64), "s16le"), "s16le").tolist() == [32767]


def test_g711_tables_are_built_once():
    assert codecs._alaw_encode_table() is codecs._alaw_encode_table()
    assert codecs._ulaw_decode_table() is codecs._ulaw_decode_table()
    assert codecs._alaw_encode_table().shape == (65536,)
    assert codecs._ulaw_decode_table().shape == (256,)


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_g711_agrees_with_reference_implementation(codec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    to_law = audioop.lin2alaw if codec == "alaw" else audioop.lin2ulaw
    from_law = audioop.alaw2lin if codec == "alaw" else audioop.ulaw2lin
    assert encode(ALL_INT16, codec) == to_law(ALL_INT16.tobytes(), 2)
    every = bytes(range(256))
    assert np.array_equal(decode(every, codec), np.frombuffer(from_law(every, 2), np.int16))

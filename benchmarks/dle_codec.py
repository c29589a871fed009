"""Throughput of the DLE codec and of the AT parser's data mode, in voice lines.

A line in +VTX or +VRX carries 8000 bytes a second of 8-bit audio (G.711 or
unsigned linear), about 8031 once every 0x10 is doubled. The figures say how
many such streams one core can shield, decode and parse, and how the cost
changes with the size of the reads a USB modem delivers.

Run: ``.venv/bin/python benchmarks/dle_codec.py`` (a few seconds).
Not a test: it prints figures, it asserts nothing about speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from daemon1521.modem.at import ResponseParser
from daemon1521.modem.dle import DLE, DleDecoder, shield

LINE_BYTES_PER_SECOND = 8000
AUDIO_SECONDS = 60
READ_SIZES = (64, 512, 4096)
MIN_RUN_SECONDS = 0.4


def audio() -> bytes:
    """A minute of 8-bit audio with every byte value (0x10 about once in 256)."""
    rng = np.random.default_rng(1521)
    return rng.integers(0, 256, AUDIO_SECONDS * LINE_BYTES_PER_SECOND, dtype=np.uint8).tobytes()


def with_events(shielded: bytes, every: int = 4000) -> bytes:
    """A modem's +VRX stream: the audio plus a DTMF event every half second."""
    pieces = [shielded[i : i + every] for i in range(0, len(shielded), every)]
    # never cut a DLE DLE pair: move a piece's trailing lone DLE to the next one
    fixed: list[bytes] = []
    carry = b""
    for piece in pieces:
        piece = carry + piece
        trailing = len(piece) - len(piece.rstrip(DLE))
        carry = DLE if trailing % 2 else b""
        fixed.append(piece[: len(piece) - len(carry)])
    return (DLE + b"5").join(fixed) + carry


def timed(work: Callable[[], object]) -> float:
    """Seconds per call of ``work``, repeated for at least MIN_RUN_SECONDS."""
    runs = 0
    start = time.perf_counter()
    while True:
        work()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_RUN_SECONDS:
            return elapsed / runs


def report(name: str, payload_bytes: int, seconds: float) -> None:
    rate = payload_bytes / seconds
    lines = rate / LINE_BYTES_PER_SECOND
    print(f"{name:<50} {rate / 1e6:>8.1f} MB/s {lines:>10,.0f} lines")


def main() -> None:
    raw = audio()
    shielded = shield(raw)
    stream = with_events(shielded)
    print(f"{'(per core)':<50} {'audio':>13} {'real-time':>10}")
    report("shield (host to modem, +VTX)", len(raw), timed(lambda: shield(raw)))

    for size in READ_SIZES:
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]

        def decode(chunks: list[bytes] = chunks) -> None:
            decoder = DleDecoder()
            for chunk in chunks:
                decoder.feed(chunk)

        report(f"DleDecoder.feed, {size}-byte reads", len(raw), timed(decode))

    for size in READ_SIZES:
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]

        def parse(chunks: list[bytes] = chunks) -> None:
            parser = ResponseParser()
            parser.arm_data_mode()
            parser.feed(b"\r\nCONNECT\r\n")
            for chunk in chunks:
                parser.feed(chunk)

        report(f"ResponseParser (+VRX data mode), {size}-byte reads", len(raw), timed(parse))

    decoded = b"".join(x for x in DleDecoder().feed(stream) if isinstance(x, bytes))
    print(f"round trip exact: {decoded == raw}")


if __name__ == "__main__":
    main()

"""Fault: an upload whose header promises hours of audio, or a sample rate no
recorder makes, is refused from the header, in bounded memory (issue 9, item 4).

Each upload runs as a child process with its address space capped, so a
regression fails here instead of taking the host's memory, and the child's
own peak RSS is read back from ``wait4``.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon1521.audio.soundfile_io import AudioFileError, read_audio
from tests.cli_support import console_script, run_capped

ADDRESS_SPACE = 1 << 30
"""The child's cap; a normal upload peaks near 45 MB resident."""
PEAK_RSS_KB = 150_000


def _upload(tmp_path: Path, source: Path, *extra: str) -> tuple[int, str, int]:
    """Exit status, output and peak RSS (kB) of ``daemon1521 prompts upload welcome SOURCE``."""

    out_path = tmp_path / "output"
    with out_path.open("wb") as out:
        code, peak = run_capped(
            [
                console_script(),
                "prompts",
                "upload",
                "welcome",
                str(source),
                "--uploads",
                str(tmp_path / "uploads"),
                *extra,
            ],
            ADDRESS_SPACE,
            120.0,
            tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return code, out_path.read_text(errors="replace"), peak // 1024


def _wav_header(rate: int, data_bytes: int, channels: int = 1) -> bytes:
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def test_a_wav_whose_header_says_1_hz_is_refused_from_the_header(tmp_path: Path) -> None:
    source = tmp_path / "one-hertz.wav"
    samples = (np.sin(np.arange(16_000) / 3) * 8000).astype("<i2")
    source.write_bytes(_wav_header(1, samples.nbytes) + samples.tobytes())  # 32 KB
    code, output, peak = _upload(tmp_path, source)
    assert code == 4, output
    assert "sample rate" in output and "1 Hz" in output, output
    assert "Traceback" not in output
    assert peak < PEAK_RSS_KB, peak
    assert not (tmp_path / "uploads" / "fa" / "welcome.wav").exists()


def test_hours_of_audio_are_refused_from_the_header(tmp_path: Path) -> None:
    source = tmp_path / "three-hours.wav"
    data_bytes = 3 * 3600 * 48_000 * 4  # 3 h of 48 kHz stereo: 2 GB, sparse on disk
    with source.open("wb") as out:
        out.write(_wav_header(48_000, data_bytes, channels=2))
        out.truncate(44 + data_bytes)
    code, output, peak = _upload(tmp_path, source)
    assert code == 4, output
    assert "too long" in output and "10800" in output, output
    assert "Traceback" not in output
    assert peak < PEAK_RSS_KB, peak


def test_a_long_flac_is_refused_without_decoding_it(tmp_path: Path) -> None:
    source = tmp_path / "long.flac"
    with sf.SoundFile(source, "w", samplerate=8000, channels=1, format="FLAC") as out:
        block = np.zeros(8000 * 60, dtype=np.int16)
        for _ in range(20):  # 20 minutes of near-silence: a few kB of FLAC
            out.write(block)
    code, output, peak = _upload(tmp_path, source, "--max-seconds", "30")
    assert code == 4, output
    assert "too long" in output and "1200" in output, output
    assert peak < PEAK_RSS_KB, peak


def test_a_good_upload_still_works_and_stays_small(tmp_path: Path) -> None:
    source = tmp_path / "ok.wav"
    t = np.arange(44_100 * 2) / 44_100
    sf.write(source, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.3, 44_100)
    code, output, peak = _upload(tmp_path, source)
    assert code == 0, output
    assert peak < PEAK_RSS_KB, peak
    stored = read_audio(tmp_path / "uploads" / "fa" / "welcome.wav")
    assert stored.source_rate == 8000 and abs(stored.duration - 2.0) < 0.01


def test_every_read_honours_its_length_bound(tmp_path: Path) -> None:
    source = tmp_path / "two-seconds.wav"
    sf.write(source, np.full(16_000, 0.1), 8000)
    with pytest.raises(AudioFileError, match="too long"):
        read_audio(source, max_seconds=1.0)
    with source.open("rb") as stream, pytest.raises(AudioFileError, match="too long"):
        read_audio(stream, max_seconds=1.0)
    assert read_audio(source, max_seconds=2.0).duration == pytest.approx(2.0)

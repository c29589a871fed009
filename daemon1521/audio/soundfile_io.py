"""Audio files in and out (any format libsndfile reads, to 8 kHz mono int16), and levels.

Prompts arrive as whatever an operator's recorder or the synthesiser writes
(44.1 kHz stereo WAV, FLAC, Ogg, MP3 with a recent libsndfile). Everything
above this module works on one shape only: 8 kHz, mono, signed 16-bit
samples in a numpy array. Decoding is soundfile's, resampling is soxr's.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

LINE_RATE = 8000
"""Sample rate of a telephone line's voice channel, Hz."""

RESAMPLE_QUALITY = "HQ"
"""soxr quality: deterministic and clean enough for 8 kHz speech."""

_INT16_SCALE = 32768.0

MAX_SECONDS = 900.0
"""The longest audio any read decodes; the longest prompt allows 300 s."""
MIN_SOURCE_RATE = 4000
MAX_SOURCE_RATE = 384_000
"""Sample rates a recording can have; outside them the header is lying."""
MAX_CHANNELS = 8
BLOCK_FRAMES = 1 << 16
"""Frames decoded at a time: memory stays bounded by the block, not the file."""


class AudioFileError(ValueError):
    """A file that cannot be read as audio; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class AudioTooLongError(AudioFileError):
    """Longer than the reader was allowed to decode; ``seconds`` when the header said."""

    def __init__(self, source: str, seconds: float | None, max_seconds: float) -> None:
        shown = f"{seconds:.1f} s" if seconds is not None else f"over {max_seconds:g} s"
        super().__init__(source, f"too long ({shown}; at most {max_seconds:g} s)")
        self.seconds = seconds
        self.max_seconds = max_seconds


@dataclass(frozen=True)
class DecodedAudio:
    """Samples converted for the line, and what the file held before conversion."""

    samples: np.ndarray
    """int16, mono, at :attr:`rate`."""
    rate: int
    source_rate: int
    source_channels: int
    source_format: str
    """libsndfile's format and subtype, e.g. ``"WAV PCM_16"``."""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate

    @property
    def converted(self) -> bool:
        """Whether anything had to change to reach the line format."""
        return (
            self.source_rate != self.rate
            or self.source_channels != 1
            or self.source_format != "WAV PCM_16"
        )


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Round full-scale float samples (-1.0..1.0) to int16, saturating instead of wrapping."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * _INT16_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, source_rate: int, rate: int = LINE_RATE) -> np.ndarray:
    """Float mono samples from ``source_rate`` to ``rate`` (a copy when the rates match)."""
    data = np.ascontiguousarray(samples, dtype=np.float32)
    if source_rate == rate:
        return data.copy()
    return soxr.resample(data, source_rate, rate, quality=RESAMPLE_QUALITY)


def read_audio(
    source: str | os.PathLike[str] | BinaryIO,
    rate: int = LINE_RATE,
    max_seconds: float = MAX_SECONDS,
) -> DecodedAudio:
    """Decode any audio file libsndfile knows into mono int16 at ``rate``.

    Channels are averaged (a stereo recording of one voice keeps its level);
    the result is resampled with soxr. The header is checked before anything
    is decoded (a 32 KB file claiming 1 Hz, or 3 h of FLAC, once took
    gigabytes), and decoding goes block by block, stopping past
    ``max_seconds`` whatever the header said. Raises :class:`AudioFileError`
    for a missing, unreadable, empty, undecodable, implausible or too long file.
    """
    label = str(source) if isinstance(source, str | os.PathLike) else repr(source)
    if isinstance(source, str | os.PathLike):
        _check_readable(Path(source), label)
    try:
        with sf.SoundFile(source) as f:
            source_rate = f.samplerate
            channels = f.channels
            fmt = f"{f.format} {f.subtype}"
            _check_header(label, source_rate, channels, f.frames, max_seconds)
            mono = _decode_bounded(f, label, rate, max_seconds)
    except OSError as exc:
        raise AudioFileError(label, f"cannot be read ({exc.strerror or exc})") from None
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(label, f"not a readable audio file ({_reason(exc)})") from None
    if len(mono) == 0:
        raise AudioFileError(label, "contains no audio samples")
    return DecodedAudio(
        samples=float_to_int16(mono),
        rate=rate,
        source_rate=source_rate,
        source_channels=channels,
        source_format=fmt,
    )


def _check_header(
    label: str, source_rate: int, channels: int, frames: int, max_seconds: float
) -> None:
    if not MIN_SOURCE_RATE <= source_rate <= MAX_SOURCE_RATE:
        raise AudioFileError(
            label,
            f"sample rate {source_rate} Hz is not a recording's "
            f"(expected {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz)",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFileError(label, f"{channels} channels (at most {MAX_CHANNELS})")
    if frames > max_seconds * source_rate:
        raise AudioTooLongError(label, frames / source_rate, max_seconds)


def _decode_bounded(f: sf.SoundFile, label: str, rate: int, max_seconds: float) -> np.ndarray:
    """Mono float samples at ``rate``, read and resampled a block at a time."""
    limit = int(max_seconds * f.samplerate)
    stream = (
        None
        if f.samplerate == rate
        else soxr.ResampleStream(f.samplerate, rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    )
    parts: list[np.ndarray] = []
    read = 0
    while True:
        block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        read += len(block)
        if read > limit:
            raise AudioTooLongError(label, None, max_seconds)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        parts.append(mono.copy() if stream is None else stream.resample_chunk(mono))
    if stream is not None and read:
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def read_line_audio(path: str | os.PathLike[str], rate: int = LINE_RATE) -> np.ndarray:
    """Just the converted samples of :func:`read_audio`."""
    return read_audio(path, rate).samples


def wav_bytes(samples: np.ndarray, rate: int = LINE_RATE) -> bytes:
    """A canonical 16-bit mono PCM WAV (44-byte header, no extra chunks) as bytes.

    The same samples always give the same bytes, which keeps generated prompts
    reproducible and their hashes meaningful.
    """
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    if pcm.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {pcm.shape}")
    target = io.BytesIO()
    with sf.SoundFile(
        target, mode="w", samplerate=rate, channels=1, format="WAV", subtype="PCM_16"
    ) as f:
        f.write(pcm)
    return target.getvalue()


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = LINE_RATE) -> Path:
    """Write :func:`wav_bytes` to ``path`` atomically (a reader never sees half a file)."""
    return write_bytes_atomic(path, wav_bytes(samples, rate))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` through a temporary file in the same directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _check_readable(path: Path, label: str) -> None:
    """Name the usual operator mistakes plainly; libsndfile only says "System error"."""
    if not path.exists():
        raise AudioFileError(label, "no such file")
    if path.is_dir():
        raise AudioFileError(label, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioFileError(label, "permission denied")
    if path.stat().st_size == 0:
        raise AudioFileError(label, "is empty")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    # libsndfile prefixes its message with the file's repr; keep only the reason.
    if ": " in text:
        text = text.rsplit(": ", 1)[-1]
    text = text.rstrip(".")
    return (text[:1].lower() + text[1:]) if text else type(exc).__name__


# --- levels -----------------------------------------------------------------
#
# Measurements shared by the synthesiser (trimming, normalising) and the
# upload check (silence, clipping). Levels are dBFS: 0 is a full-scale peak.

FRAME_SECONDS = 0.02
"""Level frames are 20 ms: long enough to hold a pitch period, short enough to find an edge."""

CLIP_LEVEL = 32440
"""|sample| at or above this (-0.09 dBFS) counts as clipped."""

SILENT_DBFS = -200.0
"""What :func:`dbfs` gives for digital silence instead of minus infinity."""


def full_scale(samples: np.ndarray) -> float:
    """The amplitude that is 0 dBFS for this array: 32768 for integers, 1.0 for floats."""
    return 1.0 if np.asarray(samples).dtype.kind == "f" else _INT16_SCALE


def dbfs(amplitude: float, scale: float = _INT16_SCALE) -> float:
    """An amplitude (peak or RMS) in dB relative to ``scale`` (int16 full scale by default)."""
    if amplitude <= 0:
        return SILENT_DBFS
    return float(20.0 * np.log10(amplitude / scale))


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level of int16 or float samples."""
    if len(samples) == 0:
        return SILENT_DBFS
    return dbfs(float(np.max(np.abs(samples.astype(np.float64)))), full_scale(samples))


def frame_levels(samples: np.ndarray, rate: int = LINE_RATE) -> np.ndarray:
    """RMS level in dBFS of each 20 ms frame (a short tail is its own frame)."""
    size = max(1, round(rate * FRAME_SECONDS))
    x = samples.astype(np.float64) / full_scale(samples)
    n_full = len(x) // size
    power = (x[: n_full * size].reshape(n_full, size) ** 2).mean(axis=1)
    if len(x) % size:
        power = np.append(power, (x[n_full * size :] ** 2).mean())
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power)
    return np.maximum(levels, SILENT_DBFS)


def active_level_dbfs(
    samples: np.ndarray,
    rate: int = LINE_RATE,
    floor_dbfs: float = -60.0,
    range_db: float = 30.0,
) -> float:
    """RMS over the frames that carry the sound: how loud the speech itself is.

    A frame counts when it is above ``floor_dbfs`` and within ``range_db`` of
    the loudest frame, so pauses do not pull the figure down and a prompt
    with long gaps normalises to the same perceived level as one without.
    """
    levels = frame_levels(samples, rate)
    if len(levels) == 0:
        return SILENT_DBFS
    active = levels[(levels > floor_dbfs) & (levels > levels.max() - range_db)]
    if len(active) == 0:
        return SILENT_DBFS
    return float(10.0 * np.log10(np.mean(10.0 ** (active / 10.0))))


def clipped_fraction(samples: np.ndarray) -> float:
    """Share of samples at or beyond :data:`CLIP_LEVEL`."""
    if len(samples) == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(samples.astype(np.int32)) >= CLIP_LEVEL) / len(samples))

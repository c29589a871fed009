"""The default prompt set, synthesised with espeak-ng and made fit for a phone line.

Shipped prompts are generated, not hand-made, so that changing a phrase in
the catalogue is an edit and one command. Each prompt is spoken by
espeak-ng, resampled to 8 kHz mono, trimmed of leading and trailing silence
(the IVR inserts its own pauses) and brought to one speech level with a peak
ceiling, so prompts played back to back sound like one voice at one volume.

Generation is reproducible: the same catalogue text, settings and espeak-ng
build give the same bytes. ``manifest.json`` beside the WAVs records, per
prompt, a fingerprint of its input and settings and the hash of the file, so
a run rewrites only the prompts whose input changed (or whose file was
edited or lost) and a checkout stays quiet in version control.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from daemon1521.audio.prompts import PromptCatalog, PromptEntry
from daemon1521.audio.soundfile_io import (
    LINE_RATE,
    SILENT_DBFS,
    active_level_dbfs,
    float_to_int16,
    peak_dbfs,
    resample,
    wav_bytes,
    write_bytes_atomic,
)

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT = 60.0
MANIFEST_FILE = "manifest.json"
SYNTH_VERSION = 1
"""Bump when the processing below changes what a given input produces."""

# The hold chime: two soft bell-like notes ("ding-dong"), E5 then C5, then
# quiet until the loop restarts. It keeps clear of what line equipment
# listens for: the 425 Hz Iranian call-progress tones (an echo must not pass
# for busy tone), the 1100 Hz fax and 1300 Hz data calling tones (hence a
# third partial, not the octave, whose 1318 Hz would be near 1300), and DTMF
# (one note at a time, no partial within 3.5 % of a DTMF frequency).
CHIME_NOTES: tuple[tuple[float, float], ...] = ((0.0, 659.25), (0.45, 523.25))
"""(start seconds, frequency Hz) of each note."""
CHIME_DECAY_SECONDS = 0.28
CHIME_NOTE_SECONDS = 1.4
CHIME_ATTACK_SECONDS = 0.006
CHIME_RELEASE_SECONDS = 0.1
CHIME_PARTIAL = (3.0, 0.15)
"""(multiple of the note, relative amplitude) of the one partial, for a bell rather than a beep."""
CHIME_PEAK_DBFS = -12.0
FADE_SECONDS = 0.005


class SynthError(RuntimeError):
    """The synthesiser could not produce a prompt."""


@dataclass(frozen=True)
class SynthSettings:
    """Everything besides the text that decides a synthesised prompt's bytes."""

    voice: str = "fa"
    speed: int = 160
    """espeak-ng words per minute: a little under its brisk default of 175, for a phone line."""
    pitch: int = 50
    speech_dbfs: float = -22.0
    """Target RMS of the speech itself (pauses excluded)."""
    peak_dbfs: float = -3.0
    """Ceiling for any sample; wins over ``speech_dbfs``."""
    trim_dbfs: float = -45.0
    """Below this (relative to the prompt's peak) counts as silence at the edges."""
    lead_seconds: float = 0.02
    tail_seconds: float = 0.04
    """Kept before and after the sound: the attack and the decay of the voice."""
    rate: int = LINE_RATE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SynthReport:
    """What a synthesis run did."""

    directory: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    total_bytes: int = 0
    total_seconds: float = 0.0


# --- sound ------------------------------------------------------------------


def espeak_version(executable: str = ESPEAK) -> str:
    """The espeak-ng version string, e.g. ``1.51``."""
    out = _run([executable, "--version"], b"").decode("utf-8", "replace")
    found = re.search(r"text-to-speech:\s*(\S+)", out)
    if found:
        return found.group(1)
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def espeak_phonemes(text: str, voice: str = "fa", executable: str = ESPEAK) -> str:
    """espeak-ng's phoneme transcription of ``text`` (``-x``): how it will be said."""
    cmd = [executable, "-v", voice, "-q", "-x", "--stdin"]
    return " ".join(_run(cmd, text.encode("utf-8")).decode("utf-8").split())


def speak(text: str, settings: SynthSettings, executable: str = ESPEAK) -> np.ndarray:
    """``text`` spoken by espeak-ng, as float mono samples at ``settings.rate`` (unprocessed)."""
    with tempfile.TemporaryDirectory(prefix="daemon1521-synth-") as tmp:
        out = Path(tmp) / "speech.wav"
        cmd = [executable, "-v", settings.voice, "-s", str(settings.speed)]
        cmd += ["-p", str(settings.pitch), "-w", str(out), "--stdin"]
        _run(cmd, text.encode("utf-8"))
        try:
            data, source_rate = sf.read(str(out), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SynthError(f"espeak-ng wrote no readable audio for {text!r}: {exc}") from None
    if len(data) == 0:
        raise SynthError(f"espeak-ng produced no audio for {text!r}")
    return resample(data.mean(axis=1), source_rate, settings.rate)


def trim(samples: np.ndarray, settings: SynthSettings) -> np.ndarray:
    """Cut leading and trailing silence, keeping a little room for attack and decay."""
    magnitude = np.abs(samples)
    peak = float(magnitude.max()) if len(samples) else 0.0
    if peak == 0.0:
        return samples[:0]
    loud = np.flatnonzero(magnitude > peak * 10 ** (settings.trim_dbfs / 20))
    start = max(0, int(loud[0]) - round(settings.lead_seconds * settings.rate))
    end = min(len(samples), int(loud[-1]) + 1 + round(settings.tail_seconds * settings.rate))
    return samples[start:end]


def normalise(samples: np.ndarray, settings: SynthSettings) -> np.ndarray:
    """Scale to the target speech level, unless that would push a peak over the ceiling."""
    level = active_level_dbfs(samples, settings.rate)
    peak = peak_dbfs(samples)
    if level <= SILENT_DBFS:
        return samples
    gain_db = min(settings.speech_dbfs - level, settings.peak_dbfs - peak)
    return (samples * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def fade(samples: np.ndarray, rate: int) -> np.ndarray:
    """Short raised-cosine fades at both ends, so a cut never clicks."""
    n = min(len(samples) // 2, round(FADE_SECONDS * rate))
    if n == 0:
        return samples
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))).astype(np.float32)
    out = samples.astype(np.float32, copy=True)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def chime(seconds: float, rate: int = LINE_RATE) -> np.ndarray:
    """The hold chime, ``seconds`` long (notes, then quiet), as float samples."""
    total = round(seconds * rate)
    out = np.zeros(total, dtype=np.float64)
    note_len = round(CHIME_NOTE_SECONDS * rate)
    t = np.arange(note_len, dtype=np.float64) / rate
    attack = np.minimum(1.0, t / CHIME_ATTACK_SECONDS)
    release = np.minimum(1.0, (CHIME_NOTE_SECONDS - t) / CHIME_RELEASE_SECONDS)
    envelope = np.exp(-t / CHIME_DECAY_SECONDS) * attack * np.maximum(release, 0.0)
    multiple, weight = CHIME_PARTIAL
    for start_s, freq in CHIME_NOTES:
        start = round(start_s * rate)
        if start >= total:
            continue
        wave = np.sin(2 * np.pi * freq * t) + weight * np.sin(2 * np.pi * multiple * freq * t)
        end = min(total, start + note_len)
        out[start:end] += (envelope * wave)[: end - start]
    peak = np.max(np.abs(out))
    if peak > 0:
        out *= 10 ** (CHIME_PEAK_DBFS / 20) / peak
    return fade(out.astype(np.float32), rate)


def render(entry: PromptEntry, settings: SynthSettings, executable: str = ESPEAK) -> np.ndarray:
    """A prompt's default audio as int16 line samples."""
    if entry.kind == "silence":
        return np.zeros(round((entry.seconds or 0.0) * settings.rate), dtype=np.int16)
    if entry.kind == "chime":
        return float_to_int16(chime(entry.seconds or 0.0, settings.rate))
    spoken = speak(entry.synth_text, settings, executable)
    shaped = fade(normalise(trim(spoken, settings), settings), settings.rate)
    if len(shaped) == 0:
        raise SynthError(f"prompt {entry.name!r}: the synthesiser produced only silence")
    return float_to_int16(shaped)


def fingerprint(entry: PromptEntry, settings: SynthSettings) -> str:
    """Hash of everything that decides a prompt's audio, bar the synthesiser's own build."""
    what: dict[str, Any] = {"synth": SYNTH_VERSION, "kind": entry.kind, "rate": settings.rate}
    if entry.kind == "speech":
        what["text"] = entry.synth_text
        what["settings"] = settings.as_dict()
    else:
        what["seconds"] = entry.seconds
    if entry.kind == "chime":
        what["chime"] = [
            CHIME_NOTES,
            CHIME_DECAY_SECONDS,
            CHIME_NOTE_SECONDS,
            CHIME_ATTACK_SECONDS,
            CHIME_RELEASE_SECONDS,
            CHIME_PARTIAL,
            CHIME_PEAK_DBFS,
            FADE_SECONDS,
        ]
    blob = json.dumps(what, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


# --- the set ----------------------------------------------------------------


def load_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a prompt directory (an empty one when absent or unreadable)."""
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {"prompts": {}}
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        return {"prompts": {}}
    return data


def synthesise(
    catalog: PromptCatalog,
    directory: str | Path | None = None,
    *,
    settings: SynthSettings | None = None,
    only: Iterable[str] | None = None,
    force: bool = False,
    executable: str = ESPEAK,
    progress: Callable[[str, str], None] | None = None,
) -> SynthReport:
    """Generate the default WAVs of ``catalog`` into ``directory`` (its shipped directory).

    Unchanged prompts (same fingerprint, file present with the recorded hash)
    are skipped unless ``force``; a regenerated prompt whose bytes come out
    the same is not rewritten. A full run (no ``only``) also deletes WAVs the
    manifest lists for prompts no longer in the catalogue. ``progress`` is
    called with (name, "written" | "unchanged" | "removed").
    """
    target = Path(directory) if directory is not None else catalog.default_dir
    settings = settings or SynthSettings(voice=catalog.voice)
    names = list(only) if only is not None else catalog.names()
    for name in names:
        catalog.entry(name)  # unknown names fail before anything is written
    if shutil.which(executable) is None and any(catalog.entry(n).kind == "speech" for n in names):
        raise SynthError(f"{executable} not found: install the espeak-ng package")
    manifest = load_manifest(target)
    before = json.dumps(manifest, sort_keys=True, ensure_ascii=False)
    records: dict[str, Any] = manifest["prompts"]
    version = espeak_version(executable) if shutil.which(executable) else None
    report = SynthReport(directory=target)
    for name in names:
        entry = catalog.entry(name)
        path = target / f"{name}.wav"
        fp = fingerprint(entry, settings)
        old = records.get(name)
        if (
            not force
            and isinstance(old, dict)
            and old.get("fingerprint") == fp
            and path.is_file()
            and _sha256(path.read_bytes()) == old.get("sha256")
        ):
            report.unchanged.append(name)
            _notify(progress, name, "unchanged")
            continue
        samples = render(entry, settings, executable)
        data = wav_bytes(samples, settings.rate)
        if path.is_file() and path.read_bytes() == data:
            report.unchanged.append(name)
            _notify(progress, name, "unchanged")
        else:
            write_bytes_atomic(path, data)
            report.written.append(name)
            _notify(progress, name, "written")
        record: dict[str, Any] = {
            "fingerprint": fp,
            "sha256": _sha256(data),
            "seconds": round(len(samples) / settings.rate, 4),
        }
        if entry.kind == "speech":
            record["espeak_ng"] = version
        records[name] = record
    if only is None:
        for name in sorted(set(records) - set(catalog.names())):
            (target / f"{name}.wav").unlink(missing_ok=True)
            del records[name]
            report.removed.append(name)
            _notify(progress, name, "removed")
    manifest["generator"] = {"synth_version": SYNTH_VERSION, "settings": settings.as_dict()}
    manifest["prompts"] = dict(sorted(records.items()))
    if json.dumps(manifest, sort_keys=True, ensure_ascii=False) != before:
        text = json.dumps(manifest, sort_keys=True, ensure_ascii=False, indent=1) + "\n"
        write_bytes_atomic(target / MANIFEST_FILE, text.encode("utf-8"))
    for name in catalog.names():
        path = target / f"{name}.wav"
        if path.is_file():
            report.total_bytes += path.stat().st_size
            record = records.get(name)
            if isinstance(record, dict):
                report.total_seconds += float(record.get("seconds", 0.0))
    return report


def with_overrides(settings: SynthSettings, **changes: Any) -> SynthSettings:
    """``settings`` with the non-None ``changes`` applied (for command-line options)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})


def _notify(progress: Callable[[str, str], None] | None, name: str, what: str) -> None:
    if progress is not None:
        progress(name, what)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], stdin: bytes) -> bytes:
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, timeout=ESPEAK_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise SynthError(f"{cmd[0]} not found: install the espeak-ng package") from None
    except subprocess.TimeoutExpired:
        raise SynthError(f"{cmd[0]} did not finish within {ESPEAK_TIMEOUT:g} s") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()
        raise SynthError(f"{' '.join(cmd[:3])} failed ({done.returncode}): {err}")
    return done.stdout

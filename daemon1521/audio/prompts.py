"""The prompt catalogue, the per-codec prompt cache, and the operators' upload store.

A language's prompts are defined by ``prompts/<lang>/catalog.toml`` (the
phrases of the call flow) merged with :data:`daemon1521.audio.say_fa.NUMBER_PROMPTS`
(number words, digits, currency words, the pause), so number texts live in
one place. Each prompt's audio is ``<name>.wav``: an operator's upload in the
upload directory wins over the shipped default, and shipped files are never
written by an upload.

Where things are found:

- shipped defaults: ``$DAEMON1521_DEFAULT_PROMPTS_DIR/<lang>/``, else the
  ``prompts/<lang>/`` directory of the source tree this package sits in
  (which is where ``pip install -e .`` leaves it);
- uploads: ``$DAEMON1521_PROMPTS_DIR/<lang>/``, else
  ``/var/lib/daemon1521/prompts/<lang>/``.

A call must never wait for a file read or a codec conversion, so
:class:`PromptLibrary` converts each prompt once per codec and keeps the
bytes until :meth:`PromptLibrary.reload` (the daemon's SIGHUP).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from daemon1521.audio.soundfile_io import (
    LINE_RATE,
    AudioFileError,
    AudioTooLongError,
    active_level_dbfs,
    clipped_fraction,
    frame_levels,
    peak_dbfs,
    read_audio,
    read_line_audio,
    write_wav,
)
from daemon1521.dsp import codecs

DEFAULT_LANG = "fa"
CATALOG_FILE = "catalog.toml"
ENV_DEFAULTS_DIR = "DAEMON1521_DEFAULT_PROMPTS_DIR"
ENV_UPLOADS_DIR = "DAEMON1521_PROMPTS_DIR"
UPLOADS_ROOT = Path("/var/lib/daemon1521/prompts")
# daemon1521/audio/prompts.py -> the source tree holding daemon1521/ and prompts/
SOURCE_TREE_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})?$")
KINDS = ("speech", "chime", "silence")

Source = Literal["default", "uploaded"]


class PromptError(Exception):
    """Base of every prompt problem; the message is meant for an operator."""


class CatalogError(PromptError):
    """The catalogue file is missing or malformed."""


class UnknownPromptError(PromptError, KeyError):
    """A name that is not in the catalogue."""

    def __init__(self, name: str, lang: str) -> None:
        super().__init__(f"unknown prompt {name!r} in the {lang!r} catalogue")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class PromptFileMissingError(PromptError, FileNotFoundError):
    """A known prompt whose audio file is absent."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(f"prompt {name!r}: audio file {path} is missing")
        self.name = name
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


class UploadRejectedError(PromptError):
    """An upload refused; the message names the file and the problem."""


class UploadStoreError(PromptError):
    """An acceptable upload that could not be written to the upload directory."""


# --- the catalogue ----------------------------------------------------------


@dataclass(frozen=True)
class PromptEntry:
    """One prompt: what it says and how a default is generated."""

    name: str
    text: str
    espeak: str | None = None
    """Spelling for the synthesiser when the plain text would be misread."""
    kind: str = "speech"
    """``speech`` (synthesised from text), ``chime`` or ``silence`` (generated)."""
    seconds: float | None = None
    """Length of a generated prompt."""
    max_seconds: float | None = None
    """Upload limit for this prompt, when it differs from the general one."""
    note: str = ""
    group: str = "phrase"
    """``phrase`` from the catalogue file, ``number`` from say_fa's table."""

    @property
    def synth_text(self) -> str:
        """What the synthesiser is given."""
        return self.espeak or self.text


def defaults_root() -> Path:
    """Where shipped prompt directories live (one subdirectory per language)."""
    env = os.environ.get(ENV_DEFAULTS_DIR)
    return Path(env) if env else SOURCE_TREE_PROMPTS


def uploads_root() -> Path:
    """Where operators' uploaded prompts live (one subdirectory per language)."""
    env = os.environ.get(ENV_UPLOADS_DIR)
    return Path(env) if env else UPLOADS_ROOT


def number_prompts(lang: str) -> tuple[Mapping[str, str], float]:
    """A language's number-word table and the length of its pause (empty text) prompts.

    Only Persian has one; the table belongs to the module that builds number
    sequences, so the two cannot disagree about names.
    """
    if lang != "fa":
        return {}, 0.0
    from daemon1521.audio import say_fa

    return say_fa.NUMBER_PROMPTS, say_fa.PAUSE_SECONDS


class PromptCatalog:
    """A language's prompts: names, texts, and which audio file plays for each."""

    def __init__(
        self,
        lang: str = DEFAULT_LANG,
        *,
        defaults_dir: str | os.PathLike[str] | None = None,
        uploads_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``defaults_dir`` / ``uploads_dir`` are roots holding ``<lang>/``; None: the defaults."""
        if not LANG_RE.match(lang):
            raise CatalogError(f"{lang!r} is not a language code (such as 'fa')")
        self.lang = lang
        self.default_dir = Path(defaults_dir or defaults_root()) / lang
        self.upload_dir = Path(uploads_dir or uploads_root()) / lang
        self.voice = lang
        self._entries: dict[str, PromptEntry] = {}
        self.reload()

    @property
    def catalog_file(self) -> Path:
        return self.default_dir / CATALOG_FILE

    def reload(self) -> None:
        """Read the catalogue file again (and the number table)."""
        data = _read_toml(self.catalog_file)
        self.voice = str(data.get("voice", self.lang))
        entries: dict[str, PromptEntry] = {}
        for i, raw in enumerate(data.get("prompt", [])):
            entry = _phrase_entry(raw, f"{self.catalog_file}: prompt #{i + 1}")
            if entry.name in entries:
                raise CatalogError(f"{self.catalog_file}: prompt {entry.name!r} is defined twice")
            entries[entry.name] = entry
        espeak = dict(data.get("numbers", {}).get("espeak", {}))
        table, pause_seconds = number_prompts(self.lang)
        for name, text in table.items():
            if name in entries:
                raise CatalogError(
                    f"{self.catalog_file}: prompt {name!r} is also a number prompt of say_fa"
                )
            if not NAME_RE.match(name):
                raise CatalogError(f"number prompt name {name!r} is not a valid prompt name")
            silent = not text.strip()
            entries[name] = PromptEntry(
                name=name,
                text=text,
                espeak=espeak.get(name),
                kind="silence" if silent else "speech",
                seconds=pause_seconds if silent else None,
                group="number",
            )
        stray = sorted(set(espeak) - set(table))
        if stray:
            raise CatalogError(
                f"{self.catalog_file}: [numbers.espeak] names not in the number table: "
                + ", ".join(stray)
            )
        self._entries = entries

    # -- what exists ---------------------------------------------------------

    def names(self) -> list[str]:
        """Every prompt name: catalogue phrases in file order, then the number prompts."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> PromptEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPromptError(name, self.lang) from None

    def text(self, name: str) -> str:
        return self.entry(name).text

    # -- where its audio is --------------------------------------------------

    def default_path(self, name: str) -> Path:
        self.entry(name)
        return self.default_dir / f"{name}.wav"

    def upload_path(self, name: str) -> Path:
        self.entry(name)
        return self.upload_dir / f"{name}.wav"

    def source(self, name: str) -> Source:
        """``uploaded`` when an operator's file exists for it, else ``default``."""
        return "uploaded" if self.upload_path(name).is_file() else "default"

    def path(self, name: str) -> Path:
        """The file that plays: the upload if present, else the shipped default."""
        upload = self.upload_path(name)
        return upload if upload.is_file() else self.default_path(name)

    def duration(self, name: str) -> float:
        """Length in seconds of the file that plays (from its header)."""
        path = self.path(name)
        if not path.is_file():
            raise PromptFileMissingError(name, path)
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise PromptError(f"prompt {name!r}: {path} is not readable audio ({exc})") from None
        return info.frames / info.samplerate

    def check(self) -> list[str]:
        """Every problem that would make a prompt fail to play; empty when all is well."""
        problems = []
        for name in self._entries:
            path = self.path(name)
            if not path.is_file():
                problems.append(str(PromptFileMissingError(name, path)))
                continue
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError):
                problems.append(f"prompt {name!r}: {path} is not readable audio")
                continue
            if info.frames == 0:
                problems.append(f"prompt {name!r}: {path} holds no audio")
        return problems


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CatalogError(
            f"prompt catalogue {path} not found (set {ENV_DEFAULTS_DIR} to the directory "
            "holding <lang>/catalog.toml)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: {exc}") from None


_PHRASE_KEYS = {"name", "text", "espeak", "kind", "seconds", "max_seconds", "note"}


def _phrase_entry(raw: Mapping[str, Any], where: str) -> PromptEntry:
    unknown = set(raw) - _PHRASE_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CatalogError(f"{where}: name {name!r} must match {NAME_RE.pattern}")
    kind = raw.get("kind", "speech")
    if kind not in KINDS:
        raise CatalogError(f"{where} ({name}): kind {kind!r} is not one of {', '.join(KINDS)}")
    text = raw.get("text", "")
    if not isinstance(text, str) or (kind == "speech" and not text.strip()):
        raise CatalogError(f"{where} ({name}): a speech prompt needs its text")
    seconds = raw.get("seconds")
    if kind != "speech" and not (isinstance(seconds, int | float) and seconds > 0):
        raise CatalogError(f"{where} ({name}): a {kind} prompt needs seconds > 0")
    max_seconds = raw.get("max_seconds")
    return PromptEntry(
        name=name,
        text=text,
        espeak=raw.get("espeak"),
        kind=kind,
        seconds=float(seconds) if seconds is not None else None,
        max_seconds=float(max_seconds) if max_seconds is not None else None,
        note=str(raw.get("note", "")),
    )


# --- the cache --------------------------------------------------------------

Encoder = Callable[[np.ndarray, str], bytes]
Reader = Callable[[Path], np.ndarray]


@dataclass
class _Cache:
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    encoded: dict[tuple[str, str], bytes] = field(default_factory=dict)


class PromptLibrary:
    """Prompt audio ready for a line: read once, converted once per codec, then shared.

    ``encoder`` and ``reader`` default to the real codec and file reader; they
    are parameters so a test can count conversions.
    """

    def __init__(
        self,
        catalog: PromptCatalog,
        *,
        encoder: Encoder = codecs.encode,
        reader: Reader = read_line_audio,
    ) -> None:
        self.catalog = catalog
        self._encode = encoder
        self._read = reader
        self._cache = _Cache()

    def samples(self, name: str) -> np.ndarray:
        """The prompt as read-only 8 kHz mono int16 samples."""
        cached = self._cache.samples.get(name)
        if cached is not None:
            return cached
        path = self.catalog.path(name)
        if not path.is_file():
            raise PromptFileMissingError(name, path)
        try:
            data = np.asarray(self._read(path), dtype=np.int16)
        except AudioFileError as exc:
            raise PromptError(f"prompt {name!r}: {exc}") from None
        data.setflags(write=False)
        self._cache.samples[name] = data
        return data

    def encoded(self, name: str, codec: str) -> bytes:
        """The prompt in ``codec`` (one of :data:`codecs.CODECS`), converted on first use only."""
        key = (name, codec)
        cached = self._cache.encoded.get(key)
        if cached is not None:
            return cached
        if codec not in codecs.CODECS:
            raise ValueError(f"unknown codec {codec!r} (known: {', '.join(codecs.CODECS)})")
        data = self._encode(self.samples(name), codec)
        self._cache.encoded[key] = data
        return data

    def sequence(self, names: Iterable[str], codec: str) -> bytes:
        """Prompts played back to back, as one stream (every codec here is per-sample)."""
        return b"".join(self.encoded(name, codec) for name in names)

    def duration(self, name: str) -> float:
        """Length in seconds of the cached audio."""
        return len(self.samples(name)) / LINE_RATE

    def preload(self, codecs_: Iterable[str] = ()) -> list[str]:
        """Load every prompt (and encode it for ``codecs_``) now; returns the problems found.

        The daemon calls this before taking calls, so a missing or broken file
        is known at start, not in the middle of a call.
        """
        wanted = list(codecs_)
        problems = []
        for name in self.catalog.names():
            try:
                self.samples(name)
                for codec in wanted:
                    self.encoded(name, codec)
            except PromptError as exc:
                problems.append(str(exc))
        return problems

    def check(self) -> list[str]:
        """The catalogue's problems (missing or unreadable files)."""
        return self.catalog.check()

    def reload(self) -> None:
        """Forget every cached conversion and re-read the catalogue; files are read on next use."""
        self.catalog.reload()
        self._cache = _Cache()

    @property
    def cached(self) -> tuple[int, int]:
        """(prompts read, prompt/codec conversions) currently held."""
        return len(self._cache.samples), len(self._cache.encoded)


# --- uploads ----------------------------------------------------------------


@dataclass(frozen=True)
class UploadLimits:
    """What an uploaded prompt must satisfy, and when it earns a warning."""

    min_seconds: float = 0.1
    max_seconds: float = 30.0
    silent_dbfs: float = -50.0
    """A peak below this: the file is silent (refused)."""
    quiet_dbfs: float = -35.0
    """Speech level below this: warned as very quiet."""
    clip_fraction: float = 0.0005
    """More than this share of samples at full scale: warned as clipped."""
    edge_silence_seconds: float = 1.0
    """Silence longer than this before or after the sound: warned."""
    edge_dbfs: float = -45.0
    """Frames below this level count as silence at the edges."""


@dataclass(frozen=True)
class UploadReport:
    """What an upload did, for the operator."""

    name: str
    source_file: str
    stored: Path
    duration: float
    source_rate: int
    source_channels: int
    source_format: str
    converted: bool
    replaced: bool
    """An earlier upload of the same prompt was overwritten."""
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line saying what was stored and from what."""
        what = "replaced upload" if self.replaced else "stored upload"
        conv = (
            f"converted from {self.source_rate} Hz, {self.source_channels} channel(s), "
            f"{self.source_format}"
            if self.converted
            else "already 8 kHz mono 16-bit WAV"
        )
        return f"{what} {self.name!r}: {self.stored} ({self.duration:.2f} s, {conv})"


def audio_warnings(
    samples: np.ndarray, limits: UploadLimits = UploadLimits(), rate: int = LINE_RATE
) -> list[str]:
    """Level problems worth an operator's attention (not a refusal): clipping, quiet, long gaps."""
    warnings = []
    clipped = clipped_fraction(samples)
    if clipped > limits.clip_fraction:
        warnings.append(f"clipped: {clipped:.2%} of samples at full scale")
    level = active_level_dbfs(samples, rate)
    if level < limits.quiet_dbfs:
        warnings.append(f"very quiet: speech level {level:.1f} dBFS")
    levels = frame_levels(samples, rate)
    loud = np.flatnonzero(levels > limits.edge_dbfs)
    if len(loud):
        frame = len(samples) / len(levels) / rate
        lead = loud[0] * frame
        tail = (len(levels) - 1 - loud[-1]) * frame
        if lead > limits.edge_silence_seconds:
            warnings.append(f"{lead:.1f} s of silence before the sound starts")
        if tail > limits.edge_silence_seconds:
            warnings.append(f"{tail:.1f} s of silence after the sound ends")
    return warnings


def upload_prompt(
    catalog: PromptCatalog,
    name: str,
    source: str | os.PathLike[str],
    *,
    limits: UploadLimits = UploadLimits(),
    strict: bool = False,
) -> UploadReport:
    """Validate an operator's recording and store it, converted, as the prompt ``name``.

    Refuses (:class:`UnknownPromptError`, :class:`UploadRejectedError`) an
    unknown name, an undecodable file, a length outside the limits or a
    silent recording; warns about clipping, low level and long silences
    (refused too when ``strict``). Only the upload directory is written
    (:class:`UploadStoreError` when it cannot be).
    """
    entry = catalog.entry(name)
    label = str(source)
    max_seconds = entry.max_seconds or limits.max_seconds
    try:
        audio = read_audio(source, max_seconds=max_seconds)
    except AudioTooLongError as exc:
        shown = f"{exc.seconds:.1f} s" if exc.seconds is not None else f"over {max_seconds:g} s"
        raise UploadRejectedError(
            f"{label}: too long ({shown}; prompt {name!r} allows {max_seconds:g} s)"
        ) from None
    except AudioFileError as exc:
        raise UploadRejectedError(str(exc)) from None
    if audio.duration > max_seconds:
        raise UploadRejectedError(
            f"{label}: too long ({audio.duration:.1f} s; prompt {name!r} allows {max_seconds:g} s)"
        )
    if audio.duration < limits.min_seconds:
        raise UploadRejectedError(
            f"{label}: too short ({audio.duration:.2f} s; at least {limits.min_seconds:g} s)"
        )
    peak = peak_dbfs(audio.samples)
    if peak < limits.silent_dbfs:
        raise UploadRejectedError(f"{label}: silent (peak {peak:.1f} dBFS)")
    warnings = tuple(audio_warnings(audio.samples, limits, audio.rate))
    if strict and warnings:
        raise UploadRejectedError(f"{label}: " + "; ".join(warnings))
    target = catalog.upload_path(name)
    replaced = target.is_file()
    try:
        write_wav(target, audio.samples, audio.rate)
    except OSError as exc:
        raise UploadStoreError(
            f"{label}: cannot store as {target} ({exc.strerror or exc})"
        ) from None
    return UploadReport(
        name=name,
        source_file=label,
        stored=target,
        duration=audio.duration,
        source_rate=audio.source_rate,
        source_channels=audio.source_channels,
        source_format=audio.source_format,
        converted=audio.converted,
        replaced=replaced,
        warnings=warnings,
    )


def remove_upload(catalog: PromptCatalog, name: str) -> Path | None:
    """Delete the upload of ``name`` so the default plays again; the removed path, or None."""
    target = catalog.upload_path(name)
    if not target.is_file():
        return None
    target.unlink()
    return target

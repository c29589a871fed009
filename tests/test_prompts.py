"""The prompt catalogue, the shipped prompt set, the per-codec cache, uploads and synthesis."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon1521.audio import say_fa
from daemon1521.audio.prompts import (
    ENV_DEFAULTS_DIR,
    ENV_UPLOADS_DIR,
    SOURCE_TREE_PROMPTS,
    CatalogError,
    PromptCatalog,
    PromptError,
    PromptFileMissingError,
    PromptLibrary,
    UnknownPromptError,
    UploadLimits,
    UploadRejectedError,
    UploadStoreError,
    audio_warnings,
    remove_upload,
    upload_prompt,
)
from daemon1521.audio.soundfile_io import (
    AudioFileError,
    active_level_dbfs,
    clipped_fraction,
    peak_dbfs,
    read_audio,
    read_line_audio,
    wav_bytes,
)
from daemon1521.audio.synth import (
    MANIFEST_FILE,
    SynthSettings,
    chime,
    espeak_phonemes,
    fingerprint,
    load_manifest,
    normalise,
    synthesise,
    trim,
)
from daemon1521.dsp import codecs

SHIPPED = SOURCE_TREE_PROMPTS / "fa"

# Every phrase CALLFLOW.md and the caller-facing side of TELEBANK.md need.
CALLFLOW_PROMPTS = [
    "welcome",
    "remembered_bill_is",
    "remembered_bill_confirm",
    "ask_bill_id",
    "invalid_bill_id",
    "not_electricity_bill",
    "bill_entered",
    "bill_entered_confirm",
    "offer_remember_bill",
    "bill_saved",
    "bill_not_found",
    "service_unavailable",
    "no_debt",
    "debt_is",
    "offer_payment",
    "payment_not_available",
    "no_input_goodbye",
    "too_many_invalid",
    "goodbye",
]
TELEBANK_PROMPTS = [
    "remembered_card_is",
    "remembered_card_confirm",
    "connecting_bank",
    "hold",
    "bank_busy",
    "bank_unreachable",
    "bank_call_ended",
    "payment_success",
    "tracking_number_is",
    "payment_failed",
    "wrong_pin",
    "insufficient_funds",
    "card_refused",
    "offer_remember_card",
    "card_saved",
]
RATE = 8000


@pytest.fixture
def catalog(tmp_path: Path) -> PromptCatalog:
    """The shipped catalogue with an empty upload directory of its own."""
    return PromptCatalog("fa", uploads_dir=tmp_path / "uploads")


@pytest.fixture
def own_defaults(tmp_path: Path) -> Path:
    """A copy of the shipped catalogue file (no audio) under a root of its own."""
    root = tmp_path / "defaults"
    (root / "fa").mkdir(parents=True)
    shutil.copy(SHIPPED / "catalog.toml", root / "fa" / "catalog.toml")
    return root


def tone(seconds: float, rate: int = RATE, level: float = 0.3, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_catalog(root: Path, body: str) -> Path:
    (root / "fa").mkdir(parents=True, exist_ok=True)
    (root / "fa" / "catalog.toml").write_text(body, encoding="utf-8")
    return root


# --- the catalogue ----------------------------------------------------------


def test_catalog_has_every_call_flow_and_bank_prompt(catalog: PromptCatalog) -> None:
    names = catalog.names()
    assert len(names) == len(set(names))
    for name in CALLFLOW_PROMPTS + TELEBANK_PROMPTS:
        assert name in catalog, name
        entry = catalog.entry(name)
        assert entry.kind != "speech" or catalog.text(name).strip()


def test_number_prompts_come_from_say_fa_unchanged(catalog: PromptCatalog) -> None:
    for name, text in say_fa.NUMBER_PROMPTS.items():
        assert catalog.text(name) == text
        assert catalog.entry(name).group == "number"
    pause = catalog.entry(say_fa.PAUSE)
    assert pause.kind == "silence"
    assert pause.seconds == say_fa.PAUSE_SECONDS
    # the catalogue file itself repeats none of them
    raw = (SHIPPED / "catalog.toml").read_text(encoding="utf-8")
    assert not re.search(r'^name = "(d\d|n\d+(_o)?|rial|toman|pause)"$', raw, re.M)


def test_every_prompt_has_a_shipped_wav(catalog: PromptCatalog) -> None:
    assert catalog.check() == []
    for name in catalog.names():
        assert catalog.source(name) == "default"
        assert catalog.path(name) == SHIPPED / f"{name}.wav"
        assert catalog.duration(name) > 0


def test_shipped_wavs_are_line_format_audible_and_unclipped(catalog: PromptCatalog) -> None:
    for name in catalog.names():
        path = catalog.path(name)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (
            RATE,
            1,
            "WAV",
            "PCM_16",
        ), name
        samples, _ = sf.read(str(path), dtype="int16")
        if catalog.entry(name).kind == "silence":
            assert not samples.any(), name
            continue
        assert peak_dbfs(samples) <= -2.9, name
        assert clipped_fraction(samples) == 0.0, name
        assert peak_dbfs(samples) > -15.0, name
        if catalog.entry(name).kind == "speech":
            # one level for the whole set, so concatenated prompts match
            assert -23.5 < active_level_dbfs(samples) < -21.5, name
            # trimmed: sound within 50 ms of both ends
            loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
            assert loud[0] < 0.05 * RATE and len(samples) - loud[-1] < 0.05 * RATE, name


def test_shipped_set_matches_catalogue_and_manifest(catalog: PromptCatalog) -> None:
    """A catalogue edit without `prompts synth` (or a hand-edited WAV) fails here."""
    manifest = load_manifest(SHIPPED)
    settings = SynthSettings(**manifest["generator"]["settings"])
    assert settings == SynthSettings(voice=catalog.voice)
    assert set(manifest["prompts"]) == set(catalog.names())
    for name in catalog.names():
        record = manifest["prompts"][name]
        assert record["fingerprint"] == fingerprint(catalog.entry(name), settings), name
        assert record["sha256"] == digest(SHIPPED / f"{name}.wav"), name
    stray = {p.stem for p in SHIPPED.glob("*.wav")} - set(catalog.names())
    assert not stray


def test_nine_is_said_noh_not_na(catalog: PromptCatalog) -> None:
    """The نه / نَه trap: every nine the synthesiser speaks must come out "noh"."""
    for name in ("d9", "n9", "n9_o", "n900"):
        phonemes = espeak_phonemes(catalog.entry(name).synth_text).replace("'", "")
        assert phonemes.startswith("noh"), (name, phonemes)
    assert espeak_phonemes("نه").replace("'", "") == "na"  # the trap is real
    for name in catalog.names():
        assert not re.search(r"(^|\s)نه($|[\s.،:؟])", catalog.entry(name).synth_text), name


def test_espeak_spellings_differ_only_in_marks(catalog: PromptCatalog) -> None:
    """The synthesiser spelling says the same words as the text, plus ezafe and vowel marks."""

    def letters(s: str) -> str:
        s = re.sub("\u200cی\u0650?", "", s)  # a spelt-out ezafe: ‌یِ
        s = re.sub(r"\sو\s", "", s)  # "and", which may be spelt as an attached ُ
        return re.sub(r"[\u064b-\u0652\u200c\s]", "", s)  # vowel marks, ZWNJ, spaces

    for name in catalog.names():
        entry = catalog.entry(name)
        if entry.espeak:
            assert letters(entry.espeak) == letters(entry.text), name


def test_unknown_names_and_missing_catalogue(tmp_path: Path, catalog: PromptCatalog) -> None:
    with pytest.raises(UnknownPromptError, match="no_such_prompt"):
        catalog.path("no_such_prompt")
    with pytest.raises(KeyError):
        catalog.text("no_such_prompt")
    with pytest.raises(CatalogError, match=ENV_DEFAULTS_DIR):
        PromptCatalog("fa", defaults_dir=tmp_path / "empty")
    with pytest.raises(CatalogError, match="not a language code"):
        PromptCatalog("../fa", defaults_dir=tmp_path)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[[prompt]]\nname = "a"\ntext = "x"\n[[prompt]]\nname = "a"\ntext = "y"\n', "twice"),
        ('[[prompt]]\nname = "Bad-Name"\ntext = "x"\n', "must match"),
        ('[[prompt]]\nname = "a"\ntext = "x"\ncolour = "red"\n', "unknown keys colour"),
        ('[[prompt]]\nname = "a"\ntext = ""\n', "needs its text"),
        ('[[prompt]]\nname = "a"\nkind = "chime"\n', "needs seconds"),
        ('[[prompt]]\nname = "a"\nkind = "music"\ntext = "x"\n', "kind 'music'"),
        ('[[prompt]]\nname = "d9"\ntext = "x"\n', "also a number prompt"),
        ('[numbers.espeak]\nn1000 = "x"\n', "not in the number table: n1000"),
        ("[[prompt]\n", "catalog.toml"),
    ],
)
def test_malformed_catalogues_are_refused(tmp_path: Path, body: str, problem: str) -> None:
    root = write_catalog(tmp_path / "d", body)
    with pytest.raises(CatalogError, match=re.escape(problem)):
        PromptCatalog("fa", defaults_dir=root, uploads_dir=tmp_path / "u")


def test_number_spelling_override(tmp_path: Path) -> None:
    root = write_catalog(tmp_path / "d", '[numbers.espeak]\nn9 = "[[noh]]"\n')
    cat = PromptCatalog("fa", defaults_dir=root, uploads_dir=tmp_path / "u")
    assert cat.entry("n9").synth_text == "[[noh]]"
    assert cat.text("n9") == say_fa.NUMBER_PROMPTS["n9"]


def test_directories_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SHIPPED, tmp_path / "shipped" / "fa")
    monkeypatch.setenv(ENV_DEFAULTS_DIR, str(tmp_path / "shipped"))
    monkeypatch.setenv(ENV_UPLOADS_DIR, str(tmp_path / "up"))
    cat = PromptCatalog()
    assert cat.default_dir == tmp_path / "shipped" / "fa"
    assert cat.upload_dir == tmp_path / "up" / "fa"
    assert cat.path("welcome") == tmp_path / "shipped" / "fa" / "welcome.wav"


# --- the cache --------------------------------------------------------------


class Counting:
    """Wraps the real reader and encoder, counting calls."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.encodes: list[str] = []

    def read(self, path: Path) -> np.ndarray:
        self.reads.append(path.stem)
        return read_line_audio(path)

    def encode(self, samples: np.ndarray, codec: str) -> bytes:
        self.encodes.append(codec)
        return codecs.encode(samples, codec)


def test_library_reads_once_and_converts_once_per_codec(catalog: PromptCatalog) -> None:
    count = Counting()
    lib = PromptLibrary(catalog, encoder=count.encode, reader=count.read)
    first = lib.encoded("welcome", "ulaw")
    for _ in range(5):
        assert lib.encoded("welcome", "ulaw") is first
    alaw = lib.encoded("welcome", "alaw")
    assert lib.encoded("welcome", "alaw") is alaw
    assert count.reads == ["welcome"]
    assert count.encodes == ["ulaw", "alaw"]
    assert lib.samples("welcome") is lib.samples("welcome")
    assert lib.cached == (1, 2)
    # the cached bytes are the real conversion of the file
    samples, _ = sf.read(str(catalog.path("welcome")), dtype="int16")
    assert first == codecs.encode(samples, "ulaw")
    assert lib.encoded("welcome", "s16le") == samples.astype("<i2").tobytes()
    assert lib.duration("welcome") == pytest.approx(len(samples) / RATE)


def test_cached_samples_are_read_only(catalog: PromptCatalog) -> None:
    samples = PromptLibrary(catalog).samples("d1")
    with pytest.raises(ValueError):
        samples[0] = 1


def test_sequence_concatenates_cached_conversions(catalog: PromptCatalog) -> None:
    count = Counting()
    lib = PromptLibrary(catalog, encoder=count.encode, reader=count.read)
    names = ["debt_is", *say_fa.say_amount(1_234_000), "offer_payment"]
    stream = lib.sequence(names, "u8")
    assert stream == b"".join(lib.encoded(n, "u8") for n in names)
    assert len(stream) == sum(len(lib.samples(n)) for n in names)
    lib.sequence(names, "u8")
    assert len(count.encodes) == len(set(names))


def test_reload_forgets_conversions(catalog: PromptCatalog) -> None:
    count = Counting()
    lib = PromptLibrary(catalog, encoder=count.encode, reader=count.read)
    before = lib.encoded("goodbye", "alaw")
    lib.reload()
    assert lib.cached == (0, 0)
    assert lib.encoded("goodbye", "alaw") == before
    assert count.encodes == ["alaw", "alaw"]


def test_unknown_codec_and_name(catalog: PromptCatalog) -> None:
    lib = PromptLibrary(catalog)
    with pytest.raises(ValueError, match="gsm"):
        lib.encoded("welcome", "gsm")
    with pytest.raises(UnknownPromptError):
        lib.samples("nope")


def test_missing_file_names_prompt_and_path(tmp_path: Path, own_defaults: Path) -> None:
    cat = PromptCatalog("fa", defaults_dir=own_defaults, uploads_dir=tmp_path / "u")
    for name in cat.names():
        if name != "goodbye":
            shutil.copy(SHIPPED / f"{name}.wav", own_defaults / "fa" / f"{name}.wav")
    (own_defaults / "fa" / "welcome.wav").write_bytes(b"not audio")
    problems = cat.check()
    missing = str(own_defaults / "fa" / "goodbye.wav")
    assert len(problems) == 2
    assert any("'goodbye'" in p and missing in p for p in problems)
    assert any("'welcome'" in p and "not readable audio" in p for p in problems)
    lib = PromptLibrary(cat)
    with pytest.raises(PromptFileMissingError) as err:
        lib.encoded("goodbye", "ulaw")
    assert err.value.name == "goodbye" and str(err.value.path) == missing
    assert missing in str(err.value)
    with pytest.raises(PromptError, match="welcome"):
        lib.samples("welcome")
    assert len(lib.preload(["ulaw"])) == 2
    with pytest.raises(PromptFileMissingError):
        cat.duration("goodbye")


def test_preload_of_the_shipped_set(catalog: PromptCatalog) -> None:
    lib = PromptLibrary(catalog)
    assert lib.preload(codecs.CODECS) == []
    assert lib.cached == (len(catalog), len(catalog) * len(codecs.CODECS))


def test_prompts_do_not_sound_like_keys_or_busy_tone(catalog: PromptCatalog) -> None:
    """Echoed prompts must not fake a key press (barge-in) or a hang-up (busy tone)."""
    from daemon1521.dsp.dtmf import DtmfDetector, ToneDetector

    lib = PromptLibrary(catalog)
    audio = np.concatenate([lib.samples(n) for n in catalog.names()])
    assert DtmfDetector().feed(audio) == []
    assert ToneDetector(425.0).feed(audio) == []


# --- uploads ----------------------------------------------------------------


def test_upload_converts_stereo_44k_and_wins_over_default(
    tmp_path: Path, catalog: PromptCatalog
) -> None:
    shipped_hash = digest(SHIPPED / "welcome.wav")
    stereo = np.stack([tone(2.0, 44100), tone(2.0, 44100, level=0.2)], axis=1)
    src = write(tmp_path / "welcome-44k.wav", stereo, 44100)
    report = upload_prompt(catalog, "welcome", src)
    assert report.converted and not report.replaced
    assert (report.source_rate, report.source_channels) == (44100, 2)
    assert report.stored == tmp_path / "uploads" / "fa" / "welcome.wav"
    assert report.warnings == ()
    assert "44100 Hz" in report.describe()
    info = sf.info(str(report.stored))
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    assert info.frames == 2 * RATE
    stored, _ = sf.read(str(report.stored), dtype="int16")
    assert peak_dbfs(stored) == pytest.approx(20 * np.log10(0.25), abs=0.3)  # channel mean
    assert catalog.source("welcome") == "uploaded"
    assert catalog.path("welcome") == report.stored
    assert catalog.duration("welcome") == pytest.approx(2.0)
    assert digest(SHIPPED / "welcome.wav") == shipped_hash
    # the library plays the upload
    assert len(PromptLibrary(catalog).samples("welcome")) == 2 * RATE
    # a second upload replaces the first; removing returns to the default
    assert upload_prompt(catalog, "welcome", src).replaced
    assert remove_upload(catalog, "welcome") == report.stored
    assert catalog.source("welcome") == "default"
    assert remove_upload(catalog, "welcome") is None


def test_upload_of_line_format_is_not_reported_as_converted(
    tmp_path: Path, catalog: PromptCatalog
) -> None:
    src = write(tmp_path / "g.wav", tone(1.0))
    report = upload_prompt(catalog, "goodbye", src)
    assert not report.converted
    assert report.stored.read_bytes() == src.read_bytes()


def test_upload_other_formats(tmp_path: Path, catalog: PromptCatalog) -> None:
    src = tmp_path / "bye.flac"
    sf.write(str(src), tone(1.5, 16000), 16000, format="FLAC")
    report = upload_prompt(catalog, "goodbye", src)
    assert report.source_format.startswith("FLAC")
    assert sf.info(str(report.stored)).frames == round(1.5 * RATE)


@pytest.mark.parametrize(
    "content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", bytes(range(256)) * 20, b"hello\n"]
)
def test_upload_of_garbage_is_refused_naming_the_file(
    tmp_path: Path, catalog: PromptCatalog, content: bytes
) -> None:
    src = tmp_path / "garbage.wav"
    src.write_bytes(content)
    with pytest.raises(UploadRejectedError) as err:
        upload_prompt(catalog, "welcome", src)
    assert str(src) in str(err.value)
    assert "empty" in str(err.value) or "not a readable audio file" in str(err.value)
    assert catalog.source("welcome") == "default"


def test_upload_of_missing_file(tmp_path: Path, catalog: PromptCatalog) -> None:
    with pytest.raises(UploadRejectedError, match="no such file"):
        upload_prompt(catalog, "welcome", tmp_path / "absent.wav")


def test_upload_unknown_name(tmp_path: Path, catalog: PromptCatalog) -> None:
    src = write(tmp_path / "a.wav", tone(1.0))
    with pytest.raises(UnknownPromptError, match="'welcom'"):
        upload_prompt(catalog, "welcom", src)
    assert not (tmp_path / "uploads").exists()


def test_upload_length_limits(tmp_path: Path, catalog: PromptCatalog) -> None:
    long = write(tmp_path / "long.wav", tone(31.0))
    with pytest.raises(UploadRejectedError, match=r"long\.wav: too long \(31\.0 s"):
        upload_prompt(catalog, "welcome", long)
    # the hold prompt takes music
    assert upload_prompt(catalog, "hold", long).duration == pytest.approx(31.0)
    with pytest.raises(UploadRejectedError, match="too long"):
        upload_prompt(catalog, "welcome", write(tmp_path / "w.wav", tone(3.0)),
                      limits=UploadLimits(max_seconds=2.0))  # fmt: skip
    with pytest.raises(UploadRejectedError, match="too short"):
        upload_prompt(catalog, "d1", write(tmp_path / "short.wav", tone(0.05)))


def test_upload_of_silence_is_refused(tmp_path: Path, catalog: PromptCatalog) -> None:
    src = write(tmp_path / "quiet.wav", tone(2.0, level=0.001))
    with pytest.raises(UploadRejectedError, match=r"quiet\.wav: silent \(peak -(59|60)\.\d dBFS\)"):
        upload_prompt(catalog, "welcome", src)


def test_upload_clipped_warns_and_strict_refuses(tmp_path: Path, catalog: PromptCatalog) -> None:
    clipped = np.clip(tone(2.0, level=3.0), -1.0, 1.0)
    src = write(tmp_path / "loud.wav", clipped)
    report = upload_prompt(catalog, "welcome", src)
    assert any(w.startswith("clipped") for w in report.warnings)
    assert report.stored.is_file()
    with pytest.raises(UploadRejectedError, match=r"loud\.wav: clipped"):
        upload_prompt(catalog, "goodbye", src, strict=True)
    assert catalog.source("goodbye") == "default"


def test_upload_warns_about_long_edges_and_low_level(tmp_path: Path) -> None:
    gap = np.zeros(round(1.5 * RATE), dtype=np.float32)
    padded = np.concatenate([gap, tone(1.0), gap])
    warnings = audio_warnings((padded * 32767).astype(np.int16))
    assert any("before the sound" in w for w in warnings)
    assert any("after the sound" in w for w in warnings)
    assert any("very quiet" in w for w in audio_warnings((tone(1.0, level=0.01) * 32767)
                                                          .astype(np.int16)))  # fmt: skip
    assert audio_warnings((tone(1.0) * 32767).astype(np.int16)) == []


def test_upload_to_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "uploads"
    blocker.write_text("a file where the upload directory should be")
    cat = PromptCatalog("fa", uploads_dir=blocker)
    with pytest.raises(UploadStoreError, match="cannot store"):
        upload_prompt(cat, "welcome", write(tmp_path / "a.wav", tone(1.0)))


# --- audio files ------------------------------------------------------------


def test_read_audio_mixes_and_resamples(tmp_path: Path) -> None:
    stereo = np.stack([tone(1.0, 22050), -tone(1.0, 22050)], axis=1)
    src = write(tmp_path / "s.wav", stereo, 22050)
    decoded = read_audio(src)
    assert decoded.rate == RATE and decoded.source_rate == 22050 and decoded.converted
    assert len(decoded.samples) == RATE
    # opposite channels cancel (to rounding): the mean, not one channel
    assert np.abs(decoded.samples).max() <= 1


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(b"\x00" * 1000), "not a readable audio file"),
    ],
)
def test_read_audio_errors_name_the_file(tmp_path: Path, setup, problem: str) -> None:
    path = tmp_path / "x.wav"
    setup(path)
    with pytest.raises(AudioFileError) as err:
        read_audio(path)
    assert str(err.value) == f"{path}: {err.value.problem}"
    assert problem in err.value.problem


def test_wav_bytes_is_canonical() -> None:
    samples = (tone(0.1) * 32767).astype(np.int16)
    data = wav_bytes(samples)
    assert data == wav_bytes(samples.copy())
    assert len(data) == 44 + 2 * len(samples)
    assert data[44:] == samples.astype("<i2").tobytes()


# --- synthesis --------------------------------------------------------------


def test_synthesis_is_reproducible_and_incremental(tmp_path: Path, catalog: PromptCatalog) -> None:
    only = ["please_wait", "d9", "pause", "hold"]
    first = synthesise(catalog, tmp_path / "a", only=only)
    second = synthesise(catalog, tmp_path / "b", only=only)
    assert sorted(first.written) == sorted(only) == sorted(second.written)
    for name in only:
        assert (tmp_path / "a" / f"{name}.wav").read_bytes() == (
            tmp_path / "b" / f"{name}.wav"
        ).read_bytes()
    assert (tmp_path / "a" / MANIFEST_FILE).read_bytes() == (
        tmp_path / "b" / MANIFEST_FILE
    ).read_bytes()
    mtimes = {n: (tmp_path / "a" / f"{n}.wav").stat().st_mtime_ns for n in only}
    again = synthesise(catalog, tmp_path / "a", only=only)
    assert again.written == [] and sorted(again.unchanged) == sorted(only)
    forced = synthesise(catalog, tmp_path / "a", only=only, force=True)
    assert forced.written == []  # regenerated, same bytes: not rewritten
    assert mtimes == {n: (tmp_path / "a" / f"{n}.wav").stat().st_mtime_ns for n in only}
    # a lost or edited file is regenerated
    (tmp_path / "a" / "d9.wav").write_bytes(b"edited")
    assert synthesise(catalog, tmp_path / "a", only=only).written == ["d9"]
    # same espeak-ng build as the shipped set: the very same bytes
    manifest = load_manifest(SHIPPED)
    new = json.loads((tmp_path / "a" / MANIFEST_FILE).read_text(encoding="utf-8"))
    if new["prompts"]["d9"]["espeak_ng"] == manifest["prompts"]["d9"]["espeak_ng"]:
        for name in only:
            assert new["prompts"][name] == manifest["prompts"][name], name


def test_synthesis_follows_catalogue_edits(tmp_path: Path, own_defaults: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(SHIPPED, out, ignore=shutil.ignore_patterns("catalog.toml"))
    toml = own_defaults / "fa" / "catalog.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace('text = "لطفاً منتظر بمانید."', 'text = "لطفاً کمی صبر کنید."')
    start = text.index('[[prompt]]\nname = "bank_call_ended"')
    text = text[:start] + text[text.index("[[prompt]]", start + 1) :]
    toml.write_text(text, encoding="utf-8")
    cat = PromptCatalog("fa", defaults_dir=own_defaults, uploads_dir=tmp_path / "u")
    report = synthesise(cat, out)
    assert report.written == ["please_wait"]
    assert report.removed == ["bank_call_ended"]
    assert not (out / "bank_call_ended.wav").exists()
    assert len(report.unchanged) == len(cat) - 1
    assert report.total_bytes == sum((out / f"{n}.wav").stat().st_size for n in cat.names())


def test_synthesis_refuses_unknown_names(tmp_path: Path, catalog: PromptCatalog) -> None:
    with pytest.raises(UnknownPromptError):
        synthesise(catalog, tmp_path, only=["welcome", "nope"])
    assert not any(tmp_path.iterdir())


def test_trim_and_normalise() -> None:
    settings = SynthSettings()
    gap = np.zeros(RATE, dtype=np.float32)
    body = tone(0.5, level=0.05)
    trimmed = trim(np.concatenate([gap, body, gap]), settings)
    expected = len(body) + round((settings.lead_seconds + settings.tail_seconds) * RATE)
    assert abs(len(trimmed) - expected) <= 2
    # a steady tone reaches the speech level (its peak stays under the ceiling)
    level = normalise(body, settings)
    assert active_level_dbfs(level) == pytest.approx(settings.speech_dbfs, abs=0.05)
    # a spiky signal is held by the peak ceiling instead
    spiky = body.copy()
    spiky[100] = 0.9
    held = normalise(spiky, settings)
    assert peak_dbfs(held) == pytest.approx(settings.peak_dbfs, abs=0.01)
    assert active_level_dbfs(held) < settings.speech_dbfs


def test_hold_chime_avoids_line_signalling_frequencies() -> None:
    x = chime(3.0)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    top = spectrum.max()

    def band(lo: float, hi: float) -> float:
        return float(spectrum[(freqs >= lo) & (freqs <= hi)].max())

    for lo, hi in [(395, 455), (1070, 1130), (1270, 1330), (2070, 2130)]:
        assert band(lo, hi) < top * 10 ** (-50 / 20), (lo, hi)

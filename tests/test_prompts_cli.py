"""``daemon1521 prompts``: list, check, upload, remove and synth as an operator runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from daemon1521.audio.prompts import ENV_UPLOADS_DIR, SOURCE_TREE_PROMPTS, PromptCatalog
from daemon1521.cli import main
from daemon1521.commands.prompts import (
    EXIT_CATALOG,
    EXIT_PROBLEMS,
    EXIT_REJECTED,
    EXIT_STORE,
    EXIT_UNKNOWN_PROMPT,
)

RATE = 8000


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["prompts", *map(str, args)], env=env)


def tone(seconds: float, rate: int = RATE, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def wav(path: Path, data: np.ndarray, rate: int = RATE) -> Path:
    sf.write(str(path), data, rate, subtype="PCM_16")
    return path


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


def listing(uploads: Path) -> dict[str, dict]:
    result = run("list", "--json", "--uploads", uploads)
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_list_shows_every_prompt_with_text_duration_and_source(uploads: Path) -> None:
    rows = listing(uploads)
    assert list(rows) == PromptCatalog("fa", uploads_dir=uploads).names()
    welcome = rows["welcome"]
    assert welcome["source"] == "default"
    assert welcome["text"].startswith("به سامانه")
    assert welcome["duration"] > 1.0
    assert welcome["path"] == str(SOURCE_TREE_PROMPTS / "fa" / "welcome.wav")
    assert rows["d9"]["group"] == "number"
    assert rows["pause"]["kind"] == "silence"

    table = run("list", "--uploads", uploads)
    assert table.exit_code == 0
    line = next(x for x in table.stdout.splitlines() if x.startswith("goodbye "))
    assert "default" in line and "خدانگهدار" in line and "s" in line


def test_upload_then_list_then_remove(tmp_path: Path, uploads: Path) -> None:
    src = wav(tmp_path / "hello.wav", np.stack([tone(1.5, 44100)] * 2, axis=1), 44100)
    result = run("upload", "welcome", src, "--uploads", uploads)
    assert result.exit_code == 0, result.output
    stored = uploads / "fa" / "welcome.wav"
    assert f"stored upload 'welcome': {stored}" in result.stdout
    assert "converted from 44100 Hz, 2 channel(s)" in result.stdout
    assert result.stderr == ""

    rows = listing(uploads)
    assert rows["welcome"]["source"] == "uploaded"
    assert rows["welcome"]["duration"] == pytest.approx(1.5)
    assert rows["welcome"]["path"] == str(stored)
    assert rows["goodbye"]["source"] == "default"

    again = run("upload", "welcome", src, "--uploads", uploads)
    assert "replaced upload 'welcome'" in again.stdout

    removed = run("remove", "welcome", "--uploads", uploads)
    assert removed.exit_code == 0
    assert f"removed {stored}" in removed.stdout
    assert listing(uploads)["welcome"]["source"] == "default"
    nothing = run("remove", "welcome", "--uploads", uploads)
    assert nothing.exit_code == 0 and "has no upload" in nothing.stdout


def test_upload_directory_from_environment(tmp_path: Path, uploads: Path) -> None:
    src = wav(tmp_path / "a.wav", tone(1.0))
    result = run("upload", "goodbye", src, env={ENV_UPLOADS_DIR: str(uploads)})
    assert result.exit_code == 0, result.output
    assert (uploads / "fa" / "goodbye.wav").is_file()


def test_upload_warnings_go_to_stderr(tmp_path: Path, uploads: Path) -> None:
    src = wav(tmp_path / "loud.wav", np.clip(tone(2.0, level=3.0), -1, 1))
    result = run("upload", "goodbye", src, "--uploads", uploads)
    assert result.exit_code == 0
    assert f"warning: {src}: clipped" in result.stderr
    strict = run("upload", "welcome", src, "--uploads", uploads, "--strict")
    assert strict.exit_code == EXIT_REJECTED
    assert f"error: {src}: clipped" in strict.stderr
    assert not (uploads / "fa" / "welcome.wav").exists()


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda d: wav(d / "f.wav", tone(1.0)), EXIT_UNKNOWN_PROMPT, "unknown prompt 'nope'"),
        (lambda d: d / "absent.wav", EXIT_REJECTED, "absent.wav: no such file"),
        (
            lambda d: (d / "junk.wav").write_bytes(b"\x01\x02" * 999) and d / "junk.wav",
            EXIT_REJECTED,
            "junk.wav: not a readable audio file",
        ),
        (lambda d: wav(d / "long.wav", tone(40.0)), EXIT_REJECTED, "long.wav: too long (40.0 s"),
        (lambda d: wav(d / "mute.wav", tone(2.0, level=0.0)), EXIT_REJECTED, "mute.wav: silent"),
    ],
)
def test_upload_refusals(tmp_path: Path, uploads: Path, make, code: int, message: str) -> None:
    src = make(tmp_path)
    name = "nope" if code == EXIT_UNKNOWN_PROMPT else "welcome"
    result = run("upload", name, src, "--uploads", uploads)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stdout == ""
    assert not (uploads / "fa" / "welcome.wav").exists()


def test_upload_max_seconds_option(tmp_path: Path, uploads: Path) -> None:
    src = wav(tmp_path / "w.wav", tone(3.0))
    result = run("upload", "welcome", src, "--uploads", uploads, "--max-seconds", "2")
    assert result.exit_code == EXIT_REJECTED
    assert "allows 2 s" in result.stderr


def test_upload_store_failure(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "fa").write_text("a file where the language directory should be")
    result = run("upload", "welcome", wav(tmp_path / "w.wav", tone(1.0)), "--uploads", uploads)
    assert result.exit_code == EXIT_STORE
    assert "cannot store" in result.stderr


def test_remove_unknown_prompt(uploads: Path) -> None:
    result = run("remove", "nope", "--uploads", uploads)
    assert result.exit_code == EXIT_UNKNOWN_PROMPT


def test_check(tmp_path: Path, uploads: Path) -> None:
    ok = run("check", "--uploads", uploads)
    assert ok.exit_code == 0 and "all present" in ok.stdout

    defaults = tmp_path / "defaults"
    (defaults / "fa").mkdir(parents=True)
    shutil.copy(SOURCE_TREE_PROMPTS / "fa" / "catalog.toml", defaults / "fa")
    bad = run("check", "--uploads", uploads, "--defaults", defaults)
    assert bad.exit_code == EXIT_PROBLEMS
    assert f"prompt 'welcome': audio file {defaults / 'fa' / 'welcome.wav'} is missing" in (
        bad.stderr
    )

    none = run("check", "--defaults", tmp_path / "nowhere")
    assert none.exit_code == EXIT_CATALOG
    assert "catalog.toml not found" in none.stderr


def test_synth_into_a_directory_is_incremental(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run("synth", "--dir", out, "--only", "please_wait,d9", "--only", "pause")
    assert first.exit_code == 0, first.output
    assert "written   please_wait" in first.stdout
    assert "3 written, 0 unchanged, 0 removed" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "d9.wav",
        "manifest.json",
        "pause.wav",
        "please_wait.wav",
    ]
    second = run("synth", "--dir", out, "--only", "please_wait,d9", "--only", "pause")
    assert "0 written, 3 unchanged" in second.stdout
    slower = run("synth", "--dir", out, "--only", "d9", "--speed", "120", "-q")
    assert slower.exit_code == 0
    assert slower.stdout.startswith("1 written")


def test_synth_unknown_prompt(tmp_path: Path) -> None:
    result = run("synth", "--dir", tmp_path / "out", "--only", "nope")
    assert result.exit_code == EXIT_UNKNOWN_PROMPT
    assert "nope" in result.stderr


def test_help_documents_exit_codes() -> None:
    result = run("upload", "--help")
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout and "upload refused" in result.stdout

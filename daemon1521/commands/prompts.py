"""``daemon1521 prompts``: list, check, upload, remove and synthesise the voice prompts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from daemon1521.audio.prompts import (
    DEFAULT_LANG,
    ENV_DEFAULTS_DIR,
    ENV_UPLOADS_DIR,
    CatalogError,
    PromptCatalog,
    PromptError,
    UnknownPromptError,
    UploadLimits,
    UploadRejectedError,
    UploadStoreError,
    remove_upload,
    upload_prompt,
)

EXIT_OK = 0
EXIT_PROBLEMS = 1
"""``check`` found problems, or synthesis failed."""
EXIT_USAGE = 2
"""Bad options or arguments (click's own code)."""
EXIT_UNKNOWN_PROMPT = 3
EXIT_REJECTED = 4
"""The uploaded file is not acceptable audio for that prompt."""
EXIT_STORE = 5
"""The upload directory cannot be written."""
EXIT_CATALOG = 6
"""The catalogue is missing or malformed."""

EXIT_CODES_HELP = f"""
\b
Exit codes:
  {EXIT_OK}  done (warnings, if any, on stderr)
  {EXIT_PROBLEMS}  check found problems, or synthesis failed
  {EXIT_USAGE}  usage error
  {EXIT_UNKNOWN_PROMPT}  no prompt of that name
  {EXIT_REJECTED}  upload refused: not decodable audio, too long or short, silent
     (or any warning, with --strict)
  {EXIT_STORE}  the upload directory cannot be written
  {EXIT_CATALOG}  the prompt catalogue is missing or malformed
"""

F = TypeVar("F", bound=Callable[..., Any])


_lang_option = click.option(
    "--lang", default=DEFAULT_LANG, show_default=True, help="Prompt language."
)
_defaults_option = click.option(
    "--defaults",
    "defaults_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_DEFAULTS_DIR,
    help="Root of the shipped prompts (holding <lang>/catalog.toml); "
    "default: prompts/ of the source tree.",
)
_uploads_option = click.option(
    "--uploads",
    "uploads_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_UPLOADS_DIR,
    help="Root of uploaded prompts (<lang>/ below it); default: /var/lib/daemon1521/prompts.",
)


def _catalog_options(func: F) -> F:
    """--lang, --uploads and --defaults, shared by the subcommands that look at uploads."""
    return _lang_option(_uploads_option(_defaults_option(func)))


def _open_catalog(lang: str, defaults_dir: Path | None, uploads_dir: Path | None) -> PromptCatalog:
    try:
        return PromptCatalog(lang, defaults_dir=defaults_dir, uploads_dir=uploads_dir)
    except CatalogError as exc:
        _fail(str(exc), EXIT_CATALOG)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


@click.group(epilog=EXIT_CODES_HELP)
def prompts() -> None:
    """The voice prompts: shipped defaults and operators' uploads.

    An upload replaces a prompt without touching the shipped files; remove it
    to hear the default again. The daemon picks up changes on SIGHUP.
    """


@prompts.command("list")
@_catalog_options
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_(lang: str, defaults_dir: Path | None, uploads_dir: Path | None, as_json: bool) -> None:
    """Every prompt with its source (default/uploaded), duration and text."""
    catalog = _open_catalog(lang, defaults_dir, uploads_dir)
    rows = []
    for name in catalog.names():
        entry = catalog.entry(name)
        try:
            duration: float | None = round(catalog.duration(name), 3)
        except PromptError:
            duration = None
        rows.append(
            {
                "name": name,
                "source": catalog.source(name),
                "duration": duration,
                "text": entry.text,
                "kind": entry.kind,
                "group": entry.group,
                "path": str(catalog.path(name)),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    width = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        seconds = "missing" if r["duration"] is None else f"{r['duration']:6.2f}s"
        text = r["text"] or f"({r['kind']})"
        click.echo(f"{r['name']:<{width}}  {r['source']:<8}  {seconds:>7}  {text}")


@prompts.command()
@_catalog_options
def check(lang: str, defaults_dir: Path | None, uploads_dir: Path | None) -> None:
    """Verify that every prompt has a readable audio file (exit 1 if not)."""
    catalog = _open_catalog(lang, defaults_dir, uploads_dir)
    problems = catalog.check()
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(EXIT_PROBLEMS)
    click.echo(f"{len(catalog)} prompts, all present ({catalog.default_dir})")


@prompts.command(epilog=EXIT_CODES_HELP)
@_catalog_options
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Longest recording accepted (default 30 s; the hold prompt allows 300 s).",
)
@click.option("--strict", is_flag=True, help="Refuse the file on any warning too.")
def upload(
    lang: str,
    defaults_dir: Path | None,
    uploads_dir: Path | None,
    name: str,
    file: Path,
    max_seconds: float | None,
    strict: bool,
) -> None:
    """Replace prompt NAME with the recording FILE (any common audio format).

    The file is checked (known name, decodable audio, length, silence,
    clipping), converted to 8 kHz mono 16-bit WAV and stored in the upload
    directory; the shipped default stays as it is.
    """
    catalog = _open_catalog(lang, defaults_dir, uploads_dir)
    limits = UploadLimits() if max_seconds is None else UploadLimits(max_seconds=max_seconds)
    try:
        report = upload_prompt(catalog, name, file, limits=limits, strict=strict)
    except UnknownPromptError as exc:
        _fail(f"{exc} (see `daemon1521 prompts list`)", EXIT_UNKNOWN_PROMPT)
    except UploadRejectedError as exc:
        _fail(str(exc), EXIT_REJECTED)
    except UploadStoreError as exc:
        _fail(str(exc), EXIT_STORE)
    for warning in report.warnings:
        click.echo(f"warning: {file}: {warning}", err=True)
    click.echo(report.describe())


@prompts.command(epilog=EXIT_CODES_HELP)
@_catalog_options
@click.argument("name")
def remove(lang: str, defaults_dir: Path | None, uploads_dir: Path | None, name: str) -> None:
    """Delete the upload of prompt NAME, so the shipped default plays again."""
    catalog = _open_catalog(lang, defaults_dir, uploads_dir)
    try:
        removed = remove_upload(catalog, name)
    except UnknownPromptError as exc:
        _fail(str(exc), EXIT_UNKNOWN_PROMPT)
    except OSError as exc:
        _fail(f"cannot remove the upload of {name!r}: {exc}", EXIT_STORE)
    if removed is None:
        click.echo(f"{name!r} has no upload; the default plays ({catalog.default_path(name)})")
    else:
        click.echo(f"removed {removed}; {name!r} plays the default again")


@prompts.command()
@_lang_option
@_defaults_option
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the WAVs and manifest.json (default: the shipped <lang>/ directory).",
)
@click.option("--voice", help="espeak-ng voice (default: the catalogue's).")
@click.option("--speed", type=click.IntRange(80, 450), help="Words per minute (default 160).")
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="Only these prompts (repeat, or separate with commas).",
)
@click.option("--force", is_flag=True, help="Regenerate even prompts whose input is unchanged.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def synth(
    lang: str,
    defaults_dir: Path | None,
    out_dir: Path | None,
    voice: str | None,
    speed: int | None,
    only: tuple[str, ...],
    force: bool,
    quiet: bool,
) -> None:
    """Synthesise the default prompts with espeak-ng (8 kHz mono, trimmed, level-matched)."""
    from daemon1521.audio.synth import SynthError, SynthSettings, synthesise, with_overrides

    catalog = _open_catalog(lang, defaults_dir, None)
    settings = with_overrides(SynthSettings(voice=catalog.voice), voice=voice, speed=speed)
    names = [n.strip() for value in only for n in value.split(",") if n.strip()] or None

    def progress(name: str, what: str) -> None:
        if not quiet and what != "unchanged":
            click.echo(f"{what:<9} {name}")

    try:
        report = synthesise(
            catalog, out_dir, settings=settings, only=names, force=force, progress=progress
        )
    except UnknownPromptError as exc:
        _fail(str(exc), EXIT_UNKNOWN_PROMPT)
    except SynthError as exc:
        _fail(str(exc), EXIT_PROBLEMS)
    except OSError as exc:
        _fail(f"cannot write prompts: {exc}", EXIT_STORE)
    click.echo(
        f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed in {report.directory}; set: "
        f"{report.total_bytes / 1024:.0f} KB, {report.total_seconds:.1f} s"
    )

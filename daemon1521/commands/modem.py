"""``daemon1521 modem``: look at one modem without the daemon.

``probe`` is the first thing an operator runs on a new modem: which chip it
is, which profile the driver chose and why, its firmware, its codecs and
whether it does caller ID. With ``--trace FILE`` it also records the whole
dialogue with the modem (digits as ``*``): what an operator with an unknown
modem sends back to us.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping

import click
import msgspec

from daemon1521.clock import LoopClock
from daemon1521.modem.errors import ModemError, ProfileError
from daemon1521.modem.profile import FirmwareProfile, load_profiles
from daemon1521.modem.profile_keys import KEYS
from daemon1521.modem.voice import ModemInfo, VoiceModem


@click.group()
def modem() -> None:
    """Inspect voice modems."""


@modem.command()
@click.argument("port")
@click.option("--profile", default="auto", show_default=True, help="Force a firmware profile.")
@click.option("--profiles-dir", type=click.Path(file_okay=False), help="Firmware profiles.")
@click.option("--region", help="Caller-ID region for chips that need one (e.g. etsi_fsk).")
@click.option(
    "--time-scale", "speed", default=1.0, hidden=True, help="For emulated modems: their speed."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option(
    "--trace",
    type=click.Path(dir_okay=False),
    help="Record the dialogue with the modem in FILE (commands, responses, events).",
)
def probe(
    port: str,
    profile: str,
    profiles_dir: str | None,
    region: str | None,
    speed: float,
    as_json: bool,
    trace: str | None,
) -> None:
    """Identify the modem on PORT and show its profile, model, firmware and codecs.

    PORT is a device (/dev/ttyACM0), a pty, rfc2217:// or socket:// URL, or a
    VISA resource (ASRL/dev/ttyS0::INSTR). Exit codes: 0 identified, 1 the
    modem did not answer or the port failed, 2 bad arguments or profiles.
    """
    try:
        profiles = load_profiles(profiles_dir)
        info = asyncio.run(_probe(port, profile, profiles, region, speed, trace))
    except (ProfileError, ValueError) as exc:
        click.echo(f"daemon1521 modem probe: {exc}", err=True)
        sys.exit(2)
    except (ModemError, OSError) as exc:
        click.echo(f"daemon1521 modem probe: {port}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(info.as_dict(), ensure_ascii=False))
        return
    rows = [
        ("port", info.url),
        ("profile", f"{info.profile} (matched by {info.matched_by})"),
        ("manufacturer", info.manufacturer or "-"),
        ("model", info.model or "-"),
        ("firmware", _firmware_text(info)),
        ("ATI0 / ATI3", f"{info.ati0 or '-'} / {info.ati3 or '-'}"),
        ("USB id", info.as_dict()["usb_id"] or "-"),
        ("codecs", ", ".join(info.codecs) or "-"),
        ("codec used", f"{info.codec} (+VSM={info.codec_code})"),
        ("caller ID", "yes" if info.caller_id else "no"),
        ("full duplex", "yes" if info.full_duplex else "no"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")


def _firmware_text(info: ModemInfo) -> str:
    version = info.firmware or "-"
    return f"{version} (WARNING: {info.firmware_warning})" if info.firmware_warning else version


async def _probe(
    port: str,
    profile: str,
    profiles: list,
    region: str | None,
    speed: float,
    trace: str | None = None,
) -> ModemInfo:
    modem_ = VoiceModem(
        port,
        profile=profile,
        profiles=profiles,
        region=region,
        clock=LoopClock(speed),
        trace=trace,
    )
    try:
        return await modem_.open()
    finally:
        await modem_.close()


@modem.command("profiles")
@click.option("--profiles-dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def list_profiles(profiles_dir: str | None, as_json: bool) -> None:
    """List the firmware profiles and what identifies each.

    With --json, each profile also carries every key's value and what it
    makes the driver do.
    """
    try:
        profiles = load_profiles(profiles_dir)
    except ProfileError as exc:
        click.echo(f"daemon1521 modem profiles: {exc}", err=True)
        sys.exit(2)
    records = [
        {
            "name": p.name,
            "description": p.description,
            "ati3": list(p.match.ati3),
            "usb": list(p.match.usb),
            "path": p.path,
            "settings": _settings(p),
        }
        for p in profiles
    ]
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False))
        return
    for record in records:
        usb = ", ".join(record["usb"]) or "-"
        click.echo(f"{record['name']:<20} {record['description']}  [USB {usb}]")


def _settings(profile: FirmwareProfile) -> dict[str, dict[str, object]]:
    """Every key of the profile (dotted), with its value and what it does."""
    flat: dict[str, object] = {}
    for key in profile.__struct_fields__:
        value = getattr(profile, key)
        if isinstance(value, msgspec.Struct):
            for name in value.__struct_fields__:
                flat[f"{key}.{name}"] = _plain(getattr(value, name))
        elif key != "path":
            flat[key] = _plain(value)
    return {key: {"value": value, "means": KEYS[key]} for key, value in flat.items()}


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value

"""Every key of a firmware profile means something: documented, read by the driver, and
the keys that change what is sent to a modem seen doing so against the emulator."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner
from loguru import logger

from daemon1521.commands.modem import modem
from daemon1521.dsp import codecs
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.modem import profile as profile_module
from daemon1521.modem.at import ResponseParser
from daemon1521.modem.errors import NotResponding
from daemon1521.modem.profile import SECTIONS, FirmwareProfile, load_profiles
from daemon1521.modem.profile_keys import KEYS
from daemon1521.modem.voice import VoiceModem, decode_received
from tests.voice_support import call_in, emulated_site

MODEM = Path(profile_module.__file__).parent
META = {"name", "description", "extends", "path"}
"""What names a profile file and where it came from, not how a modem behaves."""
LOADER = {
    "load_profiles",
    "load_profile_file",
    "_convert",
    "_choices",
    "_merge",
    "_frozen",
    "_cross_checks",
}
"""Functions of profile.py that read keys to check them, not to drive a modem."""


def dotted_keys() -> set[str]:
    keys = set()
    for name in FirmwareProfile.__struct_fields__:
        if name in SECTIONS:
            keys |= {f"{name}.{field}" for field in SECTIONS[name].__struct_fields__}
        elif name != "path":
            keys.add(name)
    return keys


def test_every_key_says_what_it_does() -> None:
    assert dotted_keys() == set(KEYS)
    assert all(text.strip() for text in KEYS.values())


def _reads() -> set[tuple[str, str]]:
    """(section, key) pairs the driver reads: ``<...>.section.key`` or ``section.key``
    in the modem package outside the loader, and ``self.key`` in the
    public methods of a section's class."""
    section_of_class = {kind.__name__: name for name, kind in SECTIONS.items()}
    found: set[tuple[str, str]] = set()
    for path in MODEM.glob("*.py"):
        if path.name == "profile_keys.py":
            continue
        tree = ast.parse(path.read_text())
        # the loader checking a key is not the driver using it
        loader = {
            id(inner)
            for top in tree.body
            if isinstance(top, ast.FunctionDef) and top.name in LOADER
            for inner in ast.walk(top)
        }
        for node in ast.walk(tree):
            if id(node) in loader:
                continue
            if isinstance(node, ast.Attribute):
                owner = node.value
                if isinstance(owner, ast.Attribute):
                    found.add((owner.attr, node.attr))
                elif isinstance(owner, ast.Name):
                    found.add((owner.id, node.attr))
            if isinstance(node, ast.ClassDef) and node.name in section_of_class:
                section = section_of_class[node.name]
                for method in node.body:
                    if not isinstance(method, ast.FunctionDef) or method.name.startswith("_"):
                        continue
                    for inner in ast.walk(method):
                        if (
                            isinstance(inner, ast.Attribute)
                            and isinstance(inner.value, ast.Name)
                            and inner.value.id == "self"
                        ):
                            found.add((section, inner.attr))
    return found


def test_every_key_is_read_by_the_driver() -> None:
    reads = _reads()
    unread = [key for key in sorted(dotted_keys() - META) if tuple(key.split(".", 1)) not in reads]
    assert unread == [], f"profile keys the driver never reads: {unread}"


def _with(name: str, **sections: dict[str, object]) -> list[FirmwareProfile]:
    """The shipped profiles, with some keys of profile ``name`` changed."""
    profiles = []
    for profile in load_profiles():
        if profile.name == name:
            changes = {
                section: msgspec.structs.replace(getattr(profile, section), **values)
                for section, values in sections.items()
            }
            profile = msgspec.structs.replace(profile, **changes)
        profiles.append(profile)
    return profiles


async def test_silence_detection_tells_the_chip_the_calls_silence_limit() -> None:
    async with emulated_site("generic-v253", silence_hangup=4.0) as (rig, _modem):
        assert rig.modems[0].parameter("+VSD") == ("128", "40")
    # +VSD cannot say 30 s: the chip's detection is switched off, the audio decides
    async with emulated_site("generic-v253", silence_hangup=30.0) as (rig, _modem):
        assert rig.modems[0].parameter("+VSD") == ("128", "0")


async def test_no_silence_command_where_the_profile_says_the_chip_ignores_it() -> None:
    async with emulated_site("conexant-cx93001", silence_hangup=4.0) as (rig, modem):
        assert not modem.profile.capabilities.silence_detection
        assert rig.modems[0].parameter("+VSD") == ("128", "50")  # the chip's default


async def test_firmware_version_is_read_where_the_profile_says() -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        async with emulated_site("usr-5637") as (_rig, modem):
            assert modem.info is not None
            assert modem.info.firmware == "1.2.23"  # from ATI3, as the profile names
            assert modem.info.model == "USR5637"
            assert modem.info.firmware_warning == ""
    finally:
        logger.remove(sink)
    assert warnings == []


async def test_firmware_older_than_the_profiles_minimum_is_warned_once() -> None:
    profiles = _with("usr-5637", firmware={"minimum": "1.2.24", "too_old": "it loses caller ID"})
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        async with emulated_site("usr-5637", profiles=profiles) as (_rig, modem):
            assert modem.info is not None
            assert modem.info.firmware_warning == "older than 1.2.24: it loses caller ID"
            assert modem.state == "idle"  # a warning, not a refusal
    finally:
        logger.remove(sink)
    assert len(warnings) == 1
    assert "usr-5637 firmware 1.2.23 is older than 1.2.24: it loses caller ID" in warnings[0]


async def test_the_model_comes_from_the_query_and_pattern_the_profile_names() -> None:
    profiles = _with(
        "usr-5637",
        firmware={"model_query": "ATI3", "model_pattern": r"(U\.S\. Robotics.*) V\d"},
    )
    async with emulated_site("usr-5637", profiles=profiles) as (_rig, modem):
        assert modem.info is not None
        assert modem.info.model == "U.S. Robotics 56K FAX USB"


def test_full_duplex_is_offered_only_where_the_profile_says() -> None:
    plain = VoiceModem("/dev/null", profiles=load_profiles())
    assert plain.duplex_command is None  # the generic profile: +VTR not assumed
    able = VoiceModem(
        "/dev/null", profiles=_with("generic-v253", capabilities={"full_duplex": True})
    )
    assert able.duplex_command == "AT+VTR"


def test_u8_audio_is_centred_on_the_chips_idle_byte() -> None:
    idle = bytes([0x7F]) * 80
    assert np.all(decode_received(idle, "u8", silence_u8=0x7F) == 0)
    assert np.all(decode_received(bytes([0x80]) * 80, "u8") == 0)
    assert np.all(decode_received(idle, "u8") != 0)  # one step off: not silence
    # other codecs are left alone
    assert np.array_equal(decode_received(b"\xff" * 8, "ulaw", 0x7F), np.zeros(8, np.int16))


def test_profiles_json_shows_every_key_with_its_value_and_meaning() -> None:
    result = CliRunner().invoke(modem, ["profiles", "--json"])
    assert result.exit_code == 0, result.output
    records = {record["name"]: record for record in json.loads(result.stdout)}
    usr = records["usr-5637"]["settings"]
    assert set(usr) == set(KEYS) - {"path"}
    assert usr["firmware.minimum"]["value"] == "1.2.23"
    assert usr["firmware.minimum"]["means"] == KEYS["firmware.minimum"]
    assert usr["codecs.table"]["value"]["ulaw"] == 131
    assert records["conexant-cx930xx"]["settings"]["capabilities.hangup_events"]["value"] == []


async def test_recovery_applies_the_whole_profile_again() -> None:
    """A modem that stops answering is reset and set up as on open: voice mode, +VSD, codec."""
    async with emulated_site("generic-v253", silence_hangup=4.0) as (rig, modem):
        emulated = rig.modems[0]

        def revive(message) -> None:
            if "resetting it" in message.record["message"]:
                emulated.resume()  # back just in time for the driver's reset

        emulated.stop_answering()
        sink = logger.add(revive, level="WARNING")
        try:
            with pytest.raises(NotResponding):
                await modem.initialise()
        finally:
            logger.remove(sink)
        assert modem.state == "idle"  # recovered, without a reset by the caller
        assert emulated.fclass == "8"
        assert emulated.parameter("+VSD") == ("128", "40")  # ATZ had put back 128,50
        phone, _ = await call_in(rig, modem)
        pressing = asyncio.create_task(phone.press("7"))
        try:
            assert await modem.next_key(5.0) == "7"
        finally:
            await wait_cancelled(pressing)
        await phone.hang_up()
        await modem.hang_up()


def test_the_parser_takes_the_chips_dle_sub_reading_from_the_next_stream() -> None:
    def stream(parser: ResponseParser) -> bytes:
        parser.arm_data_mode()
        items = parser.feed(b"\r\nCONNECT\r\n\x80\x10\x1a\x80")
        parser.end_data()
        return b"".join(item for item in items if isinstance(item, bytes))

    parser = ResponseParser()  # the port is opened before the chip is known: generic
    assert stream(parser) == b"\x80\x10\x10\x80"
    parser.set_dle_sub(False)
    assert b"\x10\x10" not in stream(parser)


async def test_u8_prompts_go_out_around_the_chips_idle_byte() -> None:
    profiles = _with("conexant-cx930xx", codecs={"silence_u8": 0x90})
    async with emulated_site("conexant-cx93001", profiles=profiles) as (rig, modem):
        assert modem.codec == "u8"
        phone, _ = await call_in(rig, modem)
        mark = len(phone.heard)
        assert await modem.play(codecs.silence("u8", 4000), barge_in=False) is None
        await phone.wait(0.2)
        heard = phone.heard[mark:]
        # the emulated chip's own idle byte is 0x80: 0x90 reaches the line as 16 steps up
        assert np.count_nonzero(heard == 16 * 256) >= 3900
        await phone.hang_up()
        await modem.hang_up()

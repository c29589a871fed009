"""Firmware profiles: the shipped files, identification, +VSM=? listings, load errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.modem.errors import ProfileError
from daemon1521.modem.profile import (
    GENERIC,
    CodecOption,
    FirmwareProfile,
    choose_codec,
    classify_codec,
    default_profile_dir,
    identify,
    load_profiles,
    parse_vsm_listing,
)

SHIPPED = {"generic-v253", "conexant-cx930xx", "usr-5637", "agere-mt5634zpx", "lucent-venus"}


@pytest.fixture(scope="module")
def profiles() -> list[FirmwareProfile]:
    return load_profiles()


def by_name(profiles: list[FirmwareProfile], name: str) -> FirmwareProfile:
    return next(p for p in profiles if p.name == name)


def test_shipped_profiles_load(profiles: list[FirmwareProfile]) -> None:
    assert default_profile_dir().name == "firmware_profiles"
    assert {p.name for p in profiles} == SHIPPED
    for profile in profiles:
        assert profile.description
        assert profile.path.endswith(".toml")
        hash(profile)  # frozen all the way down


def test_every_section_says_where_its_facts_come_from() -> None:
    for path in default_profile_dir().glob("*.toml"):
        text = path.read_text()
        assert "VOICE-MODEMS.md" in text, path.name
        rows = text.splitlines()
        for number, row in enumerate(rows):
            if row.startswith("[") and not row.endswith((".table]", ".regions]")):
                following = rows[number + 1] if number + 1 < len(rows) else ""
                assert following.startswith("#"), f"{path.name}: {row} has no comment"


@pytest.mark.parametrize(
    ("kwargs", "name", "evidence"),
    [
        ({"ati3": "U.S. Robotics 56K FAX USB V1.2.23"}, "usr-5637", "ATI3"),
        ({"ati3": "5601", "usb_id": (0x0BAF, 0x0303)}, "usr-5637", "USB 0baf:0303"),
        ({"ati3": "CX93001-EIS_V0.2002-V92"}, "conexant-cx930xx", "ATI3"),
        ({"ati3": "CX93001-EIS_V0.2013-V92"}, "conexant-cx930xx", "ATI3"),
        ({"ati3": "56000", "usb_id": (0x0572, 0x1340)}, "conexant-cx930xx", "USB 0572:1340"),
        ({"usb_id": (0x0572, 0x1329)}, "conexant-cx930xx", "USB 0572:1329"),
        (
            {"ati3": "LT V.92 1.0 MT5634ZPX-PCI-V92 Internal Data/Fax/Voice Modem Version 1.32c"},
            "agere-mt5634zpx",
            "ATI3",
        ),
        ({"ati3": "Venus V.90 USB U052099a"}, "lucent-venus", "ATI3"),
        ({"gmi": "+GMI: CONEXANT"}, "conexant-cx930xx", "+GMI"),
        ({"gmm": "+GMM: USR5637"}, "usr-5637", "+GMM"),
    ],
)
def test_identify(profiles: list[FirmwareProfile], kwargs: dict, name: str, evidence: str) -> None:
    profile, matched_by = identify(profiles, **kwargs)
    assert profile.name == name
    assert matched_by.startswith(evidence)


def test_text_outranks_usb(profiles: list[FirmwareProfile]) -> None:
    profile, matched_by = identify(
        profiles, ati3="Venus V.90 USB U052099a", usb_id=(0x0572, 0x1340)
    )
    assert profile.name == "lucent-venus" and matched_by.startswith("ATI3")


def test_unknown_modem_falls_back_with_warning(profiles: list[FirmwareProfile]) -> None:
    from loguru import logger

    seen: list[str] = []
    sink = logger.add(seen.append, level="WARNING")
    try:
        profile, matched_by = identify(profiles, ati3="56000", gmm="ACME 9000")
    finally:
        logger.remove(sink)
    assert profile.name == GENERIC and matched_by == "fallback"
    assert any("generic" in s for s in seen)


def test_ati0_alone_identifies_nothing(profiles: list[FirmwareProfile]) -> None:
    for ati0 in ("5601", "56000"):
        assert identify(profiles, ati3=ati0)[1] == "fallback"


def test_conexant_init_resends_caller_id_and_region(profiles: list[FirmwareProfile]) -> None:
    conexant = by_name(profiles, "conexant-cx930xx")
    init = conexant.init_commands()
    assert init[-2:] == ["AT+VCID=1", "AT!4886=02"]
    assert conexant.init_commands("etsi_dtmf")[-1] == "AT!4886=05"
    assert conexant.init_commands("bell_fsk", rtscts=True)[-2:] == ["AT!4886=00", "AT+IFC=2,2"]
    with pytest.raises(ValueError, match="region"):
        conexant.init_commands("mars")
    assert not conexant.capabilities.silence_detection


def test_children_inherit_but_do_not_merge_tables(profiles: list[FirmwareProfile]) -> None:
    conexant = by_name(profiles, "conexant-cx930xx")
    assert dict(conexant.codecs.table) == {"u8": 1, "adpcm": 129}
    assert conexant.commands.answer == ("AT+VLS=1",)  # from the generic file
    usr = by_name(profiles, "usr-5637")
    assert dict(usr.codecs.table) == {
        "u8": 128,
        "s16le": 129,
        "alaw": 130,
        "ulaw": 131,
        "adpcm": 132,
    }
    assert usr.capabilities.false_dle_d_during_play
    assert usr.firmware.version_query == "ATI3" and usr.firmware.minimum == "1.2.23"
    assert usr.firmware.model_query == "AT+GMM"  # from the generic file
    assert by_name(profiles, GENERIC).match.usb == ()


# -- +VSM=? --------------------------------------------------------------------

CONEXANT_EARLY = """
+VSM: 1,"UNSIGNED PCM",8,0,8000,0,0
129,"IMA ADPCM",4,0,8000,0,0
130,"UNSIGNED PCM",8,0,8000,0,0
140,"2 BIT ADPCM",2,0,8000,0,0

OK
"""
CONEXANT_LATER = CONEXANT_EARLY.replace(
    "\nOK",
    '131,"G.711 Mu-Law",8,0,8000,0,0\n132,"G.711 A-Law",8,0,8000,0,0\n'
    '133,"14-BIT PCM",14,0,8000,0,0\nOK',
)
USR = """128,"8-BIT LINEAR",(7200,8000,11025)
129,"16-BIT LINEAR",(7200,8000,11025)
130,"8-BIT ALAW",(8000)
131,"8-BIT ULAW",(8000)
132,"IMA ADPCM",(7200,8000,11025)
"""
PARENTHESISED = """(128),"8-bit linear",(8),(0),(7200-11025),(0),(0)
(131),"mu-law",(8),(0),(8000),(0),(0)
"""


def test_conexant_listing() -> None:
    options = parse_vsm_listing(CONEXANT_EARLY)
    assert [(o.code, o.format) for o in options] == [
        (1, "u8"),
        (129, "adpcm"),
        (130, "u8"),
        (140, "adpcm"),
    ]
    assert options[0].bits == 8 and options[0].supports(8000) and not options[0].supports(11025)
    later = {o.code: o.format for o in parse_vsm_listing(CONEXANT_LATER)}
    assert later[131] == "ulaw" and later[132] == "alaw" and later[133] == "pcm14"


def test_usr_listing() -> None:
    options = {o.code: o for o in parse_vsm_listing(USR)}
    assert {c: o.format for c, o in options.items()} == {
        128: "u8",
        129: "s16le",
        130: "alaw",
        131: "ulaw",
        132: "adpcm",
    }
    assert options[128].supports(11025) and not options[131].supports(11025)


def test_parenthesised_listing_and_ranges() -> None:
    options = {o.code: o for o in parse_vsm_listing(PARENTHESISED.splitlines())}
    assert options[128].format == "u8"
    assert options[128].supports(9600) and not options[128].supports(16000)
    assert options[131].format == "ulaw"


def test_nameless_listing_uses_the_table() -> None:
    options = parse_vsm_listing("+VSM: (128-132),(8000),(0),(0)\r\nOK")
    assert [o.code for o in options] == [128, 129, 130, 131, 132]
    choice = choose_codec(options, ["ulaw", "u8"], 8000, {"u8": 128, "ulaw": 131})
    assert choice is not None and (choice.code, choice.format) == (131, "ulaw")


@pytest.mark.parametrize(
    ("name", "bits", "fmt"),
    [
        ("Mu-Law", None, "ulaw"),
        ("8-BIT ULAW", None, "ulaw"),
        ("G.711U", None, "ulaw"),
        ("u-law", None, "ulaw"),
        ("A-LAW", None, "alaw"),
        ("8-bit alaw", None, "alaw"),
        ("8-BIT LINEAR", None, "u8"),
        ("UNSIGNED PCM", 8, "u8"),
        ("SIGNED PCM", 8, "s8"),
        ("16-BIT LINEAR", None, "s16le"),
        ("16 bit linear", None, "s16le"),
        ("Linear PCM", 16, "s16le"),
        ("IMA ADPCM", 4, "adpcm"),
        ("CELP", None, "unknown"),
    ],
)
def test_codec_names(name: str, bits: int | None, fmt: str) -> None:
    assert classify_codec(name, bits) == fmt


def test_chooser_follows_preference_and_what_the_modem_offers(
    profiles: list[FirmwareProfile],
) -> None:
    conexant = by_name(profiles, "conexant-cx930xx")
    early = conexant.choose_codec(CONEXANT_EARLY)
    assert (early.code, early.format, early.rate) == (1, "u8", 8000)
    later = conexant.choose_codec(CONEXANT_LATER)
    assert (later.code, later.format) == (131, "ulaw")
    assert conexant.select_command(later) == "AT+VSM=131,8000"
    usr = by_name(profiles, "usr-5637")
    assert usr.choose_codec(USR).code == 131
    # without a usable listing the static table is trusted
    assert usr.choose_codec(None).code == 131
    assert usr.choose_codec("ERROR").code == 131
    with pytest.raises(ValueError, match="none of"):
        usr.choose_codec('5,"CELP",(8000)')
    # nothing at 11025 Hz but linear
    assert choose_codec(parse_vsm_listing(USR), ["ulaw", "u8"], 11025).format == "u8"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=12))
def test_listing_parser_never_raises(lines: list[str]) -> None:
    for option in parse_vsm_listing(lines):
        assert isinstance(option, CodecOption)


# -- load errors ---------------------------------------------------------------

GOOD = """
name = "test-chip"
extends = "generic-v253"
description = "test"
[match]
ati3 = ["TEST"]
"""


def write_set(tmp_path: Path, extra: str, name: str = "test-chip.toml") -> Path:
    (tmp_path / "generic-v253.toml").write_text(
        (default_profile_dir() / "generic-v253.toml").read_text()
    )
    (tmp_path / name).write_text(extra)
    return tmp_path


def test_a_new_modem_is_a_new_file(tmp_path: Path) -> None:
    profiles = load_profiles(write_set(tmp_path, GOOD))
    profile, matched_by = identify(profiles, ati3="A TEST MODEM")
    assert profile.name == "test-chip" and matched_by == "ATI3 /TEST/"
    assert profile.commands.hangup == ("AT+VLS=0",)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("colour = 1\n" + GOOD, "colour", "unknown key"),
        (GOOD + "colour = 1\n", "match.colour", "unknown key"),
        (GOOD + "[capabilities]\nfull_duplx = true\n", "capabilities.full_duplx", "unknown key"),
        (GOOD + "[capabilities]\nfull_duplex = 1\n", "capabilities.full_duplex", "expected bool"),
        (GOOD + "[pacing]\nchunk_ms = 'x'\n", "pacing.chunk_ms", "expected int"),
        (GOOD + "[dtmf]\nframing = 'bare'\n", "dtmf", "unknown key"),
        (GOOD + "[capabilities]\nring_as_dle = true\n", "capabilities.ring_as_dle", "unknown key"),
        (GOOD + "[codecs]\npreference = ['ulaw', 'opus']\n", "codecs.preference.1", "'opus'"),
        (GOOD + "[codecs.table]\nopus = 9\n", "codecs", "unknown format 'opus'"),
        (GOOD + "[codecs]\nsilence_u8 = 256\n", "codecs", "a byte"),
        (
            GOOD + "[capabilities]\nhangup_events = ['silence']\n",
            "capabilities.hangup_events.0",
            "'silence' (one of busy, loop_break, dial_tone)",
        ),
        (GOOD + "[firmware]\nminimum = 'new'\n", "firmware", "not a version"),
        (GOOD + "[firmware]\nversion_pattern = '(['\n", "firmware", "regular expression"),
        (GOOD + "[commands]\nsilence = 'AT+VSD=128,5'\n", "commands", "{interval}"),
        (GOOD + "[pacing]\nchunk_ms = 500\n", "pacing", "chunk_ms <= max_queued_ms"),
        ("path = 'x'\n" + GOOD, "path", "unknown key"),
        (GOOD.replace('"TEST"', '"(["'), "match", "regular expression"),
        (GOOD + "[commands]\ndial = ['ATDT;']\n", "commands", "{number}"),
        (GOOD + "[commands]\ndial = ['ATDT{nmbr};']\n", "commands", "placeholder"),
        (GOOD.replace('description = "test"\n', ""), "description", "missing"),
        (GOOD.replace('"generic-v253"', '"nothing"'), "extends", "no profile named"),
        (GOOD + "[callerid]\ndefault_region = 'x'\n", "callerid", "not in regions"),
        ("name = [", "", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    directory = write_set(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profiles(directory)
    error = caught.value
    assert str(error.path).endswith("test-chip.toml")
    assert error.key == key
    assert problem in error.problem
    assert "test-chip.toml" in str(error)


def test_circular_extends(tmp_path: Path) -> None:
    write_set(tmp_path, GOOD.replace('"generic-v253"', '"other"'))
    (tmp_path / "other.toml").write_text(
        'name = "other"\ndescription = "o"\nextends = "test-chip"\n'
    )
    with pytest.raises(ProfileError, match="circle"):
        load_profiles(tmp_path)


def test_duplicate_names(tmp_path: Path) -> None:
    write_set(tmp_path, GOOD)
    (tmp_path / "zz-copy.toml").write_text(GOOD)
    with pytest.raises(ProfileError, match="also in"):
        load_profiles(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such directory"):
        load_profiles(tmp_path / "nope")

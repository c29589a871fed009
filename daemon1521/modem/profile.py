"""Firmware profiles: what one chip family does differently, as data.

Each file in ``firmware_profiles/`` describes a family: how to recognise it
(ATI3 / +GMM / +GMI patterns, USB vendor:product), its init commands, its
``+VSM`` codec numbers and preference, its caller-ID and DTMF dialect, its
DLE quirks and capabilities, pacing and timeouts, and the exact answer /
hang-up / dial commands. A file may ``extends`` another and then lists only
its differences. The driver stays generic: a new modem is a new file.

This module also parses ``AT+VSM=?`` listings, whose grammar and codec names
vary between chips and firmware revisions, and picks the codec to use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import string
import sysconfig
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from daemon1521 import typed_toml
from daemon1521.modem.errors import ProfileError

GENERIC = "generic-v253"
PROFILE_GLOB = "*.toml"
INSTALLED_DIR = ("share", "daemon1521", "firmware_profiles")  # wheel data-files target

Format = Literal["u8", "s8", "s16le", "alaw", "ulaw", "adpcm", "pcm14", "unknown"]
HangupEvent = Literal["busy", "loop_break", "dial_tone", "silence"]
DtmfFraming = Literal["bare", "slash_tilde"]

# Identification evidence, strongest first.
MATCH_ORDER = ("ati3", "gmm", "usb", "gmi")
_INFO_PREFIX = re.compile(r"^\s*\+?GM[IMR]\s*:\s*", re.IGNORECASE | re.MULTILINE)
_USB_ID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable table (codec numbers, regions) for frozen profiles."""

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return repr(self._items)


def _check_template(value: str, allowed: Iterable[str], what: str) -> None:
    names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    extra = names - set(allowed)
    if extra:
        raise ValueError(f"{what}: unknown placeholder {{{sorted(extra)[0]}}}")


@dataclass(frozen=True)
class MatchRules:
    """Regular expressions (searched, case-insensitive) and USB ids that identify a family."""

    ati3: tuple[str, ...] = ()
    gmm: tuple[str, ...] = ()
    gmi: tuple[str, ...] = ()
    usb: tuple[str, ...] = ()  # "vvvv:pppp", hexadecimal

    def __post_init__(self) -> None:
        for rule in (*self.ati3, *self.gmm, *self.gmi):
            try:
                re.compile(rule)
            except re.error as exc:
                raise ValueError(f"bad regular expression {rule!r}: {exc}") from None
        for usb in self.usb:
            if not _USB_ID.match(usb):
                raise ValueError(f"USB id {usb!r} is not vvvv:pppp in hexadecimal")

    @property
    def usb_ids(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(u[:4], 16), int(u[5:], 16)) for u in self.usb)


@dataclass(frozen=True)
class Codecs:
    """Sample formats: preference order, the chip's static codec numbers, +VSM commands."""

    preference: tuple[Format, ...] = ("ulaw", "alaw", "u8")
    rate: int = 8000
    table: Mapping[Format, int] = field(default_factory=FrozenMap)  # format -> +VSM code
    query: str = "AT+VSM=?"
    select: str = "AT+VSM={code},{rate}"
    silence_u8: int = 0x80  # the idle byte of 8-bit unsigned audio (0x7F on some)

    def __post_init__(self) -> None:
        _check_template(self.select, ("code", "rate"), "select")


@dataclass(frozen=True)
class CallerId:
    """How to switch formatted caller ID on, and the region setting some chips need."""

    enable: tuple[str, ...] = ("AT+VCID=1",)
    region_command: str = ""  # e.g. "AT!4886={code}", empty when the chip has none
    regions: Mapping[str, str] = field(default_factory=FrozenMap)  # region name -> code
    default_region: str = ""
    lost_on_reset: bool = False  # ATZ forgets +VCID: send enable after every reset

    def __post_init__(self) -> None:
        _check_template(self.region_command, ("code",), "region_command")
        if self.default_region and self.default_region not in self.regions:
            raise ValueError(f"default_region {self.default_region!r} is not in regions")
        if self.region_command and not self.regions:
            raise ValueError("region_command needs regions")


@dataclass(frozen=True)
class Dtmf:
    """How key presses arrive: bare ``DLE 5`` or wrapped ``DLE / ... DLE ~``."""

    framing: DtmfFraming = "bare"
    repeats_in_frame: bool = False  # the digit may repeat inside one /~ pair


@dataclass(frozen=True)
class Capabilities:
    """What the chip does (and does not do) that the voice layer must know."""

    silence_detection: bool = True  # +VSD gives DLE s / DLE q
    full_duplex: bool = False  # +VTR works
    hangup_events: tuple[HangupEvent, ...] = ("busy", "loop_break", "dial_tone")
    ring_as_dle: bool = False  # voice-mode ring is DLE R, not the text RING
    dle_sub: bool = True  # DLE SUB stands for two 0x10 bytes
    dle_h_after_answer: bool = False  # a DLE H right after AT+VLS=1 is not a hang-up
    stray_dle_u_after_connect: bool = True  # one DLE u right after CONNECT means nothing
    false_dle_d_during_play: bool = False  # DLE d during +VTX is not a dial tone
    vtx_end_etx: bool = False  # answers the host's DLE ETX with DLE ETX before OK
    events_during_vrx: bool = True  # DTMF and tones are reported during +VRX
    tone_pair_only: bool = False  # +VTS [f,0,d] refused: send [f,f,d]


@dataclass(frozen=True)
class Commands:
    """The exact command strings; ``{number}`` / ``{tones}`` are filled in by the driver."""

    reset: str = "ATZ"
    init: tuple[str, ...] = ()
    voice: str = "AT+FCLASS=8"
    data: str = "AT+FCLASS=0"
    answer: tuple[str, ...] = ("AT+VLS=1",)
    hangup: tuple[str, ...] = ("AT+VLS=0",)
    dial: tuple[str, ...] = ("ATDT{number};",)
    play: str = "AT+VTX"
    record: str = "AT+VRX"
    duplex: str = "AT+VTR"
    tones: str = "AT+VTS={tones}"
    flow_control: str = "AT+IFC=2,2"  # sent when the port uses RTS/CTS

    def __post_init__(self) -> None:
        for command in self.dial:
            _check_template(command, ("number",), "dial")
        if not any("{number}" in command for command in self.dial):
            raise ValueError("dial: no command carries {number}")
        _check_template(self.tones, ("tones",), "tones")
        if "{tones}" not in self.tones:
            raise ValueError("tones: needs {tones}")


@dataclass(frozen=True)
class Pacing:
    """How fast to feed +VTX: chunk size, how much may be queued, the chip's buffer."""

    chunk_ms: int = 100
    max_queued_ms: int = 300
    transmit_buffer: int = 1024  # bytes

    def __post_init__(self) -> None:
        if not 0 < self.chunk_ms <= self.max_queued_ms:
            raise ValueError("needs 0 < chunk_ms <= max_queued_ms")


@dataclass(frozen=True)
class Timeouts:
    """Seconds of modem time for each kind of command."""

    command: float = 2.0
    reset: float = 5.0
    answer: float = 5.0
    dial: float = 60.0
    stream_start: float = 5.0
    stream_end: float = 5.0


@dataclass(frozen=True)
class FirmwareProfile:
    """One chip family's behaviour, loaded from ``firmware_profiles/<name>.toml``."""

    name: str
    description: str
    extends: str = ""
    match: MatchRules = field(default_factory=MatchRules)
    codecs: Codecs = field(default_factory=Codecs)
    callerid: CallerId = field(default_factory=CallerId)
    dtmf: Dtmf = field(default_factory=Dtmf)
    capabilities: Capabilities = field(default_factory=Capabilities)
    commands: Commands = field(default_factory=Commands)
    pacing: Pacing = field(default_factory=Pacing)
    timeouts: Timeouts = field(default_factory=Timeouts)
    path: str = field(default="", compare=False)  # set by the loader, not a TOML key

    def init_commands(self, region: str | None = None, *, rtscts: bool = False) -> list[str]:
        """The commands after a reset: init, caller ID on, its region, flow control."""
        commands = [*self.commands.init, *self.callerid.enable]
        region = region or self.callerid.default_region
        if self.callerid.region_command and region:
            code = self.callerid.regions.get(region)
            if code is None:
                known = ", ".join(sorted(self.callerid.regions))
                raise ValueError(f"{self.name}: unknown caller-ID region {region!r} ({known})")
            commands.append(self.callerid.region_command.format(code=code))
        if rtscts and self.commands.flow_control:
            commands.append(self.commands.flow_control)
        return commands

    def choose_codec(
        self, listing: str | Iterable[str] | None = None, rate: int | None = None
    ) -> CodecChoice:
        """The codec to select, from an ``AT+VSM=?`` listing (or the static table)."""
        options = parse_vsm_listing(listing) if listing is not None else []
        choice = choose_codec(
            options, self.codecs.preference, rate or self.codecs.rate, self.codecs.table
        )
        if choice is None:
            raise ValueError(f"{self.name}: the modem offers none of {self.codecs.preference}")
        return choice

    def select_command(self, choice: CodecChoice) -> str:
        return self.codecs.select.format(code=choice.code, rate=choice.rate)


# -- +VSM=? listings ----------------------------------------------------------


@dataclass(frozen=True)
class CodecOption:
    """One line of an ``AT+VSM=?`` listing."""

    code: int
    name: str
    format: Format
    bits: int | None = None
    rates: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty = not stated

    def supports(self, rate: int) -> bool:
        return not self.rates or any(low <= rate <= high for low, high in self.rates)


@dataclass(frozen=True)
class CodecChoice:
    code: int
    format: Format
    rate: int
    name: str = ""


_BITS_IN_NAME = re.compile(r"(\d+)\s*-?\s*BIT", re.IGNORECASE)
_NUMBER_OR_RANGE = re.compile(r"(\d+)\s*(?:-\s*(\d+))?")
_VSM_PREFIX = re.compile(r"^\s*\+VSM\s*:\s*", re.IGNORECASE)


def classify_codec(name: str, bits: int | None = None) -> Format:
    """A sample format from a codec's name as chips spell it ("Mu-Law", "8-BIT LINEAR")."""
    upper = name.upper()
    compact = re.sub(r"[^A-Z0-9µ]", "", upper)
    if "ULAW" in compact or "µ" in name or "G711U" in compact or "MULAW" in compact:
        return "ulaw"
    if "ALAW" in compact or "G711A" in compact:
        return "alaw"
    if "ADPCM" in compact:
        return "adpcm"
    if "LINEAR" in compact or "PCM" in compact:
        named = _BITS_IN_NAME.search(upper)
        width = int(named.group(1)) if named else bits
        signed = "SIGNED" in compact and "UNSIGNED" not in compact
        if width == 8:
            return "s8" if signed else "u8"  # chips' "8-bit linear" is unsigned
        if width == 16:
            return "s16le"
        if width == 14:
            return "pcm14"
    return "unknown"


def _split_fields(line: str) -> list[str]:
    """Top-level comma-separated fields, respecting quotes and parentheses."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            fields.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    fields.append("".join(current).strip())
    return fields


def _numbers(text: str) -> list[tuple[int, int]]:
    ranges = []
    for match in _NUMBER_OR_RANGE.finditer(text):
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        ranges.append((min(low, high), max(low, high)))
    return ranges


def parse_vsm_listing(listing: str | Iterable[str]) -> list[CodecOption]:
    """Parse ``AT+VSM=?`` output in any of the grammars chips use.

    ``<code>,"<name>",<bits>,<tm>,<rate>,<sds>,<sel>`` (Conexant, V.253),
    ``<code>,"<name>",(<rate list>)`` (USR, Agere), either with parenthesised
    values or ranges, and a nameless ``(<codes>),(<rates>),...`` form. Lines
    that are not codec entries (OK, blank, noise) are skipped.
    """
    lines = listing.splitlines() if isinstance(listing, str) else list(listing)
    options: dict[int, CodecOption] = {}
    for raw in lines:
        line = _VSM_PREFIX.sub("", raw).strip()
        if not line or not (line[0].isdigit() or line[0] == "("):
            continue
        fields = _split_fields(line)
        codes = _numbers(fields[0])
        if not codes:
            continue
        name_at = next((i for i, f in enumerate(fields) if f.startswith('"')), None)
        if name_at is None:
            # nameless V.253 form: (codes),(rates),(sds),(sel)
            rates = tuple(_numbers(fields[1])) if len(fields) > 1 else ()
            for low, high in codes:
                for code in range(low, min(high, low + 255) + 1):
                    options.setdefault(code, CodecOption(code, "", "unknown", None, rates))
            continue
        name = fields[name_at].strip('"').strip()
        rest = fields[name_at + 1 :]
        bits = None
        rates: tuple[tuple[int, int], ...] = ()
        if len(rest) >= 3:
            widths = _numbers(rest[0])
            bits = widths[0][0] if widths else None
            rates = tuple(_numbers(rest[2]))
        elif len(rest) == 2:
            widths = _numbers(rest[0])
            bits = widths[0][0] if widths else None
            rates = tuple(_numbers(rest[1]))
        elif len(rest) == 1:
            rates = tuple(_numbers(rest[0]))
        code = codes[0][0]
        options[code] = CodecOption(code, name, classify_codec(name, bits), bits, rates)
    return list(options.values())


def choose_codec(
    options: list[CodecOption],
    preference: Iterable[str],
    rate: int = 8000,
    table: Mapping[str, int] | None = None,
) -> CodecChoice | None:
    """The first preferred format the modem offers at ``rate``.

    With a listing, only what it offers counts (a nameless entry takes its
    format from ``table``). Without one (the query failed), the static table
    is trusted.
    """
    table = table or {}
    by_code = {code: fmt for fmt, code in table.items()}
    if options:
        for wanted in preference:
            for option in options:
                fmt = option.format if option.format != "unknown" else by_code.get(option.code)
                if fmt == wanted and option.supports(rate):
                    return CodecChoice(option.code, wanted, rate, option.name)
        return None
    for wanted in preference:
        if wanted in table:
            return CodecChoice(table[wanted], typing.cast(Format, wanted), rate)
    return None


# -- loading ------------------------------------------------------------------


def default_profile_dir() -> Path:
    """``firmware_profiles/`` of the checkout, else where the wheel installed it.

    pyproject.toml installs the directory as data files under
    ``<prefix>/share/daemon1521/firmware_profiles`` (prefix of the environment
    or of a ``--user`` install).
    """
    checkout = Path(__file__).resolve().parents[2] / "firmware_profiles"
    if checkout.is_dir():
        return checkout
    candidates = [Path(sysconfig.get_paths()["data"]).joinpath(*INSTALLED_DIR)]
    with contextlib.suppress(KeyError):
        user = sysconfig.get_paths(scheme=f"{os.name}_user")["data"]
        candidates.append(Path(user).joinpath(*INSTALLED_DIR))
    return next((path for path in candidates if path.is_dir()), candidates[0])


def _convert(tp: Any, value: Any, path: str, key: str, partial: bool) -> Any:
    """Check a TOML value against a field type and convert it (sections, lists to tuples...).

    ``partial`` (one file on its own, before ``extends`` is resolved) keeps
    sections and tables as plain dicts, so that they can still be merged.
    """

    def section(tp: Any, value: Any, key: str) -> Any:
        if not dataclasses.is_dataclass(tp):
            return typed_toml.UNHANDLED
        if not isinstance(value, dict):
            raise typed_toml.mismatch(tp, value, key)
        return _build(typing.cast(type, tp), value, path, key + ".", partial)

    try:
        return typed_toml.convert(
            tp, value, key, special=section, mapping=dict if partial else FrozenMap
        )
    except typed_toml.TomlValueError as exc:
        raise ProfileError(path, exc.key, exc.problem) from None


def _build(cls: type, data: dict[str, Any], path: str, prefix: str, partial: bool) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    for key in data:
        if key not in known:
            raise ProfileError(path, prefix + key, "unknown key")
    values = {
        name: _convert(hints[name], data[name], path, prefix + name, partial)
        for name in known
        if name in data
    }
    if partial:
        return values
    for name, spec in known.items():
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if required and name not in values:
            raise ProfileError(path, prefix + name, "missing")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ProfileError(path, prefix.rstrip(".") or "(profile)", str(exc)) from None


def _merge(cls: type, base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: sections merge key by key, values (lists, tables) replace."""
    hints = typing.get_type_hints(cls)
    merged = dict(base)
    for key, value in override.items():
        section = hints.get(key)
        if dataclasses.is_dataclass(section) and isinstance(merged.get(key), dict):
            merged[key] = _merge(typing.cast(type, section), merged[key], value)
        else:
            merged[key] = value
    return merged


def load_profile_file(path: Path) -> dict[str, Any]:
    """Read and check one file on its own (types, unknown keys); returns its raw table."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), "", f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc.strerror}") from None
    _build(FirmwareProfile, data, str(path), "", partial=True)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ProfileError(str(path), "name", "missing")
    return data


def load_profiles(directory: str | Path | None = None) -> list[FirmwareProfile]:
    """Every profile in ``directory`` (default: the shipped ones), in file-name order.

    Errors name the file, the key and the problem; unknown keys are errors.
    """
    root = Path(directory) if directory is not None else default_profile_dir()
    if not root.is_dir():
        raise ProfileError(str(root), "", "no such directory")
    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(root.glob(PROFILE_GLOB)):
        data = load_profile_file(path)
        if data["name"] in raw:
            raise ProfileError(
                str(path), "name", f"{data['name']!r} also in {raw[data['name']][0]}"
            )
        raw[data["name"]] = (path, data)

    def resolved(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        path, data = raw[name]
        parent = data.get("extends", "")
        if not parent:
            return data
        if parent not in raw:
            raise ProfileError(str(path), "extends", f"no profile named {parent!r}")
        if parent in chain:
            raise ProfileError(str(path), "extends", "profiles extend each other in a circle")
        base = resolved(parent, (*chain, parent))
        # identity is never inherited: a child matches by its own rules only
        base = {k: v for k, v in base.items() if k not in ("match", "description", "name")}
        return _merge(FirmwareProfile, base, data)

    profiles = []
    for name, (path, _) in raw.items():
        profile = _build(FirmwareProfile, resolved(name, (name,)), str(path), "", partial=False)
        profiles.append(dataclasses.replace(profile, path=str(path)))
    return profiles


# -- identification -----------------------------------------------------------


def identify(
    profiles: Iterable[FirmwareProfile],
    ati3: str = "",
    gmm: str = "",
    gmi: str = "",
    usb_id: tuple[int, int] | None = None,
) -> tuple[FirmwareProfile, str]:
    """The profile for a modem, and what identified it (e.g. ``"ATI3 /CX9300[01]/"``).

    Evidence ranks ATI3, then +GMM, then the USB id, then +GMI; among equals
    the first profile in load order wins. No match falls back to the generic
    V.253 profile, with a warning.
    """
    texts = {
        "ati3": _INFO_PREFIX.sub("", ati3 or ""),
        "gmm": _INFO_PREFIX.sub("", gmm or ""),
        "gmi": _INFO_PREFIX.sub("", gmi or ""),
    }
    candidates = list(profiles)
    for kind in MATCH_ORDER:
        for profile in candidates:
            found = _match(profile, kind, texts, usb_id)
            if found:
                return profile, found
    generic = next((p for p in candidates if p.name == GENERIC), None)
    if generic is None:
        raise ProfileError("firmware_profiles", GENERIC, "generic profile missing")
    logger.warning(
        "unknown modem (ATI3 {!r}, +GMM {!r}, USB {}): using the generic V.253 profile",
        texts["ati3"].strip()[:60],
        texts["gmm"].strip()[:60],
        _usb_text(usb_id),
    )
    return generic, "fallback"


def _usb_text(usb_id: tuple[int, int] | None) -> str:
    return f"{usb_id[0]:04x}:{usb_id[1]:04x}" if usb_id else "none"


def _match(
    profile: FirmwareProfile, kind: str, texts: dict[str, str], usb_id: tuple[int, int] | None
) -> str:
    if kind == "usb":
        if usb_id is not None and tuple(usb_id) in profile.match.usb_ids:
            return f"USB {_usb_text(usb_id)}"
        return ""
    text = texts[kind]
    if not text:
        return ""
    for pattern in getattr(profile.match, kind):
        if re.search(pattern, text, re.IGNORECASE):
            label = {"ati3": "ATI3", "gmm": "+GMM", "gmi": "+GMI"}[kind]
            return f"{label} /{pattern}/"
    return ""

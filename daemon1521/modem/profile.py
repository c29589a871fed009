"""Firmware profiles: what one chip family does differently, as data.

Each file in ``firmware_profiles/`` describes a family: how to recognise it
(ATI3 / +GMM / +GMI patterns, USB vendor:product), where it states its model
and firmware version and the oldest version that works, its init commands,
its ``+VSM`` codec numbers and preference, its caller-ID dialect, its DLE
quirks and capabilities, pacing and timeouts, and the exact answer /
hang-up / dial commands. A file may ``extends`` another and then lists only
its differences. The driver stays generic: a new modem is a new file.

Every key changes what the driver does; :data:`KEYS` in
:mod:`.profile_keys` says what, and a test holds the two together.

This module also parses ``AT+VSM=?`` listings, whose grammar and codec names
vary between chips and firmware revisions, and picks the codec to use.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
import sysconfig
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec
from loguru import logger

from daemon1521 import schema
from daemon1521.modem.errors import ProfileError

GENERIC = "generic-v253"
PROFILE_GLOB = "*.toml"
INSTALLED_DIR = ("share", "daemon1521", "firmware_profiles")  # wheel data-files target

Format = Literal["u8", "s8", "s16le", "alaw", "ulaw", "adpcm", "pcm14", "unknown"]
HangupEvent = Literal["busy", "loop_break", "dial_tone"]

# Identification evidence, strongest first.
MATCH_ORDER = ("ati3", "gmm", "usb", "gmi")
_INFO_PREFIX = re.compile(r"^\s*\+?GM[IMR]\s*:\s*", re.IGNORECASE | re.MULTILINE)
_USB_ID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")
_VERSION = re.compile(r"\d+(?:\.\d+)*")


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


def _check_pattern(rule: str) -> None:
    try:
        re.compile(rule)
    except re.error as exc:
        raise ValueError(f"bad regular expression {rule!r}: {exc}") from None


def version_key(text: str) -> tuple[int, ...] | None:
    """The first dotted number in ``text`` as a comparable tuple ("V1.2.23" -> (1, 2, 23))."""
    found = _VERSION.search(text or "")
    return tuple(int(part) for part in found.group().split(".")) if found else None


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A table of a profile file: every key optional, misspelt keys refused."""


class MatchRules(_Section):
    """Regular expressions (searched, case-insensitive) and USB ids that identify a family."""

    ati3: tuple[str, ...] = ()
    gmm: tuple[str, ...] = ()
    gmi: tuple[str, ...] = ()
    usb: tuple[str, ...] = ()  # "vvvv:pppp", hexadecimal

    def __post_init__(self) -> None:
        for rule in (*self.ati3, *self.gmm, *self.gmi):
            _check_pattern(rule)
        for usb in self.usb:
            if not _USB_ID.match(usb):
                raise ValueError(f"USB id {usb!r} is not vvvv:pppp in hexadecimal")

    @property
    def usb_ids(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(u[:4], 16), int(u[5:], 16)) for u in self.usb)


class Firmware(_Section):
    """Where the chip states its model and firmware version, and the oldest that works."""

    model_query: str = "AT+GMM"
    model_pattern: str = ""  # its first group (or whole match) is the model; "" = all
    version_query: str = "AT+GMR"
    version_pattern: str = ""
    minimum: str = ""  # older firmware is reported with a warning; "" = no minimum
    too_old: str = ""  # what goes wrong with older firmware, said in the warning

    def __post_init__(self) -> None:
        _check_pattern(self.model_pattern)
        _check_pattern(self.version_pattern)
        if self.minimum and version_key(self.minimum) is None:
            raise ValueError(f"minimum {self.minimum!r} is not a version such as 1.2.23")

    def model(self, answer: str) -> str:
        return _extract(self.model_pattern, answer)

    def version(self, answer: str) -> str:
        return _extract(self.version_pattern, answer)

    def older_than_minimum(self, version: str) -> bool:
        """True only when both versions are known and ``version`` is the older."""
        have, need = version_key(version), version_key(self.minimum)
        return have is not None and need is not None and have < need


def _extract(pattern: str, answer: str) -> str:
    text = _INFO_PREFIX.sub("", answer or "").strip()
    if not pattern:
        return text
    found = re.search(pattern, text, re.IGNORECASE)
    if found is None:
        return ""
    return (found.group(1) if found.groups() else found.group()).strip()


class Codecs(_Section):
    """Sample formats: preference order, the chip's static codec numbers, +VSM commands."""

    preference: tuple[Format, ...] = ("ulaw", "alaw", "u8")
    rate: int = 8000
    table: Mapping[str, int] = msgspec.field(default_factory=FrozenMap)  # format -> code
    query: str = "AT+VSM=?"
    select: str = "AT+VSM={code},{rate}"
    silence_u8: int = 0x80  # the idle byte of 8-bit unsigned audio (0x7F on some)

    def __post_init__(self) -> None:
        _check_template(self.select, ("code", "rate"), "select")
        formats = get_args(Format)
        for name in self.table:
            if name not in formats:
                raise ValueError(f"table: unknown format {name!r} (one of {', '.join(formats)})")
        if not 0 <= self.silence_u8 <= 255:
            raise ValueError("silence_u8 must be a byte, 0 to 255")
        if self.rate <= 0:
            raise ValueError("rate must be positive")


class CallerId(_Section):
    """How to switch formatted caller ID on, and the region setting some chips need."""

    enable: tuple[str, ...] = ("AT+VCID=1",)
    region_command: str = ""  # e.g. "AT!4886={code}", empty when the chip has none
    regions: Mapping[str, str] = msgspec.field(default_factory=FrozenMap)  # name -> code
    default_region: str = ""

    def __post_init__(self) -> None:
        _check_template(self.region_command, ("code",), "region_command")


class Capabilities(_Section):
    """What the chip does (and does not do) that the voice layer must know."""

    silence_detection: bool = True  # +VSD works: DLE s / DLE q after the call's silence limit
    full_duplex: bool = False  # +VTR works
    hangup_events: tuple[HangupEvent, ...] = ("busy", "loop_break", "dial_tone")
    dle_sub: bool = True  # DLE SUB stands for two 0x10 bytes
    false_dle_d_during_play: bool = False  # DLE d during +VTX is not a dial tone
    events_during_vrx: bool = True  # DTMF and tones are reported during +VRX


class Commands(_Section):
    """The exact command strings; the driver fills in ``{number}``, ``{tones}``, ``{interval}``."""

    reset: str = "ATZ"
    init: tuple[str, ...] = ()
    voice: str = "AT+FCLASS=8"
    answer: tuple[str, ...] = ("AT+VLS=1",)
    hangup: tuple[str, ...] = ("AT+VLS=0",)
    dial: tuple[str, ...] = ("ATDT{number};",)
    play: str = "AT+VTX"
    record: str = "AT+VRX"
    duplex: str = "AT+VTR"
    tones: str = "AT+VTS={tones}"
    flow_control: str = "AT+IFC=2,2"  # sent when the port uses RTS/CTS
    silence: str = "AT+VSD=128,{interval}"  # interval in 0.1 s; sent with silence_detection

    def __post_init__(self) -> None:
        for command in self.dial:
            _check_template(command, ("number",), "dial")
        if not any("{number}" in command for command in self.dial):
            raise ValueError("dial: no command carries {number}")
        _check_template(self.tones, ("tones",), "tones")
        if "{tones}" not in self.tones:
            raise ValueError("tones: needs {tones}")
        _check_template(self.silence, ("interval",), "silence")
        if self.silence and "{interval}" not in self.silence:
            raise ValueError("silence: needs {interval}")


class Pacing(_Section):
    """How fast to feed +VTX: chunk size, how much may be queued, the chip's buffer."""

    chunk_ms: int = 100
    max_queued_ms: int = 300
    transmit_buffer: int = 1024  # bytes
    receive_batch_ms: int = 100
    """While only keys are awaited, received audio is handed to the driver at
    most this often (keys, as DLE codes, at once); 0: every chunk as it comes."""

    def __post_init__(self) -> None:
        if self.transmit_buffer <= 0:
            raise ValueError("transmit_buffer must be positive")
        if not 0 <= self.receive_batch_ms <= 500:
            raise ValueError("receive_batch_ms must be 0-500")


class Timeouts(_Section):
    """Seconds of modem time for each kind of command."""

    command: float = 2.0
    reset: float = 5.0
    answer: float = 5.0
    dial: float = 60.0
    stream_start: float = 5.0
    stream_end: float = 5.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


class FirmwareProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One chip family's behaviour, loaded from ``firmware_profiles/<name>.toml``."""

    name: str
    description: str
    extends: str = ""
    match: MatchRules = MatchRules()
    firmware: Firmware = Firmware()
    codecs: Codecs = Codecs()
    callerid: CallerId = CallerId()
    capabilities: Capabilities = Capabilities()
    commands: Commands = Commands()
    pacing: Pacing = Pacing()
    timeouts: Timeouts = Timeouts()
    path: str = ""  # set by the loader, not a TOML key

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


SECTIONS: dict[str, type[_Section]] = {
    name: typing.cast(type[_Section], field.type)
    for name, field in zip(
        FirmwareProfile.__struct_fields__,
        msgspec.structs.fields(FirmwareProfile),
        strict=True,
    )
    if isinstance(field.type, type) and issubclass(field.type, _Section)
}
"""The tables of a profile file, by name: each merges key by key over its parent's."""


def _cross_checks(profile: FirmwareProfile) -> tuple[str, str] | None:
    """(section, problem) for keys that only make sense together, once ``extends`` is resolved."""
    callerid, pacing = profile.callerid, profile.pacing
    if callerid.default_region and callerid.default_region not in callerid.regions:
        return "callerid", f"default_region {callerid.default_region!r} is not in regions"
    if callerid.region_command and not callerid.regions:
        return "callerid", "region_command needs regions"
    if not 0 < pacing.chunk_ms <= pacing.max_queued_ms:
        return "pacing", "needs 0 < chunk_ms <= max_queued_ms"
    return None


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


def _convert(data: dict[str, Any], path: Path) -> FirmwareProfile:
    if "path" in data:
        raise ProfileError(str(path), "path", "unknown key (misspelt, or not a setting here)")
    try:
        # strict: a profile is written by hand, and `full_duplex = 1` is a mistake
        return msgspec.convert(data, FirmwareProfile, strict=True)
    except msgspec.ValidationError as exc:
        key, problem = schema.explain(str(exc))
        choices = _choices(key)
        if choices and problem.startswith("invalid enum value"):
            problem += f" (one of {', '.join(choices)})"
        raise ProfileError(str(path), key, problem) from None
    except RecursionError:
        raise ProfileError(str(path), "", "nested too deeply") from None


def _choices(key: str) -> tuple[str, ...]:
    """The allowed words of the key ``section.name[.index]``, where it takes a Literal."""
    section, _, rest = key.partition(".")
    kind = SECTIONS.get(section)
    name = rest.split(".")[0]
    if kind is None or name not in kind.__struct_fields__:
        return ()
    hint = typing.get_type_hints(kind)[name]
    args = get_args(hint)
    if typing.get_origin(hint) is tuple and args:
        hint = args[0]
    return tuple(get_args(hint)) if typing.get_origin(hint) is Literal else ()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: sections merge key by key, values (lists, tables) replace."""
    merged = dict(base)
    for key, value in override.items():
        if key in SECTIONS and isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _frozen(profile: FirmwareProfile, path: Path) -> FirmwareProfile:
    """The resolved profile with hashable tables, its file, and its cross-key checks done."""
    replace = msgspec.structs.replace
    profile = replace(
        profile,
        codecs=replace(profile.codecs, table=FrozenMap(profile.codecs.table)),
        callerid=replace(profile.callerid, regions=FrozenMap(profile.callerid.regions)),
        path=str(path),
    )
    problem = _cross_checks(profile)
    if problem is not None:
        raise ProfileError(str(path), *problem)
    return profile


def load_profile_file(path: Path) -> dict[str, Any]:
    """Read and check one file on its own (types, unknown keys); returns its raw table."""
    try:
        data = schema.read_toml(path)
    except schema.SchemaError as exc:
        raise ProfileError(str(path), exc.key, exc.problem) from None
    _convert(data, path)
    if not data["name"]:
        raise ProfileError(str(path), "name", "missing (this key is required)")
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
        return _merge(base, data)

    return [
        _frozen(_convert(resolved(name, (name,)), path), path) for name, (path, _) in raw.items()
    ]


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
    rules = {"ati3": profile.match.ati3, "gmm": profile.match.gmm, "gmi": profile.match.gmi}
    for pattern in rules[kind]:
        if re.search(pattern, text, re.IGNORECASE):
            label = {"ati3": "ATI3", "gmm": "+GMM", "gmi": "+GMI"}[kind]
            return f"{label} /{pattern}/"
    return ""

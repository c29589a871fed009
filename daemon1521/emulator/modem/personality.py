"""Chip personalities: everything that makes one emulated voice modem differ from another.

A personality is a TOML file in ``daemon1521/emulator/personalities/`` (or
anywhere, by path). It holds identification answers, response framing, the
``+VSM`` codec table and its listing text, caller-ID dialect, DTMF framing,
which DLE events the chip reports, ``+VTS`` limits, parameter ranges and
defaults, and S-register defaults. Adding a chip is adding a file: the
emulator's code reads these fields and nothing is keyed on a chip's name.

Loading validates the whole file and names the offending key, so a typo
fails at load time rather than as a strange byte in a test: the file's
tables are msgspec Structs read through :mod:`daemon1521.schema` (unknown
keys refused, types and limits from the fields), and what a field's type
cannot say (value ranges, the parameters the modem's logic needs, codes
that must agree) is checked after, key by key.

The sections of a personality file (see the shipped files for every key,
each with a comment naming its source):

- ``name``, ``description``;
- ``[identity]``: ``ati`` (ATI0..9 lines), ``gmi``/``gmm``/``gmr``/``gcap``,
  ``gm_prefix`` (``+GMI: `` style), ``usb_ids``;
- ``[command_line]``: buffer length, backspace echo, ``compact_info`` (reads
  answered without the blank line before OK), ``lower_case_tests``,
  ``read_prefix``;
- ``[results]``: numeric codes (a result absent there stays verbose in
  ATV0, as VCON does), the NO DIALTONE spelling, the voice answer and
  voice-dial results (OK or VCON);
- ``[defaults]`` (E, V, Q, X) and ``[s_registers]`` (default, low, high);
- ``[fclass]``: accepted classes and the ``=?`` text;
- ``[voice]``: the ``+VSM`` codec table (code, name, stream format or none,
  rates) and listing text, buffer sizes, end-of-play and ring quirks, which
  DLE events the chip reports, where busy is reported and whether any event
  is reported during ``+VRX`` (``events_during_vrx``), silence
  detection, DLE SUB, ``[voice.dtmf]`` framing, ``[voice.vts]`` limits;
- ``[caller_id]``: separator, field order, private/unavailable values, NAME
  width, MESG, settings it requires besides ``+VCID=1``, region parameter
  and what each region decodes;
- ``[call_progress]``: optional detector and dialling timings;
- ``[parameters."+X"]``: every stored extended parameter: value ranges,
  defaults, voice-only, kept or reset by ATZ, ``=?`` text;
- ``[accepted_basic]``: basic commands taken without effect, with ranges;
- ``[profile_view]`` (optional): the headings of the ``AT&V`` listing
  (active profile, then each stored one); without it ``AT&V`` answers ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Protocol

import msgspec

from daemon1521.dsp.codecs import CODECS
from daemon1521.schema import SchemaError, convert, parse_toml, read_toml, shown

PERSONALITY_DIR = Path(__file__).resolve().parents[1] / "personalities"
"""Where the shipped personality files live."""

EVENT_CODES = frozenset("bdrlLsqRuohHcea")
"""DLE event codes (VOICE-MODEMS.md section 3) a personality may say it reports."""
BusyContext = Literal["rx", "tx", "command"]
BUSY_CONTEXTS: frozenset[str] = frozenset({"rx", "tx", "command"})
CidField = Literal["MESG", "DATE", "TIME", "NMBR", "NAME"]
CID_FIELDS: frozenset[str] = frozenset({"MESG", "DATE", "TIME", "NMBR", "NAME"})
ResultName = Literal[
    "OK", "CONNECT", "RING", "NO CARRIER", "ERROR", "NO DIALTONE", "BUSY", "NO ANSWER", "VCON"
]
RESULT_NAMES: tuple[str, ...] = ResultName.__args__  # type: ignore[attr-defined]
REQUIRED_PARAMETERS = (
    "+VLS",
    "+VCID",
    "+VSD",
    "+VGT",
    "+VGR",
    "+VIT",
    "+VRA",
    "+VRN",
    "+VTD",
    "+VEM",
    "+IFC",
)
"""Parameters the modem's own logic reads; every personality must define them."""
REQUIRED_REGISTERS = (0, 1, 3, 4, 5, 6, 7, 8, 11)
"""S-registers the modem's own logic reads."""


class PersonalityError(SchemaError):
    """A personality file is missing a key or holds a bad value: file, dotted key, problem."""


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of a personality file: its fields are its only keys."""


# --- parameter values ---------------------------------------------------------


@dataclass(frozen=True)
class ArgSpec:
    """The values one subparameter accepts.

    Written in the personality as V.250 writes ranges: ``"0-255"``,
    ``"0,1,4,5"``, ``"0-1,5"``; a range with leading zeros (``"00-99"``)
    also fixes the width of the answer to a read. ``"hex"`` takes up to
    8 hexadecimal digits (``+VEM``), ``"any"`` takes any text.
    """

    text: str
    kind: str = "int"
    ranges: tuple[tuple[int, int], ...] = ()
    width: int = 0

    @classmethod
    def parse(cls, text: str) -> ArgSpec:
        """The spec written as ``text``; ValueError for one that is not a range list."""
        if text in ("hex", "any"):
            return cls(text, kind=text)
        ranges: list[tuple[int, int]] = []
        width = 0
        for part in text.split(","):
            lo, sep, hi = part.partition("-")
            if not _small_number(lo) or (sep and not _small_number(hi)):
                raise ValueError(f"bad value range {text!r}")
            if len(lo) > 1 and lo.startswith("0"):
                width = len(lo)
            ranges.append((int(lo), int(hi) if sep else int(lo)))
        return cls(text, ranges=tuple(ranges), width=width)

    def canonical(self, value: str) -> str | None:
        """The value as the chip stores and reads it back, or None if not accepted."""
        value = value.strip()
        if self.kind == "any":
            return value
        if self.kind == "hex":
            ok = 0 < len(value) <= 8 and all(c in "0123456789ABCDEFabcdef" for c in value)
            return value.upper().rjust(8, "0") if ok else None
        if not value.isdigit() or len(value) > 6:
            return None
        number = int(value)
        if not any(lo <= number <= hi for lo, hi in self.ranges):
            return None
        return str(number).rjust(self.width, "0")


def _small_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 9


@dataclass(frozen=True)
class Parameter:
    """An extended-syntax parameter the chip stores (``+VGT``, ``-SCID``, ...)."""

    name: str
    args: tuple[ArgSpec, ...]
    default: tuple[str, ...]
    voice_only: bool = False
    reset_on_atz: bool = True
    test: tuple[str, ...] | None = None
    """Lines of the ``=?`` answer; None: the ranges in parentheses."""

    def test_lines(self) -> tuple[str, ...]:
        if self.test is not None:
            return self.test
        return (",".join(f"({a.text})" for a in self.args),)


class Codec(_Table, kw_only=True):
    """One ``+VSM`` compression method of the chip."""

    code: int
    name: str
    format: str | None = None
    """The stream format the emulator uses (``u8``, ``s16le``, ``alaw``,
    ``ulaw``); None for methods the chip lists but the emulator cannot
    stream (selecting them answers ERROR)."""
    rates: Annotated[tuple[int, ...], msgspec.Meta(min_length=1)]


class Register(_Table, array_like=True):
    """An S-register, written ``[default, low, high]``."""

    default: int
    low: int
    high: int


# --- sections ----------------------------------------------------------------------


class Identity(_Table, kw_only=True):
    ati: dict[int, tuple[str, ...]]
    gmi: tuple[str, ...]
    gmm: tuple[str, ...]
    gmr: tuple[str, ...]
    gcap: tuple[str, ...] | None = None
    gm_prefix: bool = False
    usb_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandLine:
    max_length: int
    backspace_echo: bytes
    compact_info: frozenset[str]
    """Command keys (``+FCLASS?``) whose information text is not followed by
    the blank line before the final result code."""
    lower_case_tests: bool
    read_prefix: bool
    """Whether read answers carry a ``+NAME: `` prefix."""


class _CommandLine(_Table, kw_only=True):
    max_length: Annotated[int, msgspec.Meta(ge=40)]
    """V.250 5.2.1 asks for at least 40."""
    backspace_echo: str = "\b \b"
    compact_info: frozenset[str] = frozenset()
    lower_case_tests: bool = False
    read_prefix: bool = False


class Results(_Table, kw_only=True):
    numeric: dict[ResultName, int]
    no_dialtone: Literal["NO DIALTONE", "NO DIAL TONE"]
    voice_answer: Literal["OK", "VCON"]
    """Final result of ATA / auto-answer in voice mode (``VCON`` or ``OK``)."""
    voice_dial_answered: Literal["OK", "VCON"]
    """Final result of a voice-mode ATD once the far end answers."""


class Dtmf(_Table, kw_only=True):
    framing: Literal["bare", "wrapped"]
    """``bare``: DLE <digit> once per press. ``wrapped``: DLE / ... DLE ~
    around the digit, repeated every ``repeat_ms`` while the key is held."""
    repeat_ms: Annotated[int, msgspec.Meta(ge=0)] = 0


class VtsLimits(_Table, kw_only=True):
    min_freq: float
    max_freq: float
    single_tone_zero: bool
    max_duration: int
    flash_ms: int
    dtmf_gap_ms: int
    """Silence the chip leaves after each DTMF element, so that repeated
    digits stay separate presses for the far end's detector."""


Buffer = Annotated[int, msgspec.Meta(ge=320)]
"""Bytes of audio a chip buffers: at least 20 ms of 16-bit audio."""


class Voice(_Table, kw_only=True):
    codecs: tuple[Codec, ...]
    vsm_test: tuple[str, ...]
    vsm_read: str
    default_codec: int
    default_rate: int
    vls_off_hook: frozenset[int]
    vtr: bool
    tx_buffer: Buffer
    rx_backlog: Buffer
    vtx_end_etx: bool
    stray_underrun: bool
    vls1_events: str = ""
    ring: Literal["dle", "text"]
    ring_after_answer: bool = False
    """One more ring report just after the host took the line off hook."""
    silence_detection: bool
    dle_sub: bool = False
    rx_end_codes: str = "!"
    events: str
    """The DLE event codes the chip reports, one letter each."""
    events_during_vrx: bool = True
    """False: nothing is reported while recording (+VRX), neither DTMF nor
    tones nor line events; the host must find key presses in the audio."""
    busy_contexts: frozenset[BusyContext] = BUSY_CONTEXTS  # type: ignore[assignment]
    vit_unit: float = 1.0
    dtmf: Dtmf
    vts: VtsLimits

    def codec(self, code: int) -> Codec | None:
        for codec in self.codecs:
            if codec.code == code:
                return codec
        return None


class CallerIdFormat(_Table, kw_only=True):
    separator: str
    order: tuple[CidField, ...]
    private: dict[CidField, str] = {}
    unavailable: dict[CidField, str] = {}
    name_width: int = 0
    mesg: str = ""
    requires: dict[str, str] = {}
    """Parameter values that must be set for caller ID to be delivered
    (none on the shipped chips: real CX930xx units need only ``+VCID=1``)."""
    region_parameter: str = ""
    regions: dict[str, str] = {}
    """Region parameter value -> caller-ID signalling it decodes."""
    block_start: str = "\r\n"
    line_end: str = "\r\n"


class CallProgress(_Table, kw_only=True):
    """Tone detection and dialling timing (seconds unless named otherwise)."""

    freq: float = 425.0
    min_level_dbm0: float = -35.0
    dialtone_min: float = 1.0
    dialtone_wait: float = 5.0
    dialtone_event_min: float = 3.0
    busy_on: tuple[float, float] = (0.15, 0.75)
    busy_off: tuple[float, float] = (0.15, 0.75)
    ringback_on: tuple[float, float] = (0.8, 2.5)
    busy_cycles: int = 2
    dtmf_level_dbm0: float = -7.0


class ProfileView(_Table, kw_only=True):
    """Headings of the ``AT&V`` listing: the active profile, then each stored one."""

    active: str
    stored: tuple[str, ...]


@dataclass(frozen=True)
class Personality:
    """A whole chip, as loaded from its TOML file."""

    name: str
    description: str
    source: str
    identity: Identity
    command_line: CommandLine
    results: Results
    registers: Mapping[int, Register]
    fclass_values: tuple[str, ...]
    fclass_test: tuple[str, ...]
    voice: Voice
    caller_id: CallerIdFormat
    call_progress: CallProgress
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    defaults: Mapping[str, int] = field(default_factory=dict)
    """Power-on E, V, Q and X values."""
    accepted_basic: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Basic commands the chip accepts without an effect here (speaker, DTR
    handling...), with the numbers it allows."""
    profile_view: ProfileView | None = None
    """What ``AT&V`` lists; None: the chip answers it ERROR."""


# --- the file ------------------------------------------------------------------------


class _Defaults(_Table, kw_only=True):
    E: int = 1
    V: int = 1
    Q: int = 0
    X: int = 4


class _Fclass(_Table, kw_only=True):
    values: tuple[str, ...]
    test: tuple[str, ...]


class _ParameterTable(_Table, kw_only=True):
    values: tuple[str, ...]
    default: tuple[str, ...]
    voice_only: bool = False
    atz: Literal["reset", "keep"] = "reset"
    test: tuple[str, ...] | None = None


class _File(_Table, kw_only=True):
    name: str
    description: str
    identity: Identity
    command_line: _CommandLine
    results: Results
    defaults: _Defaults
    s_registers: dict[int, Register]
    fclass: _Fclass
    voice: Voice
    caller_id: CallerIdFormat
    call_progress: CallProgress = CallProgress()
    parameters: dict[str, _ParameterTable]
    accepted_basic: dict[str, tuple[int, int]] = {}
    profile_view: ProfileView | None = None


# --- loading -------------------------------------------------------------------------


def available_personalities() -> list[str]:
    """Names of the personalities shipped with the emulator."""
    return sorted(path.stem for path in PERSONALITY_DIR.glob("*.toml"))


def load_personality(name_or_path: str | Path) -> Personality:
    """A shipped personality by name (``usr-5637``), or any personality file by path."""
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.suffix == ".toml" or path.exists():
        if not path.is_file():
            problem = "not a regular file" if path.exists() else "no such personality file"
            raise PersonalityError(path, "", problem)
        return _from_data(_read(path, path), str(path))
    resource = PERSONALITY_DIR / f"{name_or_path}.toml"
    if not resource.is_file():
        known = ", ".join(available_personalities())
        raise PersonalityError(None, "", f"no personality {name_or_path!r} (known: {known})")
    return _from_data(_read(resource, str(name_or_path)), str(name_or_path))


def parse_personality(text: str, source: str = "<string>") -> Personality:
    """Validate TOML text and build a :class:`Personality`."""
    try:
        data = parse_toml(text, source)
    except SchemaError as exc:
        raise PersonalityError(source, exc.key, exc.problem) from None
    return _from_data(data, source)


def _read(path: Path, source: str | Path) -> dict[str, object]:
    try:
        return read_toml(path)
    except SchemaError as exc:
        raise PersonalityError(source, exc.key, exc.problem) from None


def _from_data(data: dict[str, object], source: str) -> Personality:
    try:
        return _build(convert(data, _File, path=source, strict=True), source)
    except SchemaError as exc:
        raise PersonalityError(exc.path, exc.key, exc.problem) from None


def _build(raw: _File, source: str) -> Personality:
    """What one field's type cannot say, checked; the runtime shape built."""

    def fail(key: str, problem: str) -> PersonalityError:
        return PersonalityError(source, key, problem)

    try:
        backspace_echo = raw.command_line.backspace_echo.encode("latin-1")
    except UnicodeEncodeError:
        raise fail(
            "command_line.backspace_echo", "must be Latin-1 text (the bytes the chip echoes)"
        ) from None
    for number in REQUIRED_REGISTERS:
        if number not in raw.s_registers:
            raise fail(f"s_registers.{number}", "missing (the modem's logic reads it)")
    for number, register in raw.s_registers.items():
        if not register.low <= register.default <= register.high:
            raise fail(
                f"s_registers.{number}",
                f"default {register.default} outside its range {register.low}-{register.high}",
            )
    if "0" not in raw.fclass.values:
        raise fail("fclass.values", "must include 0")
    _check_voice(raw.voice, fail)
    _check_caller_id(raw.caller_id, fail)
    parameters = {name: _parameter(name, table, fail) for name, table in raw.parameters.items()}
    for name in REQUIRED_PARAMETERS:
        if name not in parameters:
            raise fail(f"parameters.{name}", "missing (the modem's logic reads it)")
    for name in raw.caller_id.requires:
        if name not in parameters:
            raise fail("caller_id.requires", f"names unknown parameter {shown(name)}")
    region = raw.caller_id.region_parameter
    if region and region not in parameters:
        raise fail("caller_id.region_parameter", f"names unknown parameter {shown(region)}")
    return Personality(
        name=raw.name,
        description=raw.description,
        source=source,
        identity=raw.identity,
        command_line=CommandLine(
            max_length=raw.command_line.max_length,
            backspace_echo=backspace_echo,
            compact_info=raw.command_line.compact_info,
            lower_case_tests=raw.command_line.lower_case_tests,
            read_prefix=raw.command_line.read_prefix,
        ),
        results=raw.results,
        registers=raw.s_registers,
        fclass_values=raw.fclass.values,
        fclass_test=raw.fclass.test,
        voice=raw.voice,
        caller_id=raw.caller_id,
        call_progress=raw.call_progress,
        parameters=parameters,
        defaults=msgspec.structs.asdict(raw.defaults),
        accepted_basic={name.upper(): value for name, value in raw.accepted_basic.items()},
        profile_view=raw.profile_view,
    )


def _check_voice(voice: Voice, fail: _Fail) -> None:
    for index, codec in enumerate(voice.codecs):
        if codec.format is not None and codec.format not in CODECS:
            raise fail(
                f"voice.codecs.{index}.format",
                f"expected one of {', '.join(map(repr, CODECS))}, got {shown(codec.format)}",
            )
    if len({codec.code for codec in voice.codecs}) != len(voice.codecs):
        raise fail("voice.codecs", "lists a code twice")
    default = voice.codec(voice.default_codec)
    if default is None or default.format is None or voice.default_rate not in default.rates:
        raise fail("voice.default_codec", "default_codec/default_rate must be a streamable codec")
    unknown = sorted(set(voice.events) - EVENT_CODES)
    if unknown:
        raise fail("voice.events", f"unknown codes {''.join(unknown)!r} in {shown(voice.events)}")


def _check_caller_id(fmt: CallerIdFormat, fail: _Fail) -> None:
    if not {"DATE", "TIME", "NMBR"} <= set(fmt.order):
        raise fail("caller_id.order", f"must hold DATE, TIME, NMBR (and NAME, MESG): {fmt.order}")


def _parameter(name: str, table: _ParameterTable, fail: _Fail) -> Parameter:
    key = f"parameters.{name}"
    if name[:1] not in "+-!#$" or len(name) < 2:
        raise fail(key, "a parameter name needs an extended-syntax prefix (+, -, !, # or $)")
    try:
        args = tuple(ArgSpec.parse(text) for text in table.values)
    except ValueError as exc:
        raise fail(f"{key}.values", str(exc)) from None
    if len(table.default) != len(args):
        raise fail(f"{key}.default", "one default per value")
    canonical = []
    for spec, value in zip(args, table.default, strict=True):
        value_c = spec.canonical(value)
        if value_c is None:
            raise fail(f"{key}.default", f"{shown(value)} not in {spec.text}")
        canonical.append(value_c)
    return Parameter(
        name=name,
        args=args,
        default=tuple(canonical),
        voice_only=table.voice_only,
        reset_on_atz=table.atz == "reset",
        test=table.test,
    )


class _Fail(Protocol):
    def __call__(self, key: str, problem: str) -> PersonalityError: ...

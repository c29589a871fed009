"""Chip personalities: everything that makes one emulated voice modem differ from another.

A personality is a TOML file in ``daemon1521/emulator/personalities/`` (or
anywhere, by path). It holds identification answers, response framing, the
``+VSM`` codec table and its listing text, caller-ID dialect, DTMF framing,
which DLE events the chip reports, ``+VTS`` limits, parameter ranges and
defaults, and S-register defaults. Adding a chip is adding a file: the
emulator's code reads these fields and nothing is keyed on a chip's name.

Loading validates the whole file and names the offending key, so a typo
fails at load time rather than as a strange byte in a test.

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

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon1521.dsp.codecs import CODECS

PERSONALITY_DIR = Path(__file__).resolve().parents[1] / "personalities"
"""Where the shipped personality files live."""

EVENT_CODES = frozenset("bdrlLsqRuohHcea")
"""DLE event codes (VOICE-MODEMS.md section 3) a personality may say it reports."""
BUSY_CONTEXTS = frozenset({"rx", "tx", "command"})
CID_FIELDS = frozenset({"MESG", "DATE", "TIME", "NMBR", "NAME"})
RESULT_NAMES = (
    "OK",
    "CONNECT",
    "RING",
    "NO CARRIER",
    "ERROR",
    "NO DIALTONE",
    "BUSY",
    "NO ANSWER",
    "VCON",
)
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


class PersonalityError(ValueError):
    """A personality file is missing a key or holds a bad value."""


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
        if text in ("hex", "any"):
            return cls(text, kind=text)
        ranges: list[tuple[int, int]] = []
        width = 0
        for part in text.split(","):
            lo, sep, hi = part.partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise PersonalityError(f"bad value range {text!r}")
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


@dataclass(frozen=True)
class Codec:
    """One ``+VSM`` compression method of the chip."""

    code: int
    name: str
    format: str | None
    """The stream format the emulator uses (``u8``, ``s16le``, ``alaw``,
    ``ulaw``); None for methods the chip lists but the emulator cannot
    stream (selecting them answers ERROR)."""
    rates: tuple[int, ...]


@dataclass(frozen=True)
class Register:
    default: int
    low: int
    high: int


# --- sections ----------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    ati: Mapping[int, tuple[str, ...]]
    gmi: tuple[str, ...]
    gmm: tuple[str, ...]
    gmr: tuple[str, ...]
    gcap: tuple[str, ...] | None
    gm_prefix: bool
    usb_ids: tuple[str, ...]


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


@dataclass(frozen=True)
class Results:
    numeric: Mapping[str, int]
    no_dialtone: str
    voice_answer: str
    """Final result of ATA / auto-answer in voice mode (``VCON`` or ``OK``)."""
    voice_dial_answered: str
    """Final result of a voice-mode ATD once the far end answers."""


@dataclass(frozen=True)
class Dtmf:
    framing: str
    """``bare``: DLE <digit> once per press. ``wrapped``: DLE / ... DLE ~
    around the digit, repeated every ``repeat_ms`` while the key is held."""
    repeat_ms: int


@dataclass(frozen=True)
class VtsLimits:
    min_freq: float
    max_freq: float
    single_tone_zero: bool
    max_duration: int
    flash_ms: int
    dtmf_gap_ms: int
    """Silence the chip leaves after each DTMF element, so that repeated
    digits stay separate presses for the far end's detector."""


@dataclass(frozen=True)
class Voice:
    codecs: tuple[Codec, ...]
    vsm_test: tuple[str, ...]
    vsm_read: str
    default_codec: int
    default_rate: int
    vls_off_hook: frozenset[int]
    vtr: bool
    tx_buffer: int
    rx_backlog: int
    vtx_end_etx: bool
    stray_underrun: bool
    vls1_events: str
    ring: str
    ring_after_answer: bool
    """One more ring report just after the host took the line off hook."""
    silence_detection: bool
    dle_sub: bool
    rx_end_codes: str
    events: frozenset[str]
    events_during_vrx: bool
    """False: nothing is reported while recording (+VRX), neither DTMF nor
    tones nor line events; the host must find key presses in the audio."""
    busy_contexts: frozenset[str]
    vit_unit: float
    dtmf: Dtmf
    vts: VtsLimits

    def codec(self, code: int) -> Codec | None:
        for codec in self.codecs:
            if codec.code == code:
                return codec
        return None


@dataclass(frozen=True)
class CallerIdFormat:
    separator: str
    order: tuple[str, ...]
    private: Mapping[str, str]
    unavailable: Mapping[str, str]
    name_width: int
    mesg: str
    requires: Mapping[str, str]
    """Parameter values that must be set for caller ID to be delivered
    (none on the shipped chips: real CX930xx units need only ``+VCID=1``)."""
    region_parameter: str
    regions: Mapping[str, str]
    """Region parameter value -> caller-ID signalling it decodes."""
    block_start: str
    line_end: str


@dataclass(frozen=True)
class CallProgress:
    """Tone detection and dialling timing (seconds unless named otherwise)."""

    freq: float
    min_level_dbm0: float
    dialtone_min: float
    dialtone_wait: float
    dialtone_event_min: float
    busy_on: tuple[float, float]
    busy_off: tuple[float, float]
    ringback_on: tuple[float, float]
    busy_cycles: int
    dtmf_level_dbm0: float


@dataclass(frozen=True)
class ProfileView:
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


# --- loading -------------------------------------------------------------------------


def available_personalities() -> list[str]:
    """Names of the personalities shipped with the emulator."""
    return sorted(path.stem for path in PERSONALITY_DIR.glob("*.toml"))


def load_personality(name_or_path: str | Path) -> Personality:
    """A shipped personality by name (``usr-5637``), or any personality file by path."""
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise PersonalityError(f"no personality file {path}")
        return parse_personality(path.read_text(encoding="utf-8"), str(path))
    resource = PERSONALITY_DIR / f"{name_or_path}.toml"
    if not resource.is_file():
        known = ", ".join(available_personalities())
        raise PersonalityError(f"no personality {name_or_path!r} (known: {known})")
    return parse_personality(resource.read_text(encoding="utf-8"), str(name_or_path))


def parse_personality(text: str, source: str = "<string>") -> Personality:
    """Validate TOML text and build a :class:`Personality`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonalityError(f"{source}: not valid TOML: {exc}") from None
    try:
        return _build(_Table(data, ""), source)
    except PersonalityError as exc:
        raise PersonalityError(f"{source}: {exc}") from None


class _Table:
    """A TOML table that reports missing or mistyped keys by their dotted path."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise PersonalityError(f"missing key {self._where(key)}")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise PersonalityError(f"{self._where(key)} has the wrong type ({value!r})")
        return value

    def table(self, key: str, default: Any = ...) -> _Table:
        value = self.get(key, dict, {} if default is not ... else ...)
        return _Table(value, self._where(key))

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is None:
            return value
        if not all(isinstance(v, str) for v in value):
            raise PersonalityError(f"{self._where(key)} must be a list of strings")
        return tuple(value)

    def pair(self, key: str, default: tuple[float, float]) -> tuple[float, float]:
        value = self.get(key, list, list(default))
        if len(value) != 2 or not all(isinstance(v, int | float) for v in value):
            raise PersonalityError(f"{self._where(key)} must be [low, high]")
        return (float(value[0]), float(value[1]))

    def check_unused(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise PersonalityError(f"unknown key {self._where(unknown[0])}")


def _string_map(table: _Table, key: str) -> dict[str, str]:
    raw = table.get(key, dict, {})
    if not all(isinstance(v, str) for v in raw.values()):
        raise PersonalityError(f"{table._where(key)} values must be strings")
    return dict(raw)


def _build(root: _Table, source: str) -> Personality:
    name = root.get("name", str)
    description = root.get("description", str)

    ident = root.table("identity")
    ati_raw = ident.table("ati")
    ati: dict[int, tuple[str, ...]] = {}
    for key in ati_raw.data:
        if not key.isdigit():
            raise PersonalityError(f"identity.ati key {key!r} is not a number")
        ati[int(key)] = ati_raw.strings(key)
    identity = Identity(
        ati=ati,
        gmi=ident.strings("gmi"),
        gmm=ident.strings("gmm"),
        gmr=ident.strings("gmr"),
        gcap=ident.strings("gcap", None),
        gm_prefix=ident.get("gm_prefix", bool, False),
        usb_ids=ident.strings("usb_ids", []),
    )
    ident.check_unused()

    cl = root.table("command_line")
    command_line = CommandLine(
        max_length=cl.get("max_length", int),
        backspace_echo=cl.get("backspace_echo", str, "\b \b").encode("latin-1"),
        compact_info=frozenset(cl.strings("compact_info", [])),
        lower_case_tests=cl.get("lower_case_tests", bool, False),
        read_prefix=cl.get("read_prefix", bool, False),
    )
    if command_line.max_length < 40:
        raise PersonalityError("command_line.max_length below V.250's minimum of 40")
    cl.check_unused()

    res = root.table("results")
    numeric_raw = res.get("numeric", dict)
    for key, value in numeric_raw.items():
        if key not in RESULT_NAMES or not isinstance(value, int):
            raise PersonalityError(f"results.numeric: bad entry {key!r} = {value!r}")
    results = Results(
        numeric=dict(numeric_raw),
        no_dialtone=res.get("no_dialtone", str),
        voice_answer=res.get("voice_answer", str),
        voice_dial_answered=res.get("voice_dial_answered", str),
    )
    for what in ("voice_answer", "voice_dial_answered"):
        if getattr(results, what) not in ("OK", "VCON"):
            raise PersonalityError(f"results.{what} must be OK or VCON")
    if results.no_dialtone not in ("NO DIALTONE", "NO DIAL TONE"):
        raise PersonalityError("results.no_dialtone must be NO DIALTONE or NO DIAL TONE")
    res.check_unused()

    regs = root.table("s_registers")
    registers: dict[int, Register] = {}
    for key in regs.data:
        values = regs.get(key, list)
        if not key.isdigit() or len(values) != 3 or not all(isinstance(v, int) for v in values):
            raise PersonalityError(f"s_registers.{key} must be [default, low, high]")
        default, low, high = values
        if not low <= default <= high:
            raise PersonalityError(f"s_registers.{key}: default outside its range")
        registers[int(key)] = Register(default, low, high)
    for needed in (0, 1, 3, 4, 5, 6, 7, 8, 11):
        if needed not in registers:
            raise PersonalityError(f"s_registers.{needed} is missing")

    fclass = root.table("fclass")
    fclass_values = fclass.strings("values")
    fclass_test = fclass.strings("test")
    if "0" not in fclass_values:
        raise PersonalityError("fclass.values must include 0")
    fclass.check_unused()

    voice = _voice(root.table("voice"))
    caller_id = _caller_id(root.table("caller_id"))
    progress = _progress(root.table("call_progress", {}))

    params_table = root.table("parameters")
    parameters: dict[str, Parameter] = {}
    for pname in params_table.data:
        parameters[pname] = _parameter(pname, params_table.table(pname))
    for needed in REQUIRED_PARAMETERS:
        if needed not in parameters:
            raise PersonalityError(f"parameters.{needed!r} is missing")
    for key in caller_id.requires:
        if key not in parameters:
            raise PersonalityError(f"caller_id.requires names unknown parameter {key!r}")
    if caller_id.region_parameter and caller_id.region_parameter not in parameters:
        raise PersonalityError("caller_id.region_parameter names an unknown parameter")

    defaults_table = root.table("defaults")
    defaults = {
        k: defaults_table.get(k, int, v) for k, v in (("E", 1), ("V", 1), ("Q", 0), ("X", 4))
    }
    defaults_table.check_unused()

    basic_table = root.table("accepted_basic", {})
    accepted: dict[str, tuple[int, int]] = {}
    for key in basic_table.data:
        lo_hi = basic_table.get(key, list)
        if len(lo_hi) != 2 or not all(isinstance(v, int) for v in lo_hi):
            raise PersonalityError(f"accepted_basic.{key} must be [low, high]")
        accepted[key.upper()] = (lo_hi[0], lo_hi[1])
    profile_view = None
    if "profile_view" in root.data:
        view_table = root.table("profile_view")
        profile_view = ProfileView(view_table.get("active", str), view_table.strings("stored"))
        view_table.check_unused()
    root.check_unused()
    return Personality(
        name=name,
        description=description,
        source=source,
        identity=identity,
        command_line=command_line,
        results=results,
        registers=registers,
        fclass_values=fclass_values,
        fclass_test=fclass_test,
        voice=voice,
        caller_id=caller_id,
        call_progress=progress,
        parameters=parameters,
        defaults=defaults,
        accepted_basic=accepted,
        profile_view=profile_view,
    )


def _voice(v: _Table) -> Voice:
    codecs: list[Codec] = []
    raw_codecs = v.get("codecs", list)
    for i, raw in enumerate(raw_codecs):
        if not isinstance(raw, dict):
            raise PersonalityError(f"voice.codecs[{i}] must be a table")
        t = _Table(raw, f"voice.codecs[{i}]")
        fmt = t.get("format", str, "")
        if fmt and fmt not in CODECS:
            raise PersonalityError(f"voice.codecs[{i}].format {fmt!r} is not one of {CODECS}")
        rates = t.get("rates", list)
        if not rates or not all(isinstance(r, int) for r in rates):
            raise PersonalityError(f"voice.codecs[{i}].rates must list sample rates")
        codecs.append(Codec(t.get("code", int), t.get("name", str), fmt or None, tuple(rates)))
        t.check_unused()
    if len({c.code for c in codecs}) != len(codecs):
        raise PersonalityError("voice.codecs lists a code twice")
    dtmf_t = v.table("dtmf")
    dtmf = Dtmf(framing=dtmf_t.get("framing", str), repeat_ms=dtmf_t.get("repeat_ms", int, 0))
    if dtmf.framing not in ("bare", "wrapped"):
        raise PersonalityError("voice.dtmf.framing must be bare or wrapped")
    if dtmf.framing == "wrapped" and dtmf.repeat_ms < 0:
        raise PersonalityError("voice.dtmf.repeat_ms must not be negative")
    dtmf_t.check_unused()
    vts_t = v.table("vts")
    vts = VtsLimits(
        min_freq=vts_t.get("min_freq", float),
        max_freq=vts_t.get("max_freq", float),
        single_tone_zero=vts_t.get("single_tone_zero", bool),
        max_duration=vts_t.get("max_duration", int),
        flash_ms=vts_t.get("flash_ms", int),
        dtmf_gap_ms=vts_t.get("dtmf_gap_ms", int),
    )
    vts_t.check_unused()
    events = v.get("events", str)
    if not set(events) <= EVENT_CODES:
        raise PersonalityError(f"voice.events: unknown codes in {events!r}")
    busy = frozenset(v.strings("busy_contexts", list(BUSY_CONTEXTS)))
    if not busy <= BUSY_CONTEXTS:
        raise PersonalityError(f"voice.busy_contexts must be among {sorted(BUSY_CONTEXTS)}")
    voice = Voice(
        codecs=tuple(codecs),
        vsm_test=v.strings("vsm_test"),
        vsm_read=v.get("vsm_read", str),
        default_codec=v.get("default_codec", int),
        default_rate=v.get("default_rate", int),
        vls_off_hook=frozenset(v.get("vls_off_hook", list)),
        vtr=v.get("vtr", bool),
        tx_buffer=v.get("tx_buffer", int),
        rx_backlog=v.get("rx_backlog", int),
        vtx_end_etx=v.get("vtx_end_etx", bool),
        stray_underrun=v.get("stray_underrun", bool),
        vls1_events=v.get("vls1_events", str, ""),
        ring=v.get("ring", str),
        ring_after_answer=v.get("ring_after_answer", bool, False),
        silence_detection=v.get("silence_detection", bool),
        dle_sub=v.get("dle_sub", bool, False),
        rx_end_codes=v.get("rx_end_codes", str, "!"),
        events=frozenset(events),
        events_during_vrx=v.get("events_during_vrx", bool, True),
        busy_contexts=busy,
        vit_unit=v.get("vit_unit", float, 1.0),
        dtmf=dtmf,
        vts=vts,
    )
    default = voice.codec(voice.default_codec)
    if default is None or default.format is None or voice.default_rate not in default.rates:
        raise PersonalityError("voice.default_codec/default_rate must be a streamable codec")
    if voice.ring not in ("dle", "text"):
        raise PersonalityError("voice.ring must be dle or text")
    if voice.tx_buffer < 320 or voice.rx_backlog < 320:
        raise PersonalityError("voice.tx_buffer and voice.rx_backlog need at least 320 bytes")
    v.check_unused()
    return voice


def _caller_id(c: _Table) -> CallerIdFormat:
    order = c.strings("order")
    if not set(order) <= CID_FIELDS or not {"DATE", "TIME", "NMBR"} <= set(order):
        raise PersonalityError(
            f"caller_id.order must hold DATE, TIME, NMBR (and NAME, MESG): {order}"
        )
    fmt = CallerIdFormat(
        separator=c.get("separator", str),
        order=order,
        private=_string_map(c, "private"),
        unavailable=_string_map(c, "unavailable"),
        name_width=c.get("name_width", int, 0),
        mesg=c.get("mesg", str, ""),
        requires=_string_map(c, "requires"),
        region_parameter=c.get("region_parameter", str, ""),
        regions=_string_map(c, "regions"),
        block_start=c.get("block_start", str, "\r\n"),
        line_end=c.get("line_end", str, "\r\n"),
    )
    for what in (fmt.private, fmt.unavailable):
        if not set(what) <= CID_FIELDS:
            raise PersonalityError(f"caller_id: unknown field in {dict(what)}")
    c.check_unused()
    return fmt


def _progress(p: _Table) -> CallProgress:
    progress = CallProgress(
        freq=p.get("freq", float, 425.0),
        min_level_dbm0=p.get("min_level_dbm0", float, -35.0),
        dialtone_min=p.get("dialtone_min", float, 1.0),
        dialtone_wait=p.get("dialtone_wait", float, 5.0),
        dialtone_event_min=p.get("dialtone_event_min", float, 3.0),
        busy_on=p.pair("busy_on", (0.15, 0.75)),
        busy_off=p.pair("busy_off", (0.15, 0.75)),
        ringback_on=p.pair("ringback_on", (0.8, 2.5)),
        busy_cycles=p.get("busy_cycles", int, 2),
        dtmf_level_dbm0=p.get("dtmf_level_dbm0", float, -7.0),
    )
    p.check_unused()
    return progress


def _parameter(name: str, t: _Table) -> Parameter:
    if name[:1] not in "+-!#$" or len(name) < 2:
        raise PersonalityError(f"parameter name {name!r} needs an extended-syntax prefix")
    try:
        args = tuple(ArgSpec.parse(text) for text in t.strings("values"))
    except PersonalityError as exc:
        raise PersonalityError(f"parameters.{name!r}: {exc}") from None
    default = t.strings("default")
    if len(default) != len(args):
        raise PersonalityError(f"parameters.{name!r}: one default per value")
    canonical = []
    for spec, value in zip(args, default, strict=True):
        value_c = spec.canonical(value)
        if value_c is None:
            raise PersonalityError(f"parameters.{name!r}: default {value!r} not in {spec.text}")
        canonical.append(value_c)
    atz = t.get("atz", str, "reset")
    if atz not in ("reset", "keep"):
        raise PersonalityError(f"parameters.{name!r}.atz must be reset or keep")
    param = Parameter(
        name=name,
        args=args,
        default=tuple(canonical),
        voice_only=t.get("voice_only", bool, False),
        reset_on_atz=atz == "reset",
        test=t.strings("test", None),
    )
    t.check_unused()
    return param

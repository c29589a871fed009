"""The daemon's configuration: one TOML file, checked strictly before anything starts.

A mistyped key in a telephony config is a line that silently behaves
differently from what the operator wrote, so unknown keys are errors, and
every error names the file, the dotted key and what is wrong with it
(:class:`ConfigError`). Relative paths are taken relative to the file's own
directory, so a config and its data can move together.

The file's layout is a tree of msgspec Structs read through
:mod:`daemon1521.schema` (a bounded read, no NaN or infinity, types and
limits from the fields); what one field's type cannot say (names, ports,
paths, values that depend on each other) is checked after, key by key.
:func:`load_config` also checks what the daemon needs of this host (the
control group, the firmware profiles), so ``config check`` and ``run``
refuse the same files.

Durations here are in seconds of line time: the daemon divides them by its
time scale when it runs emulated lines faster than real time.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec

from daemon1521 import schema
from daemon1521.ivr.settings import IvrSettings

DEFAULT_CONFIG_PATH = Path("/etc/daemon1521/daemon1521.toml")
CONFIG_ENV = "DAEMON1521_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""
DEFAULT_SOCKET = Path("/run/daemon1521/control.sock")
DEFAULT_STORE = Path("/var/lib/daemon1521/daemon1521.db")
DEFAULT_PROMPTS = Path("/var/lib/daemon1521/prompts")
MAX_SOCKET_PATH = 107
"""Bytes a Unix socket path may have: ``sun_path`` holds 108 with the closing NUL."""

Role = Literal["inbound", "outbound", "both"]
LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
LINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})?$")
GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")

Seconds = Annotated[float, msgspec.Meta(ge=0.01)]
SecondsOrOff = Annotated[float, msgspec.Meta(ge=0.0)]
PathText = Annotated[str, msgspec.Meta(min_length=1)]


class ConfigError(Exception):
    """A config problem: which file, which key, and what is wrong."""

    def __init__(self, path: str | os.PathLike[str] | None, key: str, problem: str) -> None:
        self.path = str(path) if path is not None else "(built-in defaults)"
        self.key = key
        self.problem = problem
        where = f"{self.path}: {schema.shown_key(key)}" if key else self.path
        super().__init__(f"{where}: {problem}")


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class LineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One telephone line (a ``[lines.NAME]`` table): a modem on a port and what it is for."""

    name: str
    port: Annotated[str, _doc("device path, pyserial URL or VISA resource")]
    role: Annotated[Role, _doc("inbound, outbound or both")] = "inbound"
    profile: Annotated[str, _doc("firmware profile name, or auto")] = "auto"
    rings: Annotated[int, msgspec.Meta(ge=1, le=10, description="rings before answering")] = 2
    label: str | None = None
    region: str | None = None
    rtscts: bool = False
    baudrate: Annotated[int, msgspec.Meta(ge=300, le=921600, description="port speed")] = 115200
    trace: Annotated[
        str | None,
        _doc("file recording the dialogue with the modem, digits as *, rotated by size"),
    ] = None


class RecoveryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a failed line is brought back, and when it is given up for a while."""

    backoff_initial: Seconds = 1.0
    backoff_max: Seconds = 60.0
    failures_before_out_of_service: Annotated[int, msgspec.Meta(ge=1)] = 5
    out_of_service_retry: Seconds = 300.0
    healthy_after: SecondsOrOff = 120.0
    health_check: SecondsOrOff = 300.0


@dataclass(frozen=True)
class ControlConfig:
    socket: Path = DEFAULT_SOCKET
    group: str | None = None


@dataclass(frozen=True)
class LoggingConfig:
    level: LogLevel = "INFO"
    modules: Mapping[str, LogLevel] = field(default_factory=dict)


@dataclass(frozen=True)
class TelebankConfig:
    """``[telebank]``: the bank leg. ``profile`` is a shipped profile's name or a
    file; ``vault_key`` defaults to the card vault key beside the store."""

    enabled: bool = True
    profile: str = "parsian"
    vault_key: Path | None = None


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs to start; see ``systemd/daemon1521.toml.example``."""

    path: Path | None
    lines: tuple[LineConfig, ...]
    ivr: IvrSettings
    store: Path = DEFAULT_STORE
    prompts: Path = DEFAULT_PROMPTS
    shipped_prompts: Path | None = None
    language: str = "fa"
    firmware_profiles: Path | None = None
    drain_timeout: float = 180.0
    control: ControlConfig = field(default_factory=ControlConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    telebank: TelebankConfig = field(default_factory=TelebankConfig)

    def line(self, name: str) -> LineConfig:
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(name)


# -- the file's layout -------------------------------------------------------------


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the file: its fields are its only keys."""


class _Daemon(_Table):
    drain_timeout: Annotated[float, msgspec.Meta(ge=0.0)] = 180.0
    firmware_profiles: PathText | None = None


class _Store(_Table):
    path: PathText | None = None


class _Prompts(_Table):
    language: str = "fa"
    dir: PathText | None = None
    shipped: PathText | None = None


class _Control(_Table):
    socket: PathText | None = None
    group: str = ""


class _Logging(_Table):
    level: str = "INFO"
    modules: dict[str, Any] = {}


class _Telebank(_Table):
    enabled: bool = True
    profile: str = "parsian"
    vault_key: PathText | None = None


class _File(_Table):
    daemon: _Daemon = _Daemon()
    store: _Store = _Store()
    prompts: _Prompts = _Prompts()
    control: _Control = _Control()
    logging: _Logging = _Logging()
    recovery: RecoveryConfig = RecoveryConfig()
    ivr: dict[str, Any] = {}
    lines: dict[str, Any] = {}
    telebank: _Telebank = _Telebank()


SECTIONS: dict[str, tuple[str, ...]] = {
    "daemon": _Daemon.__struct_fields__,
    "store": _Store.__struct_fields__,
    "prompts": _Prompts.__struct_fields__,
    "control": _Control.__struct_fields__,
    "logging": _Logging.__struct_fields__,
    "recovery": RecoveryConfig.__struct_fields__,
    "ivr": IvrSettings.__struct_fields__,
    "lines": tuple(name for name in LineConfig.__struct_fields__ if name != "name"),
    "telebank": _Telebank.__struct_fields__,
}
"""Each table of the file and its keys (a line's keys under ``lines``)."""


def default_config_path() -> Path:
    """``$DAEMON1521_CONFIG`` if set, else ``/etc/daemon1521/daemon1521.toml``."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(
    path: str | os.PathLike[str],
    *,
    require_lines: bool = True,
    known_profiles: set[str] | None = None,
    check_profiles: bool = True,
) -> Config:
    """Read and check a config file.

    ``require_lines`` is false when lines come from elsewhere (the emulator).
    Each line's ``profile`` is checked against ``known_profiles``, or when
    that is None against the firmware profiles the config points at.
    ``check_profiles`` false skips what concerns the host rather than the
    file (the profiles, the control group): the CLI only wants the socket path.
    """
    file = Path(path)
    try:
        data = schema.read_toml(file)
    except schema.SchemaError as exc:
        raise ConfigError(file, exc.key, _unreadable(file, exc.problem)) from None
    return parse_config(
        data,
        file,
        require_lines=require_lines,
        known_profiles=known_profiles,
        check_profiles=check_profiles,
    )


def parse_config(
    data: Mapping[str, Any],
    path: Path | None = None,
    *,
    require_lines: bool = True,
    known_profiles: set[str] | None = None,
    check_profiles: bool = True,
) -> Config:
    """Check an already-parsed TOML table (see :func:`load_config`)."""
    try:
        schema.refuse_non_finite(data, path)
        config = _build(data, path, require_lines=require_lines)
        if check_profiles:
            _check_host(config, known_profiles)
    except schema.SchemaError as exc:
        raise ConfigError(path, exc.key, exc.problem) from None
    return config


def default_config(**changes: Any) -> Config:
    """The configuration of a file with no keys at all (used by emulated runs)."""
    base = parse_config({}, None, require_lines=False, check_profiles=False)
    return dataclasses.replace(base, **changes)


def build_ivr_settings(table: Any, path: Path | None = None) -> IvrSettings:
    """The ``[ivr]`` table as :class:`IvrSettings`: its fields are the only keys."""
    try:
        return IvrSettings.from_mapping(table, "ivr", path)
    except schema.SchemaError as exc:
        raise ConfigError(path, exc.key, exc.problem) from None


def port_warnings(config: Config) -> list[str]:
    """Lines whose device is not there now: worth a word, not a refusal (USB modems come and go)."""
    warnings = []
    for line in config.lines:
        if line.port.startswith("/") and not os.path.exists(line.port):
            warnings.append(
                f"lines.{line.name}.port: {line.port} does not exist now; "
                "the line waits for it to appear"
            )
    return warnings


# -- checks beyond the types --------------------------------------------------------


def _build(data: Mapping[str, Any], path: Path | None, *, require_lines: bool) -> Config:
    raw = schema.convert(data, _File, path=path, strict=True)
    daemon, control, prompts = raw.daemon, raw.control, raw.prompts
    group = control.group or None
    if group is not None and not (group.isdigit() or GROUP_NAME.match(group)):
        raise schema.SchemaError(
            path, "control.group", f"{schema.shown(group)} is not a group name or number"
        )
    if not LANGUAGE.match(prompts.language):
        raise schema.SchemaError(
            path,
            "prompts.language",
            f"{schema.shown(prompts.language)} is not a language code like fa",
        )
    recovery = raw.recovery
    if recovery.backoff_max < recovery.backoff_initial:
        raise schema.SchemaError(
            path, "recovery.backoff_max", "must not be less than recovery.backoff_initial"
        )
    socket = _path(path, control.socket) or DEFAULT_SOCKET
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise schema.SchemaError(
            path,
            "control.socket",
            f"{schema.shown(str(socket))} is {len(os.fsencode(socket))} bytes long; "
            f"a Unix socket path may have at most {MAX_SOCKET_PATH}",
        )
    ivr = IvrSettings.from_mapping(raw.ivr, "ivr", path)
    lines = _lines(raw.lines, path)
    if require_lines and not lines:
        raise schema.SchemaError(path, "lines", "no lines configured (add a [lines.NAME] table)")
    return Config(
        path=path,
        lines=tuple(lines),
        ivr=ivr,
        store=_path(path, raw.store.path) or DEFAULT_STORE,
        prompts=_path(path, prompts.dir) or DEFAULT_PROMPTS,
        shipped_prompts=_path(path, prompts.shipped),
        language=prompts.language,
        firmware_profiles=_path(path, daemon.firmware_profiles),
        drain_timeout=daemon.drain_timeout,
        control=ControlConfig(socket=socket, group=group),
        logging=LoggingConfig(
            level=_level(path, "logging.level", raw.logging.level),
            modules={
                module: _level(path, f"logging.modules.{module}", level)
                for module, level in raw.logging.modules.items()
            },
        ),
        recovery=recovery,
        telebank=_telebank(raw.telebank, path),
    )


def _telebank(raw: _Telebank, path: Path | None) -> TelebankConfig:
    """The ``[telebank]`` table; the profile it names is loaded, so a bad one is refused here."""
    from daemon1521.telebank.profile import load_profile

    if raw.enabled:
        try:
            load_profile(raw.profile)
        except schema.SchemaError as exc:
            raise schema.SchemaError(path, "telebank.profile", str(exc)) from None
    return TelebankConfig(
        enabled=raw.enabled, profile=raw.profile, vault_key=_path(path, raw.vault_key)
    )


def _lines(table: Mapping[str, Any], path: Path | None) -> list[LineConfig]:
    lines: list[LineConfig] = []
    ports: dict[str, str] = {}
    for name, raw in table.items():
        key = f"lines.{name}"
        if not LINE_NAME.match(name):
            raise schema.SchemaError(
                path, key, "a line name is 1-32 letters, digits, '_', '.' or '-'"
            )
        if not isinstance(raw, dict):
            raise schema.SchemaError(
                path, key, f"expected table ([{key}]), got {schema.shown(raw)}"
            )
        if "name" in raw:
            raise schema.SchemaError(
                path, f"{key}.name", "unknown key (the table's name is the line's)"
            )
        if "port" not in raw:
            raise schema.SchemaError(path, f"{key}.port", "missing (the modem's device or URL)")
        try:
            line = schema.convert(
                {**raw, "name": name}, LineConfig, path=path, key=key, strict=True
            )
        except schema.SchemaError as exc:
            if exc.problem.startswith("unknown key"):
                known = ", ".join(SECTIONS["lines"])
                raise schema.SchemaError(path, exc.key, f"unknown key (known: {known})") from None
            raise
        port = line.port.strip()
        if not port or any(ch.isspace() or not ch.isprintable() for ch in port):
            raise schema.SchemaError(
                path, f"{key}.port", f"{schema.shown(line.port)} is not a port"
            )
        same = _port_identity(port)
        if same in ports:
            raise schema.SchemaError(
                path, f"{key}.port", f"{port} is already the port of lines.{ports[same]}"
            )
        ports[same] = name
        lines.append(msgspec.structs.replace(line, port=port))
    return lines


def _port_identity(port: str) -> str:
    """What two spellings of one device share: ``/dev/../dev/ttyS0`` is ``/dev/ttyS0``."""
    if not port.startswith("/"):
        return port
    return os.path.realpath(port) if os.path.exists(port) else os.path.normpath(port)


def _path(file: Path | None, text: str | None) -> Path | None:
    if text is None:
        return None
    value = Path(text)
    if not value.is_absolute() and file is not None:
        value = file.resolve().parent / value
    return value


def _level(path: Path | None, key: str, value: Any) -> LogLevel:
    level = value.upper() if isinstance(value, str) else value
    if level not in LOG_LEVELS:
        options = ", ".join(map(repr, LOG_LEVELS))
        raise schema.SchemaError(path, key, f"expected one of {options}, got {schema.shown(value)}")
    return level  # type: ignore[return-value]


def _check_host(config: Config, known_profiles: set[str] | None) -> None:
    """What the daemon will need of this host: refused here, not at start."""
    path = config.path
    group = config.control.group
    if group is not None and not group.isdigit():
        try:
            grp.getgrnam(group)
        except KeyError:
            raise schema.SchemaError(
                path, "control.group", f"no group named {schema.shown(group)}"
            ) from None
    named = any(line.profile != "auto" for line in config.lines)
    if known_profiles is None and (named or config.firmware_profiles is not None):
        known_profiles = _profile_names(path, config.firmware_profiles)
    if known_profiles is None:
        return
    for line in config.lines:
        if line.profile not in ("auto", *known_profiles):
            known = ", ".join(sorted(known_profiles))
            raise schema.SchemaError(
                path,
                f"lines.{line.name}.profile",
                f"no firmware profile named {schema.shown(line.profile)} (known: auto, {known})",
            )


def _profile_names(path: Path | None, directory: Path | None) -> set[str]:
    from daemon1521.modem.errors import ProfileError
    from daemon1521.modem.profile import load_profiles

    try:
        names = {profile.name for profile in load_profiles(directory)}
    except ProfileError as exc:
        raise schema.SchemaError(path, "daemon.firmware_profiles", str(exc)) from None
    if not names:
        raise schema.SchemaError(
            path, "daemon.firmware_profiles", f"no firmware profiles (*.toml) in {directory}"
        )
    return names


def _unreadable(file: Path, problem: str) -> str:
    """The reader's words for a file that could not be read, as an operator says them."""
    if file.is_dir():
        return "is a directory, not a config file"
    if not file.exists() and not file.is_symlink():
        return "no such file"
    return problem

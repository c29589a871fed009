"""The daemon's configuration: one TOML file, checked strictly before anything starts.

A mistyped key in a telephony config is a line that silently behaves
differently from what the operator wrote, so unknown keys are errors, and
every error names the file, the dotted key and what is wrong with it
(:class:`ConfigError`). Relative paths are taken relative to the file's own
directory, so a config and its data can move together.

Durations here are in seconds of line time: the daemon divides them by its
time scale when it runs emulated lines faster than real time.

The ``[ivr]`` table is whatever :class:`daemon1521.ivr.settings.IvrSettings`
declares; this module checks its keys and types from that dataclass and
never lists them itself.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon1521 import typed_toml
from daemon1521.ivr.settings import IvrSettings

DEFAULT_CONFIG_PATH = Path("/etc/daemon1521/daemon1521.toml")
CONFIG_ENV = "DAEMON1521_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""
DEFAULT_SOCKET = Path("/run/daemon1521/control.sock")
DEFAULT_STORE = Path("/var/lib/daemon1521/daemon1521.db")
DEFAULT_PROMPTS = Path("/var/lib/daemon1521/prompts")

Role = Literal["inbound", "outbound", "both"]
LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]
LINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})?$")
GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_NAMES = types.MappingProxyType({Path: "a path"})
"""How messages name the config's own value types (besides the common TOML ones)."""


class ConfigError(Exception):
    """A config problem: which file, which key, and what is wrong."""

    def __init__(self, path: str | os.PathLike[str] | None, key: str, problem: str) -> None:
        self.path = str(path) if path is not None else "(built-in defaults)"
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


def _meta(doc: str, **limits: float) -> dict[str, Any]:
    return {"doc": doc, **limits}


@dataclass(frozen=True)
class LineConfig:
    """One telephone line: a modem on a port and what it is used for."""

    name: str
    port: str = field(metadata=_meta("device path, pyserial URL or VISA resource"))
    role: Role = field(default="inbound", metadata=_meta("inbound, outbound or both"))
    profile: str = field(default="auto", metadata=_meta("firmware profile name, or auto"))
    rings: int = field(default=2, metadata=_meta("rings before answering", min=1, max=10))
    label: str | None = None
    region: str | None = None
    rtscts: bool = False
    baudrate: int = field(default=115200, metadata=_meta("port speed", min=300, max=921600))


@dataclass(frozen=True)
class RecoveryConfig:
    """How a failed line is brought back, and when it is given up for a while."""

    backoff_initial: float = field(default=1.0, metadata=_meta("seconds", min=0.01))
    backoff_max: float = field(default=60.0, metadata=_meta("seconds", min=0.01))
    failures_before_out_of_service: int = field(default=5, metadata=_meta("count", min=1))
    out_of_service_retry: float = field(default=300.0, metadata=_meta("seconds", min=0.01))
    healthy_after: float = field(default=120.0, metadata=_meta("seconds", min=0.0))
    health_check: float = field(default=300.0, metadata=_meta("seconds", min=0.0))


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


# Top-level tables and their keys (the [ivr] keys come from IvrSettings).
_SECTIONS: dict[str, tuple[str, ...]] = {
    "daemon": ("drain_timeout", "firmware_profiles"),
    "store": ("path",),
    "prompts": ("language", "dir", "shipped"),
    "control": ("socket", "group"),
    "logging": ("level", "modules"),
    "recovery": tuple(f.name for f in dataclasses.fields(RecoveryConfig)),
    "ivr": (),
    "lines": (),
    "telebank": ("enabled", "profile", "vault_key"),
}


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
    that is None against the firmware profiles the config points at (unless
    ``check_profiles`` is false: the CLI only wants the socket path).
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(file, "", "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(file, "", "permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(file, "", "not valid TOML: not UTF-8 text") from None
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
    reader = _Reader(path)
    reader.known(data, "", _SECTIONS)
    for name in _SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(path, name, f"must be a table ([{name}]), not {data[name]!r}")
    daemon = data.get("daemon", {})
    store = data.get("store", {})
    prompts = data.get("prompts", {})
    control = data.get("control", {})
    logging = data.get("logging", {})
    for section, table in (
        ("daemon", daemon),
        ("store", store),
        ("prompts", prompts),
        ("control", control),
        ("logging", logging),
    ):
        reader.known(table, section, _SECTIONS[section])

    drain = reader.number(daemon, "daemon", "drain_timeout", 180.0, minimum=0.0)
    profiles_dir = reader.path(daemon, "daemon", "firmware_profiles", None)
    group = reader.optional_str(control, "control", "group")
    if group is not None and not (group.isdigit() or GROUP_NAME.match(group)):
        raise ConfigError(path, "control.group", f"{group!r} is not a group name or number")
    language = reader.convert(str, prompts.get("language", "fa"), "prompts.language")
    if not LANGUAGE.match(language):
        raise ConfigError(path, "prompts.language", f"{language!r} is not a language code like fa")
    levels = logging.get("modules", {})
    if not isinstance(levels, dict):
        raise ConfigError(path, "logging.modules", "must be a table of module = level")
    config = Config(
        path=path,
        lines=(),
        ivr=build_ivr_settings(data.get("ivr", {}), path),
        store=reader.path(store, "store", "path", DEFAULT_STORE) or DEFAULT_STORE,
        prompts=reader.path(prompts, "prompts", "dir", DEFAULT_PROMPTS) or DEFAULT_PROMPTS,
        shipped_prompts=reader.path(prompts, "prompts", "shipped", None),
        language=language,
        firmware_profiles=profiles_dir,
        drain_timeout=drain,
        control=ControlConfig(
            socket=reader.path(control, "control", "socket", DEFAULT_SOCKET) or DEFAULT_SOCKET,
            group=group,
        ),
        logging=LoggingConfig(
            level=reader.convert(LogLevel, _upper(logging.get("level", "INFO")), "logging.level"),
            modules={
                module: reader.convert(LogLevel, _upper(level), f"logging.modules.{module}")
                for module, level in levels.items()
            },
        ),
        recovery=reader.dataclass(RecoveryConfig, data.get("recovery", {}), "recovery"),
    )
    if config.recovery.backoff_max < config.recovery.backoff_initial:
        raise ConfigError(
            path, "recovery.backoff_max", "must not be less than recovery.backoff_initial"
        )
    lines = _lines(reader, data.get("lines", {}))
    if require_lines and not lines:
        raise ConfigError(path, "lines", "no lines configured (add a [lines.NAME] table)")
    if not check_profiles:
        lines_to_check: list[LineConfig] = []
    else:
        lines_to_check = lines
        if known_profiles is None and any(line.profile != "auto" for line in lines):
            known_profiles = _profile_names(path, profiles_dir)
    for line in lines_to_check:
        if known_profiles is not None and line.profile not in ("auto", *known_profiles):
            known = ", ".join(sorted(known_profiles))
            raise ConfigError(
                path,
                f"lines.{line.name}.profile",
                f"no firmware profile named {line.profile!r} (known: auto, {known})",
            )
    config = dataclasses.replace(config, telebank=_telebank(reader, data.get("telebank", {})))
    return dataclasses.replace(config, lines=tuple(lines))


def _telebank(reader: _Reader, table: Mapping[str, Any]) -> TelebankConfig:
    """The ``[telebank]`` table; the profile it names is loaded, so a bad one is refused here."""
    from daemon1521.schema import SchemaError
    from daemon1521.telebank.profile import load_profile

    reader.known(table, "telebank", _SECTIONS["telebank"])
    enabled = reader.convert(bool, table.get("enabled", True), "telebank.enabled")
    profile = reader.convert(str, table.get("profile", "parsian"), "telebank.profile")
    if enabled:
        try:
            load_profile(profile)
        except SchemaError as exc:
            raise ConfigError(reader.file, "telebank.profile", str(exc)) from None
    vault_key = reader.path(table, "telebank", "vault_key", None)
    return TelebankConfig(enabled=enabled, profile=profile, vault_key=vault_key)


def default_config(**changes: Any) -> Config:
    """The configuration of a file with no keys at all (used by emulated runs)."""
    return dataclasses.replace(parse_config({}, None, require_lines=False), **changes)


def build_ivr_settings(table: Any, path: Path | None = None) -> IvrSettings:
    """The ``[ivr]`` table as :class:`IvrSettings`: its fields are the only keys."""
    if not isinstance(table, dict):
        raise ConfigError(path, "ivr", f"must be a table ([ivr]), not {table!r}")
    return _Reader(path).dataclass(IvrSettings, table, "ivr")


def _lines(reader: _Reader, table: Mapping[str, Any]) -> list[LineConfig]:
    fields = [f.name for f in dataclasses.fields(LineConfig) if f.name != "name"]
    lines: list[LineConfig] = []
    ports: dict[str, str] = {}
    for name, raw in table.items():
        key = f"lines.{name}"
        if not LINE_NAME.match(name):
            raise ConfigError(
                reader.file, key, "a line name is 1-32 letters, digits, '_', '.' or '-'"
            )
        if not isinstance(raw, dict):
            raise ConfigError(reader.file, key, f"must be a table ([{key}]), not {raw!r}")
        reader.known(raw, key, fields)
        if "port" not in raw:
            raise ConfigError(reader.file, f"{key}.port", "missing (the modem's device or URL)")
        line = reader.dataclass(LineConfig, {**raw, "name": name}, key, skip=("name",))
        port = line.port.strip()
        if not port or any(ch.isspace() for ch in port):
            raise ConfigError(reader.file, f"{key}.port", f"{line.port!r} is not a port")
        if port in ports:
            raise ConfigError(
                reader.file, f"{key}.port", f"{port} is already the port of lines.{ports[port]}"
            )
        ports[port] = name
        lines.append(dataclasses.replace(line, port=port))
    return lines


def _profile_names(path: Path | None, directory: Path | None) -> set[str]:
    from daemon1521.modem.errors import ProfileError
    from daemon1521.modem.profile import load_profiles

    try:
        return {profile.name for profile in load_profiles(directory)}
    except ProfileError as exc:
        raise ConfigError(path, "daemon.firmware_profiles", str(exc)) from None


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class _Reader:
    """Typed access to TOML tables, raising :class:`ConfigError` with the dotted key."""

    def __init__(self, path: Path | None) -> None:
        self.file = path

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, key, problem)

    def known(self, table: Mapping[str, Any], where: str, keys: typing.Iterable[str]) -> None:
        allowed = list(keys)
        for key in table:
            if key not in allowed:
                hint = f" (known: {', '.join(allowed)})" if allowed else ""
                raise self.error(_join(where, key), "unknown key" + hint)

    def number(
        self, table: Mapping[str, Any], where: str, key: str, default: float, minimum: float
    ) -> float:
        value = float(self.convert(float, table.get(key, default), _join(where, key)))
        if value < minimum:
            raise self.error(_join(where, key), f"must be at least {minimum:g}, not {value:g}")
        return value

    def optional_str(self, table: Mapping[str, Any], where: str, key: str) -> str | None:
        value = self.convert(str, table.get(key, ""), _join(where, key))
        return value or None

    def path(
        self, table: Mapping[str, Any], where: str, key: str, default: Path | None
    ) -> Path | None:
        if key not in table:
            return default
        text = self.convert(str, table[key], _join(where, key))
        if not text:
            raise self.error(_join(where, key), "must not be empty")
        value = Path(text)
        if not value.is_absolute() and self.file is not None:
            value = self.file.resolve().parent / value
        return value

    def dataclass(
        self, cls: type, table: Mapping[str, Any], where: str, skip: tuple[str, ...] = ()
    ) -> Any:
        """``cls(**table)`` with every key known, typed and within its field's limits."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        self.known({k: v for k, v in table.items() if k not in skip}, where, fields)
        values: dict[str, Any] = {}
        for name, value in table.items():
            key = _join(where, name)
            converted = self.convert(hints[name], value, key)
            limits = fields[name].metadata
            for bound, ok in (("min", operator.ge), ("max", operator.le)):
                out_of_range = (
                    bound in limits
                    and isinstance(converted, int | float)
                    and not ok(converted, limits[bound])
                )
                if out_of_range:
                    word = "at least" if bound == "min" else "at most"
                    raise self.error(key, f"must be {word} {limits[bound]:g}, not {value!r}")
            values[name] = converted
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise self.error(_blame(str(exc), where, fields), str(exc)) from None

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        """``value`` checked against the type ``tp`` (and converted where TOML differs)."""
        try:
            return typed_toml.convert(tp, value, key, special=_path_value, names=_NAMES)
        except typed_toml.TomlValueError as exc:
            raise self.error(exc.key, exc.problem) from None


def _path_value(tp: Any, value: Any, key: str) -> Any:
    """Paths are the config's own type: any non-empty string makes one."""
    if tp is not Path:
        return typed_toml.UNHANDLED
    if isinstance(value, str) and value:
        return Path(value)
    raise typed_toml.mismatch(tp, value, key, _NAMES)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _blame(message: str, where: str, fields: Mapping[str, Any]) -> str:
    """The key a dataclass's own validation message is about (its first field named)."""
    for name in sorted(fields, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", message):
            return _join(where, name)
    return where

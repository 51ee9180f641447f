"""Typed configuration, loaded once at the edge (CLI, WSGI entry point or test fixture).

Precedence, lowest first: embedded defaults, the TOML config file, ``ROKT_MOCK_*``
environment variables, command-line flags. Every setting is listed in :data:`FIELDS` with its
variable and parser, so the CLI, the WSGI entry point and ``docs/configuration.md`` cannot drift
apart (a test checks the docs against this table).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEMO_ACCOUNT = "1234567890"
ROKT_VERSIONS = ("2020-05-21",)
INVALID_EVENTS_MODES = ("partial", "reject")
LOG_FORMATS = ("text", "json")


class ConfigError(Exception):
    """A setting could not be parsed; the message names the file, variable or flag."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A v1 app (id + secret) or a v2 key pair (rpub + rsec), bound to account ids.

    ``ident`` is what the journal records (the app id or the public key), never the secret.
    """

    ident: str
    secret: str
    accounts: tuple[str, ...]

    def __repr__(self) -> str:  # secrets never reach logs
        return f"Credential({self.ident!r}, accounts={list(self.accounts)!r})"


DEMO_APPS = (Credential("demo-app-id", "demo-app-secret", (DEMO_ACCOUNT,)),)
DEMO_KEYS = (Credential("rpub-demo-0001", "rsec-demo-0001", (DEMO_ACCOUNT,)),)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs; tests build it directly, never through env vars."""

    host: str = "127.0.0.1"
    port: int = 8080
    journal: str = ".rokt-mock/journal.sqlite3"
    apps: tuple[Credential, ...] = DEMO_APPS
    keys: tuple[Credential, ...] = DEMO_KEYS
    token_ttl: int = 3600
    idempotency_retention: int = 3 * 3600
    max_body_bytes: int = 5 * 1024 * 1024
    strict: bool = False
    exact_bodies: bool = False
    invalid_events: str = "partial"
    event_max_age_days: int = 548
    event_max_future_seconds: int = 300
    log_level: str = "info"
    #: ``text`` or ``json`` (one JSON object per line on stderr); see mockserver/logs.py.
    log_format: str = "text"
    workers: int = 1
    threads: int = 16
    #: Scenario files (or names of the bundled ones) whose rules apply from the start.
    scenarios: tuple[str, ...] = ()
    #: Seed of fault probabilities and latency draws for rules that do not set their own.
    seed: int = 0
    #: A folder holding the contract instead of the bundled schemas/ (for schema development).
    schema_dir: str | None = None
    #: Required on every /__admin/ call (but health and the dashboard page) when set; a bind
    #: outside loopback refuses to start without one (docs/security.md).
    admin_token: str | None = None
    #: Not user-facing: where the file was found, for the start-up line.
    config_file: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.invalid_events not in INVALID_EVENTS_MODES:
            raise ConfigError(
                f"invalid_events must be one of {', '.join(INVALID_EVENTS_MODES)}, "
                f"got {self.invalid_events!r}"
            )
        for name in ("token_ttl", "idempotency_retention", "max_body_bytes", "workers", "threads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level must be debug|info|warning|error, not {self.log_level!r}")
        if self.log_format.lower() not in LOG_FORMATS:
            raise ConfigError(f"log_format must be text or json, not {self.log_format!r}")
        if self.admin_token is not None and not _TOKEN_CHARS.fullmatch(self.admin_token):
            # never echo the value: it may be a real secret with a typo
            raise ConfigError(
                "admin_token must be 1-4096 visible ASCII characters (no spaces); "
                "leave it unset for no token"
            )

    def __repr__(self) -> str:
        """Only the settings that differ from the defaults: the start-up log line."""
        default = Settings()
        changed = [
            f"{f.name}={'<redacted>' if f.name == 'admin_token' else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.compare and getattr(self, f.name) != getattr(default, f.name)
        ]
        return f"Settings({', '.join(changed)})"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_TOKEN_CHARS = re.compile(r"[!-~]{1,4096}")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _paths(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def parse_credentials(text: str) -> tuple[Credential, ...]:
    """``ID:SECRET[:ACCOUNT[,ACCOUNT...]]`` entries separated by ``;`` or whitespace."""
    creds = []
    for item in text.replace(";", " ").split():
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"expected ID:SECRET[:ACCOUNTS], got {item.split(':')[0]!r}:...")
        accounts = tuple(a for a in parts[2].split(",") if a) if len(parts) == 3 else ()
        creds.append(Credential(parts[0], parts[1], accounts or (DEMO_ACCOUNT,)))
    return tuple(creds)


def _credentials_from_toml(value: Any, what: str) -> tuple[Credential, ...]:
    if not isinstance(value, list):
        raise ValueError(f"[[{what}]] must be an array of tables")
    id_key = "id" if what == "apps" else "public"
    creds = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get(id_key), str):
            raise ValueError(f"{what}[{i}] needs a string '{id_key}'")
        if not isinstance(entry.get("secret"), str):
            raise ValueError(f"{what}[{i}] needs a string 'secret'")
        accounts = entry.get("accounts", [DEMO_ACCOUNT])
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise ValueError(f"{what}[{i}].accounts must be a list of strings")
        creds.append(Credential(entry[id_key], entry["secret"], tuple(accounts)))
    return tuple(creds)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one setting is spelled in each source, and how its text is parsed."""

    name: str
    env: str
    flag: str
    parse: Callable[[str], Any]
    help: str


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("host", "ROKT_MOCK_HOST", "--host", str, "Address to bind."),
    FieldSpec("port", "ROKT_MOCK_PORT", "--port", int, "Port to bind; 0 picks a free one."),
    FieldSpec(
        "journal",
        "ROKT_MOCK_JOURNAL",
        "--journal",
        str,
        "SQLite journal file, or :memory: for a throwaway run.",
    ),
    FieldSpec(
        "apps",
        "ROKT_MOCK_APPS",
        "--app",
        parse_credentials,
        "v1 OAuth2 app credentials, ID:SECRET[:ACCOUNTS] (repeatable; replaces the demo app).",
    ),
    FieldSpec(
        "keys",
        "ROKT_MOCK_KEYS",
        "--key",
        parse_credentials,
        "v2 key pairs, RPUB:RSEC[:ACCOUNTS] (repeatable; replaces the demo pair).",
    ),
    FieldSpec("token_ttl", "ROKT_MOCK_TOKEN_TTL", "--token-ttl", int, "Token lifetime, seconds."),
    FieldSpec(
        "idempotency_retention",
        "ROKT_MOCK_IDEMPOTENCY_RETENTION",
        "--idempotency-retention",
        int,
        "How long a v1 Idempotency-Key is remembered, seconds on the mock's clock.",
    ),
    FieldSpec(
        "max_body_bytes",
        "ROKT_MOCK_MAX_BODY_BYTES",
        "--max-body-bytes",
        int,
        "Largest accepted request body; larger ones get 413.",
    ),
    FieldSpec(
        "strict",
        "ROKT_MOCK_STRICT",
        "--strict",
        _bool,
        "Turn contract warnings (missing Charset, unknown fields, ...) into rejections.",
    ),
    FieldSpec(
        "exact_bodies",
        "ROKT_MOCK_EXACT_BODIES",
        "--exact-bodies",
        _bool,
        "Answer only what the real API sends: no data.details, documented messages.",
    ),
    FieldSpec(
        "invalid_events",
        "ROKT_MOCK_INVALID_EVENTS",
        "--invalid-events",
        str,
        "partial: invalid events go to unprocessedRecords; reject: the whole request gets 400.",
    ),
    FieldSpec(
        "log_level", "ROKT_MOCK_LOG_LEVEL", "--log-level", str, "debug, info, warning or error."
    ),
    FieldSpec(
        "log_format",
        "ROKT_MOCK_LOG_FORMAT",
        "--log-format",
        str,
        "text, or json: one JSON object per line on stderr (a line per request at info).",
    ),
    FieldSpec(
        "workers", "ROKT_MOCK_WORKERS", "--workers", int, "Worker processes sharing the journal."
    ),
    FieldSpec("threads", "ROKT_MOCK_THREADS", "--threads", int, "Threads per worker process."),
    FieldSpec(
        "scenarios",
        "ROKT_MOCK_SCENARIO",
        "--scenario",
        _paths,
        "Fault scenario file (YAML/TOML) or bundled scenario name (repeatable; ',' in the "
        "variable).",
    ),
    FieldSpec("seed", "ROKT_MOCK_SEED", "--seed", int, "Seed of fault probabilities and latency."),
    FieldSpec(
        "schema_dir",
        "ROKT_MOCK_SCHEMA_DIR",
        "--schema-dir",
        str,
        "Load the contract from this folder instead of the bundled schemas/.",
    ),
    FieldSpec(
        "admin_token",
        "ROKT_MOCK_ADMIN_TOKEN",
        "--admin-token",
        str,
        "Require this token on /__admin/ (X-Rokt-Mock-Admin-Token or Authorization: Bearer); "
        "needed to bind outside loopback. Prefer the variable: a flag shows in ps.",
    ),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
CONFIG_ENV = "ROKT_MOCK_CONFIG"


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(Settings) if f.name != "config_file"}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        try:
            if name in ("apps", "keys"):
                value = _credentials_from_toml(value, name)
            elif name == "scenarios":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of file names")
                value = tuple(value)
            else:
                expected = (
                    str
                    if name in ("schema_dir", "admin_token")
                    else type(getattr(Settings(), name))
                )
                if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
                    shown = type(value).__name__ if name == "admin_token" else repr(value)
                    raise ValueError(f"expected {expected.__name__}, got {shown}")
        except ValueError as exc:
            raise ConfigError(f"config file {path}: {key}: {exc}") from None
        values[name] = value
    return values


def load(
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from the file, the environment and already-parsed flags.

    ``overrides`` holds flag values (``None`` means "not given"). Raises :class:`ConfigError`
    naming the source of any bad value.
    """
    environ = environ if environ is not None else {}
    values: dict[str, Any] = {}
    path = config_file or environ.get(CONFIG_ENV)
    if path:
        values.update(_from_toml(Path(path)))
    for spec in FIELDS:
        raw = environ.get(spec.env)
        if raw is None:
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{spec.env}: {exc}") from None
    for name, value in (overrides or {}).items():
        if value is not None and value != ():
            values[name] = value
    try:
        return Settings(**values, config_file=path or None)
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise ConfigError(str(exc)) from None

"""The one settings object: environment (TRADEWATCH_*), .env, a YAML file, secret files.

Precedence, highest first: init arguments, environment, .env, secret files, the YAML file
(``TRADEWATCH_SETTINGS_FILE``, default ``tradewatch.yaml`` when it exists), defaults.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from schemas.alert import Severity
from schemas.durations import Duration, parse_duration
from schemas.streams import StreamNames

ENV_PREFIX = "TRADEWATCH_"

DEFAULT_CASE_DUE: dict[Severity, float] = {
    Severity.CRITICAL: 86_400,
    Severity.HIGH: 3 * 86_400,
    Severity.MEDIUM: 7 * 86_400,
    Severity.LOW: 30 * 86_400,
    Severity.INFO: 30 * 86_400,
}


def _default_consumer() -> str:
    # Unique per process: two replicas sharing a name would steal each other's pending entries.
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        secrets_dir=os.environ.get(f"{ENV_PREFIX}SECRETS_DIR") or None,
    )

    # --- where the data lives
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL of a Redis or Valkey server; unset: start an embedded Valkey",
    )
    redis_password_file: Path | None = Field(
        default=None, description="file holding the server password, when it is not in the URL"
    )
    namespace: str = Field(
        default="tradewatch",
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="prefix of every stream and key",
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="embedded server data (append-only file), inbox, local channel files",
    )
    embedded_port: int = Field(
        default=0, ge=0, le=65535, description="port of the embedded server; 0 picks a free one"
    )

    # --- configuration files
    catalog_file: Path = Field(default=Path("config/catalog.yaml"), description="item catalog")
    rules_files: Annotated[list[Path], NoDecode] = Field(
        default=[Path("config/rules.yaml")], description="rule files, evaluated together"
    )
    # --- rules
    rates_file: Path = Field(
        default=Path("config/rates.yaml"),
        description="currency rates used by price and value conditions",
    )
    exceptions_files: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="teams' own exception files (keyed by rule id), appended to the rules' exceptions",
    )
    nomenclature_file: Path | None = Field(
        default=None,
        description="the HS nomenclature as CSV (hscode, description): rules' HS codes must exist in it; "
        "unset: only their chapter is checked",
    )
    rules_reload_interval: Duration = Field(
        default=2.0,
        ge=0,
        description="how often rule, catalog, rates and exception files are checked; 0: never",
    )
    channels_file: Path = Field(
        default=Path("config/channels.yaml"), description="Apprise YAML configuration with tags"
    )
    subscriptions_file: Path = Field(
        default=Path("config/subscriptions.yaml"), description="who hears about what"
    )

    # --- consumption
    consumer: str = Field(default_factory=_default_consumer, description="consumer name in each group")
    batch_size: int = Field(default=256, ge=1, le=10_000, description="entries read per XREADGROUP")
    poll_interval: Duration = Field(
        default=1.0, gt=0, le=2.0, description="longest blocking read; above 2s fetches time out"
    )
    reclaim_idle: Duration = Field(
        default=30.0, gt=0, description="pending entries idle this long are reclaimed (XAUTOCLAIM)"
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="deliveries of one entry before it is dead-lettered"
    )
    dedup_retention: Duration = Field(
        default=30 * 86_400,
        gt=0,
        description="how long seen report ids and sent alert ids are kept",
    )

    # --- ingest
    inbox_dir: Path | None = Field(
        default=None, description="folder the ingest worker watches; default DATA_DIR/inbox"
    )
    inbox_interval: Duration = Field(default=2.0, gt=0, description="how often the inbox is scanned")
    max_report_bytes: int = Field(
        default=1_000_000, ge=1_000, description="largest report accepted, in bytes of JSON"
    )
    sources_file: Path = Field(
        default=Path("config/sources.yaml"),
        description="table mappings, inbox rules and news feeds; built-in sources need no file",
    )
    max_file_bytes: int = Field(
        default=2_000_000_000, ge=1_000, description="largest file `tradewatch ingest` or the inbox accepts"
    )
    http_enabled: bool = Field(default=True, description="serve POST /reports from the ingest stage")
    http_host: str = Field(default="127.0.0.1", description="address the ingest HTTP server binds")
    http_port: int = Field(default=8087, ge=0, le=65535, description="its port; 0 picks a free one")
    http_max_body_bytes: int = Field(
        default=5_000_000, ge=1_000, description="largest request body POST /reports accepts"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default=[], description="keys accepted by POST /reports (Bearer or X-API-Key); none: refused"
    )

    # --- sanctions
    sanctions_min_score: float = Field(
        default=0.85, gt=0, le=1, description="lowest score `sanctions screen` shows (rules set their own)"
    )
    sanctions_candidates: int = Field(
        default=25, ge=1, le=1_000, description="listed names scored per screened name, after blocking"
    )
    sanctions_keep_replaced: Duration = Field(
        default=600.0, gt=0, description="how long a replaced list version stays readable"
    )
    sanctions_max_age: Duration = Field(
        default=90 * 86_400,
        gt=0,
        description="a list older than this (from its own date of generation, else its load) is warned about",
    )

    # --- notify
    notify_group_wait: Duration = Field(
        default=1.0,
        ge=0,
        description="alerts sharing a group key within this wait become one message (per subscription: group_wait)",
    )
    notify_retry_base: Duration = Field(
        default=2.0, gt=0, description="first retry delay of a failed send; doubles per attempt, with jitter"
    )
    notify_retry_max: Duration = Field(default=600.0, gt=0, description="longest delay between retries")
    notify_max_attempts: int = Field(
        default=8, ge=1, description="sends of one message before it is dead-lettered"
    )
    notify_send_timeout: Duration = Field(
        default=60.0, gt=0, description="longest one send may take before it counts as failed"
    )
    notify_history_retention: Duration = Field(
        default=90 * 86_400, gt=0, description="how long alerts and their delivery history are kept"
    )

    # --- scale
    partitions: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="stream partitions (<ns>:reports:{p0}..): spread over Redis Cluster shards; 1: plain names",
    )
    redis_cluster: bool = Field(
        default=False,
        description="the server is a Redis Cluster: cluster clients, hash-tagged keys (also redis+cluster:// URLs)",
    )
    notify_send_concurrency: int = Field(
        default=1,
        ge=1,
        le=256,
        description="messages one channel's sender has in flight at once; a crash may repeat each of them",
    )
    notify_coalesce: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="messages of one subscription due at once (a backlog) sent as one, at most this many; 1: never",
    )

    # --- the store of record
    database_url: SecretStr | None = Field(
        default=None,
        description="the store of record: postgresql://user:pass@host/db or sqlite:///path; "
        "unset: an SQLite file DATA_DIR/tradewatch.db",
    )
    case_due: Annotated[dict[Severity, Duration], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_CASE_DUE),
        description="time to decide a case, by its severity: critical=1d,high=3d,medium=7d,low=30d,info=30d",
    )
    comment_max_chars: int = Field(
        default=10_000, ge=100, le=1_000_000, description="longest comment on a case, in characters"
    )
    audit_retention: Duration = Field(
        default=3653 * 86_400,
        ge=86_400,
        description="audit entries and closed cases are kept at least this long (ten years)",
    )

    # --- the console
    console_host: str = Field(
        default="127.0.0.1", description="address the console binds (0.0.0.0 only behind a TLS proxy)"
    )
    console_port: int = Field(
        default=8470, ge=0, le=65535, description="the console's port; 0 picks a free one"
    )
    console_secret: SecretStr | None = Field(
        default=None,
        description="key that signs session cookies (a secret file in production); unset: one is made "
        "and kept in DATA_DIR/console.key",
    )
    console_session: Duration = Field(
        default=8 * 3600.0, gt=0, description="a console session ends this long after its login"
    )
    console_secure_cookies: bool = Field(
        default=False, description="mark session cookies Secure (set when the console is served over HTTPS)"
    )
    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="failed logins from one address or for one name within 15 minutes before a pause",
    )
    console_trusted_header: str | None = Field(
        default=None,
        description="header a single sign-on proxy sets to the user's name (e.g. X-Forwarded-User); "
        "honoured only from console_trusted_proxies",
    )
    console_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="addresses or networks (CIDR) of the single sign-on proxies"
    )

    # --- history: the report archive, event time, lookbacks
    archive_retention: Duration = Field(
        default=3 * 365 * 86_400,
        ge=0,
        description="archived reports received longer ago than this are purged (the archive stage, "
        "`tradewatch archive purge`); 0: kept for ever",
    )
    archive_purge_interval: Duration = Field(
        default=3_600.0, gt=0, description="how often the archive stage purges past retention"
    )
    backfill_horizon: Duration = Field(
        default=30 * 86_400,
        gt=0,
        description="a report whose event time is older than this when it arrives counts in rules over "
        "time but its own alerts are marked backfill (recorded, not notified)",
    )
    lookback_window: Duration = Field(
        default=365 * 86_400,
        gt=0,
        description="when a sanctions list changes, archived reports this far back are screened again",
    )

    # --- operations
    startup_wait: Duration = Field(
        default=60.0,
        ge=0,
        description="a server unreachable while a worker starts (not up yet, restarting) is retried this long",
    )
    shutdown_grace: Duration = Field(
        default=30.0, gt=0, description="on SIGTERM/SIGINT, how long the work in hand may take to be acked"
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus metrics and health endpoints; 0: off"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address the metrics endpoint binds")
    heartbeat_interval: Duration = Field(
        default=5.0, gt=0, description="how often each worker writes its heartbeat key"
    )
    stall_after: Duration = Field(
        default=120.0,
        gt=0,
        description="a group with work waiting and nobody reading or reclaiming this long is stalled",
    )
    stall_alert_url: SecretStr | None = Field(
        default=None, description="Apprise URL told when the pipeline stalls; unset: log and metric only"
    )

    # --- logs
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("rules_files", "exceptions_files", "api_keys", "console_trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # TRADEWATCH_RULES_FILES="a.yaml,b.yaml" as well as a JSON list or a YAML list; API keys
        # also one per line, as a secret file holds them.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
        return value

    @field_validator("case_due", mode="before")
    @classmethod
    def _due_by_severity(cls, value: object) -> object:
        # "critical=1d,high=3d" (or a mapping); severities not named keep their default.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                pairs = [p.split("=", 1) for p in text.replace(";", ",").split(",") if p.strip()]
                if any(len(p) != 2 for p in pairs):
                    raise ValueError(f"{value!r}: write severity=duration pairs, e.g. critical=1d,high=3d")
                value = {k.strip(): v.strip() for k, v in pairs}
        if isinstance(value, dict):
            known = {s.value for s in Severity}
            for key in value:
                if str(key) not in known:
                    raise ValueError(f"{key!r} is not a severity ({', '.join(sorted(known))})")
            return {**DEFAULT_CASE_DUE, **{Severity(str(k)): parse_duration(v) for k, v in value.items()}}
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = Path(os.environ.get(f"{ENV_PREFIX}SETTINGS_FILE", "tradewatch.yaml"))
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, yaml_source

    @property
    def clustered(self) -> bool:
        """A Redis Cluster: TRADEWATCH_REDIS_CLUSTER=true or a ``redis+cluster://`` URL."""
        url = self.redis_url.get_secret_value() if self.redis_url is not None else ""
        return self.redis_cluster or url.startswith(("redis+cluster://", "rediss+cluster://"))

    @property
    def streams(self) -> StreamNames:
        return StreamNames(self.namespace, self.partitions, tagged=self.clustered)

    @property
    def inbox(self) -> Path:
        return self.inbox_dir or self.data_dir / "inbox"

    def store_url(self) -> str:
        """The store of record's URL (with its password): the configured one, else the SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.embedded_database.as_posix()}"

    @property
    def embedded_database(self) -> Path:
        """The embedded default's SQLite file (used when no database URL is set)."""
        return self.data_dir / "tradewatch.db"

    @property
    def embedded_store(self) -> bool:
        """No database configured: the SQLite file under DATA_DIR, migrated by itself at start."""
        return self.database_url is None

    def redis_password(self) -> str | None:
        if self.redis_password_file is None:
            return None
        return self.redis_password_file.read_text(encoding="utf-8").strip() or None
